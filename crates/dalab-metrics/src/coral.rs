//! CORAL: the distance between second-order statistics, and the classic alignment transform.
//!
//! Distance (Sun & Saenko 2016, Deep CORAL): `‖C_S − C_T‖²_F / (4 d²)` with unbiased covariances
//! `C = (X − 1μᵀ)ᵀ(X − 1μᵀ)/(n − 1)`. TLlib's `CorrelationAlignmentLoss` differs: it returns
//! `‖μ_S − μ_T‖²/d + ‖C_S − C_T‖²_F/d²` (a mean term, and 1/d² instead of 1/(4d²)); see `docs/metrics.md`.

use crate::error::{MetricsError, Result};
use crate::linalg;
use crate::validate::{check_pair, check_sample, invalid};
use ndarray::linalg::general_mat_mul;
use ndarray::{Array1, Array2, ArrayView2, Axis, s};
use rayon::prelude::*;
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

fn centred(x: ArrayView2<'_, f64>) -> Array2<f64> {
    let mean = x.mean_axis(Axis(0)).unwrap_or_else(|| Array1::zeros(x.ncols()));
    &x - &mean
}

/// Unbiased sample covariance `(X − 1μᵀ)ᵀ(X − 1μᵀ)/(n − 1)` (d×d). Needs ≥ 2 rows.
pub fn covariance(x: ArrayView2<'_, f64>) -> Result<Array2<f64>> {
    check_sample("sample", x, 2, "a covariance")?;
    let c = centred(x);
    Ok(c.t().dot(&c) / (x.nrows() as f64 - 1.0))
}

/// CORAL distance `‖C_S − C_T‖²_F / (4 d²)`, computed block-wise over column tiles (no d×d matrix is kept
/// when d is large; memory O((n_s + n_t) d)), tiles in parallel.
pub fn coral_distance(xs: ArrayView2<'_, f64>, xt: ArrayView2<'_, f64>) -> Result<CoralResult> {
    check_pair(xs, xt, 2, "a covariance")?;
    let (ns, nt, d) = (xs.nrows(), xt.nrows(), xs.ncols());
    let a = centred(xs);
    let b = centred(xt);
    let (fa, fb) = (1.0 / (ns as f64 - 1.0), 1.0 / (nt as f64 - 1.0));
    let tiles = linalg::split_rows(0, d, linalg::tile_size(d).min(256));
    let pairs = linalg::upper_pairs(tiles.len());
    let edge = tiles.iter().map(|r| r.len()).max().unwrap_or(0);
    let parts: Vec<f64> = pairs
        .par_iter()
        .map_init(
            || (Array2::<f64>::zeros((edge, edge)), Array2::<f64>::zeros((edge, edge))),
            |(ba, bb), &(i, j)| {
                let (ri, rj) = (tiles[i].clone(), tiles[j].clone());
                let (h, w) = (ri.len(), rj.len());
                let mut ga = ba.slice_mut(s![..h, ..w]);
                let mut gb = bb.slice_mut(s![..h, ..w]);
                general_mat_mul(fa, &a.slice(s![.., ri.clone()]).t(), &a.slice(s![.., rj.clone()]), 0.0, &mut ga);
                general_mat_mul(fb, &b.slice(s![.., ri]).t(), &b.slice(s![.., rj]), 0.0, &mut gb);
                let sq: f64 = ga.iter().zip(gb.iter()).map(|(x, y)| (x - y) * (x - y)).sum();
                if i == j { sq } else { 2.0 * sq }
            },
        )
        .collect();
    let frobenius_sq: f64 = parts.iter().sum();
    Ok(CoralResult { coral: frobenius_sq / (4.0 * (d * d) as f64), frobenius_sq, dim: d, n_source: ns, n_target: nt })
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
/// as in the authors' MATLAB code). Matrix powers by a symmetric eigendecomposition (Jacobi, f64).
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
