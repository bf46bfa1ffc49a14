//! Input checks shared by every metric.

use crate::error::{MetricsError, Result};
use ndarray::ArrayView2;
use rayon::prelude::*;

/// Checks one sample: at least `min_rows` rows, at least one column, only finite values.
pub fn check_sample(what: &str, x: ArrayView2<'_, f64>, min_rows: usize, purpose: &str) -> Result<()> {
    if x.nrows() < min_rows {
        return Err(MetricsError::TooFewSamples {
            what: what.to_string(),
            got: x.nrows(),
            needed: min_rows,
            purpose: purpose.to_string(),
        });
    }
    if x.ncols() == 0 {
        return Err(MetricsError::NoFeatures { what: what.to_string() });
    }
    // Rows scanned in parallel by a vectorised test; the first row that fails it is searched for the culprit.
    let first_bad = (0..x.nrows()).into_par_iter().with_min_len(64).find_first(|&r| {
        let row = x.row(r);
        !match row.as_slice() {
            Some(v) => all_finite(v),
            None => row.iter().all(|v| v.is_finite()),
        }
    });
    if let Some(row) = first_bad {
        for (col, &v) in x.row(row).iter().enumerate() {
            if !v.is_finite() {
                return Err(MetricsError::NonFinite { what: what.to_string(), row, col, value: format!("{v}") });
            }
        }
    }
    Ok(())
}

/// Whether every value is finite, without branches per value (so that it vectorises): `v · 0` is ±0 for a finite `v`
/// and NaN for ±inf and NaN, and a NaN stays in the lane sums.
fn all_finite(x: &[f64]) -> bool {
    let mut acc = [0.0f64; 8];
    let chunks = x.chunks_exact(8);
    let mut rest = 0.0;
    for &v in chunks.remainder() {
        rest += v * 0.0;
    }
    for c in chunks {
        for k in 0..8 {
            acc[k] += c[k] * 0.0;
        }
    }
    acc.iter().sum::<f64>() + rest == 0.0
}

/// Checks a source/target pair: same number of columns, then [`check_sample`] on both.
pub fn check_pair(xs: ArrayView2<'_, f64>, xt: ArrayView2<'_, f64>, min_rows: usize, purpose: &str) -> Result<()> {
    if xs.ncols() != xt.ncols() {
        return Err(MetricsError::DimensionMismatch { source_dim: xs.ncols(), target_dim: xt.ncols() });
    }
    check_sample("source", xs, min_rows, purpose)?;
    check_sample("target", xt, min_rows, purpose)
}

pub(crate) fn invalid(name: &str, reason: impl Into<String>) -> MetricsError {
    MetricsError::InvalidSetting { name: name.to_string(), reason: reason.into() }
}

/// An [`MetricsError::InvalidSetting`] for `name`.
pub fn invalid_setting(name: &str, reason: impl Into<String>) -> MetricsError {
    invalid(name, reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn finite_scan_finds_every_kind_of_non_finite_value() {
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            for len in [1, 7, 8, 9, 31] {
                for at in 0..len {
                    let mut x = vec![1.5e300; len];
                    assert!(all_finite(&x));
                    x[at] = bad;
                    assert!(!all_finite(&x), "{bad} at {at} of {len}");
                }
            }
        }
        assert!(all_finite(&[]));
        assert!(all_finite(&[f64::MAX, -f64::MAX, f64::MIN_POSITIVE, 0.0, -0.0]));
    }

    #[test]
    fn names_the_problem() {
        let a = array![[1.0, 2.0], [3.0, 4.0]];
        let b = array![[1.0, 2.0, 3.0], [3.0, 4.0, 5.0]];
        let e = check_pair(a.view(), b.view(), 2, "x").unwrap_err();
        assert_eq!(e.to_string(), "feature dimensions differ: source has 2 columns, target has 3");
        let one = array![[1.0, 2.0]];
        let e = check_pair(a.view(), one.view(), 2, "the unbiased MMD").unwrap_err();
        assert_eq!(e.to_string(), "target has 1 samples; 2 at least are needed for the unbiased MMD");
        let nan = array![[1.0, 2.0], [f64::NAN, 4.0]];
        let e = check_pair(nan.view(), a.view(), 2, "x").unwrap_err();
        assert_eq!(e.to_string(), "source contains a non-finite value (NaN) at row 1, column 0");
        let inf = array![[1.0, f64::NEG_INFINITY], [0.0, 4.0]];
        let e = check_pair(a.view(), inf.view(), 2, "x").unwrap_err();
        assert!(e.to_string().contains("(-inf) at row 0, column 1"), "{e}");
        let empty = ndarray::Array2::<f64>::zeros((3, 0));
        let e = check_pair(empty.view(), empty.view(), 2, "x").unwrap_err();
        assert_eq!(e.to_string(), "source has no feature columns");
    }
}
