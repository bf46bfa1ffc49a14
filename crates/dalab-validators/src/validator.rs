//! [`Validator`]: the validators by name, what each needs, and one scoring entry point.

use crate::domain::{DomainClassifier, importance_weights};
use crate::error::{Error, Result};
use crate::scores;
use ndarray::{Array1, ArrayView2};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// An unsupervised model-selection score of one checkpoint. Every score is oriented so that HIGHER is better.
/// Formulas, references and sign conventions: the functions of [`crate::scores`] and `docs/model-selection.md`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Validator {
    /// Accuracy on the held-out source split ([`scores::source_val_accuracy`]).
    SourceVal,
    /// Negative mean target prediction entropy ([`scores::entropy`]).
    Entropy,
    /// Information maximisation `H(p̄) − mean H(p)` on the target ([`scores::im`]).
    Im,
    /// Batch nuclear norm `‖A‖_*/n` of the target softmax matrix ([`scores::bnm`]).
    Bnm,
    /// Soft neighbourhood density ([`scores::snd`]).
    Snd,
    /// Importance-weighted source-val accuracy ([`scores::iwcv`]).
    Iwcv,
    /// Deep embedded validation, the negated control-variate risk ([`scores::dev`]).
    Dev,
    /// Reverse validation: source-val accuracy of a reverse classifier the trainer trained
    /// ([`scores::reverse_validation`]).
    Reverse,
    /// ORACLE: target accuracy with the target labels ([`scores::target_oracle`]).
    TargetOracle,
}

/// One input of [`Inputs`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Input {
    /// [`Inputs::source_logits`].
    SourceLogits,
    /// [`Inputs::source_labels`].
    SourceLabels,
    /// [`Inputs::target_logits`].
    TargetLogits,
    /// [`Inputs::target_labels`].
    TargetLabels,
    /// [`Inputs::source_features`].
    SourceFeatures,
    /// [`Inputs::target_features`].
    TargetFeatures,
    /// [`Inputs::reverse_source_logits`].
    ReverseSourceLogits,
}

impl Input {
    /// The field's name in [`Inputs`].
    pub fn name(self) -> &'static str {
        match self {
            Input::SourceLogits => "source_logits",
            Input::SourceLabels => "source_labels",
            Input::TargetLogits => "target_logits",
            Input::TargetLabels => "target_labels",
            Input::SourceFeatures => "source_features",
            Input::TargetFeatures => "target_features",
            Input::ReverseSourceLogits => "reverse_source_logits",
        }
    }
}

impl fmt::Display for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a trainer has at an evaluation; each validator reads the fields of [`Validator::needs`] and ignores the
/// rest. Rows of the `source_*` fields are the samples of the held-out source-validation split, in one order;
/// logits are pre-softmax class scores (`n × K`), labels class indices in `0..K`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Inputs<'a> {
    /// Logits of the source-val split (`n_v × K`).
    pub source_logits: Option<ArrayView2<'a, f64>>,
    /// Labels of the source-val split (`n_v`).
    pub source_labels: Option<&'a [i64]>,
    /// Logits of the target (`n_t × K`).
    pub target_logits: Option<ArrayView2<'a, f64>>,
    /// Labels of the target (`n_t`) — read only by the ORACLE [`Validator::TargetOracle`].
    pub target_labels: Option<&'a [i64]>,
    /// Features of the source-val split (`n_v × d`), where the importance weights are evaluated.
    pub source_features: Option<ArrayView2<'a, f64>>,
    /// Features of the target (`n_t × d`).
    pub target_features: Option<ArrayView2<'a, f64>>,
    /// Optional features of the source training split (`n_s × d`) to train the domain classifier on instead of
    /// `source_features` (DEV's procedure); used by IWCV and DEV when given.
    pub source_train_features: Option<ArrayView2<'a, f64>>,
    /// Logits, on the source-val split (`n_v × K`), of the reverse classifier that the trainer trained on the
    /// target with the forward model's pseudo-labels ([`scores::reverse_validation`]).
    pub reverse_source_logits: Option<ArrayView2<'a, f64>>,
}

/// Settings of the validators that have any.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// SND's temperature τ (default [`scores::SND_TEMPERATURE`], 0.05).
    pub snd_temperature: f64,
    /// The domain classifier of IWCV and DEV.
    pub domain_classifier: DomainClassifier,
    /// The one-vs-rest logistic regressions of the reverse classifier ([`crate::reverse_classifier_scores`]).
    pub reverse_classifier: DomainClassifier,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            snd_temperature: scores::SND_TEMPERATURE,
            domain_classifier: DomainClassifier::default(),
            reverse_classifier: DomainClassifier::default(),
        }
    }
}

impl Validator {
    /// Every validator, in the order of the documentation.
    pub const ALL: [Validator; 9] = [
        Validator::SourceVal,
        Validator::Entropy,
        Validator::Im,
        Validator::Bnm,
        Validator::Snd,
        Validator::Iwcv,
        Validator::Dev,
        Validator::Reverse,
        Validator::TargetOracle,
    ];

    /// The snake_case name, as [`FromStr`] parses it.
    pub fn name(self) -> &'static str {
        match self {
            Validator::SourceVal => "source_val",
            Validator::Entropy => "entropy",
            Validator::Im => "im",
            Validator::Bnm => "bnm",
            Validator::Snd => "snd",
            Validator::Iwcv => "iwcv",
            Validator::Dev => "dev",
            Validator::Reverse => "reverse",
            Validator::TargetOracle => "target_oracle",
        }
    }

    /// The inputs [`Validator::score`] reads (all required; IWCV and DEV also read
    /// [`Inputs::source_train_features`] when it is given).
    pub fn needs(self) -> &'static [Input] {
        use Input::*;
        match self {
            Validator::SourceVal => &[SourceLogits, SourceLabels],
            Validator::Entropy | Validator::Im | Validator::Bnm | Validator::Snd => &[TargetLogits],
            Validator::Iwcv | Validator::Dev => &[SourceLogits, SourceLabels, SourceFeatures, TargetFeatures],
            Validator::Reverse => &[ReverseSourceLogits, SourceLabels],
            Validator::TargetOracle => &[TargetLogits, TargetLabels],
        }
    }

    /// Whether the validator reads target labels (only [`Validator::TargetOracle`]): not a model-selection rule of
    /// unsupervised domain adaptation, only a reference.
    pub fn is_oracle(self) -> bool {
        matches!(self, Validator::TargetOracle)
    }

    /// Scores one checkpoint with the default [`Settings`]. Higher is better.
    pub fn score(self, inputs: &Inputs<'_>) -> Result<f64> {
        self.score_with(inputs, &Settings::default())
    }

    /// Scores one checkpoint. Higher is better. An input of [`Validator::needs`] that is `None` is an
    /// [`Error::Missing`]; shapes and values are checked by the scoring function.
    pub fn score_with(self, inputs: &Inputs<'_>, settings: &Settings) -> Result<f64> {
        let name = self.name();
        match self {
            Validator::SourceVal => scores::source_val_accuracy(
                need(inputs.source_logits, name, Input::SourceLogits)?,
                need(inputs.source_labels, name, Input::SourceLabels)?,
            ),
            Validator::Entropy => scores::entropy(need(inputs.target_logits, name, Input::TargetLogits)?),
            Validator::Im => scores::im(need(inputs.target_logits, name, Input::TargetLogits)?),
            Validator::Bnm => scores::bnm(need(inputs.target_logits, name, Input::TargetLogits)?),
            Validator::Snd => {
                scores::snd(need(inputs.target_logits, name, Input::TargetLogits)?, settings.snd_temperature)
            }
            Validator::Iwcv | Validator::Dev => self.weighted(inputs, &weights(name, inputs, settings)?),
            Validator::Reverse => scores::reverse_validation(
                need(inputs.reverse_source_logits, name, Input::ReverseSourceLogits)?,
                need(inputs.source_labels, name, Input::SourceLabels)?,
            ),
            Validator::TargetOracle => scores::target_oracle(
                need(inputs.target_logits, name, Input::TargetLogits)?,
                need(inputs.target_labels, name, Input::TargetLabels)?,
            ),
        }
    }
}

/// Scores one checkpoint with each of `validators`, in order; the importance weights of IWCV and DEV are
/// computed once for both.
pub fn score_all(validators: &[Validator], inputs: &Inputs<'_>, settings: &Settings) -> Vec<(Validator, Result<f64>)> {
    let mut cached: Option<Result<Array1<f64>>> = None;
    validators
        .iter()
        .map(|&v| {
            let score = match v {
                Validator::Iwcv | Validator::Dev => v.check_given(inputs).and_then(|()| {
                    match cached.get_or_insert_with(|| weights(v.name(), inputs, settings)) {
                        Ok(w) => v.weighted(inputs, w),
                        Err(e) => Err(e.clone()),
                    }
                }),
                _ => v.score_with(inputs, settings),
            };
            (v, score)
        })
        .collect()
}

impl Validator {
    /// An [`Error::Missing`] for the first input of [`Validator::needs`] that `inputs` lacks.
    fn check_given(self, inputs: &Inputs<'_>) -> Result<()> {
        let given = |input: Input| match input {
            Input::SourceLogits => inputs.source_logits.is_some(),
            Input::SourceLabels => inputs.source_labels.is_some(),
            Input::TargetLogits => inputs.target_logits.is_some(),
            Input::TargetLabels => inputs.target_labels.is_some(),
            Input::SourceFeatures => inputs.source_features.is_some(),
            Input::TargetFeatures => inputs.target_features.is_some(),
            Input::ReverseSourceLogits => inputs.reverse_source_logits.is_some(),
        };
        match self.needs().iter().find(|&&i| !given(i)) {
            Some(i) => Err(Error::Missing { validator: self.name(), input: i.name() }),
            None => Ok(()),
        }
    }

    /// IWCV or DEV on given importance weights.
    fn weighted(self, inputs: &Inputs<'_>, weights: &Array1<f64>) -> Result<f64> {
        let name = self.name();
        let logits = need(inputs.source_logits, name, Input::SourceLogits)?;
        let labels = need(inputs.source_labels, name, Input::SourceLabels)?;
        if self == Validator::Iwcv {
            scores::iwcv(logits, labels, weights.view())
        } else {
            scores::dev(logits, labels, weights.view())
        }
    }
}

/// The importance weights of IWCV / DEV at the source-val rows (see [`importance_weights`]).
fn weights(validator: &'static str, inputs: &Inputs<'_>, settings: &Settings) -> Result<Array1<f64>> {
    let logits = need(inputs.source_logits, validator, Input::SourceLogits)?;
    need(inputs.source_labels, validator, Input::SourceLabels)?;
    let source = need(inputs.source_features, validator, Input::SourceFeatures)?;
    let target = need(inputs.target_features, validator, Input::TargetFeatures)?;
    crate::check::same("source_features", source.nrows(), "rows", "source_logits", logits.nrows())?;
    Ok(importance_weights(source, target, inputs.source_train_features, &settings.domain_classifier)?.weights)
}

/// `v`, or an [`Error::Missing`] naming the validator and the input.
fn need<T>(v: Option<T>, validator: &'static str, input: Input) -> Result<T> {
    v.ok_or(Error::Missing { validator, input: input.name() })
}

impl fmt::Display for Validator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Validator {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Validator::ALL.into_iter().find(|v| v.name() == s).ok_or_else(|| Error::UnknownValidator {
            name: s.to_string(),
            known: Validator::ALL.map(Validator::name).join(", "),
        })
    }
}
