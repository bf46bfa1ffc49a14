//! Source only: the backbone and a linear classifier trained with cross-entropy on the labelled source; the
//! target batch is ignored. The baseline every DA table starts from.

use dalab_core::{BuildEnv, DaBatch, FeatureExtractor, Method, MethodFactory, Result, StepCtx, StepOutput, Validate};
use serde::{Deserialize, Serialize};
use tch::{Tensor, nn, nn::Module};

/// Source only has no options.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceOnlyConfig {}

impl Validate for SourceOnlyConfig {
    fn validate(&self) -> std::result::Result<(), String> {
        Ok(())
    }
}

/// The registry entry.
#[derive(Debug)]
pub struct SourceOnly;

struct Model {
    backbone: Box<dyn FeatureExtractor>,
    classifier: nn::Linear,
}

impl MethodFactory for SourceOnly {
    const NAME: &'static str = "source-only";
    const SUMMARY: &'static str = "no adaptation: cross-entropy on the labelled source only";
    type Config = SourceOnlyConfig;

    fn build(_cfg: &Self::Config, vs: &nn::Path, env: BuildEnv) -> Result<Box<dyn Method>> {
        let classifier = nn::linear(vs / "classifier", env.backbone.out_dim(), env.num_classes, Default::default());
        Ok(Box::new(Model { backbone: env.backbone, classifier }))
    }
}

impl Method for Model {
    fn training_loss(&mut self, batch: &DaBatch, _ctx: &StepCtx) -> Result<StepOutput> {
        let logits = self.classifier.forward(&self.backbone.forward_t(&batch.source_x, true));
        let cls = logits.cross_entropy_for_logits(&batch.source_y);
        let value = cls.double_value(&[]);
        Ok(StepOutput::new(cls).with("loss/cls", value))
    }

    fn predict(&self, x: &Tensor) -> Tensor {
        self.classifier.forward(&self.backbone.forward_t(x, false))
    }

    fn features(&self, x: &Tensor) -> Tensor {
        self.backbone.forward_t(x, false)
    }
}
