//! JAN (Long, Zhu, Wang & Jordan, ICML 2017): joint adaptation networks.
//!
//! L = CE(f(x_s), y_s) + λ·JMMD²({features, softmax}_s, {features, softmax}_t), where the joint kernel is the
//! product of a kernel on the features (DAN's 5-kernel family) and a Gaussian on the softmax outputs (σ = 0.92,
//! as in TLlib's JAN). Default estimator: the unbiased quadratic one (TLlib's default; `linear` gives the JAN
//! paper's linear-time version).

use dalab_core::{StepOutput, Validate};
use dalab_nn::{Estimator, HeadConfig, HeadMethod, KernelConfig, Layer, jmmd2};
use serde::{Deserialize, Serialize};
use tch::Tensor;

/// One layer of the joint kernel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JointLayer {
    pub layer: Layer,
    #[serde(default)]
    pub kernel: KernelConfig,
}

impl Validate for JointLayer {
    fn validate(&self) -> Result<(), String> {
        dalab_core::checks::nested("kernel", &self.kernel)
    }
}

dalab_core::method_config! {
    /// The `methods.jan` options.
    pub struct JanConfig {
        /// λ: weight of the JMMD.
        trade_off: f64 = 1.0, non_negative;
        /// The layers of the joint distribution and their kernels (the joint kernel is their product).
        layers: Vec<JointLayer> = vec![
            JointLayer { layer: Layer::Features, kernel: KernelConfig::default() },
            JointLayer { layer: Layer::Softmax, kernel: KernelConfig::fixed(0.92 * 0.92) },
        ], non_empty, each;
        estimator: Estimator = Estimator::Unbiased;
        head: HeadConfig = HeadConfig::default(), nested;
    }
}

dalab_core::method_factory! {
    /// The registry entry.
    pub Jan: "jan", "joint MMD over features and predictions (Long et al. 2017)";
    build(cfg: &JanConfig, vs, env) {
        let layers: Vec<Layer> = cfg.layers.iter().map(|l| l.layer).collect();
        let kernels: Vec<KernelConfig> = cfg.layers.iter().map(|l| l.kernel.clone()).collect();
        let estimator = cfg.estimator;
        HeadMethod::boxed(vs, env, &cfg.head, cfg.trade_off, "jmmd", move |((fs, ls), (ft, lt)), _, _| {
            let s: Vec<Tensor> = layers.iter().map(|l| l.pick(fs, ls)).collect();
            let t: Vec<Tensor> = layers.iter().map(|l| l.pick(ft, lt)).collect();
            let jmmd = jmmd2(&s.iter().collect::<Vec<_>>(), &t.iter().collect::<Vec<_>>(), &kernels, estimator);
            Ok(StepOutput::new(jmmd))
        })
    }
}

#[cfg(test)]
dalab_conformance::method_tests!(Jan, {
    let mut bad = JanConfig::default();
    bad.layers[1].kernel.weights = vec![-1.0];
    bad
} => "layers[1].kernel.weights[0]: must be a finite number >= 0, got -1");

#[cfg(test)]
mod tests {
    use super::*;
    use dalab_core::DaBatch;

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
