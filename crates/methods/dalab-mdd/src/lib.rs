//! MDD (Zhang, Liu, Long & Jordan, ICML 2019): margin disparity discrepancy.
//!
//! Besides the classifier f, an auxiliary classifier f' sits on the head's features ψ behind a gradient
//! reversal layer of coefficient c = grl_coefficient · λ_p. With ĥ = argmax f(·) (no gradient) and p' =
//! softmax(f'(ψ(·))), the disparity term is
//!
//! T = γ · CE(f'(ψ(x_s)), ĥ(x_s)) − mean_t log(1 − p'_{ĥ(x_t)}(x_t)),   L = CE(f(ψ(x_s)), y_s) + η · T
//!
//! f' minimises T (it agrees with f on the source and disagrees on the target, i.e. it maximises the margin
//! disparity discrepancy D_γ ≈ −T); ψ receives −c · η · ∂T, i.e. it minimises the discrepancy. Signs as in the
//! authors' `model/MDD.py` (`srcweight · CE + nll(log(1 − softmax))`) and TLlib (`transfer_loss = −mdd`).
//! log(1 − p'_h) is computed as logsumexp_{j≠h} ℓ'_j − logsumexp_j ℓ'_j (finite where 1 − p'_h rounds to 0).
//!
//! Defaults: γ = 4 (the authors' Office-31 `srcweight`; 2 on Office-Home), η = 1 (the authors' code adds T
//! with weight 1), grl_coefficient = 0.1 (the authors' and TLlib's GRL `high_value`/`hi`) with the DANN ramp.

use dalab_core::StepOutput;
use dalab_core::schedule::LambdaSchedule;
use dalab_nn::{ClassifierHead, HeadConfig, HeadMethod, HeadNet, grad_reverse};
use tch::Tensor;

dalab_core::method_config! {
    /// The `methods.mdd` options.
    pub struct MddConfig {
        /// η: the weight of the disparity term.
        trade_off: f64 = 1.0, non_negative;
        /// γ: the margin (the weight of the source disparity).
        margin: f64 = 4.0, positive;
        /// The largest coefficient of the reversed gradient from f' into the features.
        grl_coefficient: f64 = 0.1, non_negative;
        /// How the reversal coefficient ramps up over training (multiplies `grl_coefficient`).
        lambda_schedule: LambdaSchedule = LambdaSchedule::default(), nested;
        /// f and, with the same `hidden` layers and no bottleneck of its own, f'.
        head: HeadConfig = HeadConfig::default(), nested;
    }
}

/// T from the logits of f (`ls`, `lt`) and of f' (`adv_s`, `adv_t`) on the source and target: see the crate
/// documentation.
pub fn disparity(ls: &Tensor, adv_s: &Tensor, lt: &Tensor, adv_t: &Tensor, margin: f64) -> Tensor {
    let source = adv_s.cross_entropy_for_logits(&ls.argmax(1, false));
    let h = lt.argmax(1, true);
    let log_rest = adv_t.scatter_value(1, &h, f64::NEG_INFINITY).logsumexp([1], false) - adv_t.logsumexp([1], false);
    source * margin - log_rest.mean(adv_t.kind())
}

dalab_core::method_factory! {
    /// The registry entry.
    pub Mdd: "mdd", "margin disparity discrepancy: an adversarial auxiliary classifier (Zhang et al. 2019)";
    build(cfg: &MddConfig, vs, env) {
        let (classes, c) = (env.num_classes, cfg.clone());
        let net = HeadNet::new(vs, env.backbone, classes, &cfg.head);
        let adv_cfg = HeadConfig { hidden: cfg.head.hidden.clone(), ..HeadConfig::default() };
        let adv = ClassifierHead::new(&(vs / "adversary"), net.head.feature_dim(), classes, &adv_cfg);
        Ok(HeadMethod::on(net, cfg.trade_off, "mdd", move |((fs, ls), (ft, lt)), _, ctx| {
            let coeff = c.grl_coefficient * c.lambda_schedule.at(ctx.progress);
            let f_adv = |f: &Tensor| adv.logits(&grad_reverse(f, coeff));
            Ok(StepOutput::new(disparity(ls, &f_adv(fs), lt, &f_adv(ft), c.margin)).with("grl_coefficient", coeff))
        }))
    }
}

#[cfg(test)]
dalab_conformance::method_tests!(Mdd, MddConfig { margin: 0.0, ..Default::default() }
    => "margin: must be a finite number > 0, got 0");

#[cfg(test)]
mod tests {
    use super::*;
    use dalab_core::{DaBatch, StepCtx};
    use tch::{Device, Kind};

    fn mat(rows: i64, v: &[f64]) -> Tensor {
        Tensor::from_slice(v).reshape([rows, -1])
    }

    #[test]
    fn disparity_on_hand_made_logits() {
        // Source: ĥ = (0, 1); f' gives p' = (1/3, 1/3, 1/3) and (1/4, 1/2, 1/4): CE = (ln 3 + ln 2)/2.
        let ls = mat(2, &[2.0, 0.0, 0.0, 0.0, 3.0, 0.0]);
        let adv_s = mat(2, &[0.0, 0.0, 0.0, 0.0, 2f64.ln(), 0.0]);
        // Target: ĥ = 2; p' = (1/4, 1/4, 1/2): −log(1 − 1/2) = ln 2.
        let lt = mat(1, &[0.0, 0.0, 5.0]);
        let adv_t = mat(1, &[0.0, 0.0, 2f64.ln()]);
        let t = disparity(&ls, &adv_s, &lt, &adv_t, 4.0).double_value(&[]);
        // 4 · ln 6 / 2 + ln 2 = ln 72 (to f32: tch's cross_entropy_for_logits works in f32).
        assert!((t - 72f64.ln()).abs() < 1e-6, "{t}");
        // f' sure of ĥ on the target: 1 − p' = 2e⁻⁵⁰/(1 + 2e⁻⁵⁰) is 0 in f64 after 1 − p', not here.
        let sure = mat(1, &[0.0, 0.0, 50.0]);
        let t = disparity(&ls, &adv_s, &lt, &sure, 0.0).double_value(&[]);
        let expected = 50.0 - 2f64.ln() + (2.0 * (-50f64).exp()).ln_1p();
        assert!((t - expected).abs() < 1e-12, "{t} vs {expected}");
    }

    /// The auxiliary classifier f' descends η·T; the backbone gets the source CE gradient minus c·η·∂T/∂ψ
    /// (reversed); f itself only the CE's. References are computed by hand from the variables.
    #[test]
    fn the_adversary_gets_reversed_gradients_into_the_features() {
        let cfg = MddConfig { trade_off: 0.7, ..Default::default() };
        let (vs, mut m) = dalab_conformance::build::<Mdd>(&cfg, 3);
        let (source_x, source_y, target_x) = dalab_conformance::synthetic_shift(12, 2);
        let ctx = StepCtx::at(40, 100, Device::Cpu);
        let coeff = 0.1 * LambdaSchedule::default().at(ctx.progress);
        let vars = vs.variables();
        let watched = [
            &vars["method.adversary.classifier.weight"],
            &vars["method.classifier.weight"],
            &vars["backbone.fc0.weight"],
        ];
        let b = DaBatch { source_x, source_y, target_x };
        let loss = m.training_loss(&b, &ctx).unwrap().loss;
        let got = Tensor::run_backward(&[loss], &watched, false, false);
        // The reference: eval-mode forwards (the MLP has no dropout or batch norm, so they equal training ones).
        let x = Tensor::cat(&[&b.source_x, &b.target_x], 0);
        let (f, l) = (m.features(&x), m.predict(&x));
        let la = f.matmul(&watched[0].tr()) + &vars["method.adversary.classifier.bias"];
        let (ns, nt) = (12, 12);
        let pa = la.softmax(-1, Kind::Float);
        let (hs, ht) = (l.narrow(0, 0, ns).argmax(1, true), l.narrow(0, ns, nt).argmax(1, true));
        let src = -pa.narrow(0, 0, ns).gather(1, &hs, false).log().mean(Kind::Float);
        let tgt = -(-pa.narrow(0, ns, nt).gather(1, &ht, false) + 1.0).log().mean(Kind::Float);
        let t_ref = src * 4.0 + tgt;
        let ce = l.narrow(0, 0, ns).cross_entropy_for_logits(&b.source_y);
        let g_t = Tensor::run_backward(&[&t_ref], &watched, true, false);
        let g_ce = Tensor::run_backward(&[&ce], &watched, false, false);
        let close = |a: &Tensor, b: &Tensor| a.allclose(b, 1e-4, 1e-6, false);
        assert!(close(&got[0], &(&g_t[0] * 0.7)), "f' descends η·T");
        assert!(close(&got[1], &g_ce[1]), "f gets the CE gradient only");
        assert!(close(&got[2], &(&g_ce[2] - &g_t[2] * (0.7 * coeff))), "the features get −c·η·∂T");
        assert!(g_t[2].abs().max().double_value(&[]) > 1e-4, "the check is not vacuous");
    }
}
