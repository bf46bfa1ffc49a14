//! dalab-core: the vocabulary every other dalab crate speaks.
//!
//! - [`DaBatch`]: what a method sees at each step. It has **no field for target labels**: a method cannot
//!   use them, by construction.
//! - [`Method`] and [`MethodFactory`]: a DA method supplies losses; the one trainer (dalab-train) runs the loop.
//! - [`Registry`]: the explicit list of methods (one `registry.add::<M>()` line per method crate).
//! - [`schedule`]: the λ_p and learning-rate schedules of the DANN paper.
//! - [`seed`] and [`device`]: reproducibility and CPU/CUDA selection.

pub mod batch;
pub mod device;
pub mod error;
#[macro_use]
mod macros;
pub mod method;
pub mod registry;
pub mod schedule;
pub mod seed;

pub use batch::{DaBatch, Scalar, StepCtx, StepOutput, resolve};
pub use dalab_classic::{checks, method_config};
pub use error::{Error, Result};
pub use method::{
    BackboneBuilder, BuildEnv, FeatureExtractor, Group, LabelledTarget, Method, MethodFactory, Optimizers, Scalars,
    Setting, SourceBatch, Stage, StageBatch, StageData, TASK_STAGES, TargetBatch, Validate, labels_not_granted,
};
pub use registry::Registry;
