//! dalab-train: THE training loop, the same for every method.
//!
//! ```text
//! TaskData ──▶ tensors on the device ──▶ source stream (x, y) + target stream (x only)
//! each step: DaBatch {source_x, source_y, target_x} ──▶ Method::training_loss ──▶ backward, SGD/Adam step
//! every eval_interval: evaluator (the only reader of target labels) ──▶ selection rule ──▶ sinks
//! ```

pub mod checkpoint;
pub mod config;
pub mod optim;
pub mod sink;
pub mod stream;

pub use config::Amp;
pub use config::{
    DEFAULT_VALIDATORS, ModelConfig, OptimConfig, OptimKind, OptimOverride, Selection, SettingConfig, TrainConfig,
    TrainSettings, Validator, ValidatorSettings,
};
pub use sink::{JsonlSink, Sink, TensorBoardSink};

use dalab_core::{
    BuildEnv, DaBatch, Group, LabelledTarget, Optimizers, Registry, SourceBatch, Stage, StageBatch, StageData, StepCtx,
    TargetBatch,
};
use dalab_data::TaskData;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use stream::{BatchStream, DomainInputs, labels_tensor};
use tch::{Device, Kind, Tensor, nn};

/// Errors of a training run. Each names the step, file or key at fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Core(#[from] dalab_core::Error),
    #[error(transparent)]
    Data(#[from] dalab_data::Error),
    #[error(transparent)]
    TensorBoard(#[from] dalab_tensorboard::Error),
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The loss is NaN or infinite.
    #[error("{kind} loss at step {step}")]
    NonFiniteLoss { kind: &'static str, step: usize },
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Accuracies (in [0, 1]) at one evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalRecord {
    /// Number of optimisation steps done.
    pub step: usize,
    /// The stage the evaluation ended (multi-stage methods; absent in results of older versions).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub stage: Option<String>,
    /// On the source training data.
    pub source: f64,
    /// On each source domain's training data, by name: for a multi-source task `a+b→c`, and for methods with one
    /// output per task (each domain scored with its own, `Method::predict_task`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub source_domains: BTreeMap<String, f64>,
    /// On each source domain's separate test set, where the dataset has one (multi-source tasks), scored alike.
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub source_domains_test: BTreeMap<String, f64>,
    /// On the held-out source split (held out when the selection or `train.validators` needs it).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub source_val: Option<f64>,
    /// On the target training data (transductive: the data the method adapted to, scored with its labels).
    pub target: f64,
    /// On the separate target test set, where the dataset has one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub target_test: Option<f64>,
    /// The scores of the validators of `train.validators` and of `selection:` at this evaluation (higher is
    /// better; docs/model-selection.md), by name. None of them reads a target label.
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub validators: BTreeMap<String, f64>,
    /// Validators that could not score this evaluation, with the reason (e.g. a domain classifier that did not
    /// converge); such an evaluation is no candidate of a selection by that validator.
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub validator_errors: BTreeMap<String, String>,
}

impl EvalRecord {
    /// `(split name, accuracy)` pairs.
    pub fn accuracies(&self) -> Vec<(&'static str, f64)> {
        let mut v = vec![("source", self.source)];
        if let Some(a) = self.source_val {
            v.push(("source_val", a));
        }
        v.push(("target", self.target));
        if let Some(a) = self.target_test {
            v.push(("target_test", a));
        }
        v
    }
}

/// What one training run produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialOutcome {
    /// The selection rule that picked `selected`.
    pub selection: Selection,
    /// True when `selected` was chosen with target labels (an oracle, not a DA result).
    pub oracle: bool,
    /// The evaluation chosen by the selection rule.
    pub selected: EvalRecord,
    /// The last evaluation.
    pub last: EvalRecord,
    /// Every evaluation, in order (the last is `last`): accuracies and validator scores per step.
    #[serde(default)]
    pub evaluations: Vec<EvalRecord>,
    /// Steps run.
    pub steps: usize,
    /// Wall-clock seconds of training and evaluation.
    pub seconds: f64,
    /// The device used, as text.
    pub device: String,
    /// Indices of the target samples whose labels the method was given (`setting:` semi_supervised or
    /// supervised); they are excluded from the target scores in the semi-supervised setting.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub labelled_target: Option<Vec<usize>>,
}

/// One trial to train: a method with its resolved config, the training settings, a seed and a device.
#[derive(Debug, Clone)]
pub struct TrialSpec<'a> {
    pub method: &'a str,
    pub method_config: &'a Value,
    pub settings: &'a TrainSettings,
    pub seed: u64,
    pub device: Device,
    /// The trial folder: saved models, checkpoints (and the checkpoint to resume from). None = keep nothing.
    pub out_dir: Option<&'a std::path::Path>,
}

/// Class logits of `method` on every sample of `x`, in order (eval mode, no gradients), as `[n, classes]` on the
/// CPU: what `dalab predict` and `dalab eval` score a saved model with.
pub fn predict_all(
    method: &dyn dalab_core::Method,
    x: &dalab_data::Features,
    batch: usize,
    device: Device,
) -> Result<Tensor> {
    let inputs = DomainInputs::new(x, device);
    tch::no_grad(|| {
        let mut parts = Vec::new();
        inputs.for_each_batch::<Error>(batch, device, |_, xb| {
            parts.push(method.predict(xb).to_device(Device::Cpu));
            Ok(())
        })?;
        Ok(Tensor::cat(&parts, 0))
    })
}

/// Logits of `method` on every sample of `x` (and its features, `method.features`, when `features`), in order,
/// as CPU tensors; eval mode, no gradients.
fn forward(
    method: &dyn dalab_core::Method,
    x: &DomainInputs,
    batch: usize,
    device: Device,
    features: bool,
) -> Result<(Tensor, Option<Tensor>)> {
    tch::no_grad(|| {
        let (mut logits, mut feats) = (Vec::new(), Vec::new());
        x.for_each_batch::<Error>(batch, device, |_, xb| {
            logits.push(method.predict(xb).to_device(Device::Cpu));
            if features {
                feats.push(method.features(xb).flatten(1, -1).to_device(Device::Cpu));
            }
            Ok(())
        })?;
        Ok((Tensor::cat(&logits, 0), features.then(|| Tensor::cat(&feats, 0))))
    })
}

/// The fraction of rows of `logits` whose argmax is the label.
fn accuracy_of(logits: &Tensor, y: &Tensor) -> f64 {
    let n = logits.size()[0];
    let correct = logits.argmax(-1, false).eq_tensor(&y.to_device(Device::Cpu)).sum(Kind::Int64).int64_value(&[]);
    correct as f64 / n.max(1) as f64
}

/// A `[n, d]` tensor as an f64 array.
fn array2(t: &Tensor) -> Result<ndarray::Array2<f64>> {
    let size = t.size();
    let (n, d) = (size[0] as usize, size.get(1).copied().unwrap_or(1) as usize);
    let v = Vec::<f64>::try_from(t.to_kind(Kind::Double).contiguous().flatten(0, -1))?;
    ndarray::Array2::from_shape_vec((n, d), v).map_err(|e| Error::Invalid(format!("tensor of shape {size:?}: {e}")))
}

struct EvalSet {
    source: (DomainInputs, Tensor),
    source_val: Option<(DomainInputs, Tensor)>,
    target: (DomainInputs, Tensor),
    target_test: Option<(DomainInputs, Tensor)>,
    device: Device,
    /// Validators scored at every evaluation, in order (the selection's included).
    validators: Vec<Validator>,
    validator_settings: ValidatorSettings,
    /// The source-val labels as the validators read them.
    source_val_labels: Vec<i64>,
    /// Each source domain's training rows with their labels (scored per domain when there are several or the
    /// method has one output per task), and its test set where there is one.
    source_domains: Vec<(String, DomainInputs, Tensor)>,
    source_tests: Vec<Option<(DomainInputs, Tensor)>>,
}

impl EvalSet {
    /// Accuracies on every split and the validators' scores. Target labels are read for the accuracies only: the
    /// validators get logits and features (and the source-val labels), never `target.1`.
    fn evaluate(&self, m: &dyn dalab_core::Method, step: usize, b: usize) -> Result<EvalRecord> {
        let features =
            self.validators.iter().any(|v| matches!(v, Validator::Iwcv | Validator::Dev | Validator::Reverse));
        let run = |x: &DomainInputs, f: bool| forward(m, x, b, self.device, f);
        let (src_logits, src_feats) = run(&self.source.0, features)?;
        let val = self.source_val.as_ref().map(|(x, _)| run(x, features)).transpose()?;
        let (tgt_logits, tgt_feats) = run(&self.target.0, features)?;
        let test = self.target_test.as_ref().map(|(x, _)| run(x, false)).transpose()?;
        let mut rec = EvalRecord {
            step,
            stage: None,
            source: accuracy_of(&src_logits, &self.source.1),
            source_val: val.as_ref().zip(self.source_val.as_ref()).map(|((l, _), (_, y))| accuracy_of(l, y)),
            target: accuracy_of(&tgt_logits, &self.target.1),
            target_test: test.as_ref().zip(self.target_test.as_ref()).map(|((l, _), (_, y))| accuracy_of(l, y)),
            validators: BTreeMap::new(),
            validator_errors: BTreeMap::new(),
            source_domains: BTreeMap::new(),
            source_domains_test: BTreeMap::new(),
        };
        if self.source_domains.len() > 1 || m.task_heads() {
            let score = |j: usize, x: &DomainInputs, y: &Tensor| -> Result<f64> {
                let logits = tch::no_grad(|| -> Result<Tensor> {
                    let mut parts = Vec::new();
                    x.for_each_batch::<Error>(b, self.device, |_, xb| {
                        parts.push(m.predict_task(xb, j).to_device(Device::Cpu));
                        Ok(())
                    })?;
                    Ok(Tensor::cat(&parts, 0))
                })?;
                Ok(accuracy_of(&logits, y))
            };
            for (j, (name, x, y)) in self.source_domains.iter().enumerate() {
                rec.source_domains.insert(name.clone(), score(j, x, y)?);
                if let Some(Some((xt, yt))) = self.source_tests.get(j) {
                    rec.source_domains_test.insert(name.clone(), score(j, xt, yt)?);
                }
            }
        }
        if self.validators.is_empty() {
            return Ok(rec);
        }
        let opt_array = |t: Option<&Tensor>| t.map(array2).transpose();
        let target_logits = array2(&tgt_logits)?;
        let (val_logits, val_feats) = match &val {
            Some((l, f)) => (Some(array2(l)?), opt_array(f.as_ref())?),
            None => (None, None),
        };
        let target_features = opt_array(tgt_feats.as_ref())?;
        let train_features = opt_array(src_feats.as_ref())?;
        let mut reverse = None;
        if self.validators.contains(&Validator::Reverse)
            && let (Some(tf), Some(vf)) = (&target_features, &val_feats)
        {
            let scores = dalab_validators::pseudo_labels(target_logits.view()).and_then(|pseudo| {
                dalab_validators::reverse_classifier_scores(
                    tf.view(),
                    &pseudo,
                    target_logits.ncols(),
                    vf.view(),
                    &self.validator_settings.reverse_classifier,
                )
            });
            match scores {
                Ok(s) => reverse = Some(s),
                Err(e) => {
                    rec.validator_errors.insert("reverse".into(), e.to_string());
                }
            }
        }
        let inputs = dalab_validators::Inputs {
            source_logits: val_logits.as_ref().map(|a| a.view()),
            source_labels: val.as_ref().map(|_| self.source_val_labels.as_slice()),
            target_logits: Some(target_logits.view()),
            target_labels: None,
            source_features: val_feats.as_ref().map(|a| a.view()),
            target_features: target_features.as_ref().map(|a| a.view()),
            source_train_features: train_features.as_ref().map(|a| a.view()),
            reverse_source_logits: reverse.as_ref().map(|a| a.view()),
        };
        for (v, score) in dalab_validators::score_all(&self.validators, &inputs, &self.validator_settings) {
            if rec.validator_errors.contains_key(v.name()) {
                continue;
            }
            match score {
                Ok(x) if x.is_finite() => {
                    rec.validators.insert(v.name().into(), x);
                }
                Ok(x) => {
                    rec.validator_errors.insert(v.name().into(), format!("the score is {x}"));
                }
                Err(e) => {
                    rec.validator_errors.insert(v.name().into(), e.to_string());
                }
            }
        }
        Ok(rec)
    }
}

/// A copy of every variable of a VarStore, by name.
type Snapshot = Vec<(String, Tensor)>;

fn snapshot(vs: &nn::VarStore) -> Snapshot {
    tch::no_grad(|| vs.variables().into_iter().map(|(k, v)| (k, v.copy())).collect())
}

fn restore(vs: &nn::VarStore, snap: &Snapshot) {
    let vars = vs.variables();
    tch::no_grad(|| {
        for (k, v) in snap {
            if let Some(t) = vars.get(k) {
                t.shallow_clone().copy_(v);
            }
        }
    });
}

/// Trains `spec.method` on `task` and reports to `sinks`. On an error (e.g. a NaN loss) the sinks are flushed
/// first, so every step and evaluation logged before the failure is kept. With `spec.out_dir`, the trained models
/// are saved there, checkpoints are written every `train.checkpoint_interval` steps, and a checkpoint found there
/// is resumed from.
pub fn train(
    registry: &Registry,
    spec: &TrialSpec<'_>,
    task: &TaskData,
    sinks: &mut [&mut dyn Sink],
) -> Result<(TrialOutcome, nn::VarStore)> {
    let result = train_inner(registry, spec, task, sinks);
    for s in sinks.iter_mut() {
        let flushed = s.flush();
        if result.is_ok() {
            flushed?;
        }
    }
    result
}

/// `k` indices per class of `y`, chosen with `seed` (in ascending order), or an error naming the short class.
fn labelled_per_class(y: &[i64], k: usize, seed: u64) -> Result<Vec<usize>> {
    let classes = y.iter().copied().max().map_or(0, |m| m + 1);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::new();
    for c in 0..classes {
        let mut idx: Vec<usize> = (0..y.len()).filter(|&i| y[i] == c).collect();
        if idx.len() < k {
            return Err(Error::Invalid(format!(
                "setting.semi_supervised.labels_per_class: {k} labels per class, but target class {c} has {} samples",
                idx.len()
            )));
        }
        idx.shuffle(&mut rng);
        out.extend_from_slice(&idx[..k]);
    }
    out.sort_unstable();
    Ok(out)
}

/// The trainer's [`Optimizers`] for one iteration: the groups of the stage with their learning rates.
struct StepOptimizers<'a> {
    opts: &'a mut [optim::GroupOptimizer],
    /// Clears gradients: see [`Stepper::grads`].
    grads: &'a mut nn::Optimizer,
    lrs: &'a [f64],
    active: &'a [usize],
    step: usize,
    stage: &'static str,
    /// The losses stepped since their values were last read: see [`Stepper::check_losses`].
    pending: &'a mut Vec<(String, usize, Tensor)>,
    /// Dynamic loss scaling under `train.amp: fp16`.
    scaler: Option<&'a mut LossScaler>,
}

/// Dynamic loss scaling for float16 training (the rule of `torch.amp.GradScaler`, with its defaults): each loss
/// is multiplied by `scale` before its backward pass so that small gradients survive in float16, the gradients are
/// divided by it again before the optimizer step, and a step whose gradients hold an infinity or a NaN is skipped
/// and halves the scale; `growth_interval` steps in a row without one double it. One device sync per optimizer
/// step (the check of the gradients), as GradScaler has.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LossScaler {
    pub scale: f64,
    /// Steps since the last skipped one (or growth).
    pub good_steps: usize,
    pub growth_interval: usize,
    /// Steps skipped so far (logged as `amp/skipped`).
    pub skipped: usize,
}

impl Default for LossScaler {
    fn default() -> Self {
        Self { scale: 65536.0, good_steps: 0, growth_interval: 2000, skipped: 0 }
    }
}

impl LossScaler {
    /// Divides `grads` by the scale in place; true when all of them are finite.
    fn unscale(&self, grads: &[Tensor]) -> bool {
        if grads.is_empty() {
            return true;
        }
        tch::no_grad(|| {
            let inv = 1.0 / self.scale;
            let finite: Vec<Tensor> = grads
                .iter()
                .map(|g| {
                    let _ = g.shallow_clone().g_mul_scalar_(inv);
                    g.isfinite().all()
                })
                .collect();
            Tensor::stack(&finite, 0).all().int64_value(&[]) != 0
        })
    }

    /// After a step: skipped (`finite` false) halves the scale, else `growth_interval` good ones double it.
    fn update(&mut self, finite: bool) {
        if finite {
            self.good_steps += 1;
            if self.good_steps >= self.growth_interval {
                self.scale *= 2.0;
                self.good_steps = 0;
            }
        } else {
            self.scale *= 0.5;
            self.good_steps = 0;
            self.skipped += 1;
        }
    }
}

impl Optimizers for StepOptimizers<'_> {
    fn backward_step(&mut self, name: &str, loss: &Tensor, groups: &[&str]) -> dalab_core::Result<dalab_core::Scalar> {
        if let Some(g) = groups.iter().find(|g| !self.active.iter().any(|&i| self.opts[i].name == **g)) {
            return Err(dalab_core::Error::Other(format!(
                "stage `{}` does not step parameter group `{g}` (it steps: {})",
                self.stage,
                self.active.iter().map(|&i| self.opts[i].name).collect::<Vec<_>>().join(", ")
            )));
        }
        self.grads.zero_grad();
        let stepped: Vec<usize> =
            self.active.iter().copied().filter(|&i| groups.is_empty() || groups.contains(&self.opts[i].name)).collect();
        let finite = match self.scaler.as_deref_mut() {
            None => {
                loss.backward();
                true
            }
            Some(sc) => {
                (loss * sc.scale).backward();
                let grads: Vec<Tensor> = stepped.iter().flat_map(|&i| self.opts[i].grads()).collect();
                let finite = sc.unscale(&grads);
                sc.update(finite);
                finite
            }
        };
        if finite {
            for &i in &stepped {
                self.opts[i].step(self.lrs[i]);
            }
        }
        let value = loss.detach();
        self.pending.push((name.to_string(), self.step, value.shallow_clone()));
        Ok(dalab_core::Scalar::Tensor(value))
    }
}

/// The trainer's optimizer steps for one method: its groups' optimizers and what an iteration does with them.
/// The training loop drives it; the conformance kit and the benches use it to step a method outside the loop.
pub struct Stepper {
    pub opts: Vec<optim::GroupOptimizer>,
    /// A tch optimizer over every variable, used only for its `zero_grad`: libtorch's, which drops the gradient
    /// tensors (`set_to_none`) so that the next backward pass writes them instead of adding to zeroed ones (tch
    /// offers no other way to reset a gradient to none; zeroing and accumulating cost ~10% of a shallow DANN step,
    /// `benches/README.md`). It never steps.
    grads: nn::Optimizer,
    pub groups: Vec<Group>,
    /// Optimisation steps done (names the step of a non-finite loss).
    pub step: usize,
    /// Every loss stepped since the last [`Stepper::check_losses`]: (name, step, detached value on the device).
    pending: Vec<(String, usize, Tensor)>,
    /// The loss scaler of `train.amp: fp16` (None: float32).
    pub scaler: Option<LossScaler>,
}

impl std::fmt::Debug for Stepper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stepper").field("opts", &self.opts).field("step", &self.step).finish()
    }
}

impl Stepper {
    /// The optimizers of `method`'s groups over the variables of `vs`, configured by `st.optim` (and
    /// `st.model.backbone_lr_mult`).
    pub fn new(vs: &nn::VarStore, method: &dyn dalab_core::Method, st: &TrainSettings, name: &str) -> Result<Self> {
        let groups = method.groups();
        let opts = group_optimizers(vs, &groups, st, name)?;
        let grads = nn::OptimizerConfig::build(nn::Sgd::default(), vs, 0.0)?;
        let scaler = (st.train.amp == config::Amp::Fp16).then(LossScaler::default);
        Ok(Self { opts, groups, step: 0, grads, pending: Vec::new(), scaler })
    }

    /// Reads the losses stepped since the last call (one transfer from the device) and fails on the first that is
    /// NaN or infinite, naming it and its step. The training loop calls it whenever it logs, evaluates or writes a
    /// checkpoint, so nothing is recorded from a model that a non-finite loss has reached, and a step never waits
    /// for the device only to check its loss.
    pub fn check_losses(&mut self) -> Result<()> {
        check_pending(&mut self.pending)
    }

    /// One iteration of `stage` (labelled target data only where the setting grants it), every group's learning
    /// rate multiplied by `lr_factor` (the schedule's). Returns the step's scalars with the learning rates.
    pub fn iterate(
        &mut self,
        method: &mut dyn dalab_core::Method,
        stage: &Stage,
        batch: StageBatch<'_>,
        labelled: Option<&LabelledTarget>,
        ctx: &StepCtx,
        lr_factor: f64,
    ) -> Result<dalab_core::Scalars> {
        let lrs: Vec<f64> = self.opts.iter().map(|o| o.cfg.lr * lr_factor).collect();
        let active: Vec<usize> = (0..self.groups.len())
            .filter(|&g| stage.groups.is_empty() || stage.groups.contains(&self.groups[g].name))
            .collect();
        let mut so = StepOptimizers {
            opts: &mut self.opts,
            grads: &mut self.grads,
            lrs: &lrs,
            active: &active,
            step: self.step,
            stage: stage.name,
            pending: &mut self.pending,
            scaler: self.scaler.as_mut(),
        };
        let amp = so.scaler.is_some();
        let mut scalars = tch::autocast(amp, || match labelled {
            None => method.train_step(batch, ctx, &mut so),
            Some(l) => method.train_step_labelled(batch, l, ctx, &mut so),
        })?;
        if let Some(sc) = &self.scaler {
            scalars.push(("amp/scale".to_string(), sc.scale.into()));
            scalars.push(("amp/skipped".to_string(), (sc.skipped as f64).into()));
        }
        self.step += 1;
        if active.len() == 1 {
            scalars.push(("lr".to_string(), lrs[active[0]].into()));
        } else {
            scalars.extend(active.iter().map(|&g| (format!("lr/{}", self.groups[g].name), lrs[g].into())));
        }
        Ok(scalars)
    }
}

/// Reads `pending` losses in one transfer, empties it, and fails on the first NaN or infinite one.
fn check_pending(pending: &mut Vec<(String, usize, Tensor)>) -> Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    let pending = std::mem::take(pending);
    let scalars: Vec<(String, dalab_core::Scalar)> =
        pending.iter().map(|(n, _, t)| (n.clone(), dalab_core::Scalar::Tensor(t.shallow_clone()))).collect();
    for ((name, step, _), (_, v)) in pending.iter().zip(dalab_core::resolve(&scalars)) {
        if !v.is_finite() {
            let kind = if v.is_nan() { "NaN" } else { "infinite" };
            return Err(dalab_core::Error::NonFiniteLoss { kind, what: name.clone(), step: *step }.into());
        }
    }
    Ok(())
}

/// Assigns every trainable variable of `vs` to exactly one of `groups` and builds the groups' optimizers.
fn group_optimizers(
    vs: &nn::VarStore,
    groups: &[Group],
    st: &TrainSettings,
    method: &str,
) -> Result<Vec<optim::GroupOptimizer>> {
    // Trainable = requires a gradient (batch-norm statistics and a method's frozen copies do not).
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    let mut members: Vec<Vec<(String, Tensor, f64)>> = groups.iter().map(|_| Vec::new()).collect();
    for (name, tensor) in &vars {
        let name = name.as_str();
        let owners: Vec<usize> = (0..groups.len()).filter(|&g| groups[g].contains(name)).collect();
        let g = match owners.as_slice() {
            [g] => *g,
            [] => return Err(Error::Invalid(format!("method `{method}`: variable `{name}` is in no parameter group"))),
            _ => {
                return Err(Error::Invalid(format!(
                    "method `{method}`: variable `{name}` is in parameter groups {}",
                    owners.iter().map(|&g| groups[g].name).collect::<Vec<_>>().join(" and ")
                )));
            }
        };
        let mult = if name.starts_with("backbone.") { st.model.backbone_lr_mult } else { 1.0 };
        if mult == 0.0 {
            let _ = tensor.set_requires_grad(false);
        }
        members[g].push((name.to_string(), tensor.shallow_clone(), mult));
    }
    Ok(groups.iter().zip(members).map(|(g, m)| optim::GroupOptimizer::new(g, st.optim.for_group(g.name), m)).collect())
}

/// The seed libtorch's generator is reset to after the checkpoint of `step`.
fn checkpoint_seed(seed: u64, step: usize) -> i64 {
    dalab_core::seed::derive(seed, 0xC0FF_EE00_0000 + step as u64) as i64
}

/// Builds the method of `spec` on a fresh VarStore: the backbone from `model:` under `backbone`, the method under
/// `method` (what `train` does before the first step, and what `dalab predict` rebuilds).
#[allow(clippy::too_many_arguments)]
pub fn build_model(
    registry: &Registry,
    method: &str,
    method_config: &Value,
    model: &ModelConfig,
    num_classes: i64,
    input_shape: &[i64],
    source_domains: &[String],
    device: Device,
) -> Result<(nn::VarStore, Box<dyn dalab_core::Method>)> {
    let vs = nn::VarStore::new(device);
    let backbone = dalab_nn::build_backbone(&model.backbone, &(vs.root() / "backbone"), input_shape)?;
    let (cfg, shape) = (model.backbone.clone(), input_shape.to_vec());
    // A TorchScript backbone's weights are the user's: `model.init` leaves every copy of it alone (the method's
    // extra backbones, e.g. ADDA's target encoder or progressive columns, are recorded where they are built).
    let torchscript = matches!(model.backbone, dalab_nn::BackboneConfig::Torchscript { .. });
    let user_weights = std::sync::Arc::new(std::sync::Mutex::new(vec!["backbone.".to_string()]));
    let record = user_weights.clone();
    let make_backbone: dalab_core::BackboneBuilder = Box::new(move |p| {
        if torchscript {
            record.lock().expect("not poisoned").push(format!("{}.", p.components().collect::<Vec<_>>().join(".")));
        }
        dalab_nn::build_backbone(&cfg, p, &shape)
    });
    let env = BuildEnv {
        backbone,
        make_backbone,
        num_classes,
        input_shape: input_shape.to_vec(),
        source_domains: source_domains.to_vec(),
        device,
    };
    let m = registry.build(method, method_config, &(vs.root() / "method"), env)?;
    let user_weights = user_weights.lock().expect("not poisoned").clone();
    model.init.apply(&vs, |name| !(torchscript && user_weights.iter().any(|p| name.starts_with(p.as_str()))));
    Ok((vs, m))
}

/// The stages of `method` with their iteration counts resolved (`None` = `train.iterations`).
fn resolved_stages(method: &dyn dalab_core::Method, tc: &TrainConfig) -> Result<Vec<(Stage, usize)>> {
    let stages: Vec<(Stage, usize)> =
        method.stages().into_iter().map(|s| (s.clone(), s.iterations.unwrap_or(tc.iterations))).collect();
    if stages.is_empty() || stages.iter().any(|(_, n)| *n == 0) {
        return Err(Error::Invalid("a method needs at least one stage, each of at least one iteration".into()));
    }
    Ok(stages)
}

/// Loads a saved model (a trial's `model.safetensors` or `model-last.safetensors`) into a freshly built method,
/// put first in `stage`, the stage the model was saved in (a multi-stage method predicts with that stage's
/// networks).
#[allow(clippy::too_many_arguments)]
pub fn load_model(
    registry: &Registry,
    method: &str,
    method_config: &Value,
    model: &ModelConfig,
    info: &checkpoint::ModelInfo,
    stage: &str,
    file: &std::path::Path,
    device: Device,
) -> Result<(nn::VarStore, Box<dyn dalab_core::Method>)> {
    let domains = if info.source_domains.is_empty() { vec!["source".to_string()] } else { info.source_domains.clone() };
    let (mut vs, mut m) =
        build_model(registry, method, method_config, model, info.num_classes, &info.input_shape, &domains, device)?;
    let stages = m.stages();
    let s = stages.iter().find(|s| s.name == stage).ok_or_else(|| {
        Error::Invalid(format!("method `{method}` has no stage `{stage}` (model.json does not match the method)"))
    })?;
    m.begin_stage(s, &vs)?;
    vs.load(file).map_err(|e| Error::Invalid(format!("{}: {e}", file.display())))?;
    Ok((vs, m))
}

fn train_inner(
    registry: &Registry,
    spec: &TrialSpec<'_>,
    task: &TaskData,
    sinks: &mut [&mut dyn Sink],
) -> Result<(TrialOutcome, nn::VarStore)> {
    let started = std::time::Instant::now();
    let st = spec.settings;
    let tc = &st.train;
    if tc.threads > 0 {
        tch::set_num_threads(tc.threads as i32);
    }
    let device = spec.device;
    registry.check_setting(spec.method, st.setting.setting())?;
    dalab_core::seed::seed_everything(spec.seed);

    // Data: the source (minus a held-out split for `source_val`) and the target, as tensors on the device or as
    // image files decoded batch by batch ahead of the step (dalab-data's prefetcher).
    let xs = DomainInputs::new(&task.source.x, device);
    let ys = labels_tensor(&task.source.y, device);
    let pick = |y: &Tensor, ix: &[usize]| {
        let i: Vec<i64> = ix.iter().map(|&k| k as i64).collect();
        y.index_select(0, &Tensor::from_slice(&i).to_device(device))
    };
    // The validators scored at every evaluation: `train.validators` and the selection's (not the oracle, which is
    // the target accuracy every evaluation has). The source-val split is held out when one of them scores on it.
    let mut validators = tc.validators.clone();
    if let Some(v) = st.selection.validator()
        && !v.is_oracle()
        && !validators.contains(&v)
    {
        validators.push(v);
    }
    let hold_out = validators.iter().any(|v| v.needs().contains(&dalab_validators::Input::SourceLabels));
    let train_rows: Vec<usize>;
    let (train_src, source_val) = if hold_out {
        let n = task.source.len();
        let n_val = ((n as f64) * tc.source_val_fraction).round() as usize;
        if n_val == 0 || n_val >= n {
            return Err(Error::Invalid(format!(
                "train.source_val_fraction: {} of {n} source samples leaves no validation or no training data",
                tc.source_val_fraction
            )));
        }
        let mut idx: Vec<usize> = (0..n).collect();
        idx.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(dalab_core::seed::derive(spec.seed, 3)));
        let (val, tr) = idx.split_at(n_val);
        train_rows = tr.to_vec();
        ((xs.subset(tr), pick(&ys, tr)), Some((xs.subset(val), pick(&ys, val))))
    } else {
        train_rows = (0..task.source.len()).collect();
        ((xs, ys), None)
    };
    // Each source domain's rows of the training source (positions into `train_src`).
    let domain_rows: Vec<(String, Vec<usize>)> = task
        .source_domains
        .iter()
        .map(|(name, range)| {
            let rows = train_rows.iter().enumerate().filter(|(_, r)| range.contains(r)).map(|(p, _)| p).collect();
            (name.clone(), rows)
        })
        .collect();
    let source_val_labels =
        source_val.as_ref().map(|(_, y)| Vec::<i64>::try_from(y.to_device(Device::Cpu))).transpose()?;
    let xt_all = DomainInputs::new(&task.target.x, device);
    let yt_all = labels_tensor(&task.target.y, device); // the evaluator's, and the granted settings'
    // The setting: which target samples come with labels. Semi-supervised: k per class, chosen by the seed, kept
    // out of the unlabelled stream and of every target score. Supervised: the whole target training data.
    let labelled_idx = match st.setting {
        SettingConfig::Unsupervised => None,
        SettingConfig::SemiSupervised { labels_per_class } => {
            Some(labelled_per_class(&task.target.y, labels_per_class, dalab_core::seed::derive(spec.seed, 4))?)
        }
        SettingConfig::Supervised => Some((0..task.target.len()).collect()),
    };
    let labelled = labelled_idx.as_ref().map(|ix| (xt_all.subset(ix), pick(&yt_all, ix)));
    let (xt, yt) = match (&st.setting, &labelled_idx) {
        (SettingConfig::SemiSupervised { .. }, Some(ix)) => {
            let rest: Vec<usize> = (0..task.target.len()).filter(|i| ix.binary_search(i).is_err()).collect();
            (xt_all.subset(&rest), pick(&yt_all, &rest))
        }
        _ => (xt_all, yt_all),
    };
    let sparse = tc.sparse_inputs;
    if sparse {
        let is_mlp = matches!(st.model.backbone, dalab_nn::BackboneConfig::Mlp { .. });
        if task.source.sample_shape().len() != 1 || !is_mlp || matches!(xt, DomainInputs::Files(_)) {
            return Err(Error::Invalid(format!(
                "train.sparse_inputs: needs flat feature vectors and `model.backbone.kind: mlp` (features {:?}, \
                 backbone {})",
                task.source.sample_shape(),
                st.model.backbone.kind_name()
            )));
        }
    }
    // (One source domain is the whole training source: shared, not copied.)
    let domain_sets: Vec<(String, DomainInputs, Tensor)> = match domain_rows.as_slice() {
        [(name, _)] => vec![(name.clone(), train_src.0.share(), train_src.1.shallow_clone())],
        _ => domain_rows
            .iter()
            .map(|(name, rows)| (name.clone(), train_src.0.subset(rows), pick(&train_src.1, rows)))
            .collect(),
    };
    let src_stream_inputs = train_src.0.share();
    let tgt_stream_inputs = xt.share();
    let eval_set = EvalSet {
        source: train_src,
        source_val,
        target: (xt, yt),
        target_test: task.target_test.as_ref().map(|d| (DomainInputs::new(&d.x, device), labels_tensor(&d.y, device))),
        device,
        source_val_labels: source_val_labels.unwrap_or_default(),
        source_domains: domain_sets,
        source_tests: task
            .source_tests
            .iter()
            .map(|t| t.as_ref().map(|d| (DomainInputs::new(&d.x, device), labels_tensor(&d.y, device))))
            .collect(),
        validators,
        validator_settings: tc.validator_settings.clone(),
    };

    // Model: backbone from `model:`, then the method around it; its groups' optimizers; its stages.
    let input_shape: Vec<i64> = task.source.sample_shape().iter().map(|&d| d as i64).collect();
    let num_classes = task.source.num_classes() as i64;
    let domain_names: Vec<String> = task.source_domains.iter().map(|(n, _)| n.clone()).collect();
    let (vs, mut method) = build_model(
        registry,
        spec.method,
        spec.method_config,
        &st.model,
        num_classes,
        &input_shape,
        &domain_names,
        device,
    )?;
    if st.train.amp != config::Amp::Off && !device.is_cuda() {
        return Err(Error::Invalid(format!(
            "train.amp: fp16 needs a CUDA device; this trial runs on {device:?} (use `amp: off` there)"
        )));
    }
    let mut stepper = Stepper::new(&vs, method.as_ref(), st, spec.method)?;
    let groups = stepper.groups.clone();
    let declared = registry.get(spec.method).map_or(&[][..], |e| e.groups);
    if groups.iter().map(|g| g.name).ne(declared.iter().copied()) {
        return Err(Error::Invalid(format!(
            "method `{}`: its groups() ({}) differ from the GROUPS its factory declares ({})",
            spec.method,
            groups.iter().map(|g| g.name).collect::<Vec<_>>().join(", "),
            declared.join(", ")
        )));
    }
    let stages = resolved_stages(method.as_ref(), tc)?;
    for (s, _) in &stages {
        if let Some(g) = s.groups.iter().find(|g| !groups.iter().any(|x| x.name == **g)) {
            return Err(Error::Invalid(format!("method `{}`: stage `{}` names no group `{g}`", spec.method, s.name)));
        }
    }
    let total: usize = stages.iter().map(|(_, n)| n).sum();

    // Resume from the trial folder's checkpoint, if any.
    let out_dir = spec.out_dir;
    let ckpt_interval = if out_dir.is_some() { tc.checkpoint_interval } else { 0 };
    let resume = match out_dir {
        Some(d) => checkpoint::load_state(d)?,
        None => None,
    };
    let drawn = resume.as_ref().map_or([0; 3], |c| c.drawn);
    let src_labels = eval_set.source.1.shallow_clone();
    let mut src_stream = BatchStream::resume(
        src_stream_inputs,
        Some(src_labels),
        tc.batch_size,
        dalab_core::seed::derive(spec.seed, 1),
        device,
        drawn[0],
    )?;
    let mut tgt_stream = BatchStream::resume(
        tgt_stream_inputs,
        None,
        tc.batch_size,
        dalab_core::seed::derive(spec.seed, 2),
        device,
        drawn[1],
    )?;
    let mut lab_stream = match &labelled {
        Some((x, y)) => Some(BatchStream::resume(
            x.share(),
            Some(y.shallow_clone()),
            tc.batch_size.min(x.len()),
            dalab_core::seed::derive(spec.seed, 5),
            device,
            drawn[2],
        )?),
        None => None,
    };
    // One labelled stream per source domain, for methods whose stages read the domains apart (multi-task
    // learning, task sequences).
    let k = eval_set.source_domains.len();
    for (s, _) in &stages {
        if let StageData::SourceDomain(j) = s.data
            && j >= k
        {
            return Err(Error::Invalid(format!(
                "method `{}`: stage `{}` reads source domain {}, but the task has {k} ({})",
                spec.method,
                s.name,
                j + 1,
                domain_names.join(", ")
            )));
        }
    }
    let per_domain = stages.iter().any(|(s, _)| matches!(s.data, StageData::Sources | StageData::SourceDomain(_)));
    let mut domain_streams = Vec::new();
    if per_domain {
        for (j, (_, x, y)) in eval_set.source_domains.iter().enumerate() {
            domain_streams.push(BatchStream::resume(
                x.share(),
                Some(y.shallow_clone()),
                tc.batch_size.min(x.len().max(1)),
                dalab_core::seed::derive(spec.seed, 16 + j as u64),
                device,
                resume.as_ref().and_then(|c| c.drawn_domains.get(j).copied()).unwrap_or(0),
            )?);
        }
    }

    let mut last: Option<EvalRecord> = resume.as_ref().and_then(|c| c.last.clone());
    // The selection rule's model: score, evaluation, stage index, variables.
    let mut best: Option<(f64, EvalRecord, usize, Snapshot)> = None;
    let (first_stage, first_iter, mut step) =
        resume.as_ref().map_or((0, 0, 0), |c| (c.stage, c.stage_iteration, c.step));
    let mut evaluations: Vec<EvalRecord> = resume.as_ref().map_or_else(Vec::new, |c| c.evaluations.clone());
    // The selection's score of an evaluation; None = no candidate (`last`, or a validator that failed there).
    let score_of = |rec: &EvalRecord| match st.selection.validator() {
        None => None,
        Some(v) if v.is_oracle() => Some(rec.target_test.unwrap_or(rec.target)),
        Some(v) => rec.validators.get(v.name()).copied(),
    };
    for (si, (stage, n)) in stages.iter().enumerate().skip(first_stage) {
        method.begin_stage(stage, &vs)?;
        let start = if si == first_stage { first_iter } else { 0 };
        if let (Some(c), true) = (&resume, si == first_stage) {
            // The checkpoint's variables, optimizer states and selected model, then the generator's seed.
            let dir = out_dir.expect("a checkpoint comes from the trial folder");
            let tensors = checkpoint::read_tensors(&dir.join(&c.tensors))?;
            let mut map: std::collections::HashMap<String, Tensor> = tensors.into_iter().collect();
            tch::no_grad(|| -> Result<()> {
                for (k, v) in vs.variables() {
                    let t = map.remove(&format!("vars/{k}")).ok_or_else(|| {
                        Error::Invalid(format!("{}: no variable `{k}`", dir.join(&c.tensors).display()))
                    })?;
                    v.shallow_clone().copy_(&t);
                }
                Ok(())
            })?;
            for o in stepper.opts.iter_mut() {
                let prefix = format!("optim/{}/", o.name);
                o.load_state(&prefix, &mut |k| map.remove(k));
            }
            if let Some(sc) = &c.scaler {
                stepper.scaler = Some(sc.clone());
            }
            if let Some((score, rec, stage)) = &c.best {
                let snap: Snapshot = vs
                    .variables()
                    .into_keys()
                    .filter_map(|k| map.remove(&format!("best/{k}")).map(|t| (k, t)))
                    .collect();
                best = Some((*score, rec.clone(), *stage, snap));
            }
            tch::manual_seed(checkpoint_seed(spec.seed, c.step));
        }
        for it in start..*n {
            let p = it as f64 / *n as f64;
            let factor = st.schedule.factor(p, it);
            let ctx = StepCtx { progress: p, iteration: it, total_iterations: *n, stage: stage.name, device };
            let sparsify = |x: Tensor| if sparse { x.to_sparse_sparse_dim(2) } else { x };
            let (both, src_only, tgt_only, per_source);
            let batch = match stage.data {
                StageData::SourceAndTarget => {
                    let (sx, sy) = src_stream.next_batch()?;
                    let (tx, _) = tgt_stream.next_batch()?;
                    both = DaBatch {
                        source_x: sparsify(sx),
                        source_y: sy.expect("source stream has labels"),
                        target_x: sparsify(tx),
                    };
                    StageBatch::Both(&both)
                }
                StageData::Source => {
                    let (x, y) = src_stream.next_batch()?;
                    src_only = SourceBatch { x: sparsify(x), y: y.expect("source stream has labels") };
                    StageBatch::Source(&src_only)
                }
                StageData::Target => {
                    tgt_only = TargetBatch { x: sparsify(tgt_stream.next_batch()?.0) };
                    StageBatch::Target(&tgt_only)
                }
                StageData::SourceDomain(j) => {
                    let (x, y) = domain_streams[j].next_batch()?;
                    src_only = SourceBatch { x: sparsify(x), y: y.expect("domain streams have labels") };
                    StageBatch::Source(&src_only)
                }
                StageData::Sources => {
                    per_source = domain_streams
                        .iter_mut()
                        .map(|st| {
                            let (x, y) = st.next_batch()?;
                            Ok(SourceBatch { x: sparsify(x), y: y.expect("domain streams have labels") })
                        })
                        .collect::<Result<Vec<SourceBatch>>>()?;
                    StageBatch::Sources(&per_source)
                }
            };
            let labelled = match lab_stream.as_mut() {
                None => None,
                Some(ls) => {
                    let (x, y) = ls.next_batch()?;
                    Some(LabelledTarget { x: sparsify(x), y: y.expect("labelled stream has labels") })
                }
            };
            stepper.step = step;
            let scalars = stepper.iterate(method.as_mut(), stage, batch, labelled.as_ref(), &ctx, factor)?;
            step += 1;
            let stage_end = it + 1 == *n;
            let (log, eval) = (step % tc.log_interval == 0 || stage_end, step % tc.eval_interval == 0 || stage_end);
            let ckpt = ckpt_interval > 0 && step % ckpt_interval == 0 && step < total;
            if log || eval || ckpt {
                // The losses since the last check, read from the device (the only sync of the steps between).
                stepper.check_losses()?;
            }
            if log {
                let values = dalab_core::resolve(&scalars);
                for s in sinks.iter_mut() {
                    s.step(step, &values)?;
                }
            }
            if eval {
                let mut rec = eval_set.evaluate(method.as_ref(), step, tc.eval_batch_size)?;
                rec.stage = Some(stage.name.to_string());
                for s in sinks.iter_mut() {
                    s.eval(&rec)?;
                }
                if let Some(score) = score_of(&rec)
                    && best.as_ref().is_none_or(|(b, _, _, _)| score > *b)
                {
                    best = Some((score, rec.clone(), si, snapshot(&vs)));
                }
                evaluations.push(rec.clone());
                last = Some(rec);
            }
            if ckpt {
                let dir = out_dir.expect("checkpoints need the trial folder");
                for s in sinks.iter_mut() {
                    s.flush()?;
                }
                let mut tensors: Vec<(String, Tensor)> =
                    vs.variables().into_iter().map(|(k, v)| (format!("vars/{k}"), v)).collect();
                for o in &stepper.opts {
                    tensors.extend(o.state(&format!("optim/{}/", o.name)));
                }
                if let Some((_, _, _, snap)) = &best {
                    tensors.extend(snap.iter().map(|(k, v)| (format!("best/{k}"), v.shallow_clone())));
                }
                let (si2, it2) = if stage_end { (si + 1, 0) } else { (si, it + 1) };
                let state = checkpoint::CheckpointState {
                    step,
                    stage: si2,
                    stage_iteration: it2,
                    drawn: [src_stream.drawn(), tgt_stream.drawn(), lab_stream.as_ref().map_or(0, |s| s.drawn())],
                    drawn_domains: domain_streams.iter().map(|s| s.drawn()).collect(),
                    last: last.clone(),
                    evaluations: evaluations.clone(),
                    best: best.as_ref().map(|(s, r, st, _)| (*s, r.clone(), *st)),
                    scaler: stepper.scaler.clone(),
                    tensors: String::new(),
                };
                checkpoint::save(dir, state, &tensors)?;
                tch::manual_seed(checkpoint_seed(spec.seed, step));
            }
        }
    }
    let last = last.expect("iterations >= 1, so the last step is evaluated");
    let final_stage = stages.last().expect("at least one stage").0.name;
    let selected_stage = best.as_ref().map_or(final_stage, |b| stages[b.2].0.name);
    if let Some(dir) = out_dir {
        checkpoint::write_tensors(
            &dir.join("model-last.safetensors"),
            &vs.variables().into_iter().collect::<Vec<_>>(),
        )?;
    }
    // The last model is on disk before a selection that could not score anything is reported.
    if let Some(v) = st.selection.validator()
        && best.is_none()
    {
        let why = evaluations
            .iter()
            .find_map(|r| r.validator_errors.get(v.name()).map(|e| format!("step {}: {e}", r.step)))
            .unwrap_or_else(|| "no score recorded".into());
        return Err(Error::Invalid(format!("selection: `{v}` could not score any evaluation ({why})")));
    }
    let selected = match best {
        Some((_, rec, _, snap)) => {
            restore(&vs, &snap);
            rec
        }
        None => last.clone(),
    };
    if let Some(dir) = out_dir {
        checkpoint::write_tensors(&dir.join("model.safetensors"), &vs.variables().into_iter().collect::<Vec<_>>())?;
        let info = checkpoint::ModelInfo {
            method: spec.method.to_string(),
            num_classes,
            input_shape,
            selected_stage: selected_stage.to_string(),
            last_stage: final_stage.to_string(),
            selected_step: selected.step,
            last_step: last.step,
            source_domains: if domain_names.len() > 1 { domain_names.clone() } else { Vec::new() },
        };
        checkpoint::write_atomic(&dir.join("model.json"), &serde_json::to_vec_pretty(&info).expect("serializes"))?;
        checkpoint::remove_stale(dir, None)?;
    }
    let outcome = TrialOutcome {
        selection: st.selection,
        oracle: st.selection.is_oracle(),
        selected,
        last,
        evaluations,
        steps: total,
        seconds: started.elapsed().as_secs_f64(),
        device: dalab_core::device::describe(device),
        labelled_target: labelled_idx,
    };
    Ok((outcome, vs))
}

/// A domain's features as `[n, d]` rows in f64 (samples flattened), for the closed-form methods.
fn rows_f64(d: &dalab_data::Domain) -> Result<ndarray::Array2<f64>> {
    let x = d.x.to_dense()?;
    let n = x.shape()[0];
    let flat = x.view().into_shape_with_order((n, x.len() / n.max(1))).map_err(|e| {
        Error::Invalid(format!("domain `{}`: cannot flatten features of shape {:?}: {e}", d.name, x.shape()))
    })?;
    Ok(flat.mapv(f64::from))
}

/// Fits the closed-form method `spec.method` (a `Registry::add_classic` entry: alignment + linear SVM, ...)
/// on the task's fixed features and scores it like a trained model, with one evaluation record. Such a method
/// has a single model, so `selection` does not apply: the result records `last` and no oracle. The method sees
/// the source features and labels and the target features only ([`dalab_classic::ClassicInputs`]).
pub fn fit_classic(
    registry: &Registry,
    spec: &TrialSpec<'_>,
    task: &TaskData,
    sinks: &mut [&mut dyn Sink],
) -> Result<TrialOutcome> {
    let started = std::time::Instant::now();
    let result = (|| {
        let xs = rows_f64(&task.source)?;
        let xt = rows_f64(&task.target)?;
        let inputs = dalab_classic::ClassicInputs {
            source_x: xs.view(),
            source_y: &task.source.y,
            target_x: xt.view(),
            num_classes: task.source.num_classes(),
            seed: spec.seed,
        };
        let fitted = registry.fit_classic(spec.method, spec.method_config, &inputs)?;
        let score =
            |x: &ndarray::Array2<f64>, y: &[i64]| dalab_classic::accuracy(&fitted.classifier.predict(x.view()), y);
        let rec = EvalRecord {
            step: 0,
            stage: None,
            source: score(&xs, &task.source.y),
            source_val: None,
            target: score(&xt, &task.target.y),
            target_test: task.target_test.as_ref().map(|d| Ok::<_, Error>(score(&rows_f64(d)?, &d.y))).transpose()?,
            validators: BTreeMap::new(),
            validator_errors: BTreeMap::new(),
            source_domains: task
                .source_domains
                .iter()
                .filter(|_| task.source_domains.len() > 1)
                .map(|(name, r)| {
                    let rows = xs.slice(ndarray::s![r.clone(), ..]).to_owned();
                    (name.clone(), score(&rows, &task.source.y[r.clone()]))
                })
                .collect(),
            source_domains_test: task
                .source_domains
                .iter()
                .zip(&task.source_tests)
                .filter_map(|((name, _), t)| t.as_ref().map(|d| (name, d)))
                .map(|(name, d)| Ok::<_, Error>((name.clone(), score(&rows_f64(d)?, &d.y))))
                .collect::<Result<_>>()?,
        };
        for s in sinks.iter_mut() {
            s.step(0, &fitted.scalars)?;
            s.eval(&rec)?;
        }
        Ok(TrialOutcome {
            selection: Selection::Last,
            oracle: false,
            selected: rec.clone(),
            last: rec.clone(),
            evaluations: vec![rec],
            steps: 0,
            seconds: started.elapsed().as_secs_f64(),
            device: "cpu".into(),
            labelled_target: None,
        })
    })();
    for s in sinks.iter_mut() {
        let flushed = s.flush();
        if result.is_ok() {
            flushed?;
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    use dalab_core::Group;

    /// `model.backbone_lr_mult` scales the backbone's learning rate: one plain SGD step (no momentum) on
    /// `loss = Σ backbone.w + Σ method.w` moves the backbone by −lr·mult and the method by −lr; 0 freezes it.
    #[test]
    fn backbone_lr_mult_scales_or_freezes_the_backbone() {
        for mult in [1.0, 0.1, 0.0] {
            let vs = nn::VarStore::new(Device::Cpu);
            let b = (vs.root() / "backbone").zeros("w", &[3]);
            let m = (vs.root() / "method").zeros("w", &[2]);
            let mut st = TrainSettings::default();
            st.optim.momentum = 0.0;
            st.model.backbone_lr_mult = mult;
            let mut opts = group_optimizers(&vs, &[Group::all()], &st, "t").unwrap();
            let mut grads = nn::OptimizerConfig::build(nn::Sgd::default(), &vs, 0.0).unwrap();
            let mut so = StepOptimizers {
                opts: &mut opts,
                grads: &mut grads,
                lrs: &[0.5],
                active: &[0],
                step: 0,
                stage: "train",
                pending: &mut Vec::new(),
                scaler: None,
            };
            so.backward_step("loss", &(b.sum(Kind::Float) + m.sum(Kind::Float)), &[]).unwrap();
            assert_eq!(Vec::<f32>::try_from(&m).unwrap(), vec![-0.5; 2]);
            assert_eq!(Vec::<f32>::try_from(&b).unwrap(), vec![(-0.5 * mult) as f32; 3], "mult {mult}");
            assert_eq!(b.requires_grad(), mult != 0.0);
        }
    }

    /// Every trainable variable is in exactly one group; a NaN loss names itself and the step.
    #[test]
    fn groups_cover_each_variable_once_and_nan_losses_are_reported() {
        let vs = nn::VarStore::new(Device::Cpu);
        let _a = (vs.root() / "method" / "a").zeros("w", &[1]);
        let _b = (vs.root() / "method" / "b").zeros("w", &[1]);
        let st = TrainSettings::default();
        let only_a = [Group::new("a", &["method.a."])];
        let e = group_optimizers(&vs, &only_a, &st, "m").unwrap_err().to_string();
        assert_eq!(e, "method `m`: variable `method.b.w` is in no parameter group");
        let twice = [Group::new("a", &["method."]), Group::new("b", &["method.b."])];
        let e = group_optimizers(&vs, &twice, &st, "m").unwrap_err().to_string();
        assert_eq!(e, "method `m`: variable `method.b.w` is in parameter groups a and b");
        let mut opts = group_optimizers(&vs, &[Group::all()], &st, "m").unwrap();
        let mut grads = nn::OptimizerConfig::build(nn::Sgd::default(), &vs, 0.0).unwrap();
        let mut pending = Vec::new();
        let mut at = |step: usize, pending: &mut Vec<(String, usize, Tensor)>, name: &str, loss: &Tensor| {
            let mut so = StepOptimizers {
                opts: &mut opts,
                grads: &mut grads,
                lrs: &[0.1],
                active: &[0],
                step,
                stage: "train",
                pending,
                scaler: None,
            };
            so.backward_step(name, loss, &[]).map(|_| ())
        };
        // A non-finite loss does not stop the step (its value stays on the device); the next check names the first
        // one and its step, then starts afresh.
        let w = _a.sum(Kind::Float);
        let (one, nan, inf) = (&w + 1.0, &w * f64::NAN, &w + f64::INFINITY);
        at(6, &mut pending, "loss", &one.shallow_clone()).unwrap();
        at(7, &mut pending, "loss/discrepancy", &nan).unwrap();
        at(8, &mut pending, "loss", &inf).unwrap();
        assert_eq!(pending.len(), 3);
        let e = check_pending(&mut pending).unwrap_err().to_string();
        assert_eq!(e, "NaN loss/discrepancy at step 7");
        assert!(pending.is_empty());
        at(9, &mut pending, "loss", &inf).unwrap();
        assert_eq!(check_pending(&mut pending).unwrap_err().to_string(), "infinite loss at step 9");
        at(10, &mut pending, "loss", &one).unwrap();
        check_pending(&mut pending).unwrap();
        let mut so = StepOptimizers {
            opts: &mut opts,
            grads: &mut grads,
            lrs: &[0.1],
            active: &[0],
            step: 7,
            stage: "train",
            pending: &mut pending,
            scaler: None,
        };
        let e = so.backward_step("loss", &Tensor::from(1.0), &["disc"]).unwrap_err().to_string();
        assert_eq!(e, "stage `train` does not step parameter group `disc` (it steps: all)");
    }

    #[test]
    fn semi_supervised_labels_are_k_per_class_and_seeded() {
        let y: Vec<i64> = (0..30).map(|i| i % 3).collect();
        let a = labelled_per_class(&y, 2, 1).unwrap();
        assert_eq!(a.len(), 6);
        for c in 0..3 {
            assert_eq!(a.iter().filter(|&&i| y[i] == c).count(), 2);
        }
        assert_eq!(a, labelled_per_class(&y, 2, 1).unwrap());
        assert_ne!(a, labelled_per_class(&y, 2, 2).unwrap());
        let e = labelled_per_class(&y, 11, 1).unwrap_err().to_string();
        assert_eq!(
            e,
            "setting.semi_supervised.labels_per_class: 11 labels per class, but target class 0 has 10 samples"
        );
    }

    /// `train.amp: fp16`'s loss scaling, on CPU (autocast itself is CUDA-only): with finite gradients a scaled
    /// step moves the parameters exactly as an unscaled one (the scale is a power of 2); an infinite gradient skips
    /// the step and halves the scale; `growth_interval` good steps double it.
    #[test]
    fn the_loss_scaler_unscales_skips_and_grows() {
        let run = |scaler: Option<&mut LossScaler>, loss_of: &dyn Fn(&Tensor) -> Tensor| {
            let vs = nn::VarStore::new(Device::Cpu);
            let w = (vs.root() / "method").var_copy("w", &Tensor::from_slice(&[0.5f32, -1.25, 2.0]));
            let mut st = TrainSettings::default();
            st.optim.momentum = 0.0;
            let mut opts = group_optimizers(&vs, &[Group::all()], &st, "t").unwrap();
            let mut grads = nn::OptimizerConfig::build(nn::Sgd::default(), &vs, 0.0).unwrap();
            let mut so = StepOptimizers {
                opts: &mut opts,
                grads: &mut grads,
                lrs: &[0.1],
                active: &[0],
                step: 0,
                stage: "train",
                pending: &mut Vec::new(),
                scaler,
            };
            so.backward_step("loss", &loss_of(&w), &[]).unwrap();
            Vec::<f32>::try_from(&w).unwrap()
        };
        let square = |w: &Tensor| (w * w).sum(Kind::Float) * 3.0;
        let plain = run(None, &square);
        let mut sc = LossScaler::default();
        assert_eq!(run(Some(&mut sc), &square), plain, "scaled and unscaled steps agree");
        assert_eq!((sc.scale, sc.good_steps, sc.skipped), (65536.0, 1, 0));
        // An overflow: the step is skipped, the scale halved.
        let overflow = |w: &Tensor| w.sum(Kind::Float) * f64::INFINITY;
        assert_eq!(run(Some(&mut sc), &overflow), vec![0.5, -1.25, 2.0], "skipped: the parameters did not move");
        assert_eq!((sc.scale, sc.good_steps, sc.skipped), (32768.0, 0, 1));
        sc.growth_interval = 3;
        for _ in 0..3 {
            run(Some(&mut sc), &square);
        }
        assert_eq!((sc.scale, sc.good_steps), (65536.0, 0), "3 good steps double it");
        // fp16 on a CPU trial is an error before any step (checked in `train`); the option is not written out when off.
        let cfg: TrainConfig = serde_json::from_value(serde_json::json!({"amp": "fp16"})).unwrap();
        assert_eq!(cfg.amp, Amp::Fp16);
        assert!(!serde_json::to_string(&TrainConfig::default()).unwrap().contains("amp"));
    }
}
