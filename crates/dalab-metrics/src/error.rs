//! The crate's single error type.

/// Everything that can go wrong when computing a divergence. Every variant names the problem;
/// no function of this crate panics on bad input.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum MetricsError {
    /// The two samples have different numbers of columns.
    #[error("feature dimensions differ: source has {source_dim} columns, target has {target_dim}")]
    DimensionMismatch {
        /// Columns of the source sample.
        source_dim: usize,
        /// Columns of the target sample.
        target_dim: usize,
    },
    /// A sample has too few rows for the requested quantity.
    #[error("{what} has {got} samples; {needed} at least are needed for {purpose}")]
    TooFewSamples {
        /// Which sample (`source`, `target`, ...).
        what: String,
        /// Rows present.
        got: usize,
        /// Rows needed.
        needed: usize,
        /// What needs them.
        purpose: String,
    },
    /// A sample has zero columns.
    #[error("{what} has no feature columns")]
    NoFeatures {
        /// Which sample.
        what: String,
    },
    /// A NaN or infinite value in the input.
    #[error("{what} contains a non-finite value ({value}) at row {row}, column {col}")]
    NonFinite {
        /// Which sample.
        what: String,
        /// Row index (0-based).
        row: usize,
        /// Column index (0-based).
        col: usize,
        /// The offending value, as text (`NaN`, `inf`, `-inf`).
        value: String,
    },
    /// A setting is out of its valid range.
    #[error("invalid setting `{name}`: {reason}")]
    InvalidSetting {
        /// Setting path, e.g. `mmd.kernel.multipliers`.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The bandwidth policy resolved to a value that cannot be used (e.g. all points equal).
    #[error(
        "bandwidth policy {policy} resolved to {value}, which is not a positive finite number (are all points identical?)"
    )]
    DegenerateBandwidth {
        /// The policy, as text.
        policy: String,
        /// The value it gave.
        value: f64,
    },
    /// A matrix that must be positive definite is not (e.g. CORAL whitening with λ = 0 and a rank-deficient covariance).
    #[error("{what} is not positive definite: smallest eigenvalue {min_eigenvalue:e}; use a positive regulariser λ")]
    NotPositiveDefinite {
        /// Which matrix.
        what: String,
        /// Its smallest eigenvalue.
        min_eigenvalue: f64,
    },
    /// A domain name asked for in a pair is unknown.
    #[error("unknown domain `{name}` in pair list; known domains: {known}")]
    UnknownDomain {
        /// The name asked for.
        name: String,
        /// The names available, comma-separated.
        known: String,
    },
    /// Writing a report failed.
    #[error("cannot write {path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// The OS error, as text.
        message: String,
    },
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, MetricsError>;
