//! The reverse classifier of reverse validation, as a linear probe: one-vs-rest L2-regularised logistic
//! regressions trained on the target features with the forward model's pseudo-labels, scored on the source-val
//! features ([`crate::scores::reverse_validation`] turns the scores into the validator's accuracy).
//!
//! DANN (JMLR 2016, §5.1.4) trains a whole second DANN model (pseudo-labelled target → source) as the reverse
//! classifier; doing that at every evaluation would double or triple a run's cost. The trainer instead fits this
//! linear classifier on the forward model's own features (the penultimate layer), which asks the same question
//! — do the target pseudo-labels, learnt back, explain the source labels? — at the cost of a few Newton solves.
//! The solver is the domain classifier's (see [`crate::domain`] for why it is our own), one binary problem per
//! class: `class k` vs the rest.

use crate::check;
use crate::domain::{DomainClassifier, fit_logistic};
use crate::error::{Error, Result};
use ndarray::{Array1, Array2, ArrayView2};

/// Scores, `n_v × K`, of the one-vs-rest reverse classifier at the rows of `source_features`: column `k` is the
/// decision value `β_k·x + b_k` of the logistic regression of `pseudo_labels == k` on `target_features`.
///
/// A class that no target sample is pseudo-labelled with cannot be learnt back: its column is `f64::MIN`
/// (never the argmax). Where every target sample has the same pseudo-label `k`, the classifier predicts `k`
/// everywhere: column `k` is 0 and the others `f64::MIN`. Errors name the input (shapes, non-finite values,
/// labels outside `0..num_classes`) or the class whose regression did not converge.
pub fn reverse_classifier_scores(
    target_features: ArrayView2<'_, f64>,
    pseudo_labels: &[i64],
    num_classes: usize,
    source_features: ArrayView2<'_, f64>,
    settings: &DomainClassifier,
) -> Result<Array2<f64>> {
    let purpose = "the reverse classifier";
    check::matrix("target_features", target_features, 1, purpose)?;
    check::matrix("source_features", source_features, 1, purpose)?;
    let d = target_features.ncols();
    check::same("source_features", source_features.ncols(), "columns", "target_features", d)?;
    check::same("pseudo_labels", pseudo_labels.len(), "entries", "target_features rows", target_features.nrows())?;
    if let Some(index) = pseudo_labels.iter().position(|&y| usize::try_from(y).map_or(true, |c| c >= num_classes)) {
        return Err(Error::LabelOutOfRange {
            input: "pseudo_labels",
            index,
            label: pseudo_labels[index],
            classes: num_classes,
        });
    }
    let n = target_features.nrows();
    let mut counts = vec![0usize; num_classes];
    for &l in pseudo_labels {
        counts[l as usize] += 1;
    }
    let mut out = Array2::<f64>::from_elem((source_features.nrows(), num_classes), f64::MIN);
    if let Some(k) = counts.iter().position(|&c| c == n) {
        out.column_mut(k).fill(0.0);
        return Ok(out);
    }
    let row = |i: usize| target_features.row(i);
    for (k, &count) in counts.iter().enumerate() {
        if count == 0 {
            continue;
        }
        let y: Array1<f64> = pseudo_labels.iter().map(|&l| if l as usize == k { 1.0 } else { 0.0 }).collect();
        let fit = fit_logistic(&row, n, d, y, settings, "reverse_classifier").map_err(|e| match e {
            Error::DomainClassifier { reason } => {
                Error::Numerical { what: "the reverse classifier", reason: format!("class {k}: {reason}") }
            }
            e => e,
        })?;
        let scores = source_features.dot(&fit.beta) + fit.intercept;
        out.column_mut(k).assign(&scores);
    }
    Ok(out)
}
