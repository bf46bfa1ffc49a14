//! Maximum mean discrepancy (MMD²) with explicit kernel, bandwidth policy and estimator.
//!
//! Kernels: `k(a, b) = Σ_u w_u exp(−‖a − b‖² / (2 σ_u²))` with `σ_u² = m_u · σ²_base` (Gaussian family),
//! or `k(a, b) = a·b` (linear). The base `σ²_base` comes from a [`BandwidthPolicy`] and is recorded in the
//! [`MmdResult`]. See `docs/metrics.md` for the formulas of the three estimators.

use crate::error::{MetricsError, Result};
use crate::linalg::{self, Diagonal, GemmScalar};
use crate::validate::{check_pair, invalid};
use ndarray::{Array2, ArrayView2, Axis, concatenate};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// The kernel of the MMD.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Kernel {
    /// `k(a, b) = a·b`. With the biased estimator MMD² = ‖mean_s − mean_t‖². No bandwidth.
    Linear,
    /// A weighted sum of Gaussian kernels `Σ_u w_u exp(−‖a − b‖² / (2 m_u σ²_base))`.
    /// One bandwidth is `multipliers = [1], weights = [1]`.
    Gaussian {
        /// Bandwidth multipliers `m_u` (> 0) applied to the base squared bandwidth.
        multipliers: Vec<f64>,
        /// Weights `w_u` (≥ 0, same length); not normalised.
        weights: Vec<f64>,
    },
}

impl Kernel {
    /// One Gaussian kernel with `σ² = σ²_base`.
    pub fn gaussian() -> Self {
        Kernel::Gaussian { multipliers: vec![1.0], weights: vec![1.0] }
    }

    /// The 5-kernel family of the NumPy peer and of DAN's released code: `σ² = σ²_base × {1/4, 1/2, 1, 2, 4}`,
    /// equal weights 1 (summed, not averaged). (DAN's code has no factor 2 in the exponent: see docs/metrics.md.)
    pub fn dan() -> Self {
        Self::gaussian_geometric(2.0, -2, 2)
    }

    /// Multipliers `ratio^k` for `k = from..=to`, equal weights 1. `gaussian_geometric(2f64.sqrt(), -16, 16)`
    /// is the 33-kernel family of the DAN paper (2⁻⁸ … 2⁸ in steps of 2^½).
    pub fn gaussian_geometric(ratio: f64, from: i32, to: i32) -> Self {
        let multipliers: Vec<f64> = (from..=to).map(|k| ratio.powi(k)).collect();
        let weights = vec![1.0; multipliers.len()];
        Kernel::Gaussian { multipliers, weights }
    }

    fn validate(&self) -> Result<()> {
        if let Kernel::Gaussian { multipliers, weights } = self {
            if multipliers.is_empty() {
                return Err(invalid("mmd.kernel.multipliers", "must name at least one bandwidth"));
            }
            if multipliers.len() != weights.len() {
                return Err(invalid(
                    "mmd.kernel.weights",
                    format!("has {} entries but there are {} multipliers", weights.len(), multipliers.len()),
                ));
            }
            if let Some(m) = multipliers.iter().find(|m| !(m.is_finite() && **m > 0.0)) {
                return Err(invalid("mmd.kernel.multipliers", format!("must be positive and finite, got {m}")));
            }
            if let Some(w) = weights.iter().find(|w| !(w.is_finite() && **w >= 0.0)) {
                return Err(invalid("mmd.kernel.weights", format!("must be non-negative and finite, got {w}")));
            }
        }
        Ok(())
    }
}

/// How the base squared bandwidth `σ²_base` is chosen.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum BandwidthPolicy {
    /// A fixed `σ²_base`.
    Fixed {
        /// The base squared bandwidth (> 0).
        sigma2: f64,
    },
    /// Median heuristic: `σ²_base` = median of `‖z_i − z_j‖²` over pairs `i < j` of the pooled sample
    /// (mean of the two middle values for an even count). Above `max_points` pooled rows, a seeded random
    /// subset of `max_points` rows is used (seed = the MMD seed).
    Median {
        /// Largest number of pooled rows used (≥ 2).
        max_points: usize,
    },
    /// Mean squared distance over all ordered pairs `i ≠ j` of the pooled sample,
    /// `Σ_{i≠j} ‖z_i − z_j‖² / (N(N − 1))` (DAN's released code, the NumPy peer; TLlib divides by N²), in O(N d) by a
    /// closed form.
    MeanSquaredDistance,
}

/// The MMD² estimator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Estimator {
    /// V-statistic: `mean K_ss + mean K_tt − 2 mean K_st`, diagonals included. ≥ 0 for a p.d. kernel.
    Biased,
    /// U-statistic: diagonals of `K_ss`, `K_tt` excluded. Unbiased, can be negative.
    Unbiased,
    /// Linear-time estimator of Gretton et al. 2012 over consecutive pairs (quad-tuples
    /// `(x_{2i}, x_{2i+1}, y_{2i}, y_{2i+1})`, 0-based), `⌊min(n_s, n_t)/2⌋` of them; the rest is unused.
    Linear,
}

/// Floating-point type of the Gram products of the quadratic estimators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// f64 everywhere (reference accuracy, 1e-10 against NumPy in f64).
    F64,
    /// Gram products `Z_I Z_Jᵀ` in f32 (as the NumPy peer on f32 data); norms, kernels and sums in f64.
    /// Relative error of the value ~1e-5. Much faster on x86-64 CPUs with AVX-512F (the crate's packed f32 kernel,
    /// see `dalab_metrics::gemm`), about twice as fast elsewhere.
    F32,
}

/// Every setting of an MMD² computation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MmdSettings {
    /// Kernel (default: [`Kernel::dan`]).
    pub kernel: Kernel,
    /// Bandwidth policy (default: [`BandwidthPolicy::MeanSquaredDistance`]); ignored by the linear kernel.
    pub bandwidth: BandwidthPolicy,
    /// Estimator (default: [`Estimator::Biased`]).
    pub estimator: Estimator,
    /// Precision of the Gram products (default: [`Precision::F64`]).
    pub precision: Precision,
    /// Number of permutations of the two-sample permutation test; 0 (default) skips the test.
    pub permutations: usize,
    /// Seed of the permutation test and of the median-heuristic subsample (default 0).
    pub seed: u64,
}

impl Default for MmdSettings {
    fn default() -> Self {
        Self {
            kernel: Kernel::dan(),
            bandwidth: BandwidthPolicy::MeanSquaredDistance,
            estimator: Estimator::Biased,
            precision: Precision::F64,
            permutations: 0,
            seed: 0,
        }
    }
}

/// Result of a two-sample permutation test.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PermutationTest {
    /// Number of random relabellings of the pooled sample.
    pub permutations: usize,
    /// `(1 + #{b : MMD²_b ≥ MMD²}) / (1 + permutations)`.
    pub p_value: f64,
    /// Mean of the permuted statistics.
    pub null_mean: f64,
}

/// An MMD² value with everything needed to reproduce it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MmdResult {
    /// The estimate of MMD².
    pub mmd2: f64,
    /// Settings used.
    pub settings: MmdSettings,
    /// Resolved base squared bandwidth (None for the linear kernel).
    pub base_sigma2: Option<f64>,
    /// Resolved `σ_u² = m_u σ²_base` of each Gaussian kernel (empty for the linear kernel).
    pub sigma2: Vec<f64>,
    /// Rows of the source sample.
    pub n_source: usize,
    /// Rows of the target sample.
    pub n_target: usize,
    /// Feature dimension.
    pub dim: usize,
    /// Number of quad-tuples (linear-time estimator only).
    pub quad_tuples: Option<usize>,
    /// The permutation test, when asked for.
    pub permutation_test: Option<PermutationTest>,
}

/// Kernel sums needed by the quadratic estimators.
#[derive(Clone, Copy, Debug, Default)]
struct Sums {
    ss: f64,
    tt: f64,
    st: f64,
    diag_s: f64,
    diag_t: f64,
}

fn combine(est: Estimator, s: Sums, m: usize, n: usize) -> f64 {
    let (mf, nf) = (m as f64, n as f64);
    match est {
        Estimator::Biased => s.ss / (mf * mf) + s.tt / (nf * nf) - 2.0 * s.st / (mf * nf),
        _ => (s.ss - s.diag_s) / (mf * (mf - 1.0)) + (s.tt - s.diag_t) / (nf * (nf - 1.0)) - 2.0 * s.st / (mf * nf),
    }
}

/// Gaussian multi-kernel evaluator. Kernels whose inverse bandwidths differ by a power of two share one
/// `exp`: `exp(−c·2^k d) = exp(−c d)^(2^k)`, so DAN's 5 kernels cost one `exp` and 4 squarings.
#[derive(Clone, Debug)]
struct GaussEval {
    /// (c_root, weights indexed by k) with kernel value `Σ_k w_k exp(−c_root d)^(2^k)`.
    chains: Vec<(f64, Vec<f64>)>,
}

const MAX_CHAIN: u32 = 20;

impl GaussEval {
    fn new(sigma2: &[f64], weights: &[f64]) -> Self {
        let mut items: Vec<(f64, f64)> = sigma2.iter().zip(weights).map(|(&s2, &w)| (1.0 / (2.0 * s2), w)).collect();
        items.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut chains: Vec<(f64, Vec<f64>)> = Vec::new();
        for (c, w) in items {
            let mut placed = false;
            for (root, ws) in &mut chains {
                let k = (c / *root).log2();
                let kr = k.round();
                if (k - kr).abs() < 1e-12 && kr >= 0.0 && kr <= f64::from(MAX_CHAIN) {
                    let ki = kr as usize;
                    if ws.len() <= ki {
                        ws.resize(ki + 1, 0.0);
                    }
                    ws[ki] += w;
                    placed = true;
                    break;
                }
            }
            if !placed {
                chains.push((c, vec![w]));
            }
        }
        Self { chains }
    }

    #[inline]
    fn eval(&self, d: f64) -> f64 {
        let mut total = 0.0;
        for (c, ws) in &self.chains {
            let mut p = linalg::exp_nonpositive(-c * d);
            for &w in ws {
                total += w * p;
                p *= p;
            }
        }
        total
    }

    /// `acc[j] += k(d[j])` for a slice of squared distances; `tmp` is scratch of the same length. Written as
    /// flat loops over slices so that the compiler vectorises them (inlined into its callers, so that it is
    /// compiled with their target features).
    #[inline(always)]
    fn eval_slice(&self, d: &[f64], acc: &mut [f64], tmp: &mut [f64]) {
        for (c, ws) in &self.chains {
            for (t, &dv) in tmp.iter_mut().zip(d) {
                *t = linalg::exp_nonpositive(-c * dv);
            }
            for &w in ws {
                for (a, t) in acc.iter_mut().zip(tmp.iter_mut()) {
                    *a += w * *t;
                    *t *= *t;
                }
            }
        }
    }

    fn at_zero(&self) -> f64 {
        self.chains.iter().flat_map(|(_, ws)| ws.iter()).sum()
    }
}

/// Computes MMD² between `xs` (source rows) and `xt` (target rows) with the given settings.
///
/// Errors on different feature dimensions, fewer than 2 rows in either sample, non-finite values,
/// invalid settings, or a bandwidth policy that resolves to 0.
pub fn mmd2(xs: ArrayView2<'_, f64>, xt: ArrayView2<'_, f64>, settings: &MmdSettings) -> Result<MmdResult> {
    check_pair(xs, xt, 2, "MMD²")?;
    settings.kernel.validate()?;
    let (m, n, dim) = (xs.nrows(), xt.nrows(), xs.ncols());
    let base = resolve_bandwidth(xs, xt, settings)?;
    let (sigma2, eval) = match (&settings.kernel, base) {
        (Kernel::Gaussian { multipliers, weights }, Some(b)) => {
            let s2: Vec<f64> = multipliers.iter().map(|mu| mu * b).collect();
            let e = GaussEval::new(&s2, weights);
            (s2, Some(e))
        }
        _ => (Vec::new(), None),
    };
    let value = statistic(xs, xt, settings, eval.as_ref())?;
    let quad_tuples = (settings.estimator == Estimator::Linear).then_some(m.min(n) / 2);
    let permutation_test =
        if settings.permutations > 0 { Some(permutation_test(xs, xt, settings, eval.as_ref(), value)?) } else { None };
    Ok(MmdResult {
        mmd2: value,
        settings: settings.clone(),
        base_sigma2: base,
        sigma2,
        n_source: m,
        n_target: n,
        dim,
        quad_tuples,
        permutation_test,
    })
}

fn resolve_bandwidth(xs: ArrayView2<'_, f64>, xt: ArrayView2<'_, f64>, settings: &MmdSettings) -> Result<Option<f64>> {
    if settings.kernel == Kernel::Linear {
        return Ok(None);
    }
    let (value, name) = match &settings.bandwidth {
        BandwidthPolicy::Fixed { sigma2 } => (*sigma2, "fixed"),
        BandwidthPolicy::MeanSquaredDistance => {
            let nz = (xs.nrows() + xt.nrows()) as f64;
            (linalg::sum_pairwise_sq_dists(&[xs.view(), xt.view()]) / (nz * (nz - 1.0)), "mean_squared_distance")
        }
        BandwidthPolicy::Median { max_points } => {
            if *max_points < 2 {
                return Err(invalid("mmd.bandwidth.max_points", format!("must be at least 2, got {max_points}")));
            }
            (median_sq_dist(xs, xt, *max_points, settings.seed), "median")
        }
    };
    if !(value.is_finite() && value > 0.0) {
        return Err(MetricsError::DegenerateBandwidth { policy: name.to_string(), value });
    }
    Ok(Some(value))
}

fn median_sq_dist(xs: ArrayView2<'_, f64>, xt: ArrayView2<'_, f64>, max_points: usize, seed: u64) -> f64 {
    let total = xs.nrows() + xt.nrows();
    let mut idx: Vec<usize> = (0..total).collect();
    if total > max_points {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(1);
        idx.shuffle(&mut rng);
        idx.truncate(max_points);
        idx.sort_unstable();
    }
    let row = |i: usize| {
        if i < xs.nrows() { xs.row(i) } else { xt.row(i - xs.nrows()) }
    };
    let mut z = Array2::<f64>::zeros((idx.len(), xs.ncols()));
    for (k, &i) in idx.iter().enumerate() {
        z.row_mut(k).assign(&row(i));
    }
    let norms = linalg::row_sq_norms(z.view());
    let tiles = linalg::split_rows(0, z.nrows(), linalg::tile_size(z.nrows()));
    let pairs = linalg::upper_pairs(tiles.len());
    let parts = linalg::map_gram_tiles(z.view(), &tiles, &pairs, Diagonal::Upper, |i, j, g| {
        let (ri, rj) = (&tiles[i], &tiles[j]);
        let mut out = Vec::new();
        for (a, grow) in g.outer_iter().enumerate() {
            for (b, &gv) in grow.iter().enumerate() {
                let (gi, gj) = (ri.start + a, rj.start + b);
                if gi < gj {
                    out.push((norms[gi] + norms[gj] - 2.0 * gv).max(0.0));
                }
            }
        }
        out
    });
    let mut all: Vec<f64> = parts.into_iter().flatten().collect();
    median(&mut all)
}

fn median(v: &mut [f64]) -> f64 {
    let len = v.len();
    if len == 0 {
        return 0.0;
    }
    let mid = len / 2;
    let (_, hi, _) = v.select_nth_unstable_by(mid, f64::total_cmp);
    let hi = *hi;
    if len % 2 == 1 {
        hi
    } else {
        let lo = v[..mid].iter().copied().fold(f64::NEG_INFINITY, f64::max);
        0.5 * (lo + hi)
    }
}

/// The pooled sample `[xs; xt]`.
pub(crate) fn pooled<'a>(xs: ArrayView2<'a, f64>, xt: ArrayView2<'a, f64>) -> Result<Array2<f64>> {
    concatenate(Axis(0), &[xs, xt]).map_err(|e| invalid("data", e.to_string()))
}

/// The statistic with an already resolved kernel.
fn statistic(
    xs: ArrayView2<'_, f64>,
    xt: ArrayView2<'_, f64>,
    settings: &MmdSettings,
    eval: Option<&GaussEval>,
) -> Result<f64> {
    let (m, n) = (xs.nrows(), xt.nrows());
    match (settings.estimator, eval) {
        (Estimator::Linear, _) => Ok(linear_time(xs, xt, eval)),
        (est, None) => Ok(combine(est, linear_kernel_sums(xs, xt), m, n)),
        (est, Some(e)) => {
            let sums = match settings.precision {
                Precision::F64 => gaussian_sums::<f64>(xs, xt, e),
                Precision::F32 => gaussian_sums::<f32>(xs, xt, e),
            }?;
            Ok(combine(est, sums, m, n))
        }
    }
}

/// Kernel sums of the linear kernel in O((m + n) d): `Σ_{i,j} x_i·x_j = ‖Σ x_i‖²`.
fn linear_kernel_sums(xs: ArrayView2<'_, f64>, xt: ArrayView2<'_, f64>) -> Sums {
    let ss = xs.sum_axis(Axis(0));
    let st = xt.sum_axis(Axis(0));
    let sq = |x: ArrayView2<'_, f64>| x.iter().map(|v| v * v).sum::<f64>();
    Sums { ss: ss.dot(&ss), tt: st.dot(&st), st: ss.dot(&st), diag_s: sq(xs), diag_t: sq(xt) }
}

/// Block-wise Gaussian kernel sums over the pooled sample. Only tiles of the upper triangle are formed
/// (`K` is symmetric): about half the flops of the full `(m+n)²` Gram matrix, and memory
/// O((m + n) d + threads × 512²).
fn gaussian_sums<T: GemmScalar>(xs: ArrayView2<'_, f64>, xt: ArrayView2<'_, f64>, e: &GaussEval) -> Result<Sums> {
    let (m, n) = (xs.nrows(), xt.nrows());
    let pooled = linalg::Pooled::new(&[xs.view(), xt.view()]);
    let b = linalg::tile_size(m + n);
    let mut tiles = linalg::split_rows(0, m, b);
    let n_src_tiles = tiles.len();
    tiles.extend(linalg::split_rows(m, m + n, b));
    let pairs = linalg::upper_pairs(tiles.len());
    // The norms are those of the rows as the Gram products see them (rounded to T).
    let parts =
        linalg::map_pooled_gram_tiles::<T, _, _>(&pooled, &tiles, &pairs, Diagonal::Upper, |i, j, g, na, nb| {
            tile_kernel_sum(e, g, na, nb, i == j)
        });
    let mut s = Sums::default();
    for (&(i, j), v) in pairs.iter().zip(parts) {
        let (si, sj) = (i < n_src_tiles, j < n_src_tiles);
        let mult = if i == j { 1.0 } else { 2.0 };
        match (si, sj) {
            (true, true) => s.ss += mult * v,
            (false, false) => s.tt += mult * v,
            _ => s.st += v,
        }
    }
    s.diag_s = m as f64 * e.at_zero();
    s.diag_t = n as f64 * e.at_zero();
    Ok(s)
}

/// `Σ_{a,b} k(max(‖z_a‖² + ‖z_b‖² − 2 G_ab, 0))` over one Gram tile `g` (rows with norms `na`, columns with norms
/// `nb`). A diagonal tile (`diagonal`: the same rows on both sides, symmetric) is summed from the entries right of
/// its diagonal, counted twice, plus its diagonal elements, each exactly `k(0)`; the entries left of its diagonal are
/// not read. Compiled twice: with AVX-512F (8 f64 lanes for the `exp`) where the CPU has it, and for the base CPU.
fn tile_kernel_sum<T: GemmScalar>(e: &GaussEval, g: ArrayView2<'_, T>, na: &[f64], nb: &[f64], diagonal: bool) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if crate::gemm::has_avx512f() {
        // SAFETY: `has_avx512f` found AVX-512F on this CPU.
        return unsafe { tile_kernel_sum_avx512(e, g, na, nb, diagonal) };
    }
    tile_kernel_sum_body(e, g, na, nb, diagonal)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn tile_kernel_sum_avx512<T: GemmScalar>(
    e: &GaussEval,
    g: ArrayView2<'_, T>,
    na: &[f64],
    nb: &[f64],
    diagonal: bool,
) -> f64 {
    tile_kernel_sum_body(e, g, na, nb, diagonal)
}

#[inline(always)]
fn tile_kernel_sum_body<T: GemmScalar>(
    e: &GaussEval,
    g: ArrayView2<'_, T>,
    na: &[f64],
    nb: &[f64],
    diagonal: bool,
) -> f64 {
    let w = nb.len();
    let (mut dist, mut acc, mut tmp) = (vec![0.0; w], vec![0.0; w], vec![0.0; w]);
    for ((a, grow), &nav) in g.outer_iter().enumerate().zip(na) {
        let owned: Vec<T>;
        let grow = match grow.to_slice() {
            Some(x) => x,
            None => {
                owned = grow.to_vec();
                &owned
            }
        };
        let from = if diagonal { a + 1 } else { 0 };
        let len = w - from;
        for ((dv, &gv), &nbv) in dist[..len].iter_mut().zip(&grow[from..]).zip(&nb[from..]) {
            let gv: f64 = gv.into();
            *dv = (nav + nbv - 2.0 * gv).max(0.0);
        }
        e.eval_slice(&dist[..len], &mut acc[from..], &mut tmp[..len]);
    }
    let off_diagonal = acc.iter().sum::<f64>();
    if diagonal { 2.0 * off_diagonal + na.len() as f64 * e.at_zero() } else { off_diagonal }
}

fn kernel_direct(a: ndarray::ArrayView1<'_, f64>, b: ndarray::ArrayView1<'_, f64>, e: Option<&GaussEval>) -> f64 {
    match (e, a.as_slice(), b.as_slice()) {
        (None, Some(a), Some(b)) => linalg::dot_slices(a, b),
        (None, _, _) => a.dot(&b),
        (Some(e), Some(a), Some(b)) => e.eval(linalg::sq_dist(a, b)),
        (Some(e), _, _) => e.eval(a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()),
    }
}

/// Linear-time estimator: mean of `h = k(x, x') + k(y, y') − k(x, y') − k(x', y)` over consecutive pairs.
fn linear_time(xs: ArrayView2<'_, f64>, xt: ArrayView2<'_, f64>, e: Option<&GaussEval>) -> f64 {
    let pairs = xs.nrows().min(xt.nrows()) / 2;
    let hs: Vec<f64> = (0..pairs)
        .into_par_iter()
        .with_min_len(64)
        .map(|i| {
            let (x1, x2) = (xs.row(2 * i), xs.row(2 * i + 1));
            let (y1, y2) = (xt.row(2 * i), xt.row(2 * i + 1));
            kernel_direct(x1, x2, e) + kernel_direct(y1, y2, e) - kernel_direct(x1, y2, e) - kernel_direct(x2, y1, e)
        })
        .collect();
    hs.iter().sum::<f64>() / pairs as f64
}

/// Largest pooled sample for which the permutation test caches the full kernel matrix (f64, 128 MiB).
const PERMUTATION_CACHE_MAX: usize = 4096;

fn permutation_test(
    xs: ArrayView2<'_, f64>,
    xt: ArrayView2<'_, f64>,
    settings: &MmdSettings,
    eval: Option<&GaussEval>,
    observed: f64,
) -> Result<PermutationTest> {
    let (m, n) = (xs.nrows(), xt.nrows());
    let total = m + n;
    let z = pooled(xs.view(), xt.view())?;
    let quadratic_cached = settings.estimator != Estimator::Linear && eval.is_some() && total <= PERMUTATION_CACHE_MAX;
    let kmat = if quadratic_cached { Some(kernel_matrix(z.view(), eval)) } else { None };
    // The observed value from the same cached matrix, so the comparison is like with like.
    let observed = match &kmat {
        Some(k) => {
            let labels: Vec<bool> = (0..total).map(|i| i < m).collect();
            combine(settings.estimator, sums_from_matrix(k, &labels), m, n)
        }
        None => observed,
    };
    let stats: Vec<Result<f64>> = (0..settings.permutations)
        .into_par_iter()
        .map(|b| {
            let mut rng = ChaCha8Rng::seed_from_u64(settings.seed);
            rng.set_stream(1000 + b as u64);
            let mut perm: Vec<usize> = (0..total).collect();
            perm.shuffle(&mut rng);
            match &kmat {
                Some(k) => {
                    let mut labels = vec![false; total];
                    for &p in &perm[..m] {
                        labels[p] = true;
                    }
                    Ok(combine(settings.estimator, sums_from_matrix(k, &labels), m, n))
                }
                None => {
                    let zp = z.select(Axis(0), &perm);
                    let (a, bb) = zp.view().split_at(Axis(0), m);
                    statistic(a, bb, settings, eval)
                }
            }
        })
        .collect();
    let stats: Vec<f64> = stats.into_iter().collect::<Result<_>>()?;
    let exceed = stats.iter().filter(|&&s| s >= observed).count();
    Ok(PermutationTest {
        permutations: settings.permutations,
        p_value: (1 + exceed) as f64 / (1 + settings.permutations) as f64,
        null_mean: stats.iter().sum::<f64>() / stats.len() as f64,
    })
}

fn kernel_matrix(z: ArrayView2<'_, f64>, eval: Option<&GaussEval>) -> Array2<f64> {
    let total = z.nrows();
    let norms = linalg::row_sq_norms(z);
    let tiles = linalg::split_rows(0, total, linalg::tile_size(total));
    let pairs = linalg::upper_pairs(tiles.len());
    let parts = linalg::map_gram_tiles(z, &tiles, &pairs, Diagonal::Full, |i, j, g| {
        let (ri, rj) = (&tiles[i], &tiles[j]);
        let mut out = g.to_owned();
        if let Some(e) = eval {
            for ((a, b), v) in out.indexed_iter_mut() {
                let (gi, gj) = (ri.start + a, rj.start + b);
                *v = if gi == gj { e.at_zero() } else { e.eval((norms[gi] + norms[gj] - 2.0 * *v).max(0.0)) };
            }
        }
        out
    });
    let mut k = Array2::<f64>::zeros((total, total));
    for (&(i, j), t) in pairs.iter().zip(parts) {
        let (ri, rj) = (tiles[i].clone(), tiles[j].clone());
        k.slice_mut(ndarray::s![ri.clone(), rj.clone()]).assign(&t);
        k.slice_mut(ndarray::s![rj, ri]).assign(&t.t());
    }
    k
}

fn sums_from_matrix(k: &Array2<f64>, labels: &[bool]) -> Sums {
    let mut s = Sums::default();
    for (i, row) in k.outer_iter().enumerate() {
        let (mut to_s, mut to_t) = (0.0, 0.0);
        for (&v, &l) in row.iter().zip(labels) {
            if l {
                to_s += v;
            } else {
                to_t += v;
            }
        }
        if labels[i] {
            s.ss += to_s;
            s.st += to_t;
            s.diag_s += row[i];
        } else {
            s.tt += to_t;
            s.diag_t += row[i];
        }
    }
    s
}
