//! Input checks shared by every validator. The matrix checks (rows, columns, finiteness) are those of
//! `dalab-metrics`; labels and weights are checked here.

use crate::error::{Error, Result};
use dalab_metrics::validate::check_sample;
use ndarray::{ArrayView1, ArrayView2};

/// At least `min_rows` rows, at least one column, only finite values.
pub(crate) fn matrix(input: &'static str, x: ArrayView2<'_, f64>, min_rows: usize, purpose: &str) -> Result<()> {
    Ok(check_sample(input, x, min_rows, purpose)?)
}

/// `got == expected`, else a [`Error::ShapeMismatch`].
pub(crate) fn same(
    input: &'static str,
    got: usize,
    dim: &'static str,
    other: &'static str,
    expected: usize,
) -> Result<()> {
    if got == expected { Ok(()) } else { Err(Error::ShapeMismatch { input, got, dim, other, expected }) }
}

/// One label per row of `logits`, each a class index in `0..logits.ncols()`.
pub(crate) fn labels(
    input: &'static str,
    labels: &[i64],
    logits_name: &'static str,
    logits: ArrayView2<'_, f64>,
) -> Result<()> {
    same(input, labels.len(), "entries", logits_name, logits.nrows())?;
    let classes = logits.ncols();
    match labels.iter().position(|&y| usize::try_from(y).map_or(true, |c| c >= classes)) {
        Some(index) => Err(Error::LabelOutOfRange { input, index, label: labels[index], classes }),
        None => Ok(()),
    }
}

/// One weight per row of `rows_name`, each finite and non-negative.
pub(crate) fn weights(input: &'static str, w: ArrayView1<'_, f64>, rows_name: &'static str, rows: usize) -> Result<()> {
    same(input, w.len(), "entries", rows_name, rows)?;
    match w.iter().position(|v| !(v.is_finite() && *v >= 0.0)) {
        Some(index) => Err(Error::InvalidWeight { input, index, value: format!("{}", w[index]) }),
        None => Ok(()),
    }
}
