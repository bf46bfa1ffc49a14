use crate::{DaBatch, Error, Result, StepCtx, StepOutput};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use tch::{Device, Tensor, nn};

/// Who may see target labels in an experiment (`setting:`). Target labels reach a method only through
/// [`Method::train_step_labelled`], which the trainer calls only in the settings that grant them, and only for a
/// method whose factory lists that setting in [`MethodFactory::SETTINGS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Setting {
    /// Labelled source, unlabelled target (domain adaptation proper). The default.
    #[default]
    Unsupervised,
    /// As `unsupervised`, plus `k` labelled target samples per class (chosen by the seed, never scored).
    SemiSupervised,
    /// The target is labelled (fine-tuning, multi-task learning, progressive networks).
    Supervised,
}

impl Setting {
    pub fn name(self) -> &'static str {
        match self {
            Setting::Unsupervised => "unsupervised",
            Setting::SemiSupervised => "semi_supervised",
            Setting::Supervised => "supervised",
        }
    }
}

/// Which data a stage of training may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StageData {
    /// Labelled source and unlabelled target batches ([`StageBatch::Both`]).
    SourceAndTarget,
    /// Labelled source batches only ([`StageBatch::Source`]), e.g. a pre-training stage.
    Source,
    /// Unlabelled target batches only ([`StageBatch::Target`]): source-free adaptation (SHOT) never sees the source.
    Target,
    /// Labelled batches of one source domain of a multi-source task `a+b→c` (index in [`BuildEnv::source_domains`],
    /// as [`StageBatch::Source`]): one task of a sequence (progressive networks).
    SourceDomain(usize),
    /// One labelled batch of each source domain, in order ([`StageBatch::Sources`]): multi-task learning.
    Sources,
}

/// Stage names for methods with one stage per task of a sequence (`task1` … `task16`).
pub const TASK_STAGES: [&str; 16] = [
    "task1", "task2", "task3", "task4", "task5", "task6", "task7", "task8", "task9", "task10", "task11", "task12",
    "task13", "task14", "task15", "task16",
];

/// A stage of training: its name (in logs and checkpoints), its length, its data and the parameter groups its
/// optimizer steps may touch.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    pub name: &'static str,
    /// Iterations of this stage; `None` = `train.iterations`.
    pub iterations: Option<usize>,
    pub data: StageData,
    /// Names of the [`Group`]s this stage steps; empty = all of them.
    pub groups: Vec<&'static str>,
}

impl Stage {
    /// The one stage of a single-stage method: `train.iterations` steps on source and target, every group.
    pub fn main() -> Self {
        Self { name: "train", iterations: None, data: StageData::SourceAndTarget, groups: Vec::new() }
    }
}

/// A parameter group: the trainable variables whose VarStore names start with one of `prefixes` (`""` = all).
/// Each group has its own optimizer, configured by `optim:` and overridden by `optim.groups.<name>`.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub name: &'static str,
    pub prefixes: Vec<String>,
}

impl Group {
    /// The group `all` of a single-loss method: every trainable variable.
    pub fn all() -> Self {
        Self::new("all", &[""])
    }

    pub fn new(name: &'static str, prefixes: &[&str]) -> Self {
        Self { name, prefixes: prefixes.iter().map(|p| p.to_string()).collect() }
    }

    pub fn contains(&self, var: &str) -> bool {
        self.prefixes.iter().any(|p| var.starts_with(p.as_str()))
    }
}

/// A labelled source batch (a [`StageData::Source`] stage).
#[derive(Debug)]
pub struct SourceBatch {
    pub x: Tensor,
    pub y: Tensor,
}

/// An unlabelled target batch (a [`StageData::Target`] stage).
#[derive(Debug)]
pub struct TargetBatch {
    pub x: Tensor,
}

/// What one iteration of a stage sees. No variant carries target labels.
#[derive(Debug, Clone, Copy)]
pub enum StageBatch<'a> {
    Both(&'a DaBatch),
    Source(&'a SourceBatch),
    Target(&'a TargetBatch),
    /// One labelled batch per source domain ([`StageData::Sources`]).
    Sources(&'a [SourceBatch]),
}

/// Target samples with their labels: handed to [`Method::train_step_labelled`] in the `semi_supervised` setting
/// (the `k` labelled samples per class) and the `supervised` one (the target training data). Nothing else
/// carries target labels to a method.
#[derive(Debug)]
pub struct LabelledTarget {
    pub x: Tensor,
    pub y: Tensor,
}

/// The error of a method that learns from target labels when it is stepped without them: such a method lists
/// only the settings that grant them ([`MethodFactory::SETTINGS`]), so the trainer never does this.
pub fn labels_not_granted(method: &str, ctx: &StepCtx) -> Error {
    Error::Other(format!(
        "stage `{}`: {method} learns from the target's labels: it needs `setting: supervised` or `semi_supervised`",
        ctx.stage
    ))
}

/// The trainer's side of a step: the optimizers of the parameter groups. Gradient clearing, the check for a
/// non-finite loss, learning rates and their schedules stay in the trainer.
pub trait Optimizers {
    /// Clears every gradient, backpropagates `loss` and steps the optimizers of `groups` (empty = every group of
    /// the stage). `name` names the loss in the error when it is NaN or infinite (checked when the trainer next
    /// reads the step's scalars, so the step does not wait for the device). Returns the loss, detached, to log.
    fn backward_step(&mut self, name: &str, loss: &Tensor, groups: &[&str]) -> Result<crate::Scalar>;
}

/// The named scalars of a step (`loss/cls`, `lambda`, ...), logged by the sinks.
pub type Scalars = Vec<(String, crate::Scalar)>;

/// A domain adaptation method: it supplies losses and the order of its optimizer steps, never its own loop.
///
/// A single-loss method implements [`Method::training_loss`], [`Method::predict`] and [`Method::features`]; the
/// trainer backpropagates the loss through every variable. A method with several steps per iteration (MCD) or
/// several stages (ADDA, SHOT) also declares its [`Group`]s and [`Stage`]s and implements [`Method::train_step`].
/// Everything a method must keep between steps (an EMA teacher, a second encoder) lives in the VarStore it was
/// built with, so the trainer's checkpoints and saved models hold it.
pub trait Method: Send {
    /// One step's loss on a labelled source batch and an unlabelled target batch (train mode).
    fn training_loss(&mut self, _batch: &DaBatch, _ctx: &StepCtx) -> Result<StepOutput> {
        Err(Error::Other("this method defines `train_step`, not `training_loss`".into()))
    }

    /// One iteration of the current stage. The default: [`Method::training_loss`] on a source-and-target
    /// batch, one backward pass and one step of every group; the loss is logged as `loss/total`.
    fn train_step(&mut self, batch: StageBatch<'_>, ctx: &StepCtx, opt: &mut dyn Optimizers) -> Result<Scalars> {
        let StageBatch::Both(b) = batch else {
            return Err(Error::Other(format!("stage `{}`: a single-loss method needs source and target", ctx.stage)));
        };
        let out = self.training_loss(b, ctx)?;
        let total = opt.backward_step("loss", &out.loss, &[])?;
        let mut scalars = Vec::with_capacity(out.scalars.len() + 1);
        scalars.push(("loss/total".to_string(), total));
        scalars.extend(out.scalars);
        Ok(scalars)
    }

    /// One iteration with labelled target data, in the settings that grant it (see [`Setting`]).
    fn train_step_labelled(
        &mut self,
        _batch: StageBatch<'_>,
        _labelled: &LabelledTarget,
        ctx: &StepCtx,
        _opt: &mut dyn Optimizers,
    ) -> Result<Scalars> {
        Err(Error::Other(format!("stage `{}`: this method does not use labelled target data", ctx.stage)))
    }

    /// The stages, in order. Default: one stage of `train.iterations` on source and target.
    fn stages(&self) -> Vec<Stage> {
        vec![Stage::main()]
    }

    /// The parameter groups. Default: one group `all`. Every trainable variable must be in exactly one.
    fn groups(&self) -> Vec<Group> {
        vec![Group::all()]
    }

    /// Called before the first iteration of `stage` (and, on a resumed run, before the checkpoint is loaded):
    /// e.g. ADDA initialises its target encoder from the source one. `vars` is the method's VarStore.
    fn begin_stage(&mut self, _stage: &Stage, _vars: &nn::VarStore) -> Result<()> {
        Ok(())
    }

    /// Class logits `[n, num_classes]`, eval mode.
    fn predict(&self, x: &Tensor) -> Tensor;
    /// The representation that is aligned (for divergence reports and plots), eval mode.
    fn features(&self, x: &Tensor) -> Tensor;

    /// True for a method with one output per task (multi-task learning, progressive networks): the evaluator then
    /// scores each source domain with [`Method::predict_task`]. Default false.
    fn task_heads(&self) -> bool {
        false
    }

    /// Class logits of task `task` (the index of a source domain in [`BuildEnv::source_domains`]; the target is
    /// task `source_domains.len()`), eval mode. Default: [`Method::predict`].
    fn predict_task(&self, x: &Tensor, _task: usize) -> Tensor {
        self.predict(x)
    }
}

/// A feature extractor ("backbone") built by dalab-nn from the `model:` section and handed to the method.
pub trait FeatureExtractor: Send + std::fmt::Debug {
    /// `[n, ...input] -> [n, out_dim]`.
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor;
    /// Size of the feature vector.
    fn out_dim(&self) -> i64;

    /// The forward pass layer by layer, for methods that connect networks at every layer (progressive networks):
    /// `lateral(i)` may return a tensor `[n, width_i]` that is added to layer i's pre-activation; the result is
    /// every layer's activation in order (the last is `forward_t`'s output). None for a backbone without such
    /// layers (the default: CNNs and TorchScript modules).
    fn forward_layers(
        &self,
        _x: &Tensor,
        _train: bool,
        _lateral: &mut dyn FnMut(usize) -> Option<Tensor>,
    ) -> Option<Vec<Tensor>> {
        None
    }
}

/// Builds another backbone of the experiment's architecture under a path (ADDA's target encoder).
pub type BackboneBuilder = Box<dyn Fn(&nn::Path) -> Result<Box<dyn FeatureExtractor>> + Send>;

/// What a method factory gets besides its own config.
pub struct BuildEnv {
    /// The feature extractor (its variables live under the `backbone` path of the same VarStore).
    pub backbone: Box<dyn FeatureExtractor>,
    /// Builds more backbones of the same architecture (fresh variables under the given path).
    pub make_backbone: BackboneBuilder,
    /// Number of classes of the task.
    pub num_classes: i64,
    /// Shape of one input sample.
    pub input_shape: Vec<i64>,
    /// The task's source domains in order: one for `a→b`, several for a multi-source task `a+b→c`.
    pub source_domains: Vec<String>,
    pub device: Device,
}

impl std::fmt::Debug for BuildEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuildEnv")
            .field("backbone", &self.backbone)
            .field("num_classes", &self.num_classes)
            .field("input_shape", &self.input_shape)
            .field("source_domains", &self.source_domains)
            .finish_non_exhaustive()
    }
}

/// Checks a config after parsing (defined in dalab-classic, so that closed-form methods need no libtorch).
pub use dalab_classic::Validate;

/// A method as the registry knows it: its name, its config type and how to build it.
pub trait MethodFactory: 'static {
    /// The name used in YAML and on the command line (`dann`, `source-only`, ...).
    const NAME: &'static str;
    /// One line for `dalab methods`.
    const SUMMARY: &'static str;
    /// The settings it can run in (`setting:` of the experiment); another is a config error.
    const SETTINGS: &'static [Setting] = &[Setting::Unsupervised];
    /// The names of its parameter groups (what `optim.groups.<name>` may configure).
    const GROUPS: &'static [&'static str] = &["all"];
    /// The method's own config: serde with `deny_unknown_fields` and defaults in code.
    type Config: Serialize + DeserializeOwned + Default + Validate + 'static;
    /// Builds the method; its variables go under `vs`.
    fn build(cfg: &Self::Config, vs: &nn::Path, env: BuildEnv) -> Result<Box<dyn Method>>;
}
