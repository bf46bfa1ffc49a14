//! DAN (Long, Cao, Wang & Jordan, ICML 2015): multi-kernel MMD between source and target on several layers.
//!
//! L = CE(f_S(x_s), y_s) + λ Σ_{ℓ ∈ layers} MK-MMD²(ℓ(x_s), ℓ(x_t))
//!
//! Defaults follow the authors' released code: MMD after the last feature layer (the bottleneck when there is
//! one) and after the logits, 5 Gaussian kernels at {1/4 … 4} × the mean squared distance, weights 1, the
//! linear-time unbiased estimator, λ = 1. The kernel weights β are fixed (the paper's QP is not implemented).

use dalab_core::StepOutput;
use dalab_nn::{HeadConfig, HeadMethod, Layer, MmdConfig, mmd2};

dalab_core::method_config! {
    /// The `methods.dan` options.
    pub struct DanConfig {
        /// λ: weight of the MMD terms (one per layer, summed).
        trade_off: f64 = 1.0, non_negative;
        /// The layers whose MMD is penalised (`features`, `logits`, `softmax`).
        layers: Vec<Layer> = vec![Layer::Features, Layer::Logits], non_empty;
        /// Kernel family, bandwidth policy and estimator.
        mmd: MmdConfig = MmdConfig::default(), nested;
        head: HeadConfig = HeadConfig::default(), nested;
    }
}

dalab_core::method_factory! {
    /// The registry entry.
    pub Dan: "dan", "multi-kernel MMD on the features and logits (Long et al. 2015)";
    build(cfg: &DanConfig, vs, env) {
        let (layers, mmd) = (cfg.layers.clone(), cfg.mmd.clone());
        HeadMethod::boxed(vs, env, &cfg.head, cfg.trade_off, "mmd", move |((fs, ls), (ft, lt)), _, _| {
            let terms = layers.iter().map(|l| mmd2(&l.pick(fs, ls), &l.pick(ft, lt), &mmd));
            Ok(StepOutput::new(terms.reduce(|a, b| a + b).expect("validated: at least one layer")))
        })
    }
}

#[cfg(test)]
dalab_conformance::method_tests!(Dan, DanConfig { layers: vec![], ..Default::default() }
    => "layers: must not be empty");

#[cfg(test)]
mod tests {
    use super::*;
    use dalab_core::{DaBatch, Validate};
    use dalab_nn::Estimator;

    #[test]
    fn validation_names_the_nested_key() {
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
