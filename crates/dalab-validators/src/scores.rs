//! The validators as pure functions. Every score is oriented so that HIGHER is better; where the paper's quantity
//! is a loss or a risk, the score is its negation (said in each function's documentation).
//!
//! Notation: `p_i = softmax(z_i)` the class probabilities of sample `i` (logits `z_i`, `K` classes),
//! `H(p) = −Σ_k p_k ln p_k` (nats), `n` the number of rows.

use crate::check;
use crate::error::{Error, Result};
use crate::probs::{argmax, entropy_of, log_softmax, row_entropies, softmax};
use ndarray::{Array1, ArrayView1, ArrayView2, Axis, s};
use rayon::prelude::*;

/// The temperature of SND: τ = 0.05 (Saito et al. 2021; the official code's default).
pub const SND_TEMPERATURE: f64 = 0.05;

/// Accuracy of `logits` against `labels` (shared by the source-val, reverse and oracle validators).
fn accuracy(
    logits_name: &'static str,
    logits: ArrayView2<'_, f64>,
    labels_name: &'static str,
    labels: &[i64],
    purpose: &str,
) -> Result<f64> {
    let correct = correct(logits_name, logits, labels_name, labels, purpose)?;
    Ok(correct.iter().filter(|&&c| c).count() as f64 / correct.len() as f64)
}

/// Whether `argmax z_i = y_i`, for every row, after checking the inputs.
fn correct(
    logits_name: &'static str,
    logits: ArrayView2<'_, f64>,
    labels_name: &'static str,
    labels: &[i64],
    purpose: &str,
) -> Result<Vec<bool>> {
    check::matrix(logits_name, logits, 1, purpose)?;
    check::labels(labels_name, labels, logits_name, logits)?;
    Ok(logits.outer_iter().zip(labels).map(|(row, &y)| argmax(row) as i64 == y).collect())
}

/// **Source-validation accuracy**: `(1/n) Σ_i 1[argmax_k z_ik = y_i]` on a held-out source split (the "source
/// risk" baseline of model selection; e.g. DANN JMLR §5.1.4, You et al. 2019 §2).
///
/// Needs the source-val logits (`n × K`) and labels (`n`, class indices in `0..K`). Higher is better.
pub fn source_val_accuracy(source_logits: ArrayView2<'_, f64>, source_labels: &[i64]) -> Result<f64> {
    accuracy("source_logits", source_logits, "source_labels", source_labels, "source-val accuracy")
}

/// **Entropy**: `−(1/n) Σ_i H(p_i)` on the target — the negated mean prediction entropy (the entropy-minimisation
/// criterion of Grandvalet & Bengio, NIPS 2004, used as a validator e.g. by Morerio et al. 2018 and Saito et al. 2021).
///
/// Needs the target logits. The paper's quantity is a loss (lower entropy = more confident), so the score is its
/// negation: higher (closer to 0) is better; one-hot predictions score exactly 0.
pub fn entropy(target_logits: ArrayView2<'_, f64>) -> Result<f64> {
    check::matrix("target_logits", target_logits, 1, "the entropy validator")?;
    Ok(-row_entropies(&log_softmax(target_logits)).mean().unwrap_or(0.0))
}

/// **Information maximisation** (Liang et al., "Do We Really Need to Access the Source Data?", ICML 2020, SHOT):
/// `IM = H(p̄) − (1/n) Σ_i H(p_i)`, `p̄ = (1/n) Σ_i p_i`, on the target — the mutual information between
/// inputs and predicted labels (diverse and confident predictions score high).
///
/// Needs the target logits. SHOT minimises `L_IM = −IM`; the score is `IM` itself: higher is better. Uniform
/// predictions score 0; the maximum is `ln K`.
pub fn im(target_logits: ArrayView2<'_, f64>) -> Result<f64> {
    check::matrix("target_logits", target_logits, 1, "the IM validator")?;
    let log_p = log_softmax(target_logits);
    let mean_p = log_p.mapv(f64::exp).mean_axis(Axis(0)).unwrap_or_default();
    Ok(entropy_of(mean_p.view()) - row_entropies(&log_p).mean().unwrap_or(0.0))
}

/// **Batch nuclear-norm** (Cui et al., "Towards Discriminability and Diversity: Batch Nuclear-norm Maximization
/// under Label Insufficient Situations", CVPR 2020): `‖A‖_* / n`, `A` the `n × K` target softmax matrix
/// (rows `p_i`), `‖·‖_*` the sum of its singular values (faer's SVD).
///
/// Needs the target logits. BNM's loss is `−‖A‖_* / n`; the score is `‖A‖_* / n`: higher is better. It lies in
/// `(0, √(min(n, K)/n)]`.
pub fn bnm(target_logits: ArrayView2<'_, f64>) -> Result<f64> {
    check::matrix("target_logits", target_logits, 1, "the BNM validator")?;
    let p = softmax(target_logits);
    let (n, k) = p.dim();
    let a = faer::Mat::<f64>::from_fn(n, k, |i, j| p[[i, j]]);
    let sv = a.singular_values().map_err(|e| Error::Numerical {
        what: "the SVD of the target softmax matrix (BNM)",
        reason: format!("{e:?}"),
    })?;
    Ok(sv.iter().sum::<f64>() / n as f64)
}

/// **Soft neighbourhood density** (Saito et al., "Tune it the Right Way: Unsupervised Validation of Domain
/// Adaptation via Soft Neighborhood Density", ICCV 2021):
///
/// `f_i = p_i / ‖p_i‖₂`, `s_ij = f_i · f_j`, `P_ij = exp(s_ij/τ) / Σ_{l≠i} exp(s_il/τ)` for `j ≠ i`,
/// `SND = (1/n) Σ_i H(P_i·)`,
///
/// the mean entropy of each target sample's soft neighbour distribution (a dense neighbourhood spreads it, a high
/// entropy). Needs the target logits (at least 2 rows, so that every sample has a neighbour) and τ (the paper's
/// 0.05: [`SND_TEMPERATURE`]). Higher is better (the paper's own orientation, no negation).
///
/// The diagonal (`j = i`) is excluded from each row, as the paper's definition; the official code instead sets it
/// to `−1/τ` and adds 1e-5 inside the logarithm of the entropy, which differ from this by about `e^{−20}` and by up
/// to ~1e-5 · (n − 1) respectively. Memory is O(n) per row block, time O(n² K).
pub fn snd(target_logits: ArrayView2<'_, f64>, temperature: f64) -> Result<f64> {
    check::matrix("target_logits", target_logits, 2, "SND (every sample needs a neighbour)")?;
    if !(temperature.is_finite() && temperature > 0.0) {
        return Err(Error::InvalidSetting {
            name: "snd_temperature",
            reason: format!("must be positive and finite, got {temperature}"),
        });
    }
    let mut f = softmax(target_logits);
    for mut row in f.rows_mut() {
        let norm = row.dot(&row).sqrt();
        row.mapv_inplace(|v| v / norm);
    }
    let n = f.nrows();
    // Rows per block: about 2^20 similarities (8 MiB) per block.
    let block = ((1usize << 20) / n).clamp(1, n);
    let starts: Vec<usize> = (0..n).step_by(block).collect();
    let per_block: Vec<Vec<f64>> = starts
        .par_iter()
        .map(|&lo| {
            let hi = (lo + block).min(n);
            let sims = f.slice(s![lo..hi, ..]).dot(&f.t());
            sims.outer_iter().enumerate().map(|(r, row)| neighbour_entropy(row, lo + r, temperature)).collect()
        })
        .collect();
    Ok(per_block.iter().flatten().sum::<f64>() / n as f64)
}

/// Entropy of `softmax(s_j / τ)` over `j ≠ skip`: `ln S − Σ_j e_j (z_j − m) / S`, `z_j = s_j/τ`, `m = max z`,
/// `e_j = exp(z_j − m)`, `S = Σ_j e_j`.
fn neighbour_entropy(sims: ArrayView1<'_, f64>, skip: usize, temperature: f64) -> f64 {
    let z = |j: usize| sims[j] / temperature;
    let others = || (0..sims.len()).filter(move |&j| j != skip);
    let m = others().map(z).fold(f64::NEG_INFINITY, f64::max);
    let (mut sum, mut weighted) = (0.0, 0.0);
    for j in others() {
        let d = z(j) - m;
        let e = d.exp();
        sum += e;
        weighted += e * d;
    }
    sum.ln() - weighted / sum
}

/// **Importance-weighted cross-validation** (Sugiyama, Krauledat & Müller, "Covariate Shift Adaptation by
/// Importance Weighted Cross Validation", JMLR 8, 2007) with the 0/1 loss, as an accuracy:
/// `IWCV = (1/n) Σ_i w_i · 1[argmax_k z_ik = y_i]` over the source-val split, `w_i ≈ p_t(x_i)/p_s(x_i)`.
///
/// Needs the source-val logits and labels and one weight per source-val row (finite, ≥ 0), e.g. from
/// [`crate::importance_weights`]. Sugiyama et al. estimate a risk, `R̂ = (1/n) Σ_i w_i ℓ(x_i)`; with the 0/1 loss
/// the score chosen here is the importance-weighted accuracy `(1/n) Σ_i w_i − R̂₀₁`, so higher is better and
/// with `w ≡ 1` it is [`source_val_accuracy`]. The weights are used as given (not self-normalised).
pub fn iwcv(source_logits: ArrayView2<'_, f64>, source_labels: &[i64], weights: ArrayView1<'_, f64>) -> Result<f64> {
    let correct = correct("source_logits", source_logits, "source_labels", source_labels, "IWCV")?;
    check::weights("importance_weights", weights, "source_logits", correct.len())?;
    let sum: f64 = weights.iter().zip(&correct).filter(|(_, c)| **c).map(|(w, _)| w).sum();
    Ok(sum / correct.len() as f64)
}

/// Weights whose variance is at most this fraction of their mean square are taken as constant by [`dev`]
/// (constant to about 12 significant digits), so that rounding noise does not set the control variate.
pub const DEV_CONSTANT_WEIGHTS: f64 = 1e-24;

/// **Deep embedded validation** (You, Wang, Long, Jordan, "Towards Accurate Model Selection in Deep Unsupervised
/// Domain Adaptation", ICML 2019, Algorithm 1): with the per-sample cross-entropy `ℓ_i = −ln p_i[y_i]` on the
/// source-val split, weights `w_i` and the weighted losses `L_i = w_i ℓ_i`,
///
/// `η = −Cov(L, W) / Var(W)` (sample covariance and variance, `n − 1` in the denominators, as the official
/// code), `R_DEV = mean(L) + η mean(W) − η`, score `= −R_DEV`.
///
/// `W` is the control variate (its expectation under the source is 1); η = 0 where it carries no information:
/// `n = 1`, or `Var(W) ≤ 1e-24 · mean(W²)` ([`DEV_CONSTANT_WEIGHTS`]), so with `w ≡ c` the score is
/// `−c · mean(ℓ)`, and `−mean(ℓ)` for `w ≡ 1`. Needs the source-val logits and labels and one weight per row, e.g.
/// from [`crate::importance_weights`]. DEV estimates a risk, so the score is its negation: higher is better.
/// (The official code passes the 0/1 error as the loss; the paper's algorithm takes any loss: the cross-entropy
/// here.)
pub fn dev(source_logits: ArrayView2<'_, f64>, source_labels: &[i64], weights: ArrayView1<'_, f64>) -> Result<f64> {
    check::matrix("source_logits", source_logits, 1, "DEV")?;
    check::labels("source_labels", source_labels, "source_logits", source_logits)?;
    check::weights("importance_weights", weights, "source_logits", source_logits.nrows())?;
    let log_p = log_softmax(source_logits);
    let loss: Array1<f64> = source_labels.iter().enumerate().map(|(i, &y)| -log_p[[i, y as usize]]).collect();
    let wl = &weights * &loss;
    let n = loss.len() as f64;
    let (mean_w, mean_wl) = (weights.sum() / n, wl.sum() / n);
    let eta = if loss.len() < 2 {
        0.0
    } else {
        let var_w = weights.iter().map(|w| (w - mean_w).powi(2)).sum::<f64>() / (n - 1.0);
        let mean_sq = weights.iter().map(|w| w * w).sum::<f64>() / n;
        if var_w <= DEV_CONSTANT_WEIGHTS * mean_sq {
            0.0
        } else {
            let cov = wl.iter().zip(&weights).map(|(a, w)| (a - mean_wl) * (w - mean_w)).sum::<f64>() / (n - 1.0);
            -cov / var_w
        }
    };
    Ok(-(mean_wl + eta * mean_w - eta))
}

/// The forward model's target pseudo-labels `argmax_k z_ik` (first index on ties): the training labels of the
/// reverse classifier of [`reverse_validation`].
pub fn pseudo_labels(target_logits: ArrayView2<'_, f64>) -> Result<Vec<i64>> {
    check::matrix("target_logits", target_logits, 1, "pseudo-labels")?;
    Ok(target_logits.outer_iter().map(|row| argmax(row) as i64).collect())
}

/// **Reverse validation** (Zhong, Fan, Yang, Verscheure, Ren, "Cross Validation Framework to Choose amongst Models
/// and Datasets for Transfer Learning", ECML PKDD 2010; DANN, Ganin et al., JMLR 2016, §5.1.4): the accuracy, on
/// the source-val split, of a *reverse* classifier trained on the target with the forward model's pseudo-labels.
///
/// Only the last, pure step is here; **the trainer must train the reverse classifier**: (1) take the forward
/// model's target pseudo-labels ([`pseudo_labels`]); (2) train a reverse classifier on (target inputs,
/// pseudo-labels) — DANN trains the same architecture with source = the pseudo-labelled target and target = the
/// unlabelled source; (3) pass its logits (or any per-class scores, `n × K`) on the source-val inputs here, with
/// the source-val labels. Accuracy is `(1/n) Σ_i 1[argmax_k r_ik = y_i]`; higher is better.
pub fn reverse_validation(reverse_source_logits: ArrayView2<'_, f64>, source_labels: &[i64]) -> Result<f64> {
    accuracy("reverse_source_logits", reverse_source_logits, "source_labels", source_labels, "reverse validation")
}

/// **ORACLE — target accuracy with target labels**: `(1/n) Σ_i 1[argmax_k z_ik = y_i]` on the target. It uses
/// the target labels, which unsupervised domain adaptation does not have: it is an upper reference for the other
/// validators, never a model-selection rule of an unsupervised protocol. Needs the target logits and labels.
/// Higher is better.
pub fn target_oracle(target_logits: ArrayView2<'_, f64>, target_labels: &[i64]) -> Result<f64> {
    accuracy("target_logits", target_logits, "target_labels", target_labels, "the target oracle")
}
