//! RTN (Long, Zhu, Wang & Jordan, NIPS 2016): residual transfer networks.
//!
//! The target classifier f_T is the shared classifier; the source classifier is f_S = f_T + Δf(f_T), with Δf a
//! residual block fc(c→c)–ReLU–fc(c→c) on the logits. With z = vec(features ⊗ softmax(f_T)):
//!
//! L = CE(f_S(x_s), y_s) + λ·MMD²(z_s, z_t) + γ·mean H(softmax(f_T(x_t)))
//!
//! Defaults are the paper's: λ = γ = 0.3, one Gaussian kernel exp(−d²/b) with b the median pairwise squared
//! distance (multiplier 0.5 in dalab's exp(−d²/2σ²) convention), linear-time estimator. Prediction uses f_T.

use dalab_core::{BuildEnv, DaBatch, FeatureExtractor, Method, MethodFactory, Result, StepCtx, StepOutput, Validate};
use dalab_nn::{Bandwidth, ClassifierHead, HeadConfig, KernelConfig, MmdConfig, entropy, mmd2, multilinear};
use serde::{Deserialize, Serialize};
use tch::{Tensor, nn, nn::Module};

/// The `methods.rtn` options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RtnConfig {
    /// λ: weight of the tensor MMD.
    pub trade_off: f64,
    /// γ: weight of the target entropy.
    pub entropy_weight: f64,
    /// The MMD on the tensor product of features and softmax outputs.
    pub mmd: MmdConfig,
    /// Standard deviation of the residual block's initial weights (Caffe prototxt: 0.01), biases 0.
    pub residual_init_std: f64,
    pub head: HeadConfig,
}

impl Default for RtnConfig {
    fn default() -> Self {
        let kernel = KernelConfig { multipliers: vec![0.5], weights: vec![1.0], bandwidth: Bandwidth::Median };
        Self {
            trade_off: 0.3,
            entropy_weight: 0.3,
            mmd: MmdConfig { kernel, ..Default::default() },
            residual_init_std: 0.01,
            head: HeadConfig::default(),
        }
    }
}

impl Validate for RtnConfig {
    fn validate(&self) -> std::result::Result<(), String> {
        for (k, v) in [("trade_off", self.trade_off), ("entropy_weight", self.entropy_weight)] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("{k}: must be a finite number >= 0, got {v}"));
            }
        }
        if !(self.residual_init_std.is_finite() && self.residual_init_std > 0.0) {
            return Err(format!("residual_init_std: must be a finite number > 0, got {}", self.residual_init_std));
        }
        self.mmd.validate().map_err(|e| format!("mmd.{e}"))?;
        self.head.validate().map_err(|e| format!("head.{e}"))
    }
}

/// The registry entry.
#[derive(Debug)]
pub struct Rtn;

struct Model {
    backbone: Box<dyn FeatureExtractor>,
    head: ClassifierHead,
    res1: nn::Linear,
    res2: nn::Linear,
    cfg: RtnConfig,
}

impl Model {
    /// Source logits f_S = f_T + Δf(f_T).
    fn source_logits(&self, target_logits: &Tensor) -> Tensor {
        target_logits + self.res2.forward(&self.res1.forward(target_logits).relu())
    }
}

impl MethodFactory for Rtn {
    const NAME: &'static str = "rtn";
    const SUMMARY: &'static str = "residual source classifier + tensor MMD + target entropy (Long et al. 2016)";
    type Config = RtnConfig;

    fn build(cfg: &RtnConfig, vs: &nn::Path, env: BuildEnv) -> Result<Box<dyn Method>> {
        let c = env.num_classes;
        let head = ClassifierHead::new(vs, env.backbone.out_dim(), c, &cfg.head);
        let init = nn::LinearConfig {
            ws_init: nn::Init::Randn { mean: 0.0, stdev: cfg.residual_init_std },
            bs_init: Some(nn::Init::Const(0.0)),
            bias: true,
        };
        let (res1, res2) = (nn::linear(vs / "residual1", c, c, init), nn::linear(vs / "residual2", c, c, init));
        Ok(Box::new(Model { backbone: env.backbone, head, res1, res2, cfg: cfg.clone() }))
    }
}

impl Method for Model {
    fn training_loss(&mut self, batch: &DaBatch, _ctx: &StepCtx) -> Result<StepOutput> {
        let ((fs, ls), (ft, lt)) = self.head.forward_pair(self.backbone.as_ref(), &batch.source_x, &batch.target_x);
        let cls = self.source_logits(&ls).cross_entropy_for_logits(&batch.source_y);
        let z = |f: &Tensor, l: &Tensor| multilinear(f, &l.softmax(-1, l.kind()));
        let mmd = mmd2(&z(&fs, &ls), &z(&ft, &lt), &self.cfg.mmd);
        let ent = entropy(&lt);
        let (c, m, e) = (cls.double_value(&[]), mmd.double_value(&[]), ent.double_value(&[]));
        let total = cls + mmd * self.cfg.trade_off + ent * self.cfg.entropy_weight;
        Ok(StepOutput::new(total).with("loss/cls", c).with("loss/mmd", m).with("loss/entropy", e))
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
        dalab_conformance::check::<Rtn>();
    }

    #[test]
    fn validation_names_the_key() {
        let bad = RtnConfig { entropy_weight: -0.1, ..Default::default() };
        assert_eq!(bad.validate().unwrap_err(), "entropy_weight: must be a finite number >= 0, got -0.1");
    }

    #[test]
    fn source_is_supervised_through_the_residual_and_target_predicts_with_f_t() {
        // With λ = γ = 0 the loss is the cross-entropy of f_T + Δf(f_T), recomputed by hand from predict() (f_T)
        // and the residual weights; and it differs from the cross-entropy of f_T alone (the residual is active).
        let cfg = RtnConfig { trade_off: 0.0, entropy_weight: 0.0, residual_init_std: 0.5, ..Default::default() };
        let (vs, mut m) = dalab_conformance::build::<Rtn>(&cfg, 0);
        let (xs, ys, xt) = dalab_conformance::synthetic_shift(30, 2);
        let b = DaBatch { source_x: xs.shallow_clone(), source_y: ys.shallow_clone(), target_x: xt };
        let loss = dalab_conformance::step(m.as_mut(), None, &b, 0, 1);
        let v = vs.variables();
        let lin =
            |x: &Tensor, k: &str| x.matmul(&v[&format!("method.{k}.weight")].tr()) + &v[&format!("method.{k}.bias")];
        let ft = m.predict(&xs);
        let fs = &ft + lin(&lin(&ft, "residual1").relu(), "residual2");
        let by_hand = fs.cross_entropy_for_logits(&ys).double_value(&[]);
        assert!((loss - by_hand).abs() < 1e-6, "{loss} vs {by_hand}");
        assert!((loss - ft.cross_entropy_for_logits(&ys).double_value(&[])).abs() > 1e-4);
    }
}
