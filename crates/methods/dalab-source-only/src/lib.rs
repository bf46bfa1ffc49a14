//! Source only: the backbone and a linear classifier trained with cross-entropy on the labelled source; the
//! target batch is ignored. The baseline every DA table starts from.
//!
//! In the `semi_supervised` and `supervised` settings it is the plain supervised baseline of those settings:
//! L = CE(f(x_s), y_s) + CE(f(x_l), y_l) on the labelled target samples the setting grants ("S+T" in the
//! semi-supervised DA literature).

use dalab_core::StepOutput;
use dalab_core::{DaBatch, LabelledTarget, Method, Optimizers, Result, Scalars, Setting, StageBatch, StepCtx};
use dalab_nn::{HeadConfig, HeadNet};
use tch::Tensor;

dalab_core::method_config! {
    /// Source only has no options.
    pub struct SourceOnlyConfig {}
}

dalab_core::method_factory! {
    /// The registry entry.
    pub SourceOnly: "source-only", "no adaptation: cross-entropy on the labelled source only";
    settings: [Setting::Unsupervised, Setting::SemiSupervised, Setting::Supervised];
    build(_cfg: &SourceOnlyConfig, vs, env) {
        Ok(Box::new(Model(HeadNet::new(vs, env.backbone, env.num_classes, &HeadConfig::default()))))
    }
}

struct Model(HeadNet);

impl Model {
    fn ce(&self, x: &Tensor, y: &Tensor) -> Tensor {
        self.0.head.forward_t(&self.0.backbone.forward_t(x, true), true).1.cross_entropy_for_logits(y)
    }
}

impl Method for Model {
    fn training_loss(&mut self, batch: &DaBatch, _ctx: &StepCtx) -> Result<StepOutput> {
        let cls = self.ce(&batch.source_x, &batch.source_y);
        let value = cls.detach();
        Ok(StepOutput::new(cls).with("loss/cls", value))
    }

    fn train_step_labelled(
        &mut self,
        batch: StageBatch<'_>,
        l: &LabelledTarget,
        _ctx: &StepCtx,
        opt: &mut dyn Optimizers,
    ) -> Result<Scalars> {
        let StageBatch::Both(b) = batch else {
            return Err(dalab_core::Error::Other("source-only: its one stage needs source and target batches".into()));
        };
        let (cls, tgt) = (self.ce(&b.source_x, &b.source_y), self.ce(&l.x, &l.y));
        let (c, t) = (cls.detach(), tgt.detach());
        let total = opt.backward_step("loss", &(cls + tgt), &[])?;
        Ok(vec![("loss/total".into(), total), ("loss/cls".into(), c.into()), ("loss/cls_target".into(), t.into())])
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

    #[test]
    fn conformance() {
        dalab_conformance::check::<SourceOnly>();
    }

    #[test]
    fn loss_is_the_source_cross_entropy_and_ignores_the_target() {
        let (_vs, mut m) = dalab_conformance::build::<SourceOnly>(&SourceOnlyConfig {}, 0);
        let (xs, ys, _) = dalab_conformance::synthetic_shift(6, 1);
        let ctx = StepCtx::at(0, 1, Device::Cpu);
        let loss_with = |m: &mut Box<dyn Method>, t: Tensor| {
            let b = DaBatch { source_x: xs.shallow_clone(), source_y: ys.shallow_clone(), target_x: t };
            m.training_loss(&b, &ctx).unwrap().loss.double_value(&[])
        };
        let a = loss_with(&mut m, Tensor::randn([6, 4], (Kind::Float, Device::Cpu)));
        let b = loss_with(&mut m, Tensor::randn([6, 4], (Kind::Float, Device::Cpu)) * 100.0);
        assert_eq!(a, b, "source-only must not depend on the target batch");
        // Independent computation: mean of -log softmax(predict(x))[y].
        let manual = -m.predict(&xs).log_softmax(-1, Kind::Float).gather(1, &ys.unsqueeze(1), false).mean(Kind::Float);
        assert!((manual.double_value(&[]) - a).abs() < 1e-6);
        assert_eq!(m.features(&xs).size(), vec![6, 16]);
        assert_eq!(SourceOnly::SETTINGS.len(), 3);
    }
}
