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

use dalab_core::StepOutput;
use dalab_core::schedule::LambdaSchedule;
use dalab_nn::losses::entropy_weights;
use dalab_nn::{Discriminator, DiscriminatorConfig, HeadConfig, HeadMethod, HeadNet, RandomizedMultilinear};
use dalab_nn::{grad_reverse, multilinear};
use tch::Tensor;

dalab_core::method_config! {
    /// The `methods.cdan` options.
    pub struct CdanConfig {
        /// λ: the largest coefficient of the reversed domain gradient.
        trade_off: f64 = 1.0, non_negative;
        lambda_schedule: LambdaSchedule = LambdaSchedule::default(), nested;
        /// CDAN+E: weight each example by 1 + exp(−entropy of its prediction).
        entropy_conditioning: bool = false;
        /// Largest d_f · classes for the exact multilinear map; above it the randomized map is used.
        multilinear_max_dim: i64 = 4096, at_least_one, at_most_width;
        /// Output size of the randomized multilinear map.
        randomized_dim: i64 = 1024, at_least_one, at_most_width;
        discriminator: DiscriminatorConfig = DiscriminatorConfig::default(), nested;
        head: HeadConfig = HeadConfig::default(), nested;
    }
}

/// The discriminator's input: h = f ⊗ g, or the randomized map of `f` and `g` when there is one.
fn conditioning(map: Option<&RandomizedMultilinear>, f: &Tensor, g: &Tensor) -> Tensor {
    match map {
        Some(m) => m.forward(f, g),
        None => multilinear(f, g),
    }
}

dalab_core::method_factory! {
    /// The registry entry.
    pub Cdan: "cdan", "conditional adversarial adaptation on features ⊗ predictions, +E option (Long et al. 2018)";
    build(cfg: &CdanConfig, vs, env) {
        let net = HeadNet::new(vs, env.backbone, env.num_classes, &cfg.head);
        let (d, classes) = (net.head.feature_dim(), env.num_classes);
        let full = d * classes;
        let map = (full > cfg.multilinear_max_dim)
            .then(|| RandomizedMultilinear::new(&(vs / "random_map"), d, classes, cfg.randomized_dim));
        let d_in = map.as_ref().map_or(full, |m| m.out_dim());
        let disc = Discriminator::new(&(vs / "discriminator"), d_in, &cfg.discriminator);
        let (trade_off, schedule, entropy) = (cfg.trade_off, cfg.lambda_schedule, cfg.entropy_conditioning);
        // λ sits in the reversal layer, so the domain term enters the loss with weight 1.
        Ok(HeadMethod::on(net, 1.0, "domain", move |((fs, ls), (ft, lt)), _, ctx| {
            let (f, l) = (Tensor::cat(&[fs, ft], 0), Tensor::cat(&[ls, lt], 0));
            let g = l.softmax(-1, l.kind()).detach();
            let h = conditioning(map.as_ref(), &f, &g);
            let lambda = trade_off * schedule.at(ctx.progress);
            let logits = disc.forward_t(&grad_reverse(&h, lambda), true);
            let opts = (logits.kind(), logits.device());
            let labels = Tensor::cat(&[Tensor::ones([fs.size()[0]], opts), Tensor::zeros([ft.size()[0]], opts)], 0);
            let weight = entropy.then(|| entropy_weights(&l));
            let domain = logits.binary_cross_entropy_with_logits(&labels, weight.as_ref(), None, tch::Reduction::Mean);
            Ok(StepOutput::new(domain).with("lambda", lambda))
        }))
    }
}

#[cfg(test)]
dalab_conformance::method_tests!(Cdan, CdanConfig { randomized_dim: 0, ..Default::default() }
    => "randomized_dim: must be >= 1, got 0");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conformance_of_cdan_e_with_the_randomized_map() {
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
    fn entropy_weights_favour_confident_predictions() {
        // p = (1/2, 1/2): H = ln 2, w = 1 + 1/2 = 1.5; p ≈ (1, 0): H ≈ 0, w ≈ 2. Normalised to sum to n = 2:
        // 2·1.5/3.5 = 0.857142857..., 2·2/3.5 = 1.142857142...
        let l = Tensor::from_slice(&[0.0f64, 0.0, 50.0, 0.0]).reshape([2, 2]);
        let w = Vec::<f64>::try_from(entropy_weights(&l)).unwrap();
        assert!((w[0] - 6.0 / 7.0).abs() < 1e-12 && (w[1] - 8.0 / 7.0).abs() < 1e-12, "{w:?}");
    }
}
