//! Row-wise softmax, entropy and cross-entropy of logits, in f64, computed from the log-softmax so that a
//! saturated row (a class probability that underflows to 0) contributes exactly 0 to an entropy.

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis};

/// `log softmax(z)` of every row: `z_k − (m + ln Σ_j exp(z_j − m))`, `m = max_j z_j`.
pub(crate) fn log_softmax(logits: ArrayView2<'_, f64>) -> Array2<f64> {
    let mut out = logits.to_owned();
    for mut row in out.rows_mut() {
        let m = row.fold(f64::NEG_INFINITY, |a, &b| a.max(b));
        let lse = m + row.iter().map(|&z| (z - m).exp()).sum::<f64>().ln();
        row.mapv_inplace(|z| z - lse);
    }
    out
}

/// `softmax(z)` of every row.
pub(crate) fn softmax(logits: ArrayView2<'_, f64>) -> Array2<f64> {
    log_softmax(logits).mapv(f64::exp)
}

/// Entropy (nats) of every row, from its log-probabilities: `−Σ_k p_k ln p_k`, `p_k = exp(l_k)`.
pub(crate) fn row_entropies(log_p: &Array2<f64>) -> Array1<f64> {
    log_p.map_axis(Axis(1), |row| -row.iter().map(|&l| l.exp() * l).sum::<f64>())
}

/// Entropy (nats) of one probability vector, with `0 ln 0 = 0`.
pub(crate) fn entropy_of(p: ArrayView1<'_, f64>) -> f64 {
    -p.iter().filter(|&&v| v > 0.0).map(|&v| v * v.ln()).sum::<f64>()
}

/// Index of the largest entry (the first one on ties, as `numpy.argmax`).
pub(crate) fn argmax(row: ArrayView1<'_, f64>) -> usize {
    let mut best = 0;
    for (k, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = k;
        }
    }
    best
}
