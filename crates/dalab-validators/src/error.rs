//! The crate's single error type.

use dalab_metrics::MetricsError;

/// Everything that can go wrong when scoring a checkpoint. Each variant prints as one line naming the input;
/// no function of this crate panics on bad input.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum Error {
    /// A matrix input has too few rows, no columns or a non-finite value (the check of `dalab-metrics`, whose
    /// message names the input, e.g. `target_logits contains a non-finite value (NaN) at row 3, column 1`).
    #[error(transparent)]
    Input(#[from] MetricsError),
    /// [`crate::Validator::score`] was not given an input the validator needs.
    #[error("validator `{validator}` needs `{input}`, which was not given")]
    Missing {
        /// The validator's name.
        validator: &'static str,
        /// The missing input's name.
        input: &'static str,
    },
    /// Two inputs that must agree in a dimension do not.
    #[error("`{input}` has {got} {dim}, but `{other}` has {expected}")]
    ShapeMismatch {
        /// The input found inconsistent.
        input: &'static str,
        /// Its size along `dim`.
        got: usize,
        /// `rows`, `columns` or `entries`.
        dim: &'static str,
        /// The input it is compared with.
        other: &'static str,
        /// That input's size.
        expected: usize,
    },
    /// A one-dimensional input (labels, weights) is empty.
    #[error("`{input}` is empty; {purpose} needs at least {needed} entries")]
    Empty {
        /// The input's name.
        input: &'static str,
        /// What needs it.
        purpose: &'static str,
        /// Entries needed.
        needed: usize,
    },
    /// A label is not a class index of the logits it is compared with.
    #[error("`{input}`[{index}] = {label} is not a class index in 0..{classes}")]
    LabelOutOfRange {
        /// The labels' name.
        input: &'static str,
        /// Position of the bad label.
        index: usize,
        /// The label.
        label: i64,
        /// Number of classes (columns of the logits).
        classes: usize,
    },
    /// An importance weight is negative, NaN or infinite.
    #[error("`{input}`[{index}] = {value} is not a finite non-negative weight")]
    InvalidWeight {
        /// The weights' name.
        input: &'static str,
        /// Position of the bad weight.
        index: usize,
        /// The weight, as text.
        value: String,
    },
    /// A setting is out of its valid range.
    #[error("invalid setting `{name}`: {reason}")]
    InvalidSetting {
        /// Setting name, e.g. `snd_temperature`.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The name is not one of [`crate::Validator::ALL`].
    #[error("unknown validator `{name}`; known validators: {known}")]
    UnknownValidator {
        /// The name asked for.
        name: String,
        /// The known names, comma-separated.
        known: String,
    },
    /// The logistic-regression domain classifier of IWCV / DEV failed or did not reach its tolerance.
    #[error("domain classifier (logistic regression): {reason}")]
    DomainClassifier {
        /// What went wrong.
        reason: String,
    },
    /// A numerical routine failed (e.g. the SVD of BNM did not converge).
    #[error("{what} failed: {reason}")]
    Numerical {
        /// The routine.
        what: &'static str,
        /// Its message.
        reason: String,
    },
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;
