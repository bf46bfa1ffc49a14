//! Feature preprocessing used by the benchmark protocols. All functions work in place on `[n, d]` f64
//! matrices, one domain at a time (each domain is normalised with its own statistics, as the GFK/JDA code
//! does).

use ndarray::{Array2, Axis};
use serde::{Deserialize, Serialize};

/// Divides each row by its sum (rows summing to 0 are left as they are).
pub fn row_sum_normalize(x: &mut Array2<f64>) {
    for mut r in x.rows_mut() {
        let s: f64 = r.sum();
        if s != 0.0 {
            r.mapv_inplace(|v| v / s);
        }
    }
}

/// Standardises each column to mean 0 and (population, `ddof = 0`) standard deviation 1, as MATLAB's
/// `zscore(x, 1)`. Constant columns are only centred.
pub fn zscore(x: &mut Array2<f64>) {
    let n = x.nrows() as f64;
    if n == 0.0 {
        return;
    }
    for mut c in x.columns_mut() {
        let mean = c.sum() / n;
        let var = c.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
        let sd = var.sqrt();
        let sd = if sd > 0.0 { sd } else { 1.0 };
        c.mapv_inplace(|v| (v - mean) / sd);
    }
}

/// Scales each row to unit Euclidean norm (zero rows are left as they are).
pub fn l2_normalize(x: &mut Array2<f64>) {
    for mut r in x.rows_mut() {
        let norm = r.iter().map(|v| v * v).sum::<f64>().sqrt();
        if norm > 0.0 {
            r.mapv_inplace(|v| v / norm);
        }
    }
}

/// A named feature normalisation (the `normalize:` option of feature datasets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FeatureNorm {
    /// Features as stored.
    #[default]
    None,
    /// Each sample scaled to unit L2 norm.
    L2,
    /// Each feature standardised (per domain).
    Zscore,
    /// Each sample divided by its sum, then each feature standardised (per domain): the GFK/JDA SURF protocol.
    SumZscore,
    /// Each sample divided by its sum.
    Sum,
}

impl FeatureNorm {
    /// Whether it standardises each feature per domain (`zscore`, `sum-zscore`): that removes each domain's mean
    /// and scale, much of a covariate shift, so divergences measured after it understate the shift.
    pub fn standardises_per_domain(self) -> bool {
        matches!(self, FeatureNorm::Zscore | FeatureNorm::SumZscore)
    }

    /// The normalisation without its per-domain standardisation (`sum-zscore` → `sum`, `zscore` → `none`).
    pub fn without_standardisation(self) -> Self {
        match self {
            FeatureNorm::Zscore => FeatureNorm::None,
            FeatureNorm::SumZscore => FeatureNorm::Sum,
            other => other,
        }
    }

    /// The name as written in YAML.
    pub fn name(self) -> &'static str {
        match self {
            FeatureNorm::None => "none",
            FeatureNorm::L2 => "l2",
            FeatureNorm::Zscore => "zscore",
            FeatureNorm::SumZscore => "sum-zscore",
            FeatureNorm::Sum => "sum",
        }
    }

    /// Applies the normalisation to one domain's features.
    pub fn apply(self, x: &mut Array2<f64>) {
        match self {
            FeatureNorm::None => {}
            FeatureNorm::L2 => l2_normalize(x),
            FeatureNorm::Zscore => zscore(x),
            FeatureNorm::SumZscore => {
                row_sum_normalize(x);
                zscore(x);
            }
            FeatureNorm::Sum => row_sum_normalize(x),
        }
    }
}

/// Flattens an n-d array `[n, ...]` into `[n, prod(...)]` (1-d becomes a column).
pub fn flatten_rows(a: ndarray::ArrayD<f64>) -> Array2<f64> {
    let n = if a.ndim() == 0 { 1 } else { a.len_of(Axis(0)) };
    let d = a.len().checked_div(n).unwrap_or(0);
    let a = a.as_standard_layout().into_owned();
    a.into_shape_with_order((n, d)).expect("sizes agree")
}

/// Converts a `[n, d]` f64 matrix to the f32 `ArrayD` of a [`crate::Domain`].
pub fn to_f32_dyn(x: &Array2<f64>) -> ndarray::ArrayD<f32> {
    x.mapv(|v| v as f32).into_dyn()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn sum_zscore_and_l2() {
        let mut x = array![[1.0, 3.0], [2.0, 2.0], [0.0, 0.0]];
        FeatureNorm::SumZscore.apply(&mut x);
        // After row-sum: [.25,.75],[.5,.5],[0,0]; column 0 mean .25, sd sqrt(((0)^2+.25^2+.25^2)/3).
        let sd = (0.125f64 / 3.0).sqrt();
        assert!((x[[1, 0]] - 0.25 / sd).abs() < 1e-12);
        assert!(x.sum_axis(Axis(0)).iter().all(|v| v.abs() < 1e-12));
        let mut y = array![[3.0, 4.0], [0.0, 0.0]];
        l2_normalize(&mut y);
        assert_eq!(y, array![[0.6, 0.8], [0.0, 0.0]]);
        let mut c = array![[5.0], [5.0]];
        zscore(&mut c);
        assert_eq!(c, array![[0.0], [0.0]]);
    }
}
