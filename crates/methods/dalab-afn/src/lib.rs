//! AFN (Xu, Li, Yang & Lin, ICCV 2019): adaptive feature norm, the stepwise variant SAFN.
//!
//! Each iteration pushes every sample's feature norm Δr beyond the norm it has now: with h(x) the head's
//! features and ‖h(x)‖° the same norm detached (the θ₀ of the paper, last iteration's parameters),
//!
//! L = CE(C(h(x_s)), y_s) + λ · [ mean_s (‖h(x)‖° + Δr − ‖h(x)‖)² + mean_t (‖h(x)‖° + Δr − ‖h(x)‖)² ]
//!
//! (each domain averaged over its batch and the two added, as the authors' code and TLlib do). The value of the
//! bracket is always 2Δr²; its gradient moves each feature along its own direction, enlarging its norm.
//! Defaults: λ = 0.05 and Δr = 1: the authors' code (`weight_L2norm`, `radius + 1.0`) and TLlib (`--trade-off-norm`,
//! `--delta`); not checked against the paper's text.

use dalab_core::StepOutput;
use dalab_nn::{HeadConfig, HeadMethod};
use tch::Tensor;

dalab_core::method_config! {
    /// The `methods.afn` options.
    pub struct AfnConfig {
        /// λ: the weight of the feature-norm term.
        trade_off: f64 = 0.05, non_negative;
        /// Δr: how far beyond its current norm each feature norm is pulled per iteration.
        delta_r: f64 = 1.0, positive;
        head: HeadConfig = HeadConfig::default(), nested;
    }
}

/// The SAFN term of one domain: mean_i (‖f_i‖° + Δr − ‖f_i‖)², ‖·‖° detached.
pub fn stepwise_norm(f: &Tensor, delta_r: f64) -> Tensor {
    let norm = f.norm_scalaropt_dim(2, [1], false);
    (norm.detach() + delta_r - norm).square().mean(f.kind())
}

dalab_core::method_factory! {
    /// The registry entry.
    pub Afn: "afn", "stepwise adaptive feature norm: enlarge feature norms on both domains (Xu et al. 2019)";
    build(cfg: &AfnConfig, vs, env) {
        let dr = cfg.delta_r;
        HeadMethod::boxed(vs, env, &cfg.head, cfg.trade_off, "norm", move |((fs, _), (ft, _)), _, _| {
            let mean_norm = |f: &Tensor| f.norm_scalaropt_dim(2, [1], false).mean(f.kind()).detach();
            let (ns, nt) = (mean_norm(fs), mean_norm(ft));
            let t = stepwise_norm(fs, dr) + stepwise_norm(ft, dr);
            Ok(StepOutput::new(t).with("norm/source", ns).with("norm/target", nt))
        })
    }
}

#[cfg(test)]
dalab_conformance::method_tests!(Afn, AfnConfig { delta_r: 0.0, ..Default::default() }
    => "delta_r: must be a finite number > 0, got 0");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_and_gradient_on_hand_computed_features() {
        // Rows of norm 5 and 10: each term (5 + Δr − 5)² = Δr², whatever the norms.
        let f = Tensor::from_slice(&[3.0f64, 4.0, 0.0, 10.0]).reshape([2, 2]).set_requires_grad(true);
        for dr in [1.0, 0.5] {
            assert!((stepwise_norm(&f, dr).double_value(&[]) - dr * dr).abs() < 1e-12);
        }
        // d/df_i of (1/n) Σ (r_i − ‖f_i‖)² at r_i = ‖f_i‖ + Δr: −(2Δr/n) f_i/‖f_i‖; n = 2, Δr = 1.
        let g = Tensor::run_backward(&[stepwise_norm(&f, 1.0)], &[&f], false, false).remove(0);
        let expected = Tensor::from_slice(&[-0.6f64, -0.8, 0.0, -1.0]).reshape([2, 2]);
        assert!(g.allclose(&expected, 1e-12, 1e-12, false), "{g}");
        // The step n/2 (the inverse curvature along f_i) lands every norm exactly Δr further out: 6 and 11.
        let moved = (f.detach() - g * 1.0).norm_scalaropt_dim(2, [1], false);
        assert!(moved.allclose(&Tensor::from_slice(&[6.0f64, 11.0]), 1e-12, 1e-12, false), "{moved}");
    }

    #[test]
    fn a_zero_feature_gets_a_finite_gradient() {
        // A ReLU feature can be exactly 0, where the norm has no derivative; the step must not turn into NaN.
        let f = Tensor::zeros([2, 3], (tch::Kind::Float, tch::Device::Cpu)).set_requires_grad(true);
        let g = Tensor::run_backward(&[stepwise_norm(&f, 1.0)], &[&f], false, false).remove(0);
        assert!(g.isfinite().all().int64_value(&[]) == 1, "{g}");
    }
}
