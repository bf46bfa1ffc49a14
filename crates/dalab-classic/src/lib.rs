//! dalab-classic: methods fitted in closed form on fixed features, without libtorch.
//!
//! The classic DA pipeline of the CORAL (AAAI'16), GFK, SA and JDA papers: fixed input features, an optional
//! closed-form alignment, then an SVM ([`svm::SvmClassifier`], libsvm's C-SVC, C chosen by cross-validation on the
//! source).
//! There is no loss to step, so these methods are not trained by the one trainer: the runner fits them
//! directly ([`ClassicFactory::fit`]) and scores them with the same evaluation record as trained methods.
//! Like every method they never see target labels: [`ClassicInputs`] holds the target features only.

pub mod checks;
#[macro_use]
mod macros;
pub mod smo;
pub mod svm;

use ndarray::ArrayView2;
use serde::{Serialize, de::DeserializeOwned};

pub use svm::{CvPoint, SvmClassifier, SvmKernel, SvmSettings};

/// Errors of a closed-form fit; the message names the key or the data at fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Checks a config after parsing. The error message starts with the key path relative to the config
/// (`trade_off: must be >= 0, got -1`); callers prefix the path of the config in the file.
/// (Re-exported by dalab-core for the trained methods; it lives here so that closed-form methods need no
/// libtorch.)
pub trait Validate {
    fn validate(&self) -> std::result::Result<(), String>;
}

/// What a closed-form method is fitted on: labelled source features and unlabelled target features
/// (one row per sample, flattened), both `f64`.
#[derive(Debug, Clone, Copy)]
pub struct ClassicInputs<'a> {
    pub source_x: ArrayView2<'a, f64>,
    /// Class indices in `0..num_classes`.
    pub source_y: &'a [i64],
    /// Unlabelled: there is deliberately no field for target labels.
    pub target_x: ArrayView2<'a, f64>,
    pub num_classes: usize,
    /// The trial's seed (cross-validation folds, random draws).
    pub seed: u64,
}

/// A fitted classifier: class indices for rows of features.
pub trait Classifier: Send {
    fn predict(&self, x: ArrayView2<'_, f64>) -> Vec<i64>;
}

/// A fitted method: its classifier, and named scalars for the logs (e.g. the chosen C).
pub struct Fitted {
    pub classifier: Box<dyn Classifier>,
    pub scalars: Vec<(String, f64)>,
}

impl std::fmt::Debug for Fitted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fitted").field("scalars", &self.scalars).finish_non_exhaustive()
    }
}

/// A closed-form method as the registry knows it: its name, its config type and how to fit it.
pub trait ClassicFactory: 'static {
    /// The name used in YAML and on the command line (`svm`, `coral-svm`, ...).
    const NAME: &'static str;
    /// One line for `dalab methods`.
    const SUMMARY: &'static str;
    /// The method's own config: serde with `deny_unknown_fields` and defaults in code.
    type Config: Serialize + DeserializeOwned + Default + Validate + 'static;
    fn fit(cfg: &Self::Config, inputs: &ClassicInputs<'_>) -> Result<Fitted>;
}

/// Fraction of `pred` equal to `y` (0 for no samples).
pub fn accuracy(pred: &[i64], y: &[i64]) -> f64 {
    let n = pred.len().min(y.len());
    if n == 0 {
        return 0.0;
    }
    pred.iter().zip(y).filter(|(a, b)| a == b).count() as f64 / n as f64
}
