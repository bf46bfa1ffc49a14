//! Target only: the backbone and a linear classifier trained with cross-entropy on the labelled target samples
//! the setting grants, L = CE(f(x_l), y_l); the source batch is ignored. Under `setting: supervised` (every target
//! training sample labelled) it is the **upper bound** DA tables quote beside source-only: what the target's own
//! labels buy, scored on the target test split where the dataset has one. It uses target labels by definition, so
//! it exists only in the settings that grant them (`semi_supervised`: the k labelled samples per class).

use dalab_core::StepOutput;
use dalab_core::{DaBatch, LabelledTarget, Method, Optimizers, Result, Scalars, Setting, StageBatch, StepCtx};
use dalab_nn::{HeadConfig, HeadNet};
use tch::Tensor;

dalab_core::method_config! {
    /// Target only has no options.
    pub struct TargetOnlyConfig {}
}

dalab_core::method_factory! {
    /// The registry entry.
    pub TargetOnly: "target-only", "upper bound: cross-entropy on the labelled target only (setting: supervised)";
    settings: [Setting::Supervised, Setting::SemiSupervised];
    build(_cfg: &TargetOnlyConfig, vs, env) {
        Ok(Box::new(Model(HeadNet::new(vs, env.backbone, env.num_classes, &HeadConfig::default()))))
    }
}

struct Model(HeadNet);

impl Method for Model {
    fn training_loss(&mut self, _batch: &DaBatch, ctx: &StepCtx) -> Result<StepOutput> {
        Err(dalab_core::labels_not_granted("target-only", ctx))
    }

    fn train_step_labelled(
        &mut self,
        _batch: StageBatch<'_>,
        l: &LabelledTarget,
        _ctx: &StepCtx,
        opt: &mut dyn Optimizers,
    ) -> Result<Scalars> {
        let ce = self.0.head.forward_t(&self.0.backbone.forward_t(&l.x, true), true).1.cross_entropy_for_logits(&l.y);
        let loss = opt.backward_step("loss", &ce, &[])?;
        Ok(vec![("loss/cls_target".into(), loss)])
    }

    fn predict(&self, x: &Tensor) -> Tensor {
        self.0.predict(x)
    }

    fn features(&self, x: &Tensor) -> Tensor {
        self.0.features(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dalab_core::MethodFactory;
    use tch::{Device, Kind};

    /// Records the loss it is asked to step on.
    struct Record(Vec<f64>);

    impl Optimizers for Record {
        fn backward_step(&mut self, _name: &str, loss: &Tensor, _groups: &[&str]) -> Result<dalab_core::Scalar> {
            let v = loss.double_value(&[]);
            self.0.push(v);
            Ok(v.into())
        }
    }

    #[test]
    fn loss_is_the_labelled_target_cross_entropy_and_ignores_the_source() {
        assert_eq!(TargetOnly::SETTINGS, [Setting::Supervised, Setting::SemiSupervised]);
        let (_vs, mut m) = dalab_conformance::build::<TargetOnly>(&TargetOnlyConfig {}, 0);
        let (xs, ys, xt) = dalab_conformance::synthetic_shift(8, 1);
        let yt = ys.roll([1], [0]);
        let ctx = StepCtx::at(0, 1, Device::Cpu);
        let l = LabelledTarget { x: xt.shallow_clone(), y: yt.shallow_clone() };
        let mut step = |source_x: Tensor| {
            let b = DaBatch { source_x, source_y: ys.shallow_clone(), target_x: xt.shallow_clone() };
            let mut rec = Record(vec![]);
            m.train_step_labelled(StageBatch::Both(&b), &l, &ctx, &mut rec).unwrap();
            rec.0[0]
        };
        let a = step(xs.shallow_clone());
        let b = step(Tensor::randn([8, 4], (Kind::Float, Device::Cpu)) * 100.0);
        assert_eq!(a, b, "target-only must not depend on the source batch");
        // Independent computation: mean of −log softmax(predict(x_t))[y_t] (the head has no dropout).
        let logp = tch::no_grad(|| m.predict(&xt)).log_softmax(-1, Kind::Double);
        let want = -logp.gather(1, &yt.unsqueeze(1), false).mean(Kind::Double).double_value(&[]);
        assert!((a - want).abs() < 1e-6, "{a} vs {want}");
        let b = DaBatch { source_x: xs.shallow_clone(), source_y: ys.shallow_clone(), target_x: xt.shallow_clone() };
        let e = m.training_loss(&b, &ctx).err().unwrap().to_string();
        assert!(e.contains("target-only learns from the target's labels"), "{e}");
    }
}
