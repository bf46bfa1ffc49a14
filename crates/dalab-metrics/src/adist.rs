//! Proxy A-distance `d_A = 2(1 − 2ε)` (Ben-David et al.; DANN JMLR §3.2), ε being the held-out error of a
//! linear SVM trained to tell source (label −1) from target (label +1).
//!
//! The SVM is L2-regularised with the squared hinge loss and a regularised bias (as liblinear / scikit-learn's
//! `LinearSVC`): `min_w ½‖w‖² + C Σ_i max(0, 1 − y_i (w·x_i + b))²`, `w` including `b` via a constant feature 1.
//! It is solved by dual coordinate descent (Hsieh et al. 2008, seeded visiting order) or by a primal truncated
//! Newton method ([`Solver`]), warm-started along the ascending C grid. Everything is deterministic for a given
//! seed, independent of the thread count.

use crate::error::Result;
use crate::validate::{check_pair, invalid};
use ndarray::{Array2, ArrayView2};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// How the pooled sample is split into training and held-out parts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Split {
    /// A seeded random half of the pooled sample for training (⌊N/2⌋ rows), the rest held out (DANN paper).
    Halves,
    /// k-fold cross-validation over a seeded permutation; ε(C) is the error over all held-out rows.
    KFold {
        /// Number of folds (≥ 2).
        k: usize,
    },
}

/// Which optimiser trains the linear SVM. Both minimise the same objective; they differ only in speed and in how
/// the tolerance is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Solver {
    /// Primal when there are more training rows than features (+1 for the bias), else dual — the rule of
    /// scikit-learn's `LinearSVC(dual="auto")`.
    Auto,
    /// Dual coordinate descent (Hsieh et al. 2008): stops when the spread of the projected gradient is ≤ `tol`.
    Dual,
    /// Primal truncated Newton (conjugate gradient on the generalised Hessian, backtracking line search):
    /// stops when `‖∇f(w)‖ ≤ tol · ‖∇f(0)‖`.
    Primal,
}

/// Settings of the proxy A-distance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ADistanceSettings {
    /// Grid of SVM costs C; ε is the lowest held-out error over the grid (default {1e-3, 1e-2, 1e-1, 1, 10}, as
    /// the NumPy peer).
    pub c_grid: Vec<f64>,
    /// Train/held-out split (default [`Split::Halves`]).
    pub split: Split,
    /// Optimiser (default [`Solver::Auto`]).
    pub solver: Solver,
    /// Stopping tolerance, see [`Solver`] (default 1e-3).
    pub tol: f64,
    /// Largest number of iterations per C: passes over the training rows (dual) or Newton steps (primal)
    /// (default 1000).
    pub max_iter: usize,
    /// Seed of the split and of the coordinate order (default 0).
    pub seed: u64,
}

impl Default for ADistanceSettings {
    fn default() -> Self {
        Self {
            c_grid: vec![1e-3, 1e-2, 1e-1, 1.0, 10.0],
            split: Split::Halves,
            solver: Solver::Auto,
            tol: 1e-3,
            max_iter: 1000,
            seed: 0,
        }
    }
}

/// Held-out error for one C.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GridPoint {
    /// The SVM cost.
    pub c: f64,
    /// Held-out error (misclassified held-out rows / held-out rows).
    pub error: f64,
    /// Solver iterations (passes over the data for the dual, Newton steps for the primal), summed over folds.
    pub iterations: usize,
    /// Whether the solver met the tolerance (on every fold).
    pub converged: bool,
}

/// A proxy A-distance with everything behind it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ADistanceResult {
    /// Lowest held-out error over the C grid.
    pub epsilon: f64,
    /// `2(1 − 2ε)`, reported as is: it is below 0 when ε > 0.5 (a classifier worse than chance, i.e. domains
    /// not distinguishable); it is not clipped.
    pub d_a: f64,
    /// The solver used ([`Solver::Dual`] or [`Solver::Primal`]; `Auto` resolved).
    pub solver: Solver,
    /// The C achieving ε (the smallest such C on ties).
    pub best_c: f64,
    /// The error of every C of the grid.
    pub grid: Vec<GridPoint>,
    /// Settings used.
    pub settings: ADistanceSettings,
    /// Rows of the source sample.
    pub n_source: usize,
    /// Rows of the target sample.
    pub n_target: usize,
    /// Feature dimension.
    pub dim: usize,
}

/// Computes the proxy A-distance between `xs` and `xt`.
pub fn proxy_a_distance(
    xs: ArrayView2<'_, f64>,
    xt: ArrayView2<'_, f64>,
    settings: &ADistanceSettings,
) -> Result<ADistanceResult> {
    check_pair(xs, xt, 2, "the proxy A-distance")?;
    validate(settings)?;
    let (ns, nt, dim) = (xs.nrows(), xt.nrows(), xs.ncols());
    let total = ns + nt;
    let mut perm: Vec<usize> = (0..total).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(settings.seed);
    perm.shuffle(&mut rng);
    // Folds as (train rows, held-out rows).
    let folds: Vec<(Vec<usize>, Vec<usize>)> = match settings.split {
        Split::Halves => {
            let half = total / 2;
            vec![(perm[..half].to_vec(), perm[half..].to_vec())]
        }
        Split::KFold { k } => {
            if k > total {
                return Err(invalid("a_distance.split.k", format!("{k} folds for {total} pooled rows")));
            }
            (0..k)
                .map(|f| {
                    let (lo, hi) = (f * total / k, (f + 1) * total / k);
                    let test = perm[lo..hi].to_vec();
                    let train = perm[..lo].iter().chain(&perm[hi..]).copied().collect();
                    (train, test)
                })
                .collect()
        }
    };
    let row = |i: usize| {
        if i < ns { (xs.row(i), -1.0) } else { (xt.row(i - ns), 1.0) }
    };
    let mut order: Vec<usize> = (0..settings.c_grid.len()).collect();
    order.sort_by(|&a, &b| settings.c_grid[a].total_cmp(&settings.c_grid[b]));
    let sorted_c: Vec<f64> = order.iter().map(|&i| settings.c_grid[i]).collect();
    let train_rows = folds.iter().map(|(tr, _)| tr.len()).min().unwrap_or(0);
    let solver = match settings.solver {
        Solver::Auto if train_rows > dim + 1 => Solver::Primal,
        Solver::Auto => Solver::Dual,
        s => s,
    };
    // Per fold: per (sorted) C, (misclassified, held-out count, iterations, converged).
    let per_fold: Vec<Vec<(usize, usize, usize, bool)>> = folds
        .par_iter()
        .enumerate()
        .map(|(f, (train, test))| {
            let (xtr, ytr) = gather(train, dim, row);
            let (xte, yte) = gather(test, dim, row);
            let mut svm: Box<dyn LinearSvm> = match solver {
                Solver::Primal => Box::new(PrimalNewton::new(xtr, ytr)),
                _ => Box::new(DualCd::new(xtr, ytr, settings.seed, f as u64)),
            };
            sorted_c
                .iter()
                .map(|&c| {
                    let (iters, converged) = svm.solve(c, settings.tol, settings.max_iter);
                    let wrong = count_errors(svm.weights(), &xte, &yte);
                    (wrong, yte.len(), iters, converged)
                })
                .collect()
        })
        .collect();
    let mut grid: Vec<GridPoint> = sorted_c
        .iter()
        .enumerate()
        .map(|(ci, &c)| {
            let (mut wrong, mut count, mut iterations, mut conv) = (0, 0, 0, true);
            for fold in &per_fold {
                let (w, n, e, cv) = fold[ci];
                wrong += w;
                count += n;
                iterations += e;
                conv &= cv;
            }
            GridPoint { c, error: wrong as f64 / count as f64, iterations, converged: conv }
        })
        .collect();
    // Back to the order of the settings' grid.
    let mut unsorted = vec![None; grid.len()];
    for (pos, &orig) in order.iter().enumerate() {
        unsorted[orig] = Some(grid[pos].clone());
    }
    grid = unsorted.into_iter().flatten().collect();
    let best = grid
        .iter()
        .min_by(|a, b| a.error.total_cmp(&b.error).then(a.c.total_cmp(&b.c)))
        .cloned()
        .ok_or_else(|| invalid("a_distance.c_grid", "is empty"))?;
    Ok(ADistanceResult {
        epsilon: best.error,
        d_a: 2.0 * (1.0 - 2.0 * best.error),
        solver,
        best_c: best.c,
        grid,
        settings: settings.clone(),
        n_source: ns,
        n_target: nt,
        dim,
    })
}

fn validate(s: &ADistanceSettings) -> Result<()> {
    if s.c_grid.is_empty() {
        return Err(invalid("a_distance.c_grid", "must hold at least one C"));
    }
    if let Some(c) = s.c_grid.iter().find(|c| !(c.is_finite() && **c > 0.0)) {
        return Err(invalid("a_distance.c_grid", format!("every C must be positive and finite, got {c}")));
    }
    if !(s.tol.is_finite() && s.tol > 0.0) {
        return Err(invalid("a_distance.tol", format!("must be positive, got {}", s.tol)));
    }
    if s.max_iter == 0 {
        return Err(invalid("a_distance.max_iter", "must be at least 1"));
    }
    if let Split::KFold { k } = s.split
        && k < 2
    {
        return Err(invalid("a_distance.split.k", format!("must be at least 2, got {k}")));
    }
    Ok(())
}

/// Rows (with a trailing constant 1 for the bias) and labels of the given pooled indices.
pub(crate) fn gather<'a>(
    idx: &[usize],
    dim: usize,
    row: impl Fn(usize) -> (ndarray::ArrayView1<'a, f64>, f64),
) -> (Array2<f64>, Vec<f64>) {
    let mut x = Array2::<f64>::zeros((idx.len(), dim + 1));
    let mut y = Vec::with_capacity(idx.len());
    for (k, &i) in idx.iter().enumerate() {
        let (r, label) = row(i);
        let mut out = x.row_mut(k);
        out.slice_mut(ndarray::s![..dim]).assign(&r);
        out[dim] = 1.0;
        y.push(label);
    }
    (x, y)
}

use crate::linalg::dot_slices as dot;

#[inline]
fn axpy(alpha: f64, x: &[f64], y: &mut [f64]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += alpha * xi;
    }
}

/// Dual coordinate descent for the L2-loss linear SVM; keeps `w = Σ α_i y_i x_i` and `α` between solves
/// (warm start).
pub(crate) struct DualCd {
    x: Array2<f64>,
    y: Vec<f64>,
    sq_norms: Vec<f64>,
    alpha: Vec<f64>,
    pub(crate) w: Vec<f64>,
    rng: ChaCha8Rng,
}

impl DualCd {
    pub(crate) fn new(x: Array2<f64>, y: Vec<f64>, seed: u64, stream: u64) -> Self {
        let sq_norms = x.outer_iter().map(|r| r.dot(&r)).collect();
        let (n, d) = x.dim();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(100 + stream);
        Self { x, y, sq_norms, alpha: vec![0.0; n], w: vec![0.0; d], rng }
    }

    /// Solves for cost `c`; returns (epochs, converged).
    pub(crate) fn solve(&mut self, c: f64, tol: f64, max_epochs: usize) -> (usize, bool) {
        let n = self.y.len();
        let diag = 0.5 / c;
        let mut order: Vec<usize> = (0..n).collect();
        let Some(xs) = self.x.as_slice() else {
            return (0, false);
        };
        let d = self.w.len();
        for epoch in 1..=max_epochs {
            order.shuffle(&mut self.rng);
            let (mut pg_max, mut pg_min) = (f64::NEG_INFINITY, f64::INFINITY);
            for &i in &order {
                let xi = &xs[i * d..(i + 1) * d];
                let yi = self.y[i];
                let ai = self.alpha[i];
                let g = yi * dot(&self.w, xi) - 1.0 + diag * ai;
                let pg = if ai == 0.0 { g.min(0.0) } else { g };
                pg_max = pg_max.max(pg);
                pg_min = pg_min.min(pg);
                if pg != 0.0 {
                    let qii = self.sq_norms[i] + diag;
                    let new = (ai - g / qii).max(0.0);
                    let delta = new - ai;
                    if delta != 0.0 {
                        self.alpha[i] = new;
                        axpy(delta * yi, xi, &mut self.w);
                    }
                }
            }
            if pg_max - pg_min <= tol {
                return (epoch, true);
            }
        }
        (max_epochs, false)
    }
}

/// A linear SVM solver that keeps its weights between solves (warm start along the C grid).
pub(crate) trait LinearSvm: Send {
    /// Solves for cost `c`; returns (iterations, converged).
    fn solve(&mut self, c: f64, tol: f64, max_iter: usize) -> (usize, bool);
    /// Current weights, bias last.
    fn weights(&self) -> &[f64];
}

impl LinearSvm for DualCd {
    fn solve(&mut self, c: f64, tol: f64, max_iter: usize) -> (usize, bool) {
        DualCd::solve(self, c, tol, max_iter)
    }
    fn weights(&self) -> &[f64] {
        &self.w
    }
}

/// Misclassified rows of a held-out set (a score of exactly 0 counts as source, −1).
pub(crate) fn count_errors(w: &[f64], x: &Array2<f64>, y: &[f64]) -> usize {
    x.outer_iter()
        .zip(y)
        .filter(|(r, label)| {
            let score = r.as_slice().map_or_else(|| r.dot(&ndarray::ArrayView1::from(w)), |s| dot(s, w));
            let pred = if score > 0.0 { 1.0 } else { -1.0 };
            pred != **label
        })
        .count()
}

/// Primal truncated Newton for `f(w) = ½‖w‖² + C Σ_i max(0, 1 − y_i w·x_i)²` (the objective is once
/// differentiable and piecewise quadratic; its generalised Hessian is `I + 2C Σ_{i active} x_i x_iᵀ`). Each step
/// solves `H p = −∇f` by conjugate gradient (Hessian-vector products in O(active rows × d), relative residual 0.1)
/// and takes a backtracking (Armijo) line search. Deterministic.
pub(crate) struct PrimalNewton {
    x: Array2<f64>,
    y: Vec<f64>,
    pub(crate) w: Vec<f64>,
}

impl PrimalNewton {
    pub(crate) fn new(x: Array2<f64>, y: Vec<f64>) -> Self {
        let d = x.ncols();
        Self { x, y, w: vec![0.0; d] }
    }

    fn rows(&self) -> impl Iterator<Item = &[f64]> {
        let d = self.w.len();
        self.x.as_slice().into_iter().flat_map(move |s| s.chunks_exact(d))
    }

    /// Objective at `w`, and the margins `1 − y_i w·x_i`.
    fn objective(&self, c: f64, w: &[f64], margins: &mut [f64]) -> f64 {
        let mut loss = 0.0;
        for ((xi, &yi), m) in self.rows().zip(&self.y).zip(margins.iter_mut()) {
            *m = 1.0 - yi * dot(w, xi);
            if *m > 0.0 {
                loss += *m * *m;
            }
        }
        0.5 * dot(w, w) + c * loss
    }

    /// `out = v + 2C Σ_{i active} x_i (x_i·v)`.
    fn hess_vec(&self, c: f64, margins: &[f64], v: &[f64], out: &mut [f64]) {
        out.copy_from_slice(v);
        for (xi, &m) in self.rows().zip(margins) {
            if m > 0.0 {
                axpy(2.0 * c * dot(xi, v), xi, out);
            }
        }
    }
}

impl LinearSvm for PrimalNewton {
    fn solve(&mut self, c: f64, tol: f64, max_iter: usize) -> (usize, bool) {
        let (n, d) = (self.y.len(), self.w.len());
        let mut margins = vec![0.0; n];
        // ‖∇f(0)‖ = ‖2C Σ y_i x_i‖: the scale of the stopping rule.
        let mut g0 = vec![0.0; d];
        for (xi, &yi) in self.rows().zip(&self.y) {
            axpy(-2.0 * c * yi, xi, &mut g0);
        }
        let g0_norm = dot(&g0, &g0).sqrt().max(f64::MIN_POSITIVE);
        let w0 = self.w.clone();
        let mut f = self.objective(c, &w0, &mut margins);
        let (mut g, mut p, mut r, mut q, mut hp) =
            (vec![0.0; d], vec![0.0; d], vec![0.0; d], vec![0.0; d], vec![0.0; d]);
        let mut trial = vec![0.0; d];
        let mut trial_margins = vec![0.0; n];
        for iter in 1..=max_iter {
            // gradient: w − 2C Σ_{active} m_i y_i x_i
            g.copy_from_slice(&self.w);
            for ((xi, &yi), &m) in self.rows().zip(&self.y).zip(&margins) {
                if m > 0.0 {
                    axpy(-2.0 * c * m * yi, xi, &mut g);
                }
            }
            let g_norm = dot(&g, &g).sqrt();
            if g_norm <= tol * g0_norm {
                return (iter - 1, true);
            }
            // CG on H s = −g, from s = 0.
            let s = &mut trial;
            s.fill(0.0);
            for (ri, gi) in r.iter_mut().zip(&g) {
                *ri = -gi;
            }
            p.copy_from_slice(&r);
            let mut rr = dot(&r, &r);
            for _ in 0..(2 * d).max(10) {
                if rr.sqrt() <= 0.1 * g_norm {
                    break;
                }
                self.hess_vec(c, &margins, &p, &mut hp);
                let alpha = rr / dot(&p, &hp);
                axpy(alpha, &p, s);
                axpy(-alpha, &hp, &mut r);
                let rr_new = dot(&r, &r);
                let beta = rr_new / rr;
                rr = rr_new;
                for (pi, ri) in p.iter_mut().zip(&r) {
                    *pi = ri + beta * *pi;
                }
            }
            q.copy_from_slice(s);
            // Backtracking line search along q (a descent direction: H is positive definite).
            let slope = dot(&g, &q);
            let mut step = 1.0;
            let mut accepted = false;
            for _ in 0..40 {
                for ((t, &wi), &qi) in trial.iter_mut().zip(&self.w).zip(&q) {
                    *t = wi + step * qi;
                }
                let f_new = self.objective(c, &trial, &mut trial_margins);
                if f_new <= f + 1e-4 * step * slope {
                    self.w.copy_from_slice(&trial);
                    margins.copy_from_slice(&trial_margins);
                    f = f_new;
                    accepted = true;
                    break;
                }
                step *= 0.5;
            }
            if !accepted {
                // No decrease possible at machine precision: at the optimum up to rounding.
                return (iter, true);
            }
        }
        (max_iter, false)
    }

    fn weights(&self) -> &[f64] {
        &self.w
    }
}
