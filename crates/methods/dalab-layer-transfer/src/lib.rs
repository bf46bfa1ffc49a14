//! Layer transfer (Yosinski, Clune, Bengio & Lipson, "How transferable are features in deep neural networks?",
//! NeurIPS 2014): a base network is trained on one task, its first `n` layers are copied into a new network for
//! the target task B, the remaining layers start from a fresh initialisation, and the copied layers are either
//! frozen or fine-tuned while the new network learns B. The paper's four conditions:
//!
//! | condition | `base` | `fine_tune` | the base network learnt |
//! |---|---|---|---|
//! | AnB  | `source` | `false` | task A (the source domain, its labels) |
//! | AnB⁺ | `source` | `true`  | task A |
//! | BnB  | `target` | `false` | task B itself (the selffer control) |
//! | BnB⁺ | `target` | `true`  | task B |
//!
//! Two stages: `base` (`base_iterations` steps, group `base`: the backbone and `method.base_head`) and `transfer`
//! (`train.iterations` steps, group `transfer`: the new network `method.transfer`). The layers, in order, are the
//! backbone's (`conv0`, `conv1`, …, then `fc0`, `fc1`, …) and last the classifier head; `copy_layers = n` copies the
//! first n at the start of `transfer` (0: B trained from scratch, the paper's baseB). A frozen layer gets no
//! gradient (its `requires_grad` is off), so the optimizer leaves it, and its momentum, untouched.
//!
//! Task B's labels are the target's, so the method runs only under `setting: supervised` (the whole target training
//! data labelled) or `semi_supervised` (k labelled samples per class: transfer with few labels); it is scored on
//! the target test split where the dataset has one.

use dalab_core::{
    Group, LabelledTarget, Method, Optimizers, Result, Scalars, Setting, Stage, StageBatch, StageData, StepCtx,
};
use dalab_nn::{ClassifierHead, HeadConfig, copy_prefix, freeze_prefixes};
use tch::{Tensor, nn};

dalab_core::method_config! {
    /// The `methods.layer-transfer` options.
    pub struct LayerTransferConfig {
        /// Layers copied from the base network, counted from the input (0 = none: task B from scratch); at most
        /// the backbone's layers plus the head.
        copy_layers: usize = 1;
        /// The base network's task: `source` (A, the AnB conditions) or `target` (B itself, the BnB controls).
        base: BaseTask = BaseTask::Source;
        /// Fine-tune the copied layers on B (AnB⁺, BnB⁺) instead of freezing them (AnB, BnB).
        fine_tune: bool = false;
        /// Iterations of the base stage (the transfer stage runs `train.iterations`).
        base_iterations: usize = 2000, at_least_one, at_most_iterations;
        /// The classifier head of both networks.
        head: HeadConfig = HeadConfig::default(), nested;
    }
}

/// `methods.layer-transfer.base`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BaseTask {
    Source,
    Target,
}

dalab_core::method_factory! {
    /// The registry entry.
    pub LayerTransfer: "layer-transfer",
        "the first n layers of a base network copied into a new one, frozen or fine-tuned (Yosinski et al. 2014)";
    settings: [Setting::Supervised, Setting::SemiSupervised];
    groups: ["base", "transfer"];
    build(cfg: &LayerTransferConfig, vs, env) {
        let transfer = (env.make_backbone)(&(vs / "transfer" / "backbone"))?;
        let dim = env.backbone.out_dim();
        let base_head = ClassifierHead::new(&(vs / "base_head"), dim, env.num_classes, &cfg.head);
        let transfer_head = ClassifierHead::new(&(vs / "transfer" / "head"), dim, env.num_classes, &cfg.head);
        let base_data = match cfg.base {
            BaseTask::Source => StageData::Source,
            BaseTask::Target => StageData::Target,
        };
        let stages = vec![
            Stage { name: "base", iterations: Some(cfg.base_iterations), data: base_data, groups: vec!["base"] },
            Stage { name: "transfer", iterations: None, data: StageData::Target, groups: vec!["transfer"] },
        ];
        Ok(Box::new(Model {
            base: env.backbone,
            base_head,
            transfer,
            transfer_head,
            stages,
            cfg: cfg.clone(),
            transferring: false,
        }))
    }
}

struct Model {
    base: Box<dyn dalab_core::FeatureExtractor>,
    base_head: ClassifierHead,
    transfer: Box<dyn dalab_core::FeatureExtractor>,
    transfer_head: ClassifierHead,
    stages: Vec<Stage>,
    cfg: LayerTransferConfig,
    transferring: bool,
}

/// The layers of the backbone under `prefix` ([`dalab_nn::backbone_layers`]), then `head`: what `copy_layers`
/// counts.
pub fn layers(vs: &nn::VarStore, prefix: &str) -> Result<Vec<String>> {
    let mut out = dalab_nn::backbone_layers(vs, prefix)?;
    out.push("head".into());
    Ok(out)
}

impl Model {
    fn net(&self) -> (&dyn dalab_core::FeatureExtractor, &ClassifierHead) {
        if self.transferring {
            (self.transfer.as_ref(), &self.transfer_head)
        } else {
            (self.base.as_ref(), &self.base_head)
        }
    }

    fn ce(&self, x: &Tensor, y: &Tensor) -> Tensor {
        let (enc, head) = self.net();
        head.forward_t(&enc.forward_t(x, true), true).1.cross_entropy_for_logits(y)
    }
}

impl Method for Model {
    fn stages(&self) -> Vec<Stage> {
        self.stages.clone()
    }

    fn groups(&self) -> Vec<Group> {
        vec![Group::new("base", &["backbone.", "method.base_head."]), Group::new("transfer", &["method.transfer."])]
    }

    /// At the start of `transfer`: copies the first `copy_layers` layers of the base network into the new one and
    /// freezes them unless `fine_tune`.
    fn begin_stage(&mut self, stage: &Stage, vars: &nn::VarStore) -> Result<()> {
        self.transferring = stage.name == "transfer";
        if !self.transferring {
            return Ok(());
        }
        let all = layers(vars, "backbone.")?;
        let n = self.cfg.copy_layers;
        if n > all.len() {
            return Err(dalab_core::Error::Other(format!(
                "methods.layer-transfer.copy_layers: {n}, but the network has {} layers ({})",
                all.len(),
                all.join(", ")
            )));
        }
        for layer in &all[..n] {
            let (from, to) = if layer == "head" {
                ("method.base_head.".to_string(), "method.transfer.head.".to_string())
            } else {
                (format!("backbone.{layer}."), format!("method.transfer.backbone.{layer}."))
            };
            copy_prefix(vars, &from, &to)?;
            if !self.cfg.fine_tune {
                freeze_prefixes(vars, &[&to]);
            }
        }
        Ok(())
    }

    fn train_step(&mut self, _batch: StageBatch<'_>, ctx: &StepCtx, _opt: &mut dyn Optimizers) -> Result<Scalars> {
        Err(dalab_core::labels_not_granted("layer-transfer", ctx))
    }

    fn train_step_labelled(
        &mut self,
        batch: StageBatch<'_>,
        l: &LabelledTarget,
        ctx: &StepCtx,
        opt: &mut dyn Optimizers,
    ) -> Result<Scalars> {
        let (loss, name) = match (self.transferring, self.cfg.base, batch) {
            (false, BaseTask::Source, StageBatch::Source(b)) => (self.ce(&b.x, &b.y), "loss/base"),
            (false, BaseTask::Target, _) => (self.ce(&l.x, &l.y), "loss/base"),
            (true, _, _) => (self.ce(&l.x, &l.y), "loss/transfer"),
            _ => {
                return Err(dalab_core::Error::Other(format!(
                    "stage `{}`: layer-transfer got a batch its stages never ask for",
                    ctx.stage
                )));
            }
        };
        let group = if self.transferring { "transfer" } else { "base" };
        let v = opt.backward_step(name, &loss, &[group])?;
        Ok(vec![(name.to_string(), v)])
    }

    fn predict(&self, x: &Tensor) -> Tensor {
        let (enc, head) = self.net();
        head.forward_t(&enc.forward_t(x, false), false).1
    }

    fn features(&self, x: &Tensor) -> Tensor {
        let (enc, head) = self.net();
        head.forward_t(&enc.forward_t(x, false), false).0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dalab_core::{MethodFactory, SourceBatch, TargetBatch};
    use tch::{Device, Kind};

    /// The method on an MLP 4 → 8 → 8 (layers fc0, fc1, head) with the trainer's optimizers.
    fn build(cfg: &LayerTransferConfig) -> (nn::VarStore, Box<dyn Method>, dalab_train::Stepper) {
        tch::manual_seed(3);
        let vs = nn::VarStore::new(Device::Cpu);
        let env = dalab_conformance::env(&vs, &[8, 8], &["a"]);
        let m = LayerTransfer::build(cfg, &(vs.root() / "method"), env).unwrap();
        let mut st = dalab_train::TrainSettings::default();
        st.optim.lr = 0.1;
        let stepper = dalab_train::Stepper::new(&vs, m.as_ref(), &st, "layer-transfer").unwrap();
        (vs, m, stepper)
    }

    fn values(vs: &nn::VarStore, prefix: &str) -> Vec<(String, Vec<f32>)> {
        let mut v: Vec<(String, Vec<f32>)> = vs
            .variables()
            .into_iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, t)| (k, Vec::<f32>::try_from(t.flatten(0, -1)).unwrap()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Runs both stages for `steps` steps each; returns the variables of the new network right after the copy.
    fn run(
        vs: &nn::VarStore,
        m: &mut Box<dyn Method>,
        stepper: &mut dalab_train::Stepper,
        steps: usize,
    ) -> Vec<(String, Vec<f32>)> {
        let (xs, ys, xt) = dalab_conformance::synthetic_shift(32, 1);
        let yt = ys.roll([1], [0]);
        let l = LabelledTarget { x: xt.shallow_clone(), y: yt };
        let stages = m.stages();
        let mut after_copy = vec![];
        for stage in &stages {
            m.begin_stage(stage, vs).unwrap();
            if stage.name == "transfer" {
                after_copy = values(vs, "method.transfer.");
            }
            for i in 0..steps {
                let ctx = StepCtx {
                    progress: i as f64 / steps as f64,
                    iteration: i,
                    total_iterations: steps,
                    stage: stage.name,
                    device: Device::Cpu,
                };
                let (s, t) = (
                    SourceBatch { x: xs.shallow_clone(), y: ys.shallow_clone() },
                    TargetBatch { x: xt.shallow_clone() },
                );
                let batch = match stage.data {
                    StageData::Source => StageBatch::Source(&s),
                    _ => StageBatch::Target(&t),
                };
                stepper.iterate(m.as_mut(), stage, batch, Some(&l), &ctx, 1.0).unwrap();
            }
        }
        after_copy
    }

    #[test]
    fn copied_layers_equal_the_base_and_frozen_ones_keep_their_values_bit_for_bit() {
        let cfg = LayerTransferConfig { copy_layers: 2, fine_tune: false, base_iterations: 20, ..Default::default() };
        let (vs, mut m, mut stepper) = build(&cfg);
        assert_eq!(layers(&vs, "backbone.").unwrap(), ["fc0", "fc1", "head"]);
        let init_head = values(&vs, "method.transfer.head.");
        let after_copy = run(&vs, &mut m, &mut stepper, 20);
        // The copy: fc0 and fc1 of the new network are the trained base's; its head is still its own init.
        let base = values(&vs, "backbone.");
        let copied: Vec<_> = after_copy.iter().filter(|(k, _)| k.contains(".backbone.")).cloned().collect();
        assert_eq!(copied.len(), 4);
        for ((kb, vb), (kc, vc)) in base.iter().zip(&copied) {
            assert_eq!(kb.strip_prefix("backbone."), kc.strip_prefix("method.transfer.backbone."));
            assert_eq!(vb, vc, "{kc} equals the base's {kb}");
        }
        let head_after_copy: Vec<_> = after_copy.iter().filter(|(k, _)| k.contains(".head.")).cloned().collect();
        assert_eq!(head_after_copy, init_head, "the head is not copied with copy_layers = 2");
        // Frozen: 20 steps later the copied layers are unchanged bit for bit and have no gradient; the head moved.
        let now = values(&vs, "method.transfer.backbone.");
        assert_eq!(now, copied);
        for (k, t) in vs.variables() {
            if k.starts_with("method.transfer.backbone.") {
                assert!(!t.requires_grad() && !t.grad().defined(), "{k}");
            }
        }
        assert_ne!(values(&vs, "method.transfer.head."), init_head);
        // (`base`, read at the end, equals the copy made before the transfer stage: the base network is not
        // stepped there.)
    }

    #[test]
    fn fine_tuned_copies_move_and_the_target_base_learns_from_labels() {
        let cfg = LayerTransferConfig {
            copy_layers: 3,
            fine_tune: true,
            base: BaseTask::Target,
            base_iterations: 20,
            ..Default::default()
        };
        let (vs, mut m, mut stepper) = build(&cfg);
        let after_copy = run(&vs, &mut m, &mut stepper, 20);
        assert_eq!(after_copy.len(), 6, "fc0, fc1 and the head, weight and bias");
        assert_ne!(values(&vs, "method.transfer."), after_copy, "fine-tuned layers are trained");
        // Prediction uses the new network once transferring, and it has learnt the target's labels.
        let (_, _, xt) = dalab_conformance::synthetic_shift(32, 1);
        let (_, ys, _) = dalab_conformance::synthetic_shift(32, 1);
        let acc = tch::no_grad(|| m.predict(&xt)).argmax(-1, false).eq_tensor(&ys.roll([1], [0])).to_kind(Kind::Float);
        assert!(acc.mean(Kind::Float).double_value(&[]) > 0.6);
    }

    #[test]
    fn too_many_layers_and_the_unsupervised_setting_are_errors() {
        assert_eq!(LayerTransfer::SETTINGS, [Setting::Supervised, Setting::SemiSupervised]);
        let cfg = LayerTransferConfig { copy_layers: 4, ..Default::default() };
        let (vs, mut m, _) = build(&cfg);
        let stages = m.stages();
        let e = m.begin_stage(&stages[1], &vs).err().unwrap().to_string();
        assert_eq!(e, "methods.layer-transfer.copy_layers: 4, but the network has 3 layers (fc0, fc1, head)");
    }
}
