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

#[cfg(test)]
mod tests {
    use super::*;
    use dalab_nn::{Activation, BackboneConfig, build_backbone};
    use tch::{Device, Kind};

    #[test]
    fn conformance() {
        dalab_conformance::check::<SourceOnly>();
    }

    #[test]
    fn loss_is_the_source_cross_entropy_and_ignores_the_target() {
        tch::manual_seed(0);
        let vs = nn::VarStore::new(Device::Cpu);
        let cfg = BackboneConfig::Mlp { hidden: vec![8], activation: Activation::Tanh, dropout: 0.0 };
        let backbone = build_backbone(&cfg, &(vs.root() / "backbone"), &[3]).unwrap();
        let env = BuildEnv { backbone, num_classes: 4, input_shape: vec![3], device: Device::Cpu };
        let mut m = SourceOnly::build(&SourceOnlyConfig {}, &(vs.root() / "method"), env).unwrap();
        let xs = Tensor::randn([6, 3], (Kind::Float, Device::Cpu));
        let ys = Tensor::from_slice(&[0i64, 1, 2, 3, 0, 1]);
        let ctx = StepCtx { progress: 0.0, iteration: 0, total_iterations: 1, device: Device::Cpu };
        let loss_with = |m: &mut Box<dyn Method>, t: Tensor| {
            let b = DaBatch { source_x: xs.shallow_clone(), source_y: ys.shallow_clone(), target_x: t };
            m.training_loss(&b, &ctx).unwrap().loss.double_value(&[])
        };
        let a = loss_with(&mut m, Tensor::randn([6, 3], (Kind::Float, Device::Cpu)));
        let b = loss_with(&mut m, Tensor::randn([6, 3], (Kind::Float, Device::Cpu)) * 100.0);
        assert_eq!(a, b, "source-only must not depend on the target batch");
        // Independent computation: mean of -log softmax(predict(x))[y].
        let manual = -m.predict(&xs).log_softmax(-1, Kind::Float).gather(1, &ys.unsqueeze(1), false).mean(Kind::Float);
        assert!((manual.double_value(&[]) - a).abs() < 1e-6);
        assert_eq!(m.features(&xs).size(), vec![6, 8]);
    }
}
