//! The training sections of an experiment: `model`, `optim`, `schedule`, `train`, `selection`.

use dalab_core::Validate;
use dalab_core::schedule::LrSchedule;
use dalab_nn::{BackboneConfig, Init};
pub use dalab_validators::{Settings as ValidatorSettings, Validator};
use serde::{Deserialize, Serialize};

/// `model:` the network shared by all methods of the experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    pub backbone: BackboneConfig,
    /// Learning rate of the backbone's parameters as a multiple of `optim.lr` (the method's new layers get
    /// `optim.lr`): 1 trains everything alike, 0.1 is the fine-tuning recipe of DAN/RTN/CDAN (new layers 10×),
    /// 0 freezes the backbone (no gradient is computed for it).
    pub backbone_lr_mult: f64,
    /// How the layers dalab builds start: tch's defaults (`default`: He-uniform weights) or TF-slim's
    /// Glorot-uniform weights with zero biases (`xavier`). A TorchScript backbone keeps its own weights either way.
    #[serde(skip_serializing_if = "Init::is_default")]
    pub init: Init,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self { backbone: BackboneConfig::default(), backbone_lr_mult: 1.0, init: Init::Default }
    }
}

impl Validate for ModelConfig {
    fn validate(&self) -> Result<(), String> {
        if !(self.backbone_lr_mult.is_finite() && self.backbone_lr_mult >= 0.0) {
            return Err(format!("backbone_lr_mult: must be a finite number >= 0, got {}", self.backbone_lr_mult));
        }
        self.backbone.validate().map_err(|e| format!("backbone.{e}"))
    }
}

/// `optim:` the optimizer of every parameter group, with per-group overrides in `groups`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimConfig {
    pub kind: OptimKind,
    /// Base learning rate μ0.
    pub lr: f64,
    /// SGD momentum (ignored by Adam).
    pub momentum: f64,
    pub weight_decay: f64,
    pub nesterov: bool,
    /// Adam's (β1, β2); default (0.9, 0.999). Not written out when unset, so trial ids that do not set it stay.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub betas: Option<[f64; 2]>,
    /// Adam's ε; default 1e-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eps: Option<f64>,
    /// Overrides for the parameter groups of multi-step methods (`discriminator: {lr: 2.0e-4}`); a key the group
    /// does not set is taken from the fields above.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub groups: std::collections::BTreeMap<String, OptimOverride>,
}

/// `optim.groups.<name>`: the fields of `optim:` that differ for one parameter group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct OptimOverride {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<OptimKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lr: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub momentum: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight_decay: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nesterov: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub betas: Option<[f64; 2]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eps: Option<f64>,
}

impl OptimConfig {
    /// The optimizer of group `name`: this config with `groups.<name>` applied (and no groups of its own).
    pub fn for_group(&self, name: &str) -> OptimConfig {
        let mut c = OptimConfig { groups: Default::default(), ..self.clone() };
        if let Some(o) = self.groups.get(name) {
            c.kind = o.kind.unwrap_or(c.kind);
            c.lr = o.lr.unwrap_or(c.lr);
            c.momentum = o.momentum.unwrap_or(c.momentum);
            c.weight_decay = o.weight_decay.unwrap_or(c.weight_decay);
            c.nesterov = o.nesterov.unwrap_or(c.nesterov);
            c.betas = o.betas.or(c.betas);
            c.eps = o.eps.or(c.eps);
        }
        c
    }

    pub fn adam_betas(&self) -> [f64; 2] {
        self.betas.unwrap_or([0.9, 0.999])
    }

    pub fn adam_eps(&self) -> f64 {
        self.eps.unwrap_or(1e-8)
    }

    fn check(&self) -> Result<(), String> {
        // Finite, > 0 and within f32 (the parameters' type): a larger rate overflows the first update.
        dalab_classic::checks::learning_rate("lr", &self.lr)?;
        if !(0.0..1.0).contains(&self.momentum) {
            return Err(format!("momentum: must be in [0, 1), got {}", self.momentum));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(format!("weight_decay: must be a finite number >= 0, got {}", self.weight_decay));
        }
        if let Some(i) = self.adam_betas().iter().position(|b| !(0.0..1.0).contains(b)) {
            return Err(format!("betas[{i}]: must be in [0, 1), got {}", self.adam_betas()[i]));
        }
        if !(self.adam_eps().is_finite() && self.adam_eps() > 0.0) {
            return Err(format!("eps: must be a finite number > 0, got {}", self.adam_eps()));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OptimKind {
    Sgd,
    Adam,
}

impl Default for OptimConfig {
    /// The DANN paper's deep setting: SGD, μ0 = 0.01, momentum 0.9.
    fn default() -> Self {
        Self {
            kind: OptimKind::Sgd,
            lr: 0.01,
            momentum: 0.9,
            weight_decay: 0.0,
            nesterov: false,
            betas: None,
            eps: None,
            groups: Default::default(),
        }
    }
}

impl Validate for OptimConfig {
    fn validate(&self) -> Result<(), String> {
        self.check()?;
        for name in self.groups.keys() {
            self.for_group(name).check().map_err(|e| format!("groups.{name}.{e}"))?;
        }
        Ok(())
    }
}

/// `train:` the length of training and the batch sizes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Number of optimisation steps.
    pub iterations: usize,
    /// Samples per domain per step (the DANN paper: 64 source + 64 target).
    pub batch_size: usize,
    /// Evaluate every this many steps (and always at the end).
    pub eval_interval: usize,
    /// Log step scalars every this many steps.
    pub log_interval: usize,
    /// Batch size of evaluation passes.
    pub eval_batch_size: usize,
    /// libtorch intra-op threads; 0 = libtorch's default (the number of cores).
    pub threads: usize,
    /// Fraction of the source held out as the source-val split, which `selection: source_val` and the validators
    /// `source_val`, `iwcv`, `dev` and `reverse` score on (held out only when one of them is asked for).
    pub source_val_fraction: f64,
    /// Validators scored at every evaluation besides the selection's (docs/model-selection.md); each lands in
    /// metrics.jsonl, TensorBoard (`validator/<name>`) and result.json. The default, the four that need neither
    /// the source-val split nor features (`entropy`, `im`, `bnm`, `snd`), is not written out, so trial ids of
    /// experiments that do not set it are unchanged.
    #[serde(skip_serializing_if = "is_default_validators")]
    pub validators: Vec<Validator>,
    /// Settings of the validators (SND's temperature, the logistic regressions of IWCV/DEV and of the reverse
    /// classifier). Not written out when default.
    #[serde(skip_serializing_if = "is_default_validator_settings")]
    pub validator_settings: ValidatorSettings,
    /// Hand training batches to the method as sparse COO tensors (2-d features and an MLP backbone only: its first
    /// layer becomes a sparse × dense product). Faster on very sparse inputs such as the Amazon review counts
    /// (~1.5% non-zero); evaluation stays dense. Not written out when false, so trial ids of experiments that do not
    /// set it are unchanged.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub sparse_inputs: bool,
    /// Write a checkpoint (model, optimizer states, stage, step, data-stream positions) every this many steps, from
    /// which a rerun of a killed trial continues; 0 = none. libtorch's generator is re-seeded from (seed, step) at
    /// each checkpoint, so a resumed run draws what the uninterrupted one draws. Not written out when 0.
    #[serde(skip_serializing_if = "is_zero")]
    pub checkpoint_interval: usize,
    /// Mixed precision on CUDA: `fp16` runs every forward pass of training and evaluation under libtorch's
    /// autocast (float16 where it is safe) and scales the losses dynamically ([`crate::LossScaler`]); `off`
    /// (default) is float32 throughout. Not written out when off.
    #[serde(skip_serializing_if = "Amp::is_off")]
    pub amp: Amp,
}

/// `train.amp`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Amp {
    #[default]
    Off,
    /// float16 autocast with dynamic loss scaling (tch's autocast has no bfloat16 setting).
    Fp16,
}

impl Amp {
    pub fn is_off(&self) -> bool {
        *self == Amp::Off
    }
}

fn is_zero(v: &usize) -> bool {
    *v == 0
}

/// `train.validators`' default.
pub const DEFAULT_VALIDATORS: [Validator; 4] = [Validator::Entropy, Validator::Im, Validator::Bnm, Validator::Snd];

fn is_default_validators(v: &[Validator]) -> bool {
    v == DEFAULT_VALIDATORS
}

fn is_default_validator_settings(v: &ValidatorSettings) -> bool {
    *v == ValidatorSettings::default()
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            iterations: 1000,
            batch_size: 64,
            eval_interval: 100,
            log_interval: 10,
            eval_batch_size: 1024,
            threads: 0,
            source_val_fraction: 0.1,
            sparse_inputs: false,
            checkpoint_interval: 0,
            validators: DEFAULT_VALIDATORS.to_vec(),
            validator_settings: ValidatorSettings::default(),
            amp: Amp::Off,
        }
    }
}

impl Validate for TrainConfig {
    fn validate(&self) -> Result<(), String> {
        for (k, v) in [
            ("iterations", self.iterations),
            ("batch_size", self.batch_size),
            ("eval_interval", self.eval_interval),
            ("log_interval", self.log_interval),
            ("eval_batch_size", self.eval_batch_size),
        ] {
            if v == 0 {
                return Err(format!("{k}: must be >= 1, got 0"));
            }
        }
        // Limits checked before any tensor is built (docs/configuration.md, "Limits").
        use dalab_classic::checks::{MAX_BATCH_SIZE, at_most_iterations};
        for (k, v) in [("batch_size", self.batch_size), ("eval_batch_size", self.eval_batch_size)] {
            if v as u64 > MAX_BATCH_SIZE {
                return Err(format!("{k}: must be <= {MAX_BATCH_SIZE} (the batch-size limit), got {v}"));
            }
        }
        for (k, v) in [
            ("iterations", self.iterations),
            ("eval_interval", self.eval_interval),
            ("log_interval", self.log_interval),
            ("checkpoint_interval", self.checkpoint_interval),
        ] {
            at_most_iterations(k, &v)?;
        }
        if !(self.source_val_fraction > 0.0 && self.source_val_fraction < 1.0) {
            return Err(format!("source_val_fraction: must be in (0, 1), got {}", self.source_val_fraction));
        }
        for (i, v) in self.validators.iter().enumerate() {
            if v.is_oracle() {
                return Err(format!(
                    "validators[{i}]: `target_oracle` is not a validator to score: every evaluation records the \
                     target accuracy already (`selection: target_oracle` selects by it)"
                ));
            }
            if self.validators[..i].contains(v) {
                return Err(format!("validators[{i}]: `{v}` is listed twice"));
            }
        }
        let vs = &self.validator_settings;
        if !(vs.snd_temperature.is_finite() && vs.snd_temperature > 0.0) {
            return Err(format!(
                "validator_settings.snd_temperature: must be a finite number > 0, got {}",
                vs.snd_temperature
            ));
        }
        for (k, c) in [("domain_classifier", &vs.domain_classifier), ("reverse_classifier", &vs.reverse_classifier)] {
            if !(c.c.is_finite() && c.c > 0.0) {
                return Err(format!("validator_settings.{k}.c: must be a finite number > 0, got {}", c.c));
            }
            if !(c.tolerance.is_finite() && c.tolerance > 0.0) {
                return Err(format!(
                    "validator_settings.{k}.tolerance: must be a finite number > 0, got {}",
                    c.tolerance
                ));
            }
            if c.max_iterations == 0 {
                return Err(format!("validator_settings.{k}.max_iterations: must be >= 1, got 0"));
            }
            at_most_iterations(&format!("validator_settings.{k}.max_iterations"), &c.max_iterations)?;
        }
        Ok(())
    }
}

/// `selection:` which evaluation's model is the result: `last`, or the evaluation with the best score of a
/// validator (`source_val`, `entropy`, `im`, `bnm`, `snd`, `iwcv`, `dev`, `reverse`; docs/model-selection.md), or
/// the ORACLE `target_oracle` (the best *target* accuracy — target labels used for model selection, which no
/// unsupervised method can do; every table marks results selected this way). Written as the name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Selection {
    /// The model at the end of training.
    #[default]
    Last,
    /// The evaluation with the highest score of the validator.
    By(Validator),
}

impl Selection {
    /// `selection: source_val`.
    pub const SOURCE_VAL: Selection = Selection::By(Validator::SourceVal);
    /// `selection: target_oracle`.
    pub const TARGET_ORACLE: Selection = Selection::By(Validator::TargetOracle);

    pub fn is_oracle(self) -> bool {
        self == Selection::TARGET_ORACLE
    }

    /// The validator, unless `last`.
    pub fn validator(self) -> Option<Validator> {
        match self {
            Selection::Last => None,
            Selection::By(v) => Some(v),
        }
    }

    /// The name as written in an experiment file.
    pub fn name(self) -> &'static str {
        match self {
            Selection::Last => "last",
            Selection::By(v) => v.name(),
        }
    }

    /// The name for tables: the oracle says so.
    pub fn label(self) -> &'static str {
        match self {
            Selection::By(Validator::TargetOracle) => "target_oracle (ORACLE: uses target labels)",
            s => s.name(),
        }
    }
}

impl std::str::FromStr for Selection {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s == "last" {
            return Ok(Selection::Last);
        }
        s.parse::<Validator>().map(Selection::By).map_err(|_| {
            format!(
                "unknown selection `{s}`, expected `last` or a validator: {}",
                Validator::ALL.map(Validator::name).join(", ")
            )
        })
    }
}

impl Serialize for Selection {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Selection {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// `setting:` who may see target labels: `unsupervised` (the default), `{semi_supervised: {labels_per_class: k}}`
/// or `supervised` (see [`dalab_core::Setting`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum SettingConfig {
    #[default]
    Unsupervised,
    SemiSupervised {
        /// Target samples per class whose labels the method gets (chosen by the seed; never scored).
        labels_per_class: usize,
    },
    Supervised,
}

impl SettingConfig {
    pub fn setting(self) -> dalab_core::Setting {
        match self {
            SettingConfig::Unsupervised => dalab_core::Setting::Unsupervised,
            SettingConfig::SemiSupervised { .. } => dalab_core::Setting::SemiSupervised,
            SettingConfig::Supervised => dalab_core::Setting::Supervised,
        }
    }

    pub fn is_unsupervised(&self) -> bool {
        *self == SettingConfig::Unsupervised
    }
}

impl Validate for SettingConfig {
    fn validate(&self) -> Result<(), String> {
        match self {
            SettingConfig::SemiSupervised { labels_per_class: 0 } => {
                Err("semi_supervised.labels_per_class: must be >= 1, got 0".into())
            }
            _ => Ok(()),
        }
    }
}

/// Everything the trainer needs besides the method: the resolved training sections.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct TrainSettings {
    pub model: ModelConfig,
    pub optim: OptimConfig,
    pub schedule: LrSchedule,
    pub train: TrainConfig,
    pub selection: Selection,
    pub setting: SettingConfig,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Batch sizes, iteration counts and learning rates are held to the documented limits before anything is
    /// built.
    #[test]
    fn limits_are_checked_up_front() {
        let t = |f: fn(&mut TrainConfig)| {
            let mut c = TrainConfig::default();
            f(&mut c);
            c.validate().err()
        };
        assert_eq!(t(|_| ()), None);
        assert_eq!(
            t(|c| c.batch_size = 1_000_000_000_000).unwrap(),
            "batch_size: must be <= 1048576 (the batch-size limit), got 1000000000000"
        );
        assert!(t(|c| c.eval_batch_size = (1 << 20) + 1).unwrap().starts_with("eval_batch_size: must be <= 1048576"));
        assert_eq!(t(|c| c.batch_size = 1 << 20), None);
        assert_eq!(
            t(|c| c.iterations = 1_000_000_001).unwrap(),
            "iterations: must be <= 1000000000 (the iteration limit), got 1000000001"
        );
        assert!(t(|c| c.checkpoint_interval = usize::MAX).unwrap().starts_with("checkpoint_interval: must be <="));
        let o = |lr: f64, group: Option<f64>| {
            let mut c = OptimConfig { lr, ..Default::default() };
            if let Some(g) = group {
                c.groups.insert("critic".into(), OptimOverride { lr: Some(g), ..Default::default() });
            }
            c.validate().err()
        };
        assert_eq!(o(0.05, Some(1e30)), None);
        assert_eq!(
            o(1.7976931348623157e308, None).unwrap(),
            "lr: must be <= 3.4028235e38 (f32::MAX), got 1.7976931348623157e308"
        );
        assert_eq!(o(0.05, Some(1e39)).unwrap(), "groups.critic.lr: must be <= 3.4028235e38 (f32::MAX), got 1e39");
        assert_eq!(o(0.0, None).unwrap(), "lr: must be a finite number > 0, got 0");
        assert_eq!(o(0.05, Some(f64::INFINITY)).unwrap(), "groups.critic.lr: must be a finite number > 0, got inf");
    }
}
