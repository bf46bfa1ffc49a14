//! Unsupervised model-selection scores ("validators") for domain adaptation, as pure functions on `ndarray`
//! (no libtorch). Each scores one checkpoint from what a trainer has at an evaluation — source-val logits and
//! labels, target logits, source/target features — and HIGHER is better for every one (a paper's loss or risk is
//! negated):
//!
//! | [`Validator`] | function | quantity |
//! |---|---|---|
//! | `source_val` | [`source_val_accuracy`] | source-val accuracy |
//! | `entropy` | [`entropy`] | `−mean H(p)` on the target |
//! | `im` | [`im`] | `H(p̄) − mean H(p)` on the target (SHOT) |
//! | `bnm` | [`bnm`] | `‖A‖_* / n` of the target softmax matrix |
//! | `snd` | [`snd`] | soft neighbourhood density (τ = 0.05) |
//! | `iwcv` | [`iwcv`] + [`importance_weights`] | importance-weighted source-val accuracy |
//! | `dev` | [`dev`] + [`importance_weights`] | `−R_DEV`, the control-variate weighted source-val loss |
//! | `reverse` | [`reverse_validation`] + [`reverse_classifier_scores`] | source-val accuracy of a reverse classifier trained on the pseudo-labelled target |
//! | `target_oracle` | [`target_oracle`] | ORACLE: target accuracy, uses target labels |
//!
//! Every function checks its input and returns an [`Error`] naming the input (shape mismatch, empty or
//! non-finite input, label out of range); none panics. Formulas, references, inputs and sign conventions:
//! `docs/model-selection.md`.

mod check;
pub mod domain;
pub mod error;
mod probs;
pub mod reverse;
pub mod scores;
pub mod validator;

pub use domain::{DomainClassifier, ImportanceWeights, importance_weights};
pub use error::{Error, Result};
pub use reverse::reverse_classifier_scores;
pub use scores::{
    SND_TEMPERATURE, bnm, dev, entropy, im, iwcv, pseudo_labels, reverse_validation, snd, source_val_accuracy,
    target_oracle,
};
pub use validator::{Input, Inputs, Settings, Validator, score_all};
