//! CDAN and CDAN+E (Long, Cao, Wang & Jordan, NeurIPS 2018): conditional domain-adversarial networks.
//!
//! The discriminator D sees the multilinear map h = f ⊗ g of the features f and the (detached) softmax
//! predictions g, behind a gradient reversal layer (coefficient λ = trade_off · λ_p):
//!
//! L = CE(C(f_s), y_s) + Σ_i w_i BCE(D(GRL_λ(h_i)), domain_i) / Σ_i w_i
//!
//! With `entropy_conditioning` (+E), w_i = 1 + exp(−H(g_i)) (normalised over the batch), else w_i = 1. When
//! d_f · classes exceeds `multilinear_max_dim`, the randomized map (f R_f) ⊙ (g R_g) / √d of dimension
//! `randomized_dim` replaces f ⊗ g (the paper: 4096 and 1024).

use dalab_core::schedule::LambdaSchedule;
use dalab_core::{BuildEnv, DaBatch, FeatureExtractor, Method, MethodFactory, Result, StepCtx, StepOutput, Validate};
use dalab_nn::losses::entropy_weights;
use dalab_nn::{
    ClassifierHead, Discriminator, DiscriminatorConfig, HeadConfig, RandomizedMultilinear, grad_reverse, multilinear,
};
use serde::{Deserialize, Serialize};
use tch::{Tensor, nn};

/// The `methods.cdan` options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CdanConfig {
    /// λ: the largest coefficient of the reversed domain gradient.
    pub trade_off: f64,
    pub lambda_schedule: LambdaSchedule,
    /// CDAN+E: weight each example by 1 + exp(−entropy of its prediction).
    pub entropy_conditioning: bool,
    /// Largest d_f · classes for the exact multilinear map; above it the randomized map is used.
    pub multilinear_max_dim: i64,
    /// Output size of the randomized multilinear map.
    pub randomized_dim: i64,
    pub discriminator: DiscriminatorConfig,
    pub head: HeadConfig,
}

impl Default for CdanConfig {
    fn default() -> Self {
        Self {
            trade_off: 1.0,
            lambda_schedule: LambdaSchedule::default(),
            entropy_conditioning: false,
            multilinear_max_dim: 4096,
            randomized_dim: 1024,
            discriminator: DiscriminatorConfig::default(),
            head: HeadConfig::default(),
        }
    }
}

impl Validate for CdanConfig {
    fn validate(&self) -> std::result::Result<(), String> {
        if !(self.trade_off.is_finite() && self.trade_off >= 0.0) {
            return Err(format!("trade_off: must be a finite number >= 0, got {}", self.trade_off));
        }
        for (k, v) in [("multilinear_max_dim", self.multilinear_max_dim), ("randomized_dim", self.randomized_dim)] {
            if v < 1 {
                return Err(format!("{k}: must be >= 1, got {v}"));
            }
        }
        self.lambda_schedule.validate().map_err(|e| format!("lambda_schedule.{e}"))?;
        self.discriminator.validate().map_err(|e| format!("discriminator.{e}"))?;
        self.head.validate().map_err(|e| format!("head.{e}"))
    }
}

/// The registry entry.
#[derive(Debug)]
pub struct Cdan;

struct Model {
    backbone: Box<dyn FeatureExtractor>,
    head: ClassifierHead,
    map: Option<RandomizedMultilinear>,
    discriminator: Discriminator,
    cfg: CdanConfig,
}

impl MethodFactory for Cdan {
    const NAME: &'static str = "cdan";
    const SUMMARY: &'static str =
        "conditional adversarial adaptation on features ⊗ predictions, +E option (Long et al. 2018)";
    type Config = CdanConfig;

    fn build(cfg: &CdanConfig, vs: &nn::Path, env: BuildEnv) -> Result<Box<dyn Method>> {
        let head = ClassifierHead::new(vs, env.backbone.out_dim(), env.num_classes, &cfg.head);
        let full = head.feature_dim() * env.num_classes;
        let map = (full > cfg.multilinear_max_dim).then(|| {
            RandomizedMultilinear::new(&(vs / "random_map"), head.feature_dim(), env.num_classes, cfg.randomized_dim)
        });
        let d_in = map.as_ref().map_or(full, |m| m.out_dim());
        let discriminator = Discriminator::new(&(vs / "discriminator"), d_in, &cfg.discriminator);
        Ok(Box::new(Model { backbone: env.backbone, head, map, discriminator, cfg: cfg.clone() }))
    }
}

impl Method for Model {
    fn training_loss(&mut self, batch: &DaBatch, ctx: &StepCtx) -> Result<StepOutput> {
        let ((fs, ls), (ft, lt)) = self.head.forward_pair(self.backbone.as_ref(), &batch.source_x, &batch.target_x);
        let cls = ls.cross_entropy_for_logits(&batch.source_y);
        let (f, l) = (Tensor::cat(&[&fs, &ft], 0), Tensor::cat(&[&ls, &lt], 0));
        let g = l.softmax(-1, l.kind()).detach();
        let h = match &self.map {
            Some(m) => m.forward(&f, &g),
            None => multilinear(&f, &g),
        };
        let lambda = self.cfg.trade_off * self.cfg.lambda_schedule.at(ctx.progress);
        let logits = self.discriminator.forward_t(&grad_reverse(&h, lambda), true);
        let (ns, nt) = (fs.size()[0], ft.size()[0]);
        let opts = (logits.kind(), logits.device());
        let labels = Tensor::cat(&[Tensor::ones([ns], opts), Tensor::zeros([nt], opts)], 0);
        let weight = self.cfg.entropy_conditioning.then(|| entropy_weights(&l));
        let domain = logits.binary_cross_entropy_with_logits(&labels, weight.as_ref(), None, tch::Reduction::Mean);
        let (c, d) = (cls.double_value(&[]), domain.double_value(&[]));
        Ok(StepOutput::new(cls + domain).with("loss/cls", c).with("loss/domain", d).with("lambda", lambda))
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
        dalab_conformance::check::<Cdan>();
        // CDAN+E and the randomized map (16 features × 3 classes = 48 > 40).
        let cfg = CdanConfig {
            entropy_conditioning: true,
            multilinear_max_dim: 40,
            randomized_dim: 32,
            ..Default::default()
        };
        dalab_conformance::check_with::<Cdan>(&cfg, 60);
    }

    #[test]
    fn validation_names_the_key() {
        let bad = CdanConfig { randomized_dim: 0, ..Default::default() };
        assert_eq!(bad.validate().unwrap_err(), "randomized_dim: must be >= 1, got 0");
    }

    #[test]
    fn entropy_weights_favour_confident_predictions() {
        // p = (1/2, 1/2): H = ln 2, w = 1 + 1/2 = 1.5; p ≈ (1, 0): H ≈ 0, w ≈ 2. Normalised to sum to n = 2:
        // 2·1.5/3.5 = 0.857142857..., 2·2/3.5 = 1.142857142...
        let l = Tensor::from_slice(&[0.0f64, 0.0, 50.0, 0.0]).reshape([2, 2]);
        let w = Vec::<f64>::try_from(entropy_weights(&l)).unwrap();
        assert!((w[0] - 6.0 / 7.0).abs() < 1e-12 && (w[1] - 8.0 / 7.0).abs() < 1e-12, "{w:?}");
    }
}
