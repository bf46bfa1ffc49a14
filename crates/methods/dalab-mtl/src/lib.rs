//! Multi-task learning over the domains of a task: each source domain of a (multi-source) task `a+b+…→c` is a
//! labelled task with its own labels, and the target is one more task, with the labels `setting: supervised` (or
//! the k per class of `semi_supervised`) grants. All T tasks are learnt at once, from one batch of each per step.
//! Task t's loss L_t is the cross-entropy of its own classifier head; the loss stepped is a weighted sum.
//!
//! Sharing (`sharing`):
//! - `hard` (Caruana, "Multitask learning", 1997): one trunk, the experiment's backbone, and a head per task.
//! - `soft` (Duong, Cohn, Bird & Cook, ACL 2015): a tower per task (a copy of the backbone and its own head),
//!   tied by the penalty `soft_penalty · Σ_{i<j} ‖θ_i − θ_j‖²` over the towers' parameters.
//!
//! Task weights (`weighting`):
//! - `fixed`: L = Σ_t w_t L_t, w_t from `weights` (default 1 each, in task order). A weight of 0 leaves its task
//!   out (no forward pass): with every source at 0 the method is target-only training, bit for bit.
//! - `uncertainty` (Kendall, Gal & Cipolla, CVPR 2018, eq. 10 for a softmax likelihood): with s_t = log σ_t²
//!   learnt with the network (initialised at 0), L = Σ_t exp(−s_t) L_t + s_t / 2. At a fixed L_t the optimum is
//!   s_t = log(2 L_t): a task whose loss stays high is down-weighted.
//! - `gradnorm` (Chen, Badrinarayanan, Lee & Rabinovich, ICML 2018, eq. 1–2): learnt weights w_t, stepped on
//!   L_grad = Σ_t |G_t − Ḡ · r_t^α| where G_t = ‖∇_W w_t L_t‖ on the weights W of the last shared layer,
//!   Ḡ = mean_t G_t, r_t = L̃_t / mean(L̃), L̃_t = L_t / L_t(0) (the first step's losses), and Ḡ · r_t^α held
//!   constant; after each step the weights are renormalised to Σ_t w_t = T. The network steps on Σ_t w_t L_t.
//!   Needs `sharing: hard` (W is the trunk's last layer). Before the renormalisation each weight is floored at
//!   10⁻³: the paper does not say what happens when a step drives a weight below 0, which would turn its task's
//!   descent into ascent (on small problems one step of L_grad can).
//!
//! Tasks are in the task's order: the source domains, then the target (task T−1). The evaluator scores each source
//! domain with its own head (`accuracy/source/<domain>` in TensorBoard, `source_domains` in result.json) and the
//! target with the target's (`target`, `target_test`).

use dalab_core::{
    FeatureExtractor, Group, LabelledTarget, Method, Optimizers, Result, Scalars, Setting, Stage, StageBatch,
    StageData, StepCtx,
};
use dalab_nn::{ClassifierHead, HeadConfig};
use tch::{Kind, Tensor, nn};

dalab_core::method_config! {
    /// The `methods.mtl` options.
    pub struct MtlConfig {
        /// `hard` (one shared trunk) or `soft` (a tower per task, tied by an L2 penalty).
        sharing: Sharing = Sharing::Hard;
        /// The L2 penalty between towers (`sharing: soft`).
        soft_penalty: f64 = 1e-3, dalab_core::checks::non_negative;
        /// `fixed`, `uncertainty` (Kendall et al. 2018) or `gradnorm` (Chen et al. 2018).
        weighting: Weighting = Weighting::Fixed;
        /// The fixed weights, one per task in order (sources, then the target); empty = 1 each.
        weights: Vec<f64> = Vec::new(), each_weight;
        /// GradNorm's asymmetry α (the paper's recommended range is 0.5–3; 1.5 on NYUv2).
        gradnorm_alpha: f64 = 1.5, dalab_core::checks::non_negative;
        /// Each task's classifier head.
        head: HeadConfig = HeadConfig::default(), nested;
    }
}

/// Each weight finite and ≥ 0.
fn each_weight(key: &str, v: &[f64]) -> std::result::Result<(), String> {
    v.iter().enumerate().try_for_each(|(i, w)| dalab_core::checks::non_negative(&format!("{key}[{i}]"), w))
}

/// `methods.mtl.sharing`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sharing {
    Hard,
    Soft,
}

/// `methods.mtl.weighting`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Weighting {
    Fixed,
    Uncertainty,
    Gradnorm,
}

dalab_core::method_factory! {
    /// The registry entry.
    pub Mtl: "mtl",
        "multi-task learning over the task's domains: hard/soft sharing; fixed, uncertainty or GradNorm weights";
    settings: [Setting::Supervised, Setting::SemiSupervised];
    groups: ["net", "weighting"];
    build(cfg: &MtlConfig, vs, env) {
        let k = env.source_domains.len();
        let t = k + 1;
        if !cfg.weights.is_empty() && cfg.weights.len() != t {
            return Err(dalab_core::Error::Other(format!(
                "methods.mtl.weights: {} weights for {t} tasks ({}, then the target)",
                cfg.weights.len(),
                env.source_domains.join(", ")
            )));
        }
        if cfg.weighting == Weighting::Gradnorm && cfg.sharing == Sharing::Soft {
            return Err(dalab_core::Error::Other(
                "methods.mtl.weighting: `gradnorm` needs `sharing: hard` (it balances the gradients on the last \
                 shared layer)"
                    .into(),
            ));
        }
        let dim = env.backbone.out_dim();
        // The target's head first: with the sources weighted 0 the variables draw the same numbers as
        // target-only's (backbone, then head).
        let target_head = ClassifierHead::new(&(vs / "head"), dim, env.num_classes, &cfg.head);
        let source_heads = (0..k)
            .map(|j| ClassifierHead::new(&(vs / "source_heads" / j), dim, env.num_classes, &cfg.head))
            .collect();
        let towers = match cfg.sharing {
            Sharing::Hard => Vec::new(),
            Sharing::Soft => (0..k).map(|j| (env.make_backbone)(&(vs / "towers" / j))).collect::<Result<Vec<_>>>()?,
        };
        let w = vs / "weighting";
        let (log_var, weights, initial_loss) = match cfg.weighting {
            Weighting::Fixed => (None, None, None),
            Weighting::Uncertainty => (Some(w.zeros("log_var", &[t as i64])), None, None),
            Weighting::Gradnorm => {
                (None, Some(w.ones("weights", &[t as i64])), Some(w.zeros_no_train("initial_loss", &[t as i64])))
            }
        };
        Ok(Box::new(Model {
            trunk: env.backbone,
            towers,
            target_head,
            source_heads,
            names: env.source_domains.iter().cloned().chain(std::iter::once("target".to_string())).collect(),
            log_var,
            weights,
            initial_loss,
            tower_params: Vec::new(),
            shared_layer: None,
            cfg: cfg.clone(),
        }))
    }
}

/// GradNorm's least weight (see the module comment).
const WEIGHT_FLOOR: f64 = 1e-3;

struct Model {
    /// The shared trunk (hard) or the target's tower (soft): the experiment's backbone.
    trunk: Box<dyn FeatureExtractor>,
    /// The sources' towers (soft sharing only).
    towers: Vec<Box<dyn FeatureExtractor>>,
    target_head: ClassifierHead,
    source_heads: Vec<ClassifierHead>,
    /// Task names (the source domains, then `target`), for the logged scalars.
    names: Vec<String>,
    log_var: Option<Tensor>,
    weights: Option<Tensor>,
    initial_loss: Option<Tensor>,
    /// Each tower's parameters (target's first), matched by name (soft sharing; filled by `begin_stage`).
    tower_params: Vec<Vec<Tensor>>,
    /// The last shared layer's weight (GradNorm's W; filled by `begin_stage`).
    shared_layer: Option<Tensor>,
    cfg: MtlConfig,
}

impl Model {
    fn tasks(&self) -> usize {
        self.names.len()
    }

    /// The encoder and head of task `t` (the target is the last).
    fn net(&self, t: usize) -> (&dyn FeatureExtractor, &ClassifierHead) {
        let k = self.source_heads.len();
        let head = if t == k { &self.target_head } else { &self.source_heads[t] };
        let enc = if self.towers.is_empty() || t == k { self.trunk.as_ref() } else { self.towers[t].as_ref() };
        (enc, head)
    }

    fn logits(&self, t: usize, x: &Tensor, train: bool) -> Tensor {
        let (enc, head) = self.net(t);
        head.forward_t(&enc.forward_t(x, train), train).1
    }

    /// `soft_penalty · Σ_{i<j} ‖θ_i − θ_j‖²` over the towers.
    fn soft_penalty(&self) -> Option<Tensor> {
        if self.tower_params.len() < 2 || self.cfg.soft_penalty == 0.0 {
            return None;
        }
        let mut total: Option<Tensor> = None;
        for i in 0..self.tower_params.len() {
            for j in i + 1..self.tower_params.len() {
                for (a, b) in self.tower_params[i].iter().zip(&self.tower_params[j]) {
                    let d = (a - b).square().sum(Kind::Float);
                    total = Some(match total {
                        None => d,
                        Some(s) => s + d,
                    });
                }
            }
        }
        total.map(|s| s * self.cfg.soft_penalty)
    }

    /// GradNorm's step of the weights and the network (see the module comment).
    fn gradnorm_step(
        &mut self,
        losses: &[Tensor],
        opt: &mut dyn Optimizers,
        out: &mut Scalars,
    ) -> Result<dalab_core::Scalar> {
        let (w, l0) = (self.weights.as_ref().expect("gradnorm"), self.initial_loss.as_ref().expect("gradnorm"));
        let shared = self.shared_layer.as_ref().ok_or_else(|| {
            dalab_core::Error::Other("mtl: gradnorm found no shared layer (begin_stage was not called)".into())
        })?;
        let l = Tensor::stack(&losses.iter().map(|x| x.detach()).collect::<Vec<_>>(), 0);
        if l0.sum(Kind::Float).double_value(&[]) == 0.0 {
            tch::no_grad(|| l0.shallow_clone().copy_(&l));
        }
        // ‖∇_W L_t‖ for each task (constants of L_grad: G_t = w_t ‖∇_W L_t‖).
        let norms: Vec<Tensor> = losses
            .iter()
            .map(|lt| Ok(Tensor::f_run_backward(&[lt], &[shared], true, false)?[0].norm().detach()))
            .collect::<Result<_>>()?;
        let g = w * Tensor::stack(&norms, 0);
        let ratio = &l / l0;
        let r = &ratio / ratio.mean(Kind::Float);
        let target = (g.mean(Kind::Float) * r.pow_tensor_scalar(self.cfg.gradnorm_alpha)).detach();
        let l_grad = (&g - target).abs().sum(Kind::Float);
        let total = (w.detach() * Tensor::stack(losses, 0)).sum(Kind::Float);
        let v = opt.backward_step("loss", &total, &["net"])?;
        let vg = opt.backward_step("loss/gradnorm", &l_grad, &["weighting"])?;
        let t = self.tasks() as f64;
        tch::no_grad(|| {
            let floored = w.clamp_min(WEIGHT_FLOOR);
            let renorm = &floored * (t / floored.sum(Kind::Float));
            w.shallow_clone().copy_(&renorm)
        });
        out.push(("loss/gradnorm".into(), vg));
        out.extend(self.names.iter().enumerate().map(|(i, n)| (format!("weight/{n}"), w.get(i as i64).into())));
        Ok(v)
    }
}

impl Method for Model {
    fn stages(&self) -> Vec<Stage> {
        vec![Stage { name: "train", iterations: None, data: StageData::Sources, groups: Vec::new() }]
    }

    fn groups(&self) -> Vec<Group> {
        vec![
            Group::new("net", &["backbone.", "method.head.", "method.source_heads.", "method.towers."]),
            Group::new("weighting", &["method.weighting."]),
        ]
    }

    /// Finds what the penalties read from the VarStore: the towers' parameters (soft) and the last shared layer
    /// (GradNorm).
    fn begin_stage(&mut self, _stage: &Stage, vars: &nn::VarStore) -> Result<()> {
        let all = vars.variables();
        let params = |prefix: &str| {
            let mut v: Vec<(&str, Tensor)> =
                all.iter().filter_map(|(k, t)| k.strip_prefix(prefix).map(|s| (s, t.shallow_clone()))).collect();
            v.sort_by(|a, b| a.0.cmp(b.0));
            v.into_iter().map(|(_, t)| t).collect::<Vec<_>>()
        };
        if !self.towers.is_empty() {
            self.tower_params = std::iter::once(params("backbone."))
                .chain((0..self.towers.len()).map(|j| params(&format!("method.towers.{j}."))))
                .collect();
        }
        if self.weights.is_some() {
            let layers = dalab_nn::backbone_layers(vars, "backbone.")?;
            let last = layers.last().ok_or_else(|| {
                dalab_core::Error::Other("methods.mtl.weighting: gradnorm needs a backbone with layers".into())
            })?;
            self.shared_layer = all.get(&format!("backbone.{last}.weight")).map(Tensor::shallow_clone);
        }
        Ok(())
    }

    fn train_step(&mut self, _batch: StageBatch<'_>, ctx: &StepCtx, _opt: &mut dyn Optimizers) -> Result<Scalars> {
        Err(dalab_core::labels_not_granted("mtl", ctx))
    }

    fn train_step_labelled(
        &mut self,
        batch: StageBatch<'_>,
        l: &LabelledTarget,
        ctx: &StepCtx,
        opt: &mut dyn Optimizers,
    ) -> Result<Scalars> {
        let StageBatch::Sources(sources) = batch else {
            return Err(dalab_core::Error::Other(format!("stage `{}`: mtl needs one batch per source", ctx.stage)));
        };
        let t = self.tasks();
        let fixed = |i: usize| self.cfg.weights.get(i).copied().unwrap_or(1.0);
        // The tasks to train: all but those a fixed weight of 0 leaves out.
        let active: Vec<usize> = (0..t).filter(|&i| self.cfg.weighting != Weighting::Fixed || fixed(i) > 0.0).collect();
        let mut losses = Vec::with_capacity(active.len());
        for &i in &active {
            let (x, y) = if i < sources.len() { (&sources[i].x, &sources[i].y) } else { (&l.x, &l.y) };
            losses.push(self.logits(i, x, true).cross_entropy_for_logits(y));
        }
        let mut out: Scalars = Vec::new();
        for (&i, li) in active.iter().zip(&losses) {
            out.push((format!("loss/task/{}", self.names[i]), li.into()));
        }
        let total = match self.cfg.weighting {
            Weighting::Gradnorm => {
                let v = self.gradnorm_step(&losses, opt, &mut out)?;
                out.insert(0, ("loss/total".into(), v));
                return Ok(out);
            }
            Weighting::Fixed => {
                let mut total = active.iter().zip(&losses).map(|(&i, li)| li * fixed(i)).reduce(|a, b| a + b);
                if let Some(p) = self.soft_penalty() {
                    total = total.map(|s| s + p);
                }
                total
            }
            Weighting::Uncertainty => {
                let s = self.log_var.as_ref().expect("uncertainty");
                let mut total = losses
                    .iter()
                    .enumerate()
                    .map(|(i, li)| s.get(i as i64).neg().exp() * li + s.get(i as i64) * 0.5)
                    .reduce(|a, b| a + b);
                if let Some(p) = self.soft_penalty() {
                    total = total.map(|x| x + p);
                }
                out.extend(
                    self.names.iter().enumerate().map(|(i, n)| (format!("log_var/{n}"), s.get(i as i64).into())),
                );
                total
            }
        };
        let total = total.ok_or_else(|| {
            dalab_core::Error::Other("methods.mtl.weights: every task has weight 0, nothing to train".into())
        })?;
        let v = opt.backward_step("loss", &total, &[])?;
        out.insert(0, ("loss/total".into(), v));
        Ok(out)
    }

    fn predict(&self, x: &Tensor) -> Tensor {
        self.logits(self.tasks() - 1, x, false)
    }

    fn features(&self, x: &Tensor) -> Tensor {
        let (enc, head) = self.net(self.tasks() - 1);
        head.forward_t(&enc.forward_t(x, false), false).0
    }

    fn task_heads(&self) -> bool {
        true
    }

    fn predict_task(&self, x: &Tensor, task: usize) -> Tensor {
        self.logits(task.min(self.tasks() - 1), x, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dalab_core::{MethodFactory, SourceBatch};
    use tch::Device;

    /// `M` on an MLP 4 → 8 → 8 with `sources` source domains, and the trainer's optimizers (SGD, lr `lr`).
    fn build<M: MethodFactory>(
        cfg: &M::Config,
        sources: usize,
        lr: f64,
    ) -> (nn::VarStore, Box<dyn Method>, dalab_train::Stepper) {
        tch::set_num_threads(1);
        tch::manual_seed(3);
        let vs = nn::VarStore::new(Device::Cpu);
        let names: Vec<String> = (0..sources).map(|j| format!("s{j}")).collect();
        let env = dalab_conformance::env(&vs, &[8, 8], &names.iter().map(String::as_str).collect::<Vec<_>>());
        let m = M::build(cfg, &(vs.root() / "method"), env).unwrap();
        let mut st = dalab_train::TrainSettings::default();
        st.optim.lr = lr;
        let stepper = dalab_train::Stepper::new(&vs, m.as_ref(), &st, M::NAME).unwrap();
        (vs, m, stepper)
    }

    /// The two-task data: source 0 is the synthetic shift's source (easy), the target its target with labels
    /// `labelled_y` (the labels the setting grants).
    fn data(labelled_y: Option<Tensor>) -> (SourceBatch, LabelledTarget) {
        let (xs, ys, xt) = dalab_conformance::synthetic_shift(60, 1);
        let yt = labelled_y.unwrap_or_else(|| ys.shallow_clone());
        (SourceBatch { x: xs, y: ys }, LabelledTarget { x: xt, y: yt })
    }

    /// Labels that the inputs do not predict (seeded): the noisy task of the weighting tests.
    fn random_labels() -> Tensor {
        tch::manual_seed(11);
        Tensor::randint(dalab_conformance::CLASSES, [60], (Kind::Int64, Device::Cpu))
    }

    /// Runs `steps` full-batch steps of the method's stage; returns the last step's scalars.
    fn train(
        m: &mut Box<dyn Method>,
        vs: &nn::VarStore,
        st: &mut dalab_train::Stepper,
        steps: usize,
        labelled_y: Option<Tensor>,
    ) -> Scalars {
        let (s, l) = data(labelled_y);
        let stage = m.stages().remove(0);
        m.begin_stage(&stage, vs).unwrap();
        let mut out = Vec::new();
        for i in 0..steps {
            let ctx = StepCtx {
                progress: 0.0,
                iteration: i,
                total_iterations: steps,
                stage: stage.name,
                device: Device::Cpu,
            };
            let batch = StageBatch::Sources(std::slice::from_ref(&s));
            out = st.iterate(m.as_mut(), &stage, batch, Some(&l), &ctx, 1.0).unwrap();
        }
        out
    }

    fn scalar(s: &Scalars, name: &str) -> f64 {
        s.iter().find(|(k, _)| k == name).unwrap_or_else(|| panic!("no scalar {name} in {s:?}")).1.value()
    }

    /// MTL with the source weighted 0 is single-task training: target-only with the same seed, bit for bit.
    #[test]
    fn one_task_equals_single_task_training() {
        let cfg = MtlConfig { weights: vec![0.0, 1.0], ..Default::default() };
        let (vs, mut m, mut st) = build::<Mtl>(&cfg, 1, 0.1);
        train(&mut m, &vs, &mut st, 25, None);
        let (vs2, mut t, mut st2) = build::<dalab_target_only::TargetOnly>(&Default::default(), 1, 0.1);
        let (_, l) = data(None);
        let stage = t.stages().remove(0);
        let (xs, ys, xt) = dalab_conformance::synthetic_shift(60, 1);
        let both = dalab_core::DaBatch { source_x: xs, source_y: ys, target_x: xt };
        for i in 0..25 {
            let ctx =
                StepCtx { progress: 0.0, iteration: i, total_iterations: 25, stage: stage.name, device: Device::Cpu };
            st2.iterate(t.as_mut(), &stage, StageBatch::Both(&both), Some(&l), &ctx, 1.0).unwrap();
        }
        let a = Vec::<f32>::try_from(tch::no_grad(|| m.predict(&l.x)).flatten(0, -1)).unwrap();
        let b = Vec::<f32>::try_from(tch::no_grad(|| t.predict(&l.x)).flatten(0, -1)).unwrap();
        assert_eq!(a, b, "target logits equal bit for bit");
        let trunk = |v: &nn::VarStore| {
            let mut x: Vec<(String, Vec<f32>)> = v
                .variables()
                .into_iter()
                .filter(|(k, _)| k.starts_with("backbone."))
                .map(|(k, t)| (k, Vec::<f32>::try_from(t.flatten(0, -1)).unwrap()))
                .collect();
            x.sort_by(|p, q| p.0.cmp(&q.0));
            x
        };
        assert_eq!(trunk(&vs), trunk(&vs2));
        // The source head got no gradient at all (its task is left out).
        for (k, v) in vs.variables() {
            if k.starts_with("method.source_heads.") {
                assert!(!v.grad().defined(), "{k}");
            }
        }
    }

    /// Kendall et al.'s log-variances: the easy task's falls below the noisy task's, which settles near its
    /// optimum log(2 L) for the noisy task's loss L.
    #[test]
    fn uncertainty_weighting_down_weights_the_noisy_task() {
        let cfg = MtlConfig { weighting: Weighting::Uncertainty, ..Default::default() };
        let (vs, mut m, mut st) = build::<Mtl>(&cfg, 1, 0.05);
        let out = train(&mut m, &vs, &mut st, 150, Some(random_labels()));
        let (s_easy, s_noisy) = (scalar(&out, "log_var/s0"), scalar(&out, "log_var/target"));
        let l_noisy = scalar(&out, "loss/task/target");
        assert!(s_easy < -0.5, "the easy task's log-variance falls: {s_easy}");
        assert!(s_noisy > s_easy + 0.5, "{s_noisy} vs {s_easy}");
        assert!((s_noisy - (2.0 * l_noisy).ln()).abs() < 0.15, "s {s_noisy}, log(2L) {}", (2.0 * l_noisy).ln());
    }

    /// GradNorm's weights sum to T after every step and move to the task that learns slower (the noisy one).
    #[test]
    fn gradnorm_weights_sum_to_t_and_favour_the_slower_task() {
        let cfg = MtlConfig { weighting: Weighting::Gradnorm, ..Default::default() };
        let (vs, mut m, mut st) = build::<Mtl>(&cfg, 1, 0.05);
        let out = train(&mut m, &vs, &mut st, 150, Some(random_labels()));
        let (w_easy, w_noisy) = (scalar(&out, "weight/s0"), scalar(&out, "weight/target"));
        assert!((w_easy + w_noisy - 2.0).abs() < 1e-5, "{w_easy} + {w_noisy}");
        assert!(w_noisy > w_easy, "the slower task gets the larger weight: {w_noisy} vs {w_easy}");
        let (_, l) = data(None);
        assert!(m.predict(&l.x).size() == [60, dalab_conformance::CLASSES]);
    }

    /// Soft sharing: the L2 penalty pulls the towers together (distance after training far below the unpenalised
    /// run's); each task predicts with its own tower and head.
    #[test]
    fn soft_sharing_penalty_ties_the_towers() {
        let distance = |penalty: f64| {
            let cfg = MtlConfig { sharing: Sharing::Soft, soft_penalty: penalty, ..Default::default() };
            let (vs, mut m, mut st) = build::<Mtl>(&cfg, 1, 0.05);
            train(&mut m, &vs, &mut st, 60, None);
            let v = vs.variables();
            let mut d = 0.0;
            for (k, t) in &v {
                if let Some(rest) = k.strip_prefix("backbone.") {
                    d += (t - &v[&format!("method.towers.0.{rest}")]).square().sum(Kind::Float).double_value(&[]);
                }
            }
            d
        };
        let (free, tied) = (distance(0.0), distance(1.0));
        assert!(tied < 0.2 * free, "tied {tied}, free {free}");
    }

    #[test]
    fn mismatched_weights_and_soft_gradnorm_are_errors() {
        let e = |cfg: MtlConfig| {
            tch::manual_seed(0);
            let vs = nn::VarStore::new(Device::Cpu);
            let env = dalab_conformance::env(&vs, &[8], &["dvd", "kitchen"]);
            Mtl::build(&cfg, &(vs.root() / "method"), env).err().unwrap().to_string()
        };
        assert_eq!(
            e(MtlConfig { weights: vec![1.0, 1.0], ..Default::default() }),
            "methods.mtl.weights: 2 weights for 3 tasks (dvd, kitchen, then the target)"
        );
        assert!(
            e(MtlConfig { sharing: Sharing::Soft, weighting: Weighting::Gradnorm, ..Default::default() })
                .contains("`gradnorm` needs `sharing: hard`")
        );
        let bad = MtlConfig { weights: vec![1.0, -1.0], ..Default::default() };
        assert_eq!(
            dalab_core::Validate::validate(&bad).unwrap_err(),
            "weights[1]: must be a finite number >= 0, got -1"
        );
    }
}
