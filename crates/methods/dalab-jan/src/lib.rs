//! JAN (Long, Zhu, Wang & Jordan, ICML 2017): joint adaptation networks.
//!
//! L = CE(f(x_s), y_s) + λ·JMMD²({features, softmax}_s, {features, softmax}_t), where the joint kernel is the
//! product of a kernel on the features (DAN's 5-kernel family) and a Gaussian on the softmax outputs (σ = 0.92,
//! as in TLlib's JAN). Default estimator: the unbiased quadratic one (TLlib's default; `linear` gives the JAN
//! paper's linear-time version).

use dalab_core::{BuildEnv, DaBatch, FeatureExtractor, Method, MethodFactory, Result, StepCtx, StepOutput, Validate};
use dalab_nn::{ClassifierHead, Estimator, HeadConfig, KernelConfig, Layer, jmmd2};
use serde::{Deserialize, Serialize};
use tch::{Tensor, nn};

/// One layer of the joint kernel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JointLayer {
    pub layer: Layer,
    #[serde(default)]
    pub kernel: KernelConfig,
}

/// The `methods.jan` options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JanConfig {
    /// λ: weight of the JMMD.
    pub trade_off: f64,
    /// The layers of the joint distribution and their kernels (the joint kernel is their product).
    pub layers: Vec<JointLayer>,
    pub estimator: Estimator,
    pub head: HeadConfig,
}

impl Default for JanConfig {
    fn default() -> Self {
        Self {
            trade_off: 1.0,
            layers: vec![
                JointLayer { layer: Layer::Features, kernel: KernelConfig::default() },
                JointLayer { layer: Layer::Softmax, kernel: KernelConfig::fixed(0.92 * 0.92) },
            ],
            estimator: Estimator::Unbiased,
            head: HeadConfig::default(),
        }
    }
}

impl Validate for JanConfig {
    fn validate(&self) -> std::result::Result<(), String> {
        if !(self.trade_off.is_finite() && self.trade_off >= 0.0) {
            return Err(format!("trade_off: must be a finite number >= 0, got {}", self.trade_off));
        }
        if self.layers.is_empty() {
            return Err("layers: must name at least one layer".into());
        }
        for (i, l) in self.layers.iter().enumerate() {
            l.kernel.validate().map_err(|e| format!("layers[{i}].kernel.{e}"))?;
        }
        self.head.validate().map_err(|e| format!("head.{e}"))
    }
}

/// The registry entry.
#[derive(Debug)]
pub struct Jan;

struct Model {
    backbone: Box<dyn FeatureExtractor>,
    head: ClassifierHead,
    kernels: Vec<KernelConfig>,
    cfg: JanConfig,
}

impl MethodFactory for Jan {
    const NAME: &'static str = "jan";
    const SUMMARY: &'static str = "joint MMD over features and predictions (Long et al. 2017)";
    type Config = JanConfig;

    fn build(cfg: &JanConfig, vs: &nn::Path, env: BuildEnv) -> Result<Box<dyn Method>> {
        let head = ClassifierHead::new(vs, env.backbone.out_dim(), env.num_classes, &cfg.head);
        let kernels = cfg.layers.iter().map(|l| l.kernel.clone()).collect();
        Ok(Box::new(Model { backbone: env.backbone, head, kernels, cfg: cfg.clone() }))
    }
}

impl Method for Model {
    fn training_loss(&mut self, batch: &DaBatch, _ctx: &StepCtx) -> Result<StepOutput> {
        let ((fs, ls), (ft, lt)) = self.head.forward_pair(self.backbone.as_ref(), &batch.source_x, &batch.target_x);
        let cls = ls.cross_entropy_for_logits(&batch.source_y);
        let s: Vec<Tensor> = self.cfg.layers.iter().map(|l| l.layer.pick(&fs, &ls)).collect();
        let t: Vec<Tensor> = self.cfg.layers.iter().map(|l| l.layer.pick(&ft, &lt)).collect();
        let jmmd =
            jmmd2(&s.iter().collect::<Vec<_>>(), &t.iter().collect::<Vec<_>>(), &self.kernels, self.cfg.estimator);
        let (c, j) = (cls.double_value(&[]), jmmd.double_value(&[]));
        Ok(StepOutput::new(cls + jmmd * self.cfg.trade_off).with("loss/cls", c).with("loss/jmmd", j))
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
        dalab_conformance::check::<Jan>();
    }

    #[test]
    fn validation_names_the_key() {
        let mut bad = JanConfig::default();
        bad.layers[1].kernel.weights = vec![-1.0];
        assert_eq!(bad.validate().unwrap_err(), "layers[1].kernel.weights[0]: must be a finite number >= 0, got -1");
    }

    #[test]
    fn joint_kernel_is_the_product_of_layer_kernels() {
        // Biased JMMD recomputed by hand: K = K_feat ⊙ K_softmax on the pooled batch, then
        // mean K_ss + mean K_tt − 2 mean K_st, with the kernels written out from their definition.
        let cfg = JanConfig { estimator: Estimator::Biased, trade_off: 1.0, ..Default::default() };
        let (_vs, mut m) = dalab_conformance::build::<Jan>(&cfg, 0);
        let (xs, ys, xt) = dalab_conformance::synthetic_shift(20, 4);
        let b = DaBatch { source_x: xs.shallow_clone(), source_y: ys.shallow_clone(), target_x: xt.shallow_clone() };
        let loss = dalab_conformance::step(m.as_mut(), None, &b, 0, 1);
        let (ls, lt) = (m.predict(&xs), m.predict(&xt));
        let f = Tensor::cat(&[m.features(&xs), m.features(&xt)], 0).to_kind(tch::Kind::Double);
        let p = Tensor::cat(&[&ls, &lt], 0).softmax(-1, tch::Kind::Double);
        let d2 = |z: &Tensor| (z.unsqueeze(1) - z.unsqueeze(0)).square().sum_dim_intlist(2, false, tch::Kind::Double);
        let (df, dp) = (d2(&f), d2(&p));
        let n = 40.0;
        let base = df.sum(tch::Kind::Double).double_value(&[]) / (n * (n - 1.0));
        let kf =
            [0.25, 0.5, 1.0, 2.0, 4.0].iter().map(|mu| (&df / (-2.0 * mu * base)).exp()).reduce(|a, b| a + b).unwrap();
        let k = kf * (&dp / (-2.0 * 0.92 * 0.92)).exp();
        let blk = |a: i64, b: i64| k.narrow(0, a, 20).narrow(1, b, 20).mean(tch::Kind::Double).double_value(&[]);
        let jmmd = blk(0, 0) + blk(20, 20) - 2.0 * blk(0, 20);
        let expected = ls.cross_entropy_for_logits(&ys).double_value(&[]) + jmmd;
        assert!((loss - expected).abs() < 1e-5, "{loss} vs {expected}");
    }
}
