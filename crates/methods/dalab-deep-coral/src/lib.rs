//! Deep CORAL (Sun & Saenko, ECCV Workshops 2016): align the second-order statistics of a layer.
//!
//! L = CE(f(x_s), y_s) + λ ‖C_S − C_T‖²_F / (4 d²), with C the unbiased batch covariance of the chosen layer
//! (the logits, fc8, in the paper). The paper sets λ so that both terms are about equal at the end of training
//! and gives no number; the default here is 1.

use dalab_core::{BuildEnv, DaBatch, FeatureExtractor, Method, MethodFactory, Result, StepCtx, StepOutput, Validate};
use dalab_nn::{ClassifierHead, HeadConfig, Layer, coral_loss};
use serde::{Deserialize, Serialize};
use tch::{Tensor, nn};

/// The `methods.deep-coral` options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeepCoralConfig {
    /// λ: weight of the CORAL loss.
    pub trade_off: f64,
    /// The layer whose covariances are aligned (the paper: the logits).
    pub layer: Layer,
    pub head: HeadConfig,
}

impl Default for DeepCoralConfig {
    fn default() -> Self {
        Self { trade_off: 1.0, layer: Layer::Logits, head: HeadConfig::default() }
    }
}

impl Validate for DeepCoralConfig {
    fn validate(&self) -> std::result::Result<(), String> {
        if !(self.trade_off.is_finite() && self.trade_off >= 0.0) {
            return Err(format!("trade_off: must be a finite number >= 0, got {}", self.trade_off));
        }
        self.head.validate().map_err(|e| format!("head.{e}"))
    }
}

/// The registry entry.
#[derive(Debug)]
pub struct DeepCoral;

struct Model {
    backbone: Box<dyn FeatureExtractor>,
    head: ClassifierHead,
    cfg: DeepCoralConfig,
}

impl MethodFactory for DeepCoral {
    const NAME: &'static str = "deep-coral";
    const SUMMARY: &'static str = "CORAL loss on the covariances of a layer (Sun & Saenko 2016)";
    type Config = DeepCoralConfig;

    fn build(cfg: &DeepCoralConfig, vs: &nn::Path, env: BuildEnv) -> Result<Box<dyn Method>> {
        let head = ClassifierHead::new(vs, env.backbone.out_dim(), env.num_classes, &cfg.head);
        Ok(Box::new(Model { backbone: env.backbone, head, cfg: cfg.clone() }))
    }
}

impl Method for Model {
    fn training_loss(&mut self, batch: &DaBatch, _ctx: &StepCtx) -> Result<StepOutput> {
        let ((fs, ls), (ft, lt)) = self.head.forward_pair(self.backbone.as_ref(), &batch.source_x, &batch.target_x);
        let cls = ls.cross_entropy_for_logits(&batch.source_y);
        let coral = coral_loss(&self.cfg.layer.pick(&fs, &ls), &self.cfg.layer.pick(&ft, &lt));
        let (c, k) = (cls.double_value(&[]), coral.double_value(&[]));
        Ok(StepOutput::new(cls + coral * self.cfg.trade_off).with("loss/cls", c).with("loss/coral", k))
    }

    fn predict(&self, x: &Tensor) -> Tensor {
        self.head.predict(self.backbone.as_ref(), x)
    }

    fn features(&self, x: &Tensor) -> Tensor {
        self.head.eval_features(self.backbone.as_ref(), x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conformance() {
        dalab_conformance::check::<DeepCoral>();
    }

    #[test]
    fn validation_names_the_key() {
        let bad = DeepCoralConfig { trade_off: f64::NAN, ..Default::default() };
        assert_eq!(bad.validate().unwrap_err(), "trade_off: must be a finite number >= 0, got NaN");
    }

    #[test]
    fn transfer_term_is_the_coral_distance_of_the_layer() {
        // loss − CE = λ·‖C_S − C_T‖²/(4d²) of the logits; the covariance is recomputed here as XᵀX/(n−1) of the
        // centred predict() outputs, independently of dalab-nn's implementation.
        let cfg = DeepCoralConfig { trade_off: 2.0, ..Default::default() };
        let (_vs, mut m) = dalab_conformance::build::<DeepCoral>(&cfg, 0);
        let (xs, ys, xt) = dalab_conformance::synthetic_shift(40, 3);
        let b = DaBatch { source_x: xs.shallow_clone(), source_y: ys.shallow_clone(), target_x: xt.shallow_clone() };
        let loss = dalab_conformance::step(m.as_mut(), None, &b, 0, 1);
        let cov = |x: &Tensor| {
            let c = x - x.mean_dim(0, true, x.kind());
            c.tr().matmul(&c) / (x.size()[0] - 1) as f64
        };
        let (ls, lt) = (m.predict(&xs), m.predict(&xt));
        let d = ls.size()[1] as f64;
        let coral = (cov(&ls) - cov(&lt)).square().sum(ls.kind()).double_value(&[]) / (4.0 * d * d);
        let expected = ls.cross_entropy_for_logits(&ys).double_value(&[]) + 2.0 * coral;
        assert!((loss - expected).abs() < 1e-5, "{loss} vs {expected}");
    }
}
