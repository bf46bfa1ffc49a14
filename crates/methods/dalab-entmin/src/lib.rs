//! Entropy minimisation (Grandvalet & Bengio, NeurIPS 2004), as a DA baseline: the source cross-entropy plus the
//! mean prediction entropy of the unlabelled target batch,
//!
//! L = CE(f(x_s), y_s) + λ · mean_i H(softmax(f(x_t,i))),   H(p) = −Σ_c p_c log p_c.
//!
//! Default λ = 0.1 (our choice; TLlib's MCC scripts use entropy as an auxiliary loss with weights near it).

use dalab_core::StepOutput;
use dalab_nn::{HeadConfig, HeadMethod, entropy};

dalab_core::method_factory! {
    /// The registry entry.
    pub EntMin: "entmin", "entropy minimisation of the target predictions (Grandvalet & Bengio 2004)";
    build(cfg: &EntMinConfig, vs, env) {
        HeadMethod::boxed(vs, env, &cfg.head, cfg.trade_off, "entropy", |(_, (_, lt)), _, _| {
            Ok(StepOutput::new(entropy(lt)))
        })
    }
}

dalab_core::method_config! {
    /// The `methods.entmin` options.
    pub struct EntMinConfig {
        /// λ: weight of the target entropy.
        trade_off: f64 = 0.1, non_negative;
        head: HeadConfig = HeadConfig::default(), nested;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dalab_core::StepCtx;

    /// The logged entropy is H of the target predictions, computed here by hand from `predict`; the total is
    /// `loss/cls + λ · loss/entropy`.
    #[test]
    fn the_transfer_term_is_the_target_prediction_entropy() {
        let (_vs, mut m) = dalab_conformance::build::<EntMin>(&EntMinConfig::default(), 0);
        let b = dalab_conformance::synthetic_batch(12, 3);
        let p = m.predict(&b.target_x).softmax(-1, tch::Kind::Double);
        let by_hand = -(&p * p.log()).sum_dim_intlist(-1, false, tch::Kind::Double).mean(tch::Kind::Double);
        let out = m.training_loss(&b, &StepCtx::at(0, 1, tch::Device::Cpu)).unwrap();
        let get = |k: &str| out.scalars.iter().find(|(n, _)| n == k).unwrap().1.value();
        assert!((get("loss/entropy") - by_hand.double_value(&[])).abs() < 1e-6);
        assert!((out.loss.double_value(&[]) - get("loss/cls") - 0.1 * get("loss/entropy")).abs() < 1e-6);
    }
}

#[cfg(test)]
dalab_conformance::method_tests!(EntMin, EntMinConfig { trade_off: -1.0, ..Default::default() }
    => "trade_off: must be a finite number >= 0, got -1");
