//! DANN (Ganin & Lempitsky, ICML 2015; Ganin et al., JMLR 2016).
//!
//! A domain discriminator on the backbone features learns to tell source from target; a gradient reversal
//! layer between them makes the backbone learn features the discriminator cannot separate:
//!
//! L = CE(C(F(x_s)), y_s) + BCE(D(GRL_λ(F(x_s))), 1) + BCE(D(GRL_λ(F(x_t))), 0),  λ = trade_off · λ_p
//!
//! The discriminator is updated with coefficient 1 and the backbone with −λ, as in the paper (§5.2.2);
//! λ_p follows `lambda_schedule` (the paper's 2/(1+exp(−10p)) − 1 by default).

use dalab_core::StepOutput;
use dalab_core::schedule::LambdaSchedule;
use dalab_nn::{Discriminator, DiscriminatorConfig, HeadConfig, HeadMethod, HeadNet, grad_reverse};

dalab_core::method_config! {
    /// The `methods.dann` options.
    pub struct DannConfig {
        /// λ: the largest coefficient of the reversed domain gradient into the backbone (the JMLR toy uses 6).
        trade_off: f64 = 1.0, non_negative;
        /// How λ_p ramps up over training (multiplies `trade_off`).
        lambda_schedule: LambdaSchedule = LambdaSchedule::default(), nested;
        /// The domain discriminator (1024-1024 with dropout 0.5 as in the paper's deep models).
        discriminator: DiscriminatorConfig = DiscriminatorConfig::default(), nested;
        /// The bottleneck and classifier on the backbone (TLlib's fine-tuning recipe: `{bottleneck: 256,
        /// batch_norm: true}`); the discriminator sits on the bottleneck's features.
        #[serde(skip_serializing_if = "HeadConfig::is_default")]
        head: HeadConfig = HeadConfig::default(), nested;
    }
}

dalab_core::method_factory! {
    /// The registry entry.
    pub Dann: "dann", "domain-adversarial training with gradient reversal (Ganin et al. 2016)";
    build(cfg: &DannConfig, vs, env) {
        let net = HeadNet::new(vs, env.backbone, env.num_classes, &cfg.head);
        let disc = Discriminator::new(&(vs / "discriminator"), net.head.feature_dim(), &cfg.discriminator);
        let (trade_off, schedule) = (cfg.trade_off, cfg.lambda_schedule);
        // λ sits in the reversal layer, so the domain term enters the loss with weight 1.
        Ok(HeadMethod::on(net, 1.0, "domain", move |((fs, _), (ft, _)), _, ctx| {
            let lambda = trade_off * schedule.at(ctx.progress);
            let (domain, acc) = disc.domain_loss(&grad_reverse(fs, lambda), &grad_reverse(ft, lambda));
            Ok(StepOutput::new(domain).with("lambda", lambda).with("domain_acc", acc))
        }))
    }
}

#[cfg(test)]
dalab_conformance::method_tests!(Dann, DannConfig { trade_off: -1.0, ..Default::default() }
    => "trade_off: must be a finite number >= 0, got -1");

#[cfg(test)]
mod tests {
    use super::*;
    use dalab_core::Validate;
    use tch::{Tensor, nn};

    #[test]
    fn validation_names_the_nested_key() {
        let bad = DannConfig { lambda_schedule: LambdaSchedule::Dann { gamma: 0.0 }, ..Default::default() };
        assert!(bad.validate().unwrap_err().starts_with("lambda_schedule.gamma:"));
    }

    #[test]
    fn reversed_gradient_reaches_the_backbone_scaled_by_lambda() {
        // With a backbone that is the identity on x (features = x with requires_grad), the gradient of the domain
        // term w.r.t. the features must be -λ times the gradient the discriminator sees.
        tch::manual_seed(1);
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let cfg = DiscriminatorConfig { hidden: vec![], ..Default::default() };
        let disc = Discriminator::new(&vs.root(), 3, &cfg);
        let f = Tensor::randn([5, 3], (tch::Kind::Float, tch::Device::Cpu)).set_requires_grad(true);
        let t = Tensor::randn([5, 3], (tch::Kind::Float, tch::Device::Cpu));
        let grad_of = |lambda: f64| {
            let (loss, _) = disc.domain_loss(&grad_reverse(&f, lambda), &t);
            Tensor::run_backward(&[loss], &[&f], false, false)[0].copy()
        };
        let plain = {
            let (loss, _) = disc.domain_loss(&f, &t);
            Tensor::run_backward(&[loss], &[&f], false, false)[0].copy()
        };
        let g = grad_of(6.0);
        assert!(g.allclose(&(&plain * -6.0), 1e-6, 1e-7, false));
    }
}
