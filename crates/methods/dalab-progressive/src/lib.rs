//! Progressive neural networks (Rusu, Rabinowitz, Desjardins, Soyer, Kirkpatrick, Kavukcuoglu, Pascanu & Hadsell,
//! "Progressive Neural Networks", arXiv:1606.04671, 2016) and the two baselines they are compared with, over the
//! sequence of a (multi-source) task `a+b+…→c`: the source domains in order, then the target, each a labelled task
//! learnt in its own stage (`task1`, `task2`, …).
//!
//! `mode`:
//! - `progressive`: one column per task (a copy of the experiment's MLP backbone and an output layer). When task
//!   k starts, the columns of tasks < k are frozen, and column k's layer i ≥ 1 receives lateral connections from
//!   layer i−1 of every earlier column (eq. 1 of the paper): h_i^(k) = f(W_i^(k) h_{i−1}^(k) + Σ_{j<k} U_i^(k:j)
//!   h_{i−1}^(j)); its output layer likewise from the earlier columns' last hidden layers. The laterals are linear
//!   maps (the paper's eq. 1; its adapters with a non-linearity and a dimensionality reduction are for large
//!   columns and not built here). Earlier tasks are predicted by their own, frozen columns: no forgetting, by
//!   construction.
//! - `finetune`: one network through the sequence, each task with its own output layer (the earlier ones kept
//!   and frozen): the network learnt on task k−1 is fine-tuned on task k, and the accuracy on the earlier tasks
//!   after each new one measures forgetting.
//! - `independent`: a fresh column per task, no laterals: every task trained from scratch.
//!
//! The source tasks' stages run `task_iterations` steps, the target's `train.iterations`. The target's labels
//! come from the setting (`supervised`, or `semi_supervised` for few labels). The evaluator scores each source
//! domain with its task's column and output (`source_domains` in result.json) at every evaluation, so the
//! evaluations at each stage's end give the accuracy on every earlier task after each new one.

use dalab_core::{
    FeatureExtractor, Group, LabelledTarget, Method, Optimizers, Result, Scalars, Setting, Stage, StageBatch,
    StageData, StepCtx, TASK_STAGES,
};
use tch::{Kind, Tensor, nn, nn::Module};

dalab_core::method_config! {
    /// The `methods.progressive` options.
    pub struct ProgressiveConfig {
        /// `progressive` (a column per task with laterals), `finetune` (one network fine-tuned through the
        /// sequence) or `independent` (a fresh column per task).
        mode: Mode = Mode::Progressive;
        /// Iterations of each source task's stage (the target's stage runs `train.iterations`).
        task_iterations: usize = 2000, dalab_core::checks::at_least_one, dalab_core::checks::at_most_iterations;
    }
}

/// `methods.progressive.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    Progressive,
    Finetune,
    Independent,
}

dalab_core::method_factory! {
    /// The registry entry.
    pub Progressive: "progressive",
        "progressive networks over a task sequence (Rusu et al. 2016), or fine-tuning / independent columns";
    settings: [Setting::Supervised, Setting::SemiSupervised];
    build(cfg: &ProgressiveConfig, vs, env) {
        let tasks = env.source_domains.len() + 1;
        if tasks > TASK_STAGES.len() {
            return Err(dalab_core::Error::Other(format!(
                "methods.progressive: {tasks} tasks, at most {} (one stage each)",
                TASK_STAGES.len()
            )));
        }
        // The columns' layer widths, from one forward pass of the backbone on a zero input.
        let mut shape = vec![1];
        shape.extend(&env.input_shape);
        let probe = Tensor::zeros(&shape, (Kind::Float, env.device));
        let widths: Vec<i64> = tch::no_grad(|| env.backbone.forward_layers(&probe, false, &mut |_| None))
            .filter(|a| !a.is_empty())
            .ok_or_else(|| {
                dalab_core::Error::Other(
                    "methods.progressive: the lateral connections need the backbone's layers: use \
                     `model.backbone.kind: mlp` with at least one hidden layer"
                        .into(),
                )
            })?
            .iter()
            .map(|a| a.size()[1])
            .collect();
        let n_columns = if cfg.mode == Mode::Finetune { 1 } else { tasks };
        let mut columns = vec![env.backbone];
        for c in 1..n_columns {
            columns.push((env.make_backbone)(&(vs / "columns" / c))?);
        }
        let last = *widths.last().expect("non-empty");
        let outputs =
            (0..tasks).map(|t| nn::linear(vs / "outputs" / t, last, env.num_classes, Default::default())).collect();
        // laterals[k][j]: into column k from column j < k, one map per hidden layer i ≥ 1, then one into the output.
        let no_bias = nn::LinearConfig { bias: false, ..Default::default() };
        let laterals = (0..tasks)
            .map(|k| {
                if cfg.mode != Mode::Progressive {
                    return Vec::new();
                }
                (0..k)
                    .map(|j| {
                        let p = vs / "laterals" / k / j;
                        let mut maps: Vec<nn::Linear> =
                            (1..widths.len()).map(|i| nn::linear(&p / i, widths[i - 1], widths[i], no_bias)).collect();
                        maps.push(nn::linear(&p / "out", last, env.num_classes, no_bias));
                        maps
                    })
                    .collect()
            })
            .collect();
        let stages = (0..tasks)
            .map(|t| {
                let source = t + 1 < tasks;
                Stage {
                    name: TASK_STAGES[t],
                    iterations: source.then_some(cfg.task_iterations),
                    data: if source { StageData::SourceDomain(t) } else { StageData::Target },
                    groups: Vec::new(),
                }
            })
            .collect();
        Ok(Box::new(Model { columns, outputs, laterals, stages, mode: cfg.mode, current: 0, tasks }))
    }
}

struct Model {
    /// Column 0 is the experiment's backbone (`backbone.`); `finetune` has only it.
    columns: Vec<Box<dyn FeatureExtractor>>,
    /// One output layer per task.
    outputs: Vec<nn::Linear>,
    /// `laterals[k][j][i]`: into layer i+1 of column k from layer i of column j (the last: into the output).
    laterals: Vec<Vec<Vec<nn::Linear>>>,
    stages: Vec<Stage>,
    mode: Mode,
    /// The task of the current stage.
    current: usize,
    tasks: usize,
}

impl Model {
    fn column_of(&self, task: usize) -> usize {
        if self.mode == Mode::Finetune { 0 } else { task }
    }

    /// Class logits of `task` (and its last hidden layer). The earlier columns a progressive column reads are
    /// evaluated in eval mode (they are frozen).
    fn forward(&self, x: &Tensor, task: usize, train: bool) -> (Tensor, Tensor) {
        let c = self.column_of(task);
        let lat = &self.laterals[task];
        // Activations of the columns this one reads (j < task), each with its own laterals.
        let mut acts: Vec<Vec<Tensor>> = Vec::with_capacity(lat.len());
        for j in 0..lat.len() {
            let a = self.column_acts(x, j, &acts, false);
            acts.push(a);
        }
        let own = self.column_acts(x, c, &acts, train);
        let h = own.last().expect("columns have layers").shallow_clone();
        let mut logits = self.outputs[task].forward(&h);
        for (j, maps) in lat.iter().enumerate() {
            logits += maps.last().expect("an output lateral").forward(acts[j].last().expect("layers"));
        }
        (logits, h)
    }

    /// Every layer's activation of column `c`, with the laterals from the earlier columns' activations `prev`.
    fn column_acts(&self, x: &Tensor, c: usize, prev: &[Vec<Tensor>], train: bool) -> Vec<Tensor> {
        let lat = self.laterals.get(c).map_or(&[][..], |v| &v[..]);
        let mut lateral = |i: usize| -> Option<Tensor> {
            if i == 0 {
                return None;
            }
            lat.iter()
                .enumerate()
                .filter(|(j, _)| *j < prev.len())
                .map(|(j, maps)| maps[i - 1].forward(&prev[j][i - 1]))
                .reduce(|a, b| a + b)
        };
        self.columns[c].forward_layers(x, train, &mut lateral).expect("the backbone's layers were checked at build")
    }
}

/// The VarStore prefixes of everything task `t` owns in `mode`.
fn owned(mode: Mode, t: usize) -> Vec<String> {
    let mut v = vec![format!("method.outputs.{t}.")];
    match mode {
        Mode::Finetune => {}
        _ if t == 0 => v.push("backbone.".into()),
        _ => v.push(format!("method.columns.{t}.")),
    }
    v.push(format!("method.laterals.{t}."));
    v
}

impl Method for Model {
    fn stages(&self) -> Vec<Stage> {
        self.stages.clone()
    }

    fn groups(&self) -> Vec<Group> {
        vec![Group::all()]
    }

    /// Task t's stage: everything the earlier tasks own is frozen (progressive, independent: their columns,
    /// outputs and laterals; finetune: their output layers; the shared network keeps training).
    fn begin_stage(&mut self, stage: &Stage, vars: &nn::VarStore) -> Result<()> {
        self.current = TASK_STAGES.iter().position(|s| *s == stage.name).unwrap_or(0).min(self.tasks - 1);
        let frozen: Vec<String> = (0..self.current).flat_map(|t| owned(self.mode, t)).collect();
        dalab_nn::freeze_prefixes(vars, &frozen.iter().map(String::as_str).collect::<Vec<_>>());
        Ok(())
    }

    fn train_step(&mut self, _batch: StageBatch<'_>, ctx: &StepCtx, _opt: &mut dyn Optimizers) -> Result<Scalars> {
        Err(dalab_core::labels_not_granted("progressive", ctx))
    }

    fn train_step_labelled(
        &mut self,
        batch: StageBatch<'_>,
        l: &LabelledTarget,
        ctx: &StepCtx,
        opt: &mut dyn Optimizers,
    ) -> Result<Scalars> {
        let t = self.current;
        let (x, y) = match batch {
            StageBatch::Source(b) if t + 1 < self.tasks => (&b.x, &b.y),
            _ if t + 1 == self.tasks => (&l.x, &l.y),
            _ => {
                return Err(dalab_core::Error::Other(format!(
                    "stage `{}`: progressive got a batch its stages never ask for",
                    ctx.stage
                )));
            }
        };
        let ce = self.forward(x, t, true).0.cross_entropy_for_logits(y);
        let name = format!("loss/{}", TASK_STAGES[t]);
        let v = opt.backward_step(&name, &ce, &[])?;
        Ok(vec![(name, v)])
    }

    fn predict(&self, x: &Tensor) -> Tensor {
        self.forward(x, self.current, false).0
    }

    fn features(&self, x: &Tensor) -> Tensor {
        self.forward(x, self.current, false).1
    }

    fn task_heads(&self) -> bool {
        true
    }

    fn predict_task(&self, x: &Tensor, task: usize) -> Tensor {
        self.forward(x, task.min(self.tasks - 1), false).0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dalab_core::{MethodFactory, SourceBatch, TargetBatch};
    use tch::Device;

    /// The method on MLP 4 → 8 → 8 columns over `sources` source tasks and the target.
    fn build(cfg: &ProgressiveConfig, sources: usize, hidden: &[i64]) -> Result<(nn::VarStore, Box<dyn Method>)> {
        tch::set_num_threads(1);
        tch::manual_seed(5);
        let vs = nn::VarStore::new(Device::Cpu);
        let names: Vec<String> = (0..sources).map(|j| format!("s{j}")).collect();
        let env = dalab_conformance::env(&vs, hidden, &names.iter().map(String::as_str).collect::<Vec<_>>());
        let m = Progressive::build(cfg, &(vs.root() / "method"), env)?;
        Ok((vs, m))
    }

    const MLP: &[i64] = &[8, 8];

    fn values(vs: &nn::VarStore, prefixes: &[String]) -> Vec<(String, Vec<f32>)> {
        let mut v: Vec<(String, Vec<f32>)> = vs
            .variables()
            .into_iter()
            .filter(|(k, _)| prefixes.iter().any(|p| k.starts_with(p.as_str())))
            .map(|(k, t)| (k, Vec::<f32>::try_from(t.flatten(0, -1)).unwrap()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Trains every stage `steps` steps on three tasks with different labellings of the synthetic inputs;
    /// returns the variables after each stage and the accuracy of task 0 (by its own output) after each stage.
    fn run(cfg: &ProgressiveConfig, steps: usize) -> (nn::VarStore, Vec<f64>) {
        let (vs, mut m) = build(cfg, 2, MLP).unwrap();
        let mut st = dalab_train::TrainSettings::default();
        st.optim.lr = 0.1;
        let mut stepper = dalab_train::Stepper::new(&vs, m.as_ref(), &st, "progressive").unwrap();
        let (x, y, xt) = dalab_conformance::synthetic_shift(48, 2);
        // Task 0: the classes; tasks 1 and 2: seeded random labellings of the same inputs (new features needed).
        tch::manual_seed(9);
        let random = || Tensor::randint(dalab_conformance::CLASSES, [48], (Kind::Int64, Device::Cpu));
        let labels = [y.shallow_clone(), random(), random()];
        let l = LabelledTarget { x: xt.shallow_clone(), y: labels[2].shallow_clone() };
        let mut acc0 = Vec::new();
        for stage in m.stages() {
            m.begin_stage(&stage, &vs).unwrap();
            let t = TASK_STAGES.iter().position(|s| *s == stage.name).unwrap();
            let (sb, tb) = (
                SourceBatch { x: x.shallow_clone(), y: labels[t].shallow_clone() },
                TargetBatch { x: xt.shallow_clone() },
            );
            for i in 0..steps {
                let ctx = StepCtx {
                    progress: 0.0,
                    iteration: i,
                    total_iterations: steps,
                    stage: stage.name,
                    device: Device::Cpu,
                };
                let batch =
                    if stage.data == StageData::Target { StageBatch::Target(&tb) } else { StageBatch::Source(&sb) };
                stepper.iterate(m.as_mut(), &stage, batch, Some(&l), &ctx, 1.0).unwrap();
            }
            let pred = tch::no_grad(|| m.predict_task(&x, 0)).argmax(-1, false);
            acc0.push(pred.eq_tensor(&labels[0]).to_kind(Kind::Float).mean(Kind::Float).double_value(&[]));
        }
        (vs, acc0)
    }

    /// Earlier columns are unchanged bit for bit after the next tasks train; their accuracy on task 0 stays; the
    /// laterals into the new columns learn.
    #[test]
    fn earlier_columns_are_unchanged_after_the_next_task() {
        let cfg = ProgressiveConfig { task_iterations: 40, ..Default::default() };
        let (vs, mut m) = build(&cfg, 2, MLP).unwrap();
        let stages = m.stages();
        assert_eq!(stages.iter().map(|s| s.name).collect::<Vec<_>>(), ["task1", "task2", "task3"]);
        assert_eq!(stages[1].data, StageData::SourceDomain(1));
        assert_eq!((stages[0].iterations, stages[2].iterations), (Some(40), None));
        m.begin_stage(&stages[0], &vs).unwrap();
        drop((vs, m));

        let (vs, acc0) = run(&cfg, 40);
        assert!(acc0[0] > 0.8, "task 0 is learnt: {acc0:?}");
        assert_eq!(acc0[1], acc0[0]);
        assert_eq!(acc0[2], acc0[0], "no forgetting");
        // Column 0 (backbone + output 0) is the same after task 3 as a fresh run stopped after task 1.
        let short = ProgressiveConfig { task_iterations: 40, ..Default::default() };
        let (vs1, mut m1) = build(&short, 2, MLP).unwrap();
        let mut st = dalab_train::TrainSettings::default();
        st.optim.lr = 0.1;
        let mut stepper = dalab_train::Stepper::new(&vs1, m1.as_ref(), &st, "progressive").unwrap();
        let (x, y, xt) = dalab_conformance::synthetic_shift(48, 2);
        let stage = m1.stages().remove(0);
        m1.begin_stage(&stage, &vs1).unwrap();
        let sb = SourceBatch { x: x.shallow_clone(), y: y.shallow_clone() };
        let l = LabelledTarget { x: xt, y: y.shallow_clone() };
        for i in 0..40 {
            let ctx =
                StepCtx { progress: 0.0, iteration: i, total_iterations: 40, stage: stage.name, device: Device::Cpu };
            stepper.iterate(m1.as_mut(), &stage, StageBatch::Source(&sb), Some(&l), &ctx, 1.0).unwrap();
        }
        let col0 = owned(Mode::Progressive, 0);
        assert_eq!(values(&vs, &col0), values(&vs1, &col0), "column 0 bit for bit");
        // Column 1 (frozen in task 3) is frozen; the laterals into column 2 moved from their initialisation.
        for (k, v) in vs.variables() {
            if k.starts_with("backbone.") || k.starts_with("method.columns.1.") || k.starts_with("method.laterals.1.") {
                assert!(!v.requires_grad(), "{k} frozen");
            }
        }
        let (vs0, _) = build(&cfg, 2, MLP).unwrap();
        let lat2 = vec!["method.laterals.2.".to_string()];
        assert_eq!(values(&vs, &lat2).len(), 4, "2 earlier columns × (1 hidden + 1 output) maps, no biases");
        assert_ne!(values(&vs, &lat2), values(&vs0, &lat2));
    }

    /// Fine-tuning one network through the sequence forgets task 0 (its output is kept but the network moves);
    /// independent columns do not.
    #[test]
    fn finetuning_forgets_and_independent_columns_do_not() {
        let (_, ft) = run(&ProgressiveConfig { mode: Mode::Finetune, task_iterations: 150 }, 150);
        assert!(ft[0] > 0.8 && ft[2] < ft[0] - 0.2, "forgetting: {ft:?}");
        let (vs, ind) = run(&ProgressiveConfig { mode: Mode::Independent, task_iterations: 60 }, 60);
        assert_eq!(ind[2], ind[0]);
        assert!(vs.variables().keys().all(|k| !k.starts_with("method.laterals.")));
    }

    #[test]
    fn a_backbone_without_layers_and_too_many_tasks_are_errors() {
        let e = build(&ProgressiveConfig::default(), 1, &[]).err().unwrap().to_string();
        assert!(e.contains("`model.backbone.kind: mlp` with at least one hidden layer"), "{e}");
        let e = build(&ProgressiveConfig::default(), 16, MLP).err().unwrap().to_string();
        assert_eq!(e, "methods.progressive: 17 tasks, at most 16 (one stage each)");
    }
}
