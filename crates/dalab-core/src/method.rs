use crate::{DaBatch, Result, StepCtx, StepOutput};
use serde::{Serialize, de::DeserializeOwned};
use tch::{Device, Tensor, nn};

/// A domain adaptation method: it supplies losses, never its own training loop.
pub trait Method: Send {
    /// One step's loss on a labelled source batch and an unlabelled target batch (train mode).
    fn training_loss(&mut self, batch: &DaBatch, ctx: &StepCtx) -> Result<StepOutput>;
    /// Class logits `[n, num_classes]`, eval mode.
    fn predict(&self, x: &Tensor) -> Tensor;
    /// The representation that is aligned (for divergence reports and plots), eval mode.
    fn features(&self, x: &Tensor) -> Tensor;
}

/// A feature extractor ("backbone") built by dalab-nn from the `model:` section and handed to the method.
pub trait FeatureExtractor: Send + std::fmt::Debug {
    /// `[n, ...input] -> [n, out_dim]`.
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor;
    /// Size of the feature vector.
    fn out_dim(&self) -> i64;
}

/// What a method factory gets besides its own config.
#[derive(Debug)]
pub struct BuildEnv {
    /// The feature extractor (its variables live under the `backbone` path of the same VarStore).
    pub backbone: Box<dyn FeatureExtractor>,
    /// Number of classes of the task.
    pub num_classes: i64,
    /// Shape of one input sample.
    pub input_shape: Vec<i64>,
    pub device: Device,
}

/// Checks a config after parsing (defined in dalab-classic, so that closed-form methods need no libtorch).
pub use dalab_classic::Validate;

/// A method as the registry knows it: its name, its config type and how to build it.
pub trait MethodFactory: 'static {
    /// The name used in YAML and on the command line (`dann`, `source-only`, ...).
    const NAME: &'static str;
    /// One line for `dalab methods`.
    const SUMMARY: &'static str;
    /// The method's own config: serde with `deny_unknown_fields` and defaults in code.
    type Config: Serialize + DeserializeOwned + Default + Validate + 'static;
    /// Builds the method; its variables go under `vs`.
    fn build(cfg: &Self::Config, vs: &nn::Path, env: BuildEnv) -> Result<Box<dyn Method>>;
}
