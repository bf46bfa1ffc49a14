//! MCC (Jin, Wang, Long & Wang, ECCV 2020): minimum class confusion on the target.
//!
//! With Ŷ = softmax(f(x_t)/T) and entropy weights W_i = 1 + exp(−H(Ŷ_i)) (detached, normalised to sum to n),
//! the class correlation C = Ŷᵀ diag(W) Ŷ is row-normalised (C̃_jk = C_jk / Σ_k' C_jk') and
//!
//! L = CE(f(x_s), y_s) + λ · (Σ_jk C̃_jk − Σ_j C̃_jj) / classes
//!
//! Defaults: T = 2.5 and λ = 1 (TLlib's defaults).

use dalab_core::StepOutput;
use dalab_nn::losses::entropy_weights;
use dalab_nn::{HeadConfig, HeadMethod};
use tch::Tensor;

dalab_core::method_config! {
    /// The `methods.mcc` options.
    pub struct MccConfig {
        /// λ: weight of the class-confusion loss.
        trade_off: f64 = 1.0, non_negative;
        /// Temperature T of the target softmax.
        temperature: f64 = 2.5, positive;
        head: HeadConfig = HeadConfig::default(), nested;
    }
}

dalab_core::method_factory! {
    /// The registry entry.
    pub Mcc: "mcc", "minimum class confusion on target predictions (Jin et al. 2020)";
    build(cfg: &MccConfig, vs, env) {
        let t = cfg.temperature;
        HeadMethod::boxed(vs, env, &cfg.head, cfg.trade_off, "mcc", move |(_, (_, lt)), _, _| {
            Ok(StepOutput::new(class_confusion(lt, t)))
        })
    }
}

/// The class-confusion loss of target logits at temperature `t`.
pub fn class_confusion(logits: &Tensor, t: f64) -> Tensor {
    let scaled = logits / t;
    let p = scaled.softmax(-1, logits.kind());
    let w = entropy_weights(&scaled).unsqueeze(1);
    let c = p.tr().matmul(&(&p * w));
    let c = &c / c.sum_dim_intlist(1, true, c.kind());
    let k = logits.size()[1] as f64;
    (c.sum(c.kind()) - c.trace()) / k
}

#[cfg(test)]
dalab_conformance::method_tests!(Mcc, MccConfig { temperature: 0.0, ..Default::default() }
    => "temperature: must be a finite number > 0, got 0");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_confusion_reference_values() {
        // Confident, distinct predictions: C is diagonal, loss → 0. Uniform predictions over k classes: every
        // row of C̃ is uniform, loss = (k − 1)/k... summed over k rows: (k·1 − k·(1/k))/k = (k − 1)/k = 2/3 for k = 3.
        let sure = Tensor::from_slice(&[60.0f64, 0.0, 0.0, 0.0, 60.0, 0.0, 0.0, 0.0, 60.0]).reshape([3, 3]);
        assert!(class_confusion(&sure, 2.5).double_value(&[]) < 1e-9);
        let flat = Tensor::zeros([5, 3], (tch::Kind::Double, tch::Device::Cpu));
        assert!((class_confusion(&flat, 2.5).double_value(&[]) - 2.0 / 3.0).abs() < 1e-12);
    }
}
