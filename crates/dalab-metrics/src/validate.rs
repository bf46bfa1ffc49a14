//! Input checks shared by every metric.

use crate::error::{MetricsError, Result};
use ndarray::ArrayView2;

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
    for (row, r) in x.outer_iter().enumerate() {
        for (col, &v) in r.iter().enumerate() {
            if !v.is_finite() {
                return Err(MetricsError::NonFinite { what: what.to_string(), row, col, value: format!("{v}") });
            }
        }
    }
    Ok(())
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
