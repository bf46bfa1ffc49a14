//! ADDA (Tzeng, Hoffman, Saenko & Darrell, CVPR 2017): adversarial discriminative domain adaptation.
//!
//! Two stages, as in the paper and the authors' code (`tools/train.py`, then `tools/train_adda.py`):
//!
//! 1. `source` (source batches only): the source encoder M_s (the backbone) and the classifier C minimise
//!    CE(C(M_s(x_s)), y_s).
//! 2. `adapt` (source and target batches): the target encoder M_t starts as a copy of M_s; with a discriminator D
//!    on [M_s(x_s); M_t(x_t)] (source = 1, target = 0), each iteration
//!    - D minimises BCE(D(·), domain label)                           (the authors' `adversary_loss`),
//!    - M_t minimises BCE(D(·), 1 − domain label), the inverted label (their `mapping_loss`),
//!
//!    both computed from the same forward pass with the parameters before either step, as the authors' one
//!    `sess.run` of both steps does. M_s and C stay fixed; the model predicts C(M_t(x)).
//!
//! What D sees (`discriminate`): `logits` (default) is the authors' code: their "encoder" is the whole LeNet
//! including its last layer, D is trained on its 10 logits, and the adapted model is that whole network (here: a
//! target copy of the head, adapted with M_t, predicting C_t(M_t(x))); `features` is the paper's description, D
//! on the encoder's features and the source classifier C kept for the target.
//!
//! Groups: `source` (backbone and classifier), `target_encoder`, `discriminator`; give each its optimizer with
//! `optim.groups` (the authors: Adam, β1 = 0.5; lr 1e-3 for the source stage, 2e-4 for adaptation).

use dalab_core::StepCtx;
use dalab_core::{FeatureExtractor, Group, Method, Optimizers, Result, Scalars, Stage, StageBatch, StageData};
use dalab_nn::{ClassifierHead, Discriminator, DiscriminatorConfig, HeadConfig, copy_prefix};
use tch::{Kind, Tensor, nn};

dalab_core::method_config! {
    /// The `methods.adda` options.
    pub struct AddaConfig {
        /// Iterations of the source stage (the adaptation stage runs `train.iterations`).
        source_iterations: usize = 10000, at_least_one, at_most_iterations;
        /// The classifier on the encoder's features.
        head: HeadConfig = HeadConfig::default(), nested;
        /// What the discriminator sees: the network's `logits` (the authors' code) or the encoder's `features`.
        discriminate: Discriminate = Discriminate::Logits;
        /// The authors' adversary: 500-500, ReLU, no dropout.
        discriminator: DiscriminatorConfig =
            DiscriminatorConfig { hidden: vec![500, 500], dropout: 0.0, ..Default::default() }, nested;
    }
}

dalab_core::method_factory! {
    /// The registry entry.
    pub Adda: "adda", "source stage, then an adversarially trained target encoder (Tzeng et al. 2017)";
    groups: ["source", "target_encoder", "discriminator"];
    build(cfg: &AddaConfig, vs, env) {
        let target = (env.make_backbone)(&(vs / "target_encoder"))?;
        let head = ClassifierHead::new(&(vs / "head"), env.backbone.out_dim(), env.num_classes, &cfg.head);
        let target_head = ClassifierHead::new(&(vs / "target_head"), env.backbone.out_dim(), env.num_classes, &cfg.head);
        let d_in = match cfg.discriminate {
            Discriminate::Logits => env.num_classes,
            Discriminate::Features => head.feature_dim(),
        };
        let disc = Discriminator::new(&(vs / "discriminator"), d_in, &cfg.discriminator);
        let stages = vec![
            Stage { name: "source", iterations: Some(cfg.source_iterations), data: StageData::Source, groups: vec!["source"] },
            Stage {
                name: "adapt",
                iterations: None,
                data: StageData::SourceAndTarget,
                groups: vec!["target_encoder", "discriminator"],
            },
        ];
        let on = cfg.discriminate;
        Ok(Box::new(Model { source: env.backbone, target, head, target_head, disc, stages, adapting: false, on }))
    }
}

/// `methods.adda.discriminate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Discriminate {
    Logits,
    Features,
}

struct Model {
    source: Box<dyn FeatureExtractor>,
    target: Box<dyn FeatureExtractor>,
    head: ClassifierHead,
    /// The target network's copy of the head (adapted with `discriminate: logits`).
    target_head: ClassifierHead,
    disc: Discriminator,
    stages: Vec<Stage>,
    adapting: bool,
    on: Discriminate,
}

impl Model {
    /// What D sees of encoder `enc` (with head `head`) on `x`: features or logits.
    fn seen(&self, enc: &dyn FeatureExtractor, head: &ClassifierHead, x: &Tensor) -> Tensor {
        let (f, l) = head.forward_t(&enc.forward_t(x, true), true);
        if self.on == Discriminate::Logits { l } else { f }
    }

    /// The target network's head: its own copy when D sees logits, the source classifier otherwise.
    fn target_classifier(&self) -> &ClassifierHead {
        if self.on == Discriminate::Logits { &self.target_head } else { &self.head }
    }
}

impl Method for Model {
    fn stages(&self) -> Vec<Stage> {
        self.stages.clone()
    }

    fn groups(&self) -> Vec<Group> {
        vec![
            Group::new("source", &["backbone.", "method.head."]),
            Group::new("target_encoder", &["method.target_encoder.", "method.target_head."]),
            Group::new("discriminator", &["method.discriminator."]),
        ]
    }

    fn begin_stage(&mut self, stage: &Stage, vars: &nn::VarStore) -> Result<()> {
        self.adapting = stage.name == "adapt";
        if self.adapting {
            copy_prefix(vars, "backbone.", "method.target_encoder.")?;
            copy_prefix(vars, "method.head.", "method.target_head.")?;
        }
        Ok(())
    }

    fn train_step(&mut self, batch: StageBatch<'_>, _ctx: &StepCtx, opt: &mut dyn Optimizers) -> Result<Scalars> {
        match batch {
            StageBatch::Source(b) => {
                let logits = self.head.forward_t(&self.source.forward_t(&b.x, true), true).1;
                let cls = opt.backward_step("loss/cls", &logits.cross_entropy_for_logits(&b.y), &[])?;
                Ok(vec![("loss/cls".into(), cls)])
            }
            StageBatch::Both(b) => {
                let fs = tch::no_grad(|| self.seen(self.source.as_ref(), &self.head, &b.source_x));
                let ft = self.seen(self.target.as_ref(), self.target_classifier(), &b.target_x);
                let (ns, nt) = (fs.size()[0], ft.size()[0]);
                let opts = (Kind::Float, fs.device());
                let domain = Tensor::cat(&[Tensor::ones([ns], opts), Tensor::zeros([nt], opts)], 0);
                let bce = |logits: &Tensor, labels: &Tensor| {
                    logits.binary_cross_entropy_with_logits::<Tensor>(labels, None, None, tch::Reduction::Mean)
                };
                // Both losses from the parameters before either step: D's on detached features, M_t's on a second
                // pass of D (whose gradient into D is discarded; only the target encoder steps on it).
                let adv_logits = self.disc.forward_t(&Tensor::cat(&[&fs, &ft.detach()], 0), true);
                let map_logits = self.disc.forward_t(&Tensor::cat(&[&fs, &ft], 0), true);
                let acc = adv_logits.detach().ge(0.0).to_kind(Kind::Float).eq_tensor(&domain).to_kind(Kind::Float);
                let mapping =
                    opt.backward_step("loss/mapping", &bce(&map_logits, &(1.0 - &domain)), &["target_encoder"])?;
                let adversary = opt.backward_step("loss/adversary", &bce(&adv_logits, &domain), &["discriminator"])?;
                Ok(vec![
                    ("loss/mapping".into(), mapping),
                    ("loss/adversary".into(), adversary),
                    ("domain_acc".into(), acc.mean(Kind::Float).into()),
                ])
            }
            StageBatch::Target(_) | StageBatch::Sources(_) => Err(dalab_core::Error::Other(
                "adda: no stage of ADDA sees target batches alone or per-domain source batches".into(),
            )),
        }
    }

    fn predict(&self, x: &Tensor) -> Tensor {
        match self.adapting {
            false => self.head.predict(self.source.as_ref(), x),
            true => self.target_classifier().predict(self.target.as_ref(), x),
        }
    }

    /// The head's features of M_s(x) in the source stage, of M_t(x) once adapting.
    fn features(&self, x: &Tensor) -> Tensor {
        match self.adapting {
            false => self.head.eval_features(self.source.as_ref(), x),
            true => self.target_classifier().eval_features(self.target.as_ref(), x),
        }
    }
}

#[cfg(test)]
dalab_conformance::method_tests!(Adda, AddaConfig { source_iterations: 0, ..Default::default() }
    => "source_iterations: must be >= 1, got 0");

#[cfg(test)]
mod tests {
    use super::*;
    use dalab_core::MethodFactory;
    use tch::Device;

    /// The adaptation stage starts from the source encoder: right after `begin_stage(adapt)` the model predicts
    /// exactly as the source-stage model did; the source encoder and classifier never move during adaptation.
    #[test]
    fn adaptation_starts_from_a_copy_of_the_source_encoder_and_keeps_it_fixed() {
        let (vs, mut m) = dalab_conformance::build::<Adda>(&AddaConfig::default(), 0);
        let (xs, ys, xt) = dalab_conformance::synthetic_shift(24, 2);
        let stages = m.stages();
        assert_eq!(stages.iter().map(|s| s.name).collect::<Vec<_>>(), ["source", "adapt"]);
        let mut st = dalab_conformance::settings();
        st.optim.groups.insert("discriminator".into(), Default::default());
        let mut stepper = dalab_train::Stepper::new(&vs, m.as_ref(), &st, "adda").unwrap();
        m.begin_stage(&stages[0], &vs).unwrap();
        let src = dalab_core::SourceBatch { x: xs.shallow_clone(), y: ys.shallow_clone() };
        for it in 0..5 {
            let ctx = StepCtx::at(it, 5, Device::Cpu);
            stepper.iterate(m.as_mut(), &stages[0], StageBatch::Source(&src), None, &ctx, 1.0).unwrap();
        }
        let before = tch::no_grad(|| m.predict(&xt));
        let fixed: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .filter(|(k, _)| k.starts_with("backbone.") || k.starts_with("method.head."))
            .map(|(k, v)| (k, v.copy()))
            .collect();
        m.begin_stage(&stages[1], &vs).unwrap();
        assert!(tch::no_grad(|| m.predict(&xt)).equal(&before), "M_t must start as M_s");
        let both = dalab_core::DaBatch { source_x: xs, source_y: ys, target_x: xt.shallow_clone() };
        for it in 0..5 {
            let ctx = StepCtx { stage: "adapt", ..StepCtx::at(it, 5, Device::Cpu) };
            stepper.iterate(m.as_mut(), &stages[1], StageBatch::Both(&both), None, &ctx, 1.0).unwrap();
        }
        let vars = vs.variables();
        for (k, v) in &fixed {
            assert!(vars[k].equal(v), "{k} moved during adaptation");
        }
        assert!(!tch::no_grad(|| m.predict(&xt)).equal(&before), "the target encoder did not move");
        assert_eq!(copy_prefix(&vs, "backbone.", "method.target_encoder.").unwrap(), 2); // fc0 weight and bias
        assert_eq!(Adda::GROUPS, ["source", "target_encoder", "discriminator"]);
    }
}
