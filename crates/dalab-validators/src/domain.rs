//! Importance weights `w(x) = p_t(x) / p_s(x)` for IWCV and DEV, from a logistic-regression domain classifier.
//!
//! The classifier tells source (label 0) from target (label 1) on features: it minimises the L2-regularised
//! log-loss with an unregularised intercept,
//!
//! `f(β, b) = Σ_i log(1 + exp(−ỹ_i (β·x_i + b))) + ½ α ‖β‖²`,   `ỹ_i = ±1`,   `α = 1/C`,
//!
//! which is scikit-learn's `LogisticRegression(C=C, fit_intercept=True)` objective divided by C (the same
//! minimiser). No feature scaling is applied. By Bayes' rule, `p_t(x)/p_s(x) = [P(t|x)/P(s|x)] · [P(s)/P(t)]`,
//! and the class priors of the classifier's training sample are `n_s/(n_s+n_t)` and `n_t/(n_s+n_t)`, hence
//!
//! `w(x) = exp(β·x + b) · n_s / n_t`
//!
//! (computed from the logit, not from `P(t|x)/(1 − P(t|x))`, so that it keeps its precision when `P(t|x) → 1`),
//! as in the DEV paper's official code (`p_t/p_s · N_s/N_t`).
//!
//! Why a solver of our own (Newton–CG, below) and not a crate's: `linfa-logistic` 0.8.1, the maintained
//! logistic regression of the linfa family this workspace already uses, was tried first. Its L-BFGS (argmin,
//! More–Thuente line search) gives no termination status and, on this crate's reference data, stopped at a
//! relative gradient of 0.28 (d = 16: its line search gave up on the first steps) and stalled at 5e-9 (d = 4:
//! a line search on objective values cannot go below their rounding), so neither agreement with scikit-learn
//! nor a checked tolerance could be had. Newton's method with conjugate-gradient steps (Hessian–vector products,
//! O(n d) each, no d × d matrix) and a line search on the directional derivative (exact in f64, O(n) per trial)
//! converges quadratically and is stopped on the gradient norm, which it can drive to the rounding floor.

use crate::check;
use crate::error::{Error, Result};
use ndarray::{Array1, ArrayView1, ArrayView2, s};
use serde::{Deserialize, Serialize};

/// Settings of the domain classifier.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DomainClassifier {
    /// Inverse regularisation strength C (scikit-learn's `C`; default 1.0, scikit-learn's default).
    pub c: f64,
    /// Relative stopping tolerance: the solver stops when `‖∇f(β, b)‖₂ ≤ tolerance · S`, `S = ½ Σ_i ‖(x_i, 1)‖₂`
    /// over the pooled training rows (the size of the log-loss gradient's terms, an upper bound of
    /// `‖∇f(0, 0)‖₂`) (default 1e-10, about 10⁵ times the rounding floor). Not meeting it within
    /// `max_iterations` is an error, not a silent approximation.
    pub tolerance: f64,
    /// Largest number of Newton iterations (default 100; a few to a few tens are typical).
    pub max_iterations: usize,
}

impl Default for DomainClassifier {
    fn default() -> Self {
        Self { c: 1.0, tolerance: 1e-10, max_iterations: 100 }
    }
}

/// Importance weights with the classifier behind them.
#[derive(Clone, Debug, PartialEq)]
pub struct ImportanceWeights {
    /// `w(x_i) = exp(β·x_i + b) · n_s/n_t` at every source-val row.
    pub weights: Array1<f64>,
    /// The classifier's coefficients β.
    pub coefficients: Array1<f64>,
    /// The classifier's intercept b.
    pub intercept: f64,
    /// Source rows the classifier was trained on (`n_s`).
    pub n_source: usize,
    /// Target rows the classifier was trained on (`n_t`).
    pub n_target: usize,
    /// Newton iterations taken (0 where the origin already meets the tolerance, e.g. identical source and target
    /// samples: then `β = 0, b = 0`).
    pub iterations: usize,
    /// `‖∇f‖₂ / S` at the solution (see [`DomainClassifier::tolerance`]).
    pub relative_gradient: f64,
}

/// Fits the domain classifier on `train_source` (defaults to `source_features`) vs `target_features` and returns
/// the importance weights at the rows of `source_features` (the source-val split).
///
/// Without `train_source`, the classifier is trained on the source-val features themselves; DEV's official code
/// trains it on the source *training* features and evaluates it on the validation features, which passing them as
/// `train_source` reproduces (with a logistic regression instead of DEV's MLP).
pub fn importance_weights<'a>(
    source_features: ArrayView2<'a, f64>,
    target_features: ArrayView2<'a, f64>,
    train_source: Option<ArrayView2<'a, f64>>,
    settings: &DomainClassifier,
) -> Result<ImportanceWeights> {
    validate(settings)?;
    let purpose = "the domain classifier";
    check::matrix("source_features", source_features, 1, purpose)?;
    check::matrix("target_features", target_features, 1, purpose)?;
    let d = source_features.ncols();
    check::same("target_features", target_features.ncols(), "columns", "source_features", d)?;
    let (train_name, train) = match train_source {
        Some(x) => ("source_train_features", x),
        None => ("source_features", source_features),
    };
    check::matrix(train_name, train, 1, purpose)?;
    check::same(train_name, train.ncols(), "columns", "source_features", d)?;
    let (ns, nt) = (train.nrows(), target_features.nrows());
    let pooled = |i: usize| if i < ns { train.row(i) } else { target_features.row(i - ns) };
    let y = (0..ns + nt).map(|i| if i < ns { 0.0 } else { 1.0 }).collect();
    let fit = fit_logistic(&pooled, ns + nt, d, y, settings, "domain_classifier")?;
    let (beta, b) = (fit.beta, fit.intercept);
    let prior = ns as f64 / nt as f64;
    let logits = source_features.dot(&beta) + b;
    let weights = logits.mapv(|z| z.exp() * prior);
    if let Some(i) = weights.iter().position(|w| !w.is_finite()) {
        return Err(Error::DomainClassifier {
            reason: format!(
                "the weight of source_features row {i} overflows (logit {:e}): the domains are separable; lower C",
                logits[i]
            ),
        });
    }
    Ok(ImportanceWeights {
        weights,
        coefficients: beta,
        intercept: b,
        n_source: ns,
        n_target: nt,
        iterations: fit.iterations,
        relative_gradient: fit.relative_gradient,
    })
}

fn validate(s: &DomainClassifier) -> Result<()> {
    let bad = |name, reason: String| Err(Error::InvalidSetting { name, reason });
    if !(s.c.is_finite() && s.c > 0.0) {
        return bad("domain_classifier.c", format!("must be positive and finite, got {}", s.c));
    }
    if !(s.tolerance.is_finite() && s.tolerance > 0.0) {
        return bad("domain_classifier.tolerance", format!("must be positive and finite, got {}", s.tolerance));
    }
    if s.max_iterations == 0 {
        return bad("domain_classifier.max_iterations", "must be at least 1".to_string());
    }
    Ok(())
}

/// A fitted binary logistic regression (see the module's objective).
pub(crate) struct Logistic {
    pub beta: Array1<f64>,
    pub intercept: f64,
    pub iterations: usize,
    pub relative_gradient: f64,
}

/// Fits the L2-regularised logistic regression of the module's first comment on the `n` rows `row(i)` (each of
/// `d` features) with labels `y_i ∈ {0, 1}`, by Newton–CG; not meeting `settings.tolerance` is an error that
/// names `key` (the settings' key).
pub(crate) fn fit_logistic<'r>(
    row: &dyn Fn(usize) -> ArrayView1<'r, f64>,
    n: usize,
    d: usize,
    y: Array1<f64>,
    settings: &DomainClassifier,
    key: &str,
) -> Result<Logistic> {
    validate(settings)?;
    // S = ½ Σ_i ‖(x_i, 1)‖₂ (see `DomainClassifier::tolerance`).
    let scale = 0.5 * (0..n).map(|i| (row(i).dot(&row(i)) + 1.0).sqrt()).sum::<f64>();
    let problem = Problem {
        x: faer::Mat::from_fn(n, d + 1, |i, j| if j < d { row(i)[j] } else { 1.0 }),
        y,
        alpha: 1.0 / settings.c,
        scale,
    };
    let fit = problem.newton_cg(settings.tolerance, settings.max_iterations);
    if fit.relative_gradient.is_nan() || fit.relative_gradient > settings.tolerance {
        return Err(Error::DomainClassifier {
            reason: format!(
                "not converged in {} Newton iterations: relative gradient norm {:e} > tolerance {:e} \
                 (raise {key}.max_iterations, or lower C)",
                fit.iterations, fit.relative_gradient, settings.tolerance
            ),
        });
    }
    Ok(Logistic {
        beta: fit.theta.slice(s![..d]).to_owned(),
        intercept: fit.theta[d],
        iterations: fit.iterations,
        relative_gradient: fit.relative_gradient,
    })
}

/// The objective `f(θ)`, `θ = (β, b)`, on the pooled rows `x̃_i = (x_i, 1)` with labels `y_i ∈ {0, 1}`:
/// `∇f = X̃ᵀ(σ(z) − y) + α (β, 0)`, `∇²f = X̃ᵀ diag(σ(z)(1 − σ(z))) X̃ + α diag(1, …, 1, 0)`, `z = X̃ θ`.
/// `X̃` is a faer matrix: its matrix–vector products (the whole cost, O(n d) each) are faer's kernels.
struct Problem {
    x: faer::Mat<f64>,
    y: Array1<f64>,
    alpha: f64,
    /// `S = ½ Σ_i ‖x̃_i‖₂`.
    scale: f64,
}

/// The solver's result.
struct Fit {
    theta: Array1<f64>,
    iterations: usize,
    relative_gradient: f64,
}

/// Largest number of conjugate-gradient steps per Newton iteration (CG is exact after `d + 1`).
const MAX_CG: usize = 250;
/// Largest number of trials of one line search.
const MAX_LINE: usize = 60;

impl Problem {
    /// The regularised part of `α θ`: all but the intercept (last).
    fn add_penalty(&self, out: &mut Array1<f64>, theta: &Array1<f64>) {
        let d = theta.len() - 1;
        out.slice_mut(s![..d]).scaled_add(self.alpha, &theta.slice(s![..d]));
    }

    /// `X̃ v`.
    fn times(&self, v: &Array1<f64>) -> Array1<f64> {
        product(self.x.as_ref(), v)
    }

    /// `X̃ᵀ r`.
    fn transpose_times(&self, r: &Array1<f64>) -> Array1<f64> {
        product(self.x.transpose(), r)
    }

    /// `(z, ∇f)` at θ, `z = X̃ θ`.
    fn margins_and_gradient(&self, theta: &Array1<f64>) -> (Array1<f64>, Array1<f64>) {
        let z = self.times(theta);
        let resid: Array1<f64> = z.iter().zip(&self.y).map(|(&zi, &yi)| sigmoid(zi) - yi).collect();
        let mut g = self.transpose_times(&resid);
        self.add_penalty(&mut g, theta);
        (z, g)
    }

    /// `∇²f v` with the curvatures `h_i = σ(z_i)(1 − σ(z_i))`.
    fn hessian_times(&self, h: &Array1<f64>, v: &Array1<f64>) -> Array1<f64> {
        let mut out = self.transpose_times(&(h * &self.times(v)));
        self.add_penalty(&mut out, v);
        out
    }

    /// `φ'(t) = ∇f(θ + t p) · p`, with `u = X̃ p` (O(n) per call).
    fn slope(&self, theta: &Array1<f64>, p: &Array1<f64>, z: &Array1<f64>, u: &Array1<f64>, t: f64) -> f64 {
        let d = theta.len() - 1;
        let loss: f64 = z.iter().zip(u).zip(&self.y).map(|((&zi, &ui), &yi)| (sigmoid(zi + t * ui) - yi) * ui).sum();
        let (tw, pw) = (theta.slice(s![..d]), p.slice(s![..d]));
        loss + self.alpha * (tw.dot(&pw) + t * pw.dot(&pw))
    }

    /// Newton's method from θ = 0: each step solves `∇²f p = −∇f` by conjugate gradients (to the forcing
    /// tolerance `min(½, √(‖∇f‖/S)) ‖∇f‖`, superlinear convergence), then a line search on `φ'(t)` — which is
    /// increasing, `f` being convex — accepts `t = 1` or finds `t` with `|φ'(t)| ≤ 0.1 |φ'(0)|` by bracketing and
    /// bisection. Stops when `‖∇f‖ ≤ tolerance · S`, after `max_iterations`, or when a step no longer changes θ.
    fn newton_cg(&self, tolerance: f64, max_iterations: usize) -> Fit {
        let (dim, scale) = (self.x.ncols(), self.scale);
        let mut theta = Array1::<f64>::zeros(dim);
        let mut iterations = 0;
        loop {
            let (z, g) = self.margins_and_gradient(&theta);
            let gnorm = g.dot(&g).sqrt();
            let rel = gnorm / scale;
            if rel <= tolerance || iterations == max_iterations {
                return Fit { theta, iterations, relative_gradient: rel };
            }
            iterations += 1;
            let h: Array1<f64> = z.mapv(|zi| {
                let s = sigmoid(zi);
                s * (1.0 - s)
            });
            let p = self.conjugate_gradient(&h, &g, rel.sqrt().min(0.5) * gnorm);
            let u = self.times(&p);
            let t = self.line_search(&theta, &p, &z, &u);
            let before = theta.clone();
            theta.scaled_add(t, &p);
            if theta == before {
                return Fit { theta, iterations, relative_gradient: rel };
            }
        }
    }

    /// Approximately solves `∇²f p = −g` (residual ≤ `target`), from p = 0; falls back to `−g` if the first
    /// curvature is not positive.
    fn conjugate_gradient(&self, h: &Array1<f64>, g: &Array1<f64>, target: f64) -> Array1<f64> {
        let mut p = Array1::<f64>::zeros(g.len());
        let mut r = -g;
        let mut dir = r.clone();
        let mut rr = r.dot(&r);
        for _ in 0..MAX_CG.min(g.len()) {
            if rr.sqrt() <= target {
                break;
            }
            let hd = self.hessian_times(h, &dir);
            let curvature = dir.dot(&hd);
            if curvature.is_nan() || curvature <= 0.0 {
                break;
            }
            let a = rr / curvature;
            p.scaled_add(a, &dir);
            r.scaled_add(-a, &hd);
            let rr_next = r.dot(&r);
            dir = &r + &(dir * (rr_next / rr));
            rr = rr_next;
        }
        if p.iter().all(|&v| v == 0.0) { -g } else { p }
    }

    /// A step length along the descent direction `p` (see [`Problem::newton_cg`]).
    fn line_search(&self, theta: &Array1<f64>, p: &Array1<f64>, z: &Array1<f64>, u: &Array1<f64>) -> f64 {
        let slope = |t: f64| self.slope(theta, p, z, u, t);
        let s0 = slope(0.0);
        if s0.is_nan() || s0 >= 0.0 {
            return 0.0;
        }
        let good = |s: f64| s.abs() <= 0.1 * s0.abs();
        let (mut lo, mut hi) = (0.0, 1.0);
        let mut s_hi = slope(hi);
        if good(s_hi) {
            return 1.0;
        }
        // Bracket the minimiser: φ'(lo) < 0 < φ'(hi).
        let mut trials = 0;
        while s_hi < 0.0 && trials < MAX_LINE {
            lo = hi;
            hi *= 2.0;
            s_hi = slope(hi);
            trials += 1;
            if good(s_hi) {
                return hi;
            }
        }
        if s_hi < 0.0 {
            return hi;
        }
        for _ in 0..MAX_LINE {
            let mid = 0.5 * (lo + hi);
            let s_mid = slope(mid);
            if good(s_mid) {
                return mid;
            }
            if s_mid < 0.0 { lo = mid } else { hi = mid }
        }
        // Not reached in practice; `lo` is a point of descent (φ' < 0 on [0, lo]).
        lo
    }
}

/// `a v` by faer's matrix product.
fn product(a: faer::MatRef<'_, f64>, v: &Array1<f64>) -> Array1<f64> {
    let v = faer::Mat::<f64>::from_fn(v.len(), 1, |i, _| v[i]);
    let mut out = faer::Mat::<f64>::zeros(a.nrows(), 1);
    faer::linalg::matmul::matmul(&mut out, faer::Accum::Replace, a, &v, 1.0, faer::Par::Seq);
    (0..out.nrows()).map(|i| out[(i, 0)]).collect()
}

fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}
