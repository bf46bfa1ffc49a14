//! RTN (Long, Zhu, Wang & Jordan, NIPS 2016): residual transfer networks.
//!
//! The target classifier f_T is the shared classifier; the source classifier is f_S = f_T + Δf(f_T), with Δf a
//! residual block fc(c→c)–ReLU–fc(c→c) on the logits. With z = vec(features ⊗ softmax(f_T)):
//!
//! L = CE(f_S(x_s), y_s) + λ·MMD²(z_s, z_t) + γ·mean H(softmax(f_T(x_t)))
//!
//! Defaults are the paper's: λ = γ = 0.3, one Gaussian kernel exp(−d²/b) with b the median pairwise squared
//! distance (multiplier 0.5 in dalab's exp(−d²/2σ²) convention), linear-time estimator. Prediction uses f_T.

use dalab_core::StepOutput;
use dalab_nn::{Bandwidth, HeadConfig, HeadNet, KernelConfig, MmdConfig, entropy, mmd2, multilinear};
use tch::{Tensor, nn, nn::Module};

dalab_core::method_config! {
    /// The `methods.rtn` options.
    pub struct RtnConfig {
        /// λ: weight of the tensor MMD.
        trade_off: f64 = 0.3, non_negative;
        /// γ: weight of the target entropy.
        entropy_weight: f64 = 0.3, non_negative;
        /// The MMD on the tensor product of features and softmax outputs.
        mmd: MmdConfig = MmdConfig {
            kernel: KernelConfig { multipliers: vec![0.5], weights: vec![1.0], bandwidth: Bandwidth::Median {} },
            ..Default::default()
        }, nested;
        /// Standard deviation of the residual block's initial weights (Caffe prototxt: 0.01), biases 0.
        residual_init_std: f64 = 0.01, positive;
        head: HeadConfig = HeadConfig::default(), nested;
    }
}

/// Δf, fc(c→c)–ReLU–fc(c→c) on the logits (`residual1`, `residual2`): weights N(0, std²), biases 0.
struct Residual(nn::Linear, nn::Linear);

impl Residual {
    fn new(vs: &nn::Path, c: i64, std: f64) -> Self {
        let init = nn::LinearConfig {
            ws_init: nn::Init::Randn { mean: 0.0, stdev: std },
            bs_init: Some(nn::Init::Const(0.0)),
            bias: true,
        };
        Residual(nn::linear(vs / "residual1", c, c, init), nn::linear(vs / "residual2", c, c, init))
    }

    /// Source logits f_S = f_T + Δf(f_T).
    fn source_logits(&self, target_logits: &Tensor) -> Tensor {
        target_logits + self.1.forward(&self.0.forward(target_logits).relu())
    }
}

dalab_core::method_factory! {
    /// The registry entry.
    pub Rtn: "rtn", "residual source classifier + tensor MMD + target entropy (Long et al. 2016)";
    build(cfg: &RtnConfig, vs, env) {
        let net = HeadNet::new(vs, env.backbone, env.num_classes, &cfg.head);
        let residual = Residual::new(vs, env.num_classes, cfg.residual_init_std);
        let cfg = cfg.clone();
        Ok(net.into_method(move |net, batch, _| {
            let ((fs, ls), (ft, lt)) = net.forward_pair(batch);
            let cls = residual.source_logits(&ls).cross_entropy_for_logits(&batch.source_y);
            let z = |f: &Tensor, l: &Tensor| multilinear(f, &l.softmax(-1, l.kind()));
            let mmd = mmd2(&z(&fs, &ls), &z(&ft, &lt), &cfg.mmd);
            let ent = entropy(&lt);
            let (c, m, e) = (cls.detach(), mmd.detach(), ent.detach());
            let total = cls + mmd * cfg.trade_off + ent * cfg.entropy_weight;
            Ok(StepOutput::new(total).with("loss/cls", c).with("loss/mmd", m).with("loss/entropy", e))
        }))
    }
}

#[cfg(test)]
dalab_conformance::method_tests!(Rtn, RtnConfig { entropy_weight: -0.1, ..Default::default() }
    => "entropy_weight: must be a finite number >= 0, got -0.1");

#[cfg(test)]
mod tests {
    use super::*;
    use dalab_core::DaBatch;

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
