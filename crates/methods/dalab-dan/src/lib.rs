//! DAN (Long, Cao, Wang & Jordan, ICML 2015): multi-kernel MMD between source and target on several layers.
//!
//! L = CE(f_S(x_s), y_s) + λ Σ_{ℓ ∈ layers} MK-MMD²(ℓ(x_s), ℓ(x_t))
//!
//! Defaults follow the authors' released code: MMD after the last feature layer (the bottleneck when there is
//! one) and after the logits, 5 Gaussian kernels at {1/4 … 4} × the mean squared distance, weights 1, the
//! linear-time unbiased estimator, λ = 1. The kernel weights β are fixed (the paper's QP is not implemented).

use dalab_core::{BuildEnv, DaBatch, FeatureExtractor, Method, MethodFactory, Result, StepCtx, StepOutput, Validate};
use dalab_nn::{ClassifierHead, HeadConfig, Layer, MmdConfig, mmd2};
use serde::{Deserialize, Serialize};
use tch::{Tensor, nn};

/// The `methods.dan` options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DanConfig {
    /// λ: weight of the MMD terms (one per layer, summed).
    pub trade_off: f64,
    /// The layers whose MMD is penalised.
    pub layers: Vec<Layer>,
    /// Kernel family, bandwidth policy and estimator.
    pub mmd: MmdConfig,
    pub head: HeadConfig,
}

impl Default for DanConfig {
    fn default() -> Self {
        Self {
            trade_off: 1.0,
            layers: vec![Layer::Features, Layer::Logits],
            mmd: MmdConfig::default(),
            head: HeadConfig::default(),
        }
    }
}

impl Validate for DanConfig {
    fn validate(&self) -> std::result::Result<(), String> {
        if !(self.trade_off.is_finite() && self.trade_off >= 0.0) {
            return Err(format!("trade_off: must be a finite number >= 0, got {}", self.trade_off));
        }
        if self.layers.is_empty() {
            return Err("layers: must name at least one layer (features, logits, softmax)".into());
        }
        self.mmd.validate().map_err(|e| format!("mmd.{e}"))?;
        self.head.validate().map_err(|e| format!("head.{e}"))
    }
}

/// The registry entry.
#[derive(Debug)]
pub struct Dan;

struct Model {
    backbone: Box<dyn FeatureExtractor>,
    head: ClassifierHead,
    cfg: DanConfig,
}

impl MethodFactory for Dan {
    const NAME: &'static str = "dan";
    const SUMMARY: &'static str = "multi-kernel MMD on the features and logits (Long et al. 2015)";
    type Config = DanConfig;

    fn build(cfg: &DanConfig, vs: &nn::Path, env: BuildEnv) -> Result<Box<dyn Method>> {
        let head = ClassifierHead::new(vs, env.backbone.out_dim(), env.num_classes, &cfg.head);
        Ok(Box::new(Model { backbone: env.backbone, head, cfg: cfg.clone() }))
    }
}

impl Method for Model {
    fn training_loss(&mut self, batch: &DaBatch, _ctx: &StepCtx) -> Result<StepOutput> {
        let ((fs, ls), (ft, lt)) = self.head.forward_pair(self.backbone.as_ref(), &batch.source_x, &batch.target_x);
        let cls = ls.cross_entropy_for_logits(&batch.source_y);
        let transfer = self
            .cfg
            .layers
            .iter()
            .map(|l| mmd2(&l.pick(&fs, &ls), &l.pick(&ft, &lt), &self.cfg.mmd))
            .reduce(|a, b| a + b)
            .expect("validated: at least one layer");
        let (c, t) = (cls.double_value(&[]), transfer.double_value(&[]));
        Ok(StepOutput::new(cls + transfer * self.cfg.trade_off).with("loss/cls", c).with("loss/mmd", t))
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
    use dalab_nn::Estimator;

    #[test]
    fn conformance() {
        dalab_conformance::check::<Dan>();
    }

    #[test]
    fn validation_names_the_key() {
        let bad = DanConfig { layers: vec![], ..Default::default() };
        assert!(bad.validate().unwrap_err().starts_with("layers:"));
        let mut bad = DanConfig::default();
        bad.mmd.kernel.multipliers[2] = 0.0;
        assert_eq!(bad.validate().unwrap_err(), "mmd.kernel.multipliers[2]: must be a finite number > 0, got 0");
    }

    #[test]
    fn transfer_term_is_lambda_times_the_layer_mmds() {
        // The loss minus the cross-entropy of predict() (no dropout, so train = eval) must equal
        // λ Σ_ℓ MMD²(ℓ), recomputed here from the method's own features() and predict() outputs.
        let cfg = DanConfig {
            trade_off: 0.7,
            mmd: MmdConfig { estimator: Estimator::Biased, ..Default::default() },
            ..Default::default()
        };
        let (_vs, mut m) = dalab_conformance::build::<Dan>(&cfg, 0);
        let (xs, ys, xt) = dalab_conformance::synthetic_shift(32, 1);
        let b = DaBatch { source_x: xs.shallow_clone(), source_y: ys.shallow_clone(), target_x: xt.shallow_clone() };
        let loss = dalab_conformance::step(m.as_mut(), None, &b, 0, 1);
        let (ls, lt) = (m.predict(&xs), m.predict(&xt));
        let expected = ls.cross_entropy_for_logits(&ys)
            + (mmd2(&m.features(&xs), &m.features(&xt), &cfg.mmd) + mmd2(&ls, &lt, &cfg.mmd)) * 0.7;
        assert!((loss - expected.double_value(&[])).abs() < 1e-5, "{loss} vs {}", expected.double_value(&[]));
    }
}
