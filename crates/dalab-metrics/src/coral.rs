//! CORAL: the distance between second-order statistics, and the classic alignment transform.
//!
//! Distance (Sun & Saenko 2016, Deep CORAL): `‖C_S − C_T‖²_F / (4 d²)` with unbiased covariances
//! `C = (X − 1μᵀ)ᵀ(X − 1μᵀ)/(n − 1)`. TLlib's `CorrelationAlignmentLoss` differs: it returns
//! `‖μ_S − μ_T‖²/d + ‖C_S − C_T‖²_F/d²` (a mean term, and 1/d² instead of 1/(4d²)); see `docs/metrics.md`.

use crate::centred::{self, Centred};
use crate::error::{MetricsError, Result};
use crate::gemm;
use crate::linalg;
use crate::validate::{check_pair, check_sample, invalid};
use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};

/// A CORAL distance with the quantities behind it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CoralResult {
    /// `‖C_S − C_T‖²_F / (4 d²)`.
    pub coral: f64,
    /// `‖C_S − C_T‖²_F` (unscaled).
    pub frobenius_sq: f64,
    /// Feature dimension `d`.
    pub dim: usize,
    /// Rows of the source sample.
    pub n_source: usize,
    /// Rows of the target sample.
    pub n_target: usize,
}

/// Unbiased sample covariance `(X − 1μᵀ)ᵀ(X − 1μᵀ)/(n − 1)` (d×d). Needs ≥ 2 rows. Only the tiles on and above the
/// diagonal are computed (faer's products, `centred`), then mirrored: the result is exactly symmetric.
pub fn covariance(x: ArrayView2<'_, f64>) -> Result<Array2<f64>> {
    check_sample("sample", x, 2, "a covariance")?;
    Ok(covariance_on(centred::detect(), x))
}

fn covariance_on(path: gemm::Path, x: ArrayView2<'_, f64>) -> Array2<f64> {
    let parts = [Centred { x, scale: 1.0 / (x.nrows() as f64 - 1.0) }];
    centred::centred_gram(path, &parts)
}

/// CORAL distance `‖C_S − C_T‖²_F / (4 d²)`, computed block-wise over column tiles (no d×d matrix is kept; memory
/// O((n_s + n_t) d) for the centred copies, plus a strip of tiles per thread), strips in parallel. Each tile of
/// `C_S − C_T` is `Σ_source x̃ x̃ᵀ/(n_s − 1) − Σ_target ỹ ỹᵀ/(n_t − 1)` of the centred columns (one product per
/// sample, accumulated), only the tiles that reach the upper triangle are computed, and the squares of their entries
/// are summed tile by tile in a fixed order (deterministic, independent of the thread count).
pub fn coral_distance(xs: ArrayView2<'_, f64>, xt: ArrayView2<'_, f64>) -> Result<CoralResult> {
    check_pair(xs, xt, 2, "a covariance")?;
    Ok(coral_distance_on(centred::detect(), xs, xt))
}

fn coral_distance_on(path: gemm::Path, xs: ArrayView2<'_, f64>, xt: ArrayView2<'_, f64>) -> CoralResult {
    let (ns, nt, d) = (xs.nrows(), xt.nrows(), xs.ncols());
    let parts = [
        Centred { x: xs.view(), scale: 1.0 / (ns as f64 - 1.0) },
        Centred { x: xt.view(), scale: -1.0 / (nt as f64 - 1.0) },
    ];
    let tiles = centred::column_tiles(d);
    let pairs = linalg::upper_pairs(tiles.len());
    let parts_sq =
        centred::map_centred_gram_tiles(path, &parts, &tiles, &pairs, &|i, j, g| centred::symmetric_tile_sq(g, i == j));
    let frobenius_sq: f64 = parts_sq.iter().sum();
    CoralResult { coral: frobenius_sq / (4.0 * (d * d) as f64), frobenius_sq, dim: d, n_source: ns, n_target: nt }
}

/// Settings of the CORAL alignment transform.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoralTransformSettings {
    /// Regulariser λ added to both covariances (default 1, as in the CORAL paper). λ = 0 needs full-rank
    /// covariances.
    pub lambda: f64,
}

impl Default for CoralTransformSettings {
    fn default() -> Self {
        Self { lambda: 1.0 }
    }
}

/// The classic CORAL alignment (Sun, Feng & Saenko 2016):
/// `A = (C_S + λI)^(−1/2) (C_T + λI)^(1/2)`, applied to source rows as `x ↦ x A` (rows are not centred,
/// as in the authors' MATLAB code). Matrix powers by a symmetric eigendecomposition (faer, f64).
#[derive(Clone, Debug)]
pub struct CoralTransform {
    /// Settings used.
    pub settings: CoralTransformSettings,
    /// `(C_S + λI)^(−1/2)`.
    pub whiten: Array2<f64>,
    /// `(C_T + λI)^(1/2)`.
    pub recolor: Array2<f64>,
    /// `whiten · recolor`, the d×d matrix applied to rows.
    pub matrix: Array2<f64>,
}

impl CoralTransform {
    /// Fits the transform from a source and a target sample.
    pub fn fit(xs: ArrayView2<'_, f64>, xt: ArrayView2<'_, f64>, settings: &CoralTransformSettings) -> Result<Self> {
        check_pair(xs, xt, 2, "a covariance")?;
        let lambda = settings.lambda;
        if !(lambda.is_finite() && lambda >= 0.0) {
            return Err(invalid("coral.lambda", format!("must be non-negative and finite, got {lambda}")));
        }
        let d = xs.ncols();
        let eye = Array2::<f64>::eye(d) * lambda;
        let cs = covariance(xs)? + &eye;
        let ct = covariance(xt)? + &eye;
        let (vs, es) = linalg::sym_eigen(cs.view());
        check_pd("source covariance + λI", &vs)?;
        let (vt, et) = linalg::sym_eigen(ct.view());
        check_pd("target covariance + λI", &vt)?;
        let whiten = linalg::sym_apply(&vs, es.view(), |l| 1.0 / l.sqrt());
        let recolor = linalg::sym_apply(&vt, et.view(), f64::sqrt);
        let matrix = whiten.dot(&recolor);
        Ok(Self { settings: settings.clone(), whiten, recolor, matrix })
    }

    /// Applies `x ↦ x A` to every row.
    pub fn apply(&self, x: ArrayView2<'_, f64>) -> Result<Array2<f64>> {
        if x.ncols() != self.matrix.nrows() {
            return Err(MetricsError::DimensionMismatch { source_dim: x.ncols(), target_dim: self.matrix.nrows() });
        }
        check_sample("input", x, 0, "the CORAL transform")?;
        Ok(x.dot(&self.matrix))
    }
}

fn check_pd(what: &str, vals: &[f64]) -> Result<()> {
    let max = vals.iter().copied().fold(0.0, f64::max);
    let min = vals.iter().copied().fold(f64::INFINITY, f64::min);
    if min.is_nan() || min <= 1e-12 * max.max(f64::MIN_POSITIVE) {
        return Err(MetricsError::NotPositiveDefinite { what: what.to_string(), min_eigenvalue: min });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Axis;
    use rand::{Rng, SeedableRng};

    /// The direct formula: centred copies, full products by `ndarray`, the difference, its squared norm.
    fn direct(xs: ArrayView2<'_, f64>, xt: ArrayView2<'_, f64>) -> (Array2<f64>, Array2<f64>, f64) {
        let cov = |x: ArrayView2<'_, f64>| {
            let c = &x - &x.mean_axis(Axis(0)).unwrap();
            c.t().dot(&c) / (x.nrows() as f64 - 1.0)
        };
        let (cs, ct) = (cov(xs), cov(xt));
        let f = (&cs - &ct).iter().map(|v| v * v).sum();
        (cs, ct, f)
    }

    #[test]
    fn both_paths_match_the_direct_formula_and_ignore_the_thread_count() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        // d spanning one short tile, several tiles of 112, several of 224 with a short last one.
        for &(ns, nt, d) in &[(2, 3, 1), (50, 31, 20), (300, 260, 250), (70, 90, 470)] {
            let xs = Array2::from_shape_simple_fn((ns, d), || rng.random::<f64>() * 4.0 - 1.0);
            let xt = Array2::from_shape_simple_fn((nt, d), || rng.random::<f64>() * 3.0 + 5.0);
            let (cs, ct, f) = direct(xs.view(), xt.view());
            for path in gemm::all_paths() {
                let r = coral_distance_on(path, xs.view(), xt.view());
                assert!((r.frobenius_sq - f).abs() <= 1e-12 * f, "{path:?} {ns}/{nt}x{d}: {} vs {f}", r.frobenius_sq);
                for (got, want) in [(covariance_on(path, xs.view()), &cs), (covariance_on(path, xt.view()), &ct)] {
                    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
                    let err = (&got - want).iter().fold(0.0f64, |m, v| m.max(v.abs()));
                    assert!(err <= 1e-13 * scale, "{path:?} {ns}x{d}: covariance off by {err}");
                    assert_eq!(got, got.t());
                }
            }
            let one = crate::with_threads(Some(1), || coral_distance(xs.view(), xt.view()).unwrap()).unwrap();
            let two = crate::with_threads(Some(2), || coral_distance(xs.view(), xt.view()).unwrap()).unwrap();
            assert_eq!(one.frobenius_sq.to_bits(), two.frobenius_sq.to_bits(), "thread count changed the result");
        }
    }
}
