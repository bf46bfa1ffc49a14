//! MCC (Jin, Wang, Long & Wang, ECCV 2020): minimum class confusion on the target.
//!
//! With Ŷ = softmax(f(x_t)/T) and entropy weights W_i = 1 + exp(−H(Ŷ_i)) (detached, normalised to sum to n),
//! the class correlation C = Ŷᵀ diag(W) Ŷ is row-normalised (C̃_jk = C_jk / Σ_k' C_jk') and
//!
//! L = CE(f(x_s), y_s) + λ · (Σ_jk C̃_jk − Σ_j C̃_jj) / classes
//!
//! Defaults: T = 2.5 and λ = 1 (TLlib's defaults).

use dalab_core::{BuildEnv, DaBatch, FeatureExtractor, Method, MethodFactory, Result, StepCtx, StepOutput, Validate};
use dalab_nn::losses::entropy_weights;
use dalab_nn::{ClassifierHead, HeadConfig};
use serde::{Deserialize, Serialize};
use tch::{Tensor, nn};

/// The `methods.mcc` options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MccConfig {
    /// λ: weight of the class-confusion loss.
    pub trade_off: f64,
    /// Temperature T of the target softmax.
    pub temperature: f64,
    pub head: HeadConfig,
}

impl Default for MccConfig {
    fn default() -> Self {
        Self { trade_off: 1.0, temperature: 2.5, head: HeadConfig::default() }
    }
}

impl Validate for MccConfig {
    fn validate(&self) -> std::result::Result<(), String> {
        if !(self.trade_off.is_finite() && self.trade_off >= 0.0) {
            return Err(format!("trade_off: must be a finite number >= 0, got {}", self.trade_off));
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(format!("temperature: must be a finite number > 0, got {}", self.temperature));
        }
        self.head.validate().map_err(|e| format!("head.{e}"))
    }
}

/// The class-confusion loss of target logits at temperature `t`.
pub fn class_confusion(logits: &Tensor, t: f64) -> Tensor {
    let scaled = logits / t;
    let p = scaled.softmax(-1, logits.kind());
    let w = entropy_weights(&scaled).unsqueeze(1);
    let c = p.tr().matmul(&(&p * w));
    let c = &c / c.sum_dim_intlist(1, true, c.kind());
    let k = logits.size()[1] as f64;
    (c.sum(c.kind()) - c.trace()) / k
}

/// The registry entry.
#[derive(Debug)]
pub struct Mcc;

struct Model {
    backbone: Box<dyn FeatureExtractor>,
    head: ClassifierHead,
    cfg: MccConfig,
}

impl MethodFactory for Mcc {
    const NAME: &'static str = "mcc";
    const SUMMARY: &'static str = "minimum class confusion on target predictions (Jin et al. 2020)";
    type Config = MccConfig;

    fn build(cfg: &MccConfig, vs: &nn::Path, env: BuildEnv) -> Result<Box<dyn Method>> {
        let head = ClassifierHead::new(vs, env.backbone.out_dim(), env.num_classes, &cfg.head);
        Ok(Box::new(Model { backbone: env.backbone, head, cfg: cfg.clone() }))
    }
}

impl Method for Model {
    fn training_loss(&mut self, batch: &DaBatch, _ctx: &StepCtx) -> Result<StepOutput> {
        let ((_, ls), (_, lt)) = self.head.forward_pair(self.backbone.as_ref(), &batch.source_x, &batch.target_x);
        let cls = ls.cross_entropy_for_logits(&batch.source_y);
        let mcc = class_confusion(&lt, self.cfg.temperature);
        let (c, m) = (cls.double_value(&[]), mcc.double_value(&[]));
        Ok(StepOutput::new(cls + mcc * self.cfg.trade_off).with("loss/cls", c).with("loss/mcc", m))
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
        dalab_conformance::check::<Mcc>();
    }

    #[test]
    fn validation_names_the_key() {
        let bad = MccConfig { temperature: 0.0, ..Default::default() };
        assert_eq!(bad.validate().unwrap_err(), "temperature: must be a finite number > 0, got 0");
    }

    #[test]
    fn class_confusion_reference_values() {
        // Confident, distinct predictions: C is diagonal, loss → 0. Uniform predictions over k classes: every
        // row of C̃ is uniform, loss = (k − 1)/k... summed over k rows: (k·1 − k·(1/k))/k = (k − 1)/k = 2/3 for k = 3.
        let sure = Tensor::from_slice(&[60.0f64, 0.0, 0.0, 0.0, 60.0, 0.0, 0.0, 0.0, 60.0]).reshape([3, 3]);
        assert!(class_confusion(&sure, 2.5).double_value(&[]) < 1e-9);
        let flat = Tensor::zeros([5, 3], (tch::Kind::Double, tch::Device::Cpu));
        assert!((class_confusion(&flat, 2.5).double_value(&[]) - 2.0 / 3.0).abs() < 1e-12);
    }
}
