//! libsvm's C-SVC solver on a precomputed kernel matrix, read as libsvm reads it: row `i` of the matrix is the
//! kernel column the solver fetches for sample `i` (`Q_i[j] = y_i y_j K[i][j]`, stored as f32 like libsvm's
//! `Qfloat` cache), second-order working-set selection (Fan, Chen & Lin 2005), no shrinking, `ρ` from the free
//! variables.
//!
//! Why our own: the CORAL authors' code hands libsvm the matrix `K = X_S A X_Sᵀ` (`A` the CORAL transform), which
//! is neither symmetric nor positive semi-definite; what libsvm computes on it depends on which entries it reads.
//! linfa-svm's solver reads columns and is not reachable with a precomputed matrix, and no other Rust crate runs
//! libsvm's algorithm on an arbitrary matrix. For symmetric PSD matrices this gives libsvm's solution (tested
//! against scikit-learn's `SVC(kernel='precomputed')`, which is libsvm, in `svm/tests.rs`).

/// `τ` of libsvm: the curvature used when the pair's curvature is not positive.
const TAU: f64 = 1e-12;

/// A solved binary problem: `coef_i = α_i y_i` and `ρ`; the decision is `Σ_i coef_i K(x_i, x) − ρ`.
#[derive(Debug, Clone)]
pub struct Solution {
    pub coef: Vec<f64>,
    pub rho: f64,
}

/// Solves `min ½ αᵀQα − Σα, 0 ≤ α ≤ c, yᵀα = 0` with `Q_ij = y_i y_j k(i, j)`; `pos[i]` is `y_i = +1`.
/// `k(i, j)` must give the matrix entry `[i][j]`.
pub fn solve(n: usize, k: &dyn Fn(usize, usize) -> f64, pos: &[bool], c: f64, eps: f64) -> Solution {
    let y: Vec<f64> = pos.iter().map(|&p| if p { 1.0 } else { -1.0 }).collect();
    // Row i of Q, as libsvm's cache keeps it (f32 entries).
    let q_row = |i: usize| -> Vec<f64> { (0..n).map(|j| f64::from((y[i] * y[j] * k(i, j)) as f32)).collect() };
    let qd: Vec<f64> = (0..n).map(|i| k(i, i)).collect();
    let mut alpha = vec![0.0f64; n];
    let mut g = vec![-1.0f64; n];
    let upper = |a: f64| a >= c;
    let lower = |a: f64| a <= 0.0;
    let max_iter = (100 * n).max(10_000_000);
    let mut cache: std::collections::HashMap<usize, Vec<f64>> = std::collections::HashMap::new();
    for _ in 0..max_iter {
        // Working set: i maximises −y_t G_t over I_up, j minimises the second-order gain over I_low.
        let (mut gmax, mut gmax2) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
        let mut gi: Option<usize> = None;
        for t in 0..n {
            if y[t] > 0.0 {
                if !upper(alpha[t]) && -g[t] >= gmax {
                    gmax = -g[t];
                    gi = Some(t);
                }
            } else if !lower(alpha[t]) && g[t] >= gmax {
                gmax = g[t];
                gi = Some(t);
            }
        }
        let Some(i) = gi else { break };
        let qi = cache.entry(i).or_insert_with(|| q_row(i)).clone();
        let mut gj: Option<usize> = None;
        let mut obj_min = f64::INFINITY;
        for j in 0..n {
            let (grad_diff, quad) = if y[j] > 0.0 {
                if lower(alpha[j]) {
                    continue;
                }
                gmax2 = gmax2.max(g[j]);
                (gmax + g[j], qd[i] + qd[j] - 2.0 * y[i] * qi[j])
            } else {
                if upper(alpha[j]) {
                    continue;
                }
                gmax2 = gmax2.max(-g[j]);
                (gmax - g[j], qd[i] + qd[j] + 2.0 * y[i] * qi[j])
            };
            if grad_diff > 0.0 {
                let obj = -(grad_diff * grad_diff) / if quad > 0.0 { quad } else { TAU };
                if obj <= obj_min {
                    obj_min = obj;
                    gj = Some(j);
                }
            }
        }
        let Some(j) = gj.filter(|_| gmax + gmax2 >= eps) else { break };
        let qj = cache.entry(j).or_insert_with(|| q_row(j)).clone();
        let (old_i, old_j) = (alpha[i], alpha[j]);
        if y[i] != y[j] {
            let quad = qd[i] + qd[j] + 2.0 * qi[j];
            let delta = (-g[i] - g[j]) / if quad > 0.0 { quad } else { TAU };
            let diff = alpha[i] - alpha[j];
            alpha[i] += delta;
            alpha[j] += delta;
            if diff > 0.0 {
                if alpha[j] < 0.0 {
                    alpha[j] = 0.0;
                    alpha[i] = diff;
                }
            } else if alpha[i] < 0.0 {
                alpha[i] = 0.0;
                alpha[j] = -diff;
            }
            if diff > 0.0 {
                if alpha[i] > c {
                    alpha[i] = c;
                    alpha[j] = c - diff;
                }
            } else if alpha[j] > c {
                alpha[j] = c;
                alpha[i] = c + diff;
            }
        } else {
            let quad = qd[i] + qd[j] - 2.0 * qi[j];
            let delta = (g[i] - g[j]) / if quad > 0.0 { quad } else { TAU };
            let sum = alpha[i] + alpha[j];
            alpha[i] -= delta;
            alpha[j] += delta;
            if sum > c {
                if alpha[i] > c {
                    alpha[i] = c;
                    alpha[j] = sum - c;
                }
            } else if alpha[j] < 0.0 {
                alpha[j] = 0.0;
                alpha[i] = sum;
            }
            if sum > c {
                if alpha[j] > c {
                    alpha[j] = c;
                    alpha[i] = sum - c;
                }
            } else if alpha[i] < 0.0 {
                alpha[i] = 0.0;
                alpha[j] = sum;
            }
        }
        let (di, dj) = (alpha[i] - old_i, alpha[j] - old_j);
        for t in 0..n {
            g[t] += qi[t] * di + qj[t] * dj;
        }
    }
    // ρ: the mean of y_t G_t over the free variables, else the middle of the feasible interval.
    let (mut ub, mut lb, mut sum_free, mut nr_free) = (f64::INFINITY, f64::NEG_INFINITY, 0.0, 0usize);
    for t in 0..n {
        let yg = y[t] * g[t];
        if upper(alpha[t]) {
            if y[t] < 0.0 { ub = ub.min(yg) } else { lb = lb.max(yg) }
        } else if lower(alpha[t]) {
            if y[t] > 0.0 { ub = ub.min(yg) } else { lb = lb.max(yg) }
        } else {
            nr_free += 1;
            sum_free += yg;
        }
    }
    let rho = if nr_free > 0 { sum_free / nr_free as f64 } else { (ub + lb) / 2.0 };
    Solution { coef: alpha.iter().zip(&y).map(|(a, y)| a * y).collect(), rho }
}
