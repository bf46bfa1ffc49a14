//! Deep CORAL (Sun & Saenko, ECCV Workshops 2016): align the second-order statistics of a layer.
//!
//! L = CE(f(x_s), y_s) + λ ‖C_S − C_T‖²_F / (4 d²), with C the unbiased batch covariance of the chosen layer
//! (the logits, fc8, in the paper). The paper sets λ so that both terms are about equal at the end of training
//! and gives no number; the default here is 1.

use dalab_core::StepOutput;
use dalab_nn::{HeadConfig, HeadMethod, Layer, coral_loss};

dalab_core::method_config! {
    /// The `methods.deep-coral` options.
    pub struct DeepCoralConfig {
        /// λ: weight of the CORAL loss.
        trade_off: f64 = 1.0, non_negative;
        /// The layer whose covariances are aligned (the paper: the logits).
        layer: Layer = Layer::Logits;
        head: HeadConfig = HeadConfig::default(), nested;
    }
}

dalab_core::method_factory! {
    /// The registry entry.
    pub DeepCoral: "deep-coral", "CORAL loss on the covariances of a layer (Sun & Saenko 2016)";
    build(cfg: &DeepCoralConfig, vs, env) {
        let layer = cfg.layer;
        HeadMethod::boxed(vs, env, &cfg.head, cfg.trade_off, "coral", move |((fs, ls), (ft, lt)), _, _| {
            Ok(StepOutput::new(coral_loss(&layer.pick(fs, ls), &layer.pick(ft, lt))))
        })
    }
}

#[cfg(test)]
dalab_conformance::method_tests!(DeepCoral, DeepCoralConfig { trade_off: f64::NAN, ..Default::default() }
    => "trade_off: must be a finite number >= 0, got NaN");

#[cfg(test)]
mod tests {
    use super::*;
    use dalab_core::DaBatch;
    use tch::Tensor;

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
