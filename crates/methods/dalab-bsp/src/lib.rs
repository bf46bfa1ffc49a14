//! BSP (Chen, Wang, Long & Wang, ICML 2019): batch spectral penalization, here on DANN (the paper's BSP+DANN).
//!
//! With F_s, F_t the source and target feature matrices of a batch (`[n, d]`, the head's features) and σ_i their
//! singular values in decreasing order, the penalty on the k largest is
//!
//! L_bsp = Σ_{i=1..k} σ_i²(F_s) + σ_i²(F_t)
//!
//! and the loss is DANN's (a discriminator D behind gradient reversal with λ = trade_off · λ_p) plus β · L_bsp:
//!
//! L = CE(C(f_s), y_s) + BCE(D(GRL_λ(f_s)), 1) + BCE(D(GRL_λ(f_t)), 0) + β · L_bsp
//!
//! Defaults: k = 1 (the paper's choice and both released codes); β = 1e-4 (the authors' `BSP+DANN.py` and
//! `train.py`; TLlib's script default is 2e-4, 1e-4 in its digits recipes); λ = 1 with the DANN ramp, as
//! `dann` (the authors' GRL ramps 0 → 1 as 2/(1+exp(−10·i/10000)) − 1 over the iteration i).

use dalab_core::StepOutput;
use dalab_core::schedule::LambdaSchedule;
use dalab_nn::{Discriminator, DiscriminatorConfig, HeadConfig, HeadMethod, HeadNet, grad_reverse};
use tch::Tensor;

dalab_core::method_config! {
    /// The `methods.bsp` options.
    pub struct BspConfig {
        /// λ: the largest coefficient of the reversed domain gradient into the features (as `dann`).
        trade_off: f64 = 1.0, non_negative;
        /// How λ_p ramps up over training (multiplies `trade_off`).
        lambda_schedule: LambdaSchedule = LambdaSchedule::default(), nested;
        /// β: the weight of the spectral penalty.
        bsp_trade_off: f64 = 1e-4, non_negative;
        /// k: how many of the largest singular values of each domain are penalised.
        k: usize = 1, at_least_one, at_most_width;
        /// The domain discriminator on the head's features.
        discriminator: DiscriminatorConfig = DiscriminatorConfig::default(), nested;
        head: HeadConfig = HeadConfig::default(), nested;
    }
}

/// L_bsp: the sum of the squares of the `k` largest singular values of `fs` and of `ft` (all of them when a
/// matrix has fewer than `k`).
pub fn spectral_penalty(fs: &Tensor, ft: &Tensor, k: usize) -> Tensor {
    let top = |f: &Tensor| {
        let s = f.svd(true, true).1;
        let k = (k as i64).min(s.size()[0]);
        s.narrow(0, 0, k).square().sum(f.kind())
    };
    top(fs) + top(ft)
}

dalab_core::method_factory! {
    /// The registry entry.
    pub Bsp: "bsp", "batch spectral penalization on DANN: penalises the largest singular values (Chen et al. 2019)";
    build(cfg: &BspConfig, vs, env) {
        let net = HeadNet::new(vs, env.backbone, env.num_classes, &cfg.head);
        let disc = Discriminator::new(&(vs / "discriminator"), net.head.feature_dim(), &cfg.discriminator);
        let c = cfg.clone();
        Ok(HeadMethod::on(net, 1.0, "transfer", move |((fs, _), (ft, _)), _, ctx| {
            let lambda = c.trade_off * c.lambda_schedule.at(ctx.progress);
            let (domain, domain_acc) = disc.domain_loss(&grad_reverse(fs, lambda), &grad_reverse(ft, lambda));
            let bsp = spectral_penalty(fs, ft, c.k);
            let (d, b) = (domain.detach(), bsp.detach());
            Ok(StepOutput::new(domain + bsp * c.bsp_trade_off)
                .with("loss/domain", d)
                .with("loss/bsp", b)
                .with("lambda", lambda)
                .with("domain_acc", &domain_acc))
        }))
    }
}

#[cfg(test)]
dalab_conformance::method_tests!(Bsp, BspConfig { bsp_trade_off: -1.0, ..Default::default() }
    => "bsp_trade_off: must be a finite number >= 0, got -1");

#[cfg(test)]
mod tests {
    use super::*;

    fn mat(rows: i64, v: &[f64]) -> Tensor {
        Tensor::from_slice(v).reshape([rows, -1])
    }

    /// R(θ) diag(a, b) R(φ)ᵀ: singular values a > b, u₁ = (cos θ, sin θ), v₁ = (cos φ, sin φ).
    fn with_svd(a: f64, b: f64, theta: f64, phi: f64) -> Tensor {
        let rot = |t: f64| mat(2, &[t.cos(), -t.sin(), t.sin(), t.cos()]);
        rot(theta).matmul(&mat(2, &[a, 0.0, 0.0, b])).matmul(&rot(phi).tr())
    }

    #[test]
    fn penalty_of_matrices_with_known_singular_values() {
        let fs = mat(3, &[3.0, 0.0, 0.0, 2.0, 0.0, 0.0]); // σ = 3, 2
        let ft = with_svd(5.0, 0.5, 0.3, -1.1); // σ = 5, 0.5
        let at = |k| spectral_penalty(&fs, &ft, k).double_value(&[]);
        assert!((at(1) - (9.0 + 25.0)).abs() < 1e-10, "{}", at(1));
        assert!((at(2) - (9.0 + 4.0 + 25.0 + 0.25)).abs() < 1e-10, "{}", at(2));
        assert!((at(3) - at(2)).abs() < 1e-12, "k beyond the rank adds nothing");
    }

    #[test]
    fn gradient_is_two_sigma_u_v_transposed() {
        // d(σ₁²)/dF = 2σ₁ u₁v₁ᵀ, for each domain.
        let (theta, phi) = (0.4, 1.3);
        let fs = with_svd(4.0, 1.0, theta, phi).set_requires_grad(true);
        let ft = mat(3, &[2.0, 0.0, 0.0, 0.5, 0.0, 0.0]).set_requires_grad(true);
        let g = Tensor::run_backward(&[spectral_penalty(&fs, &ft, 1)], &[&fs, &ft], false, false);
        let expected_s = mat(2, &[theta.cos(), theta.sin()]).matmul(&mat(1, &[phi.cos(), phi.sin()])) * 8.0;
        let expected_t = mat(3, &[4.0, 0.0, 0.0, 0.0, 0.0, 0.0]); // 2·2·e₁e₁ᵀ
        assert!(g[0].allclose(&expected_s, 1e-9, 1e-12, false), "{g:?}");
        assert!(g[1].allclose(&expected_t, 1e-9, 1e-12, false), "{g:?}");
    }
}
