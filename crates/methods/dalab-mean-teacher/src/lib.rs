//! Self-ensembling for domain adaptation (French, Mackiewicz & Fisher, ICLR 2018): the mean teacher of Tarvainen &
//! Valpola (NeurIPS 2017) with the source as the labelled set and the target as the unlabelled one.
//!
//! A student (the backbone and a [`ClassifierHead`]) and a teacher of the same architecture whose weights are the
//! exponential moving average of the student's. Each iteration, with every input noised independently
//! (`x + N(0, σ²)`; dropout in the head, if any, is noise too; both networks in train mode):
//!
//! `L = CE(ℓ_s(x̃_s), y_s) + w · mean_i m_i · mean_k (p_s(x̃_t)_ik − p_t(x̃'_t)_ik)²`
//!
//! (the student's softmax `p_s` against the teacher's `p_t`, detached, on two noisings of the same target batch;
//! the confidence mask `m_i = [max_k p_t(x̃'_t)_ik > confidence_threshold]`, all ones for a threshold of 0). After
//! the student's optimizer step, `θ_teacher ← α θ_teacher + (1 − α) θ_student` for every parameter; the teacher
//! starts as a copy of the student (`begin_stage`), its batch-norm statistics (if any) come from its own forward
//! passes (French et al.'s `WeightEMA`). The teacher's variables (`method.teacher.*`) are non-trainable VarStore
//! variables: no optimizer group holds them, checkpoints and saved models do. `predict` and `features` are the
//! teacher's (French et al. report the teacher).
//!
//! Defaults (French et al.'s code, `experiment_domainadapt_meanteacher.py`): w = 3 (`unsup_weight`), α = 0.99
//! (`teacher_alpha`), threshold 0.968 (`confidence_thresh` 0.96837722), σ = 0.1 (`gaussian_noise_std`). They train
//! with Adam, lr 1e-3 (`optim: {kind: adam, lr: 0.001}`).

use dalab_core::{Error, FeatureExtractor, Method, Optimizers, Result, Scalars, StageBatch, StepCtx};
use dalab_nn::{ClassifierHead, HeadConfig};
use tch::{Kind, Tensor, nn};

dalab_core::method_config! {
    /// The `methods.mean-teacher` options.
    pub struct MeanTeacherConfig {
        /// σ of the Gaussian noise added to every input (0 = none).
        noise_std: f64 = 0.1, non_negative;
        /// The student's (and the teacher's) head.
        head: HeadConfig = HeadConfig::default(), nested;
        /// w: weight of the consistency loss.
        consistency_weight: f64 = 3.0, non_negative;
        /// Only target samples whose teacher confidence exceeds this count in the consistency loss (0 = all).
        confidence_threshold: f64 = 0.968, fraction;
        /// α: the teacher's EMA decay.
        ema_decay: f64 = 0.99, fraction;
    }
}

dalab_core::method_factory! {
    /// The registry entry.
    pub MeanTeacher: "mean-teacher", "self-ensembling: consistency with an EMA teacher (French et al. 2018)";
    build(cfg: &MeanTeacherConfig, vs, env) {
        let (d, k) = (env.backbone.out_dim(), env.num_classes);
        let head = ClassifierHead::new(&(vs / "head"), d, k, &cfg.head);
        // The teacher: the same architecture built in a scratch store, its variables then added under `teacher`
        // as non-trainable ones (the same tensors, so the teacher's modules use them).
        let scratch = nn::VarStore::new(vs.device());
        let t_backbone = (env.make_backbone)(&(scratch.root() / "backbone"))?;
        let t_head = ClassifierHead::new(&(scratch.root() / "head"), d, k, &cfg.head);
        let prefix = vs.components().collect::<Vec<_>>().join(".");
        let mut names = Vec::new();
        for (name, t) in scratch.variables() {
            let parts: Vec<&str> = name.split('.').collect();
            let (last, dirs) = parts.split_last().expect("a variable has a name");
            let student = if name.starts_with("backbone.") { name.clone() } else { format!("{prefix}.{name}") };
            names.push((format!("{prefix}.teacher.{name}"), student, t.requires_grad()));
            let _ = dirs.iter().fold(vs / "teacher", |p, c| p / *c).add(last, t.set_requires_grad(false), false);
        }
        names.sort();
        let student = (env.backbone, head);
        Ok(Box::new(Model { student, teacher: (t_backbone, t_head), names, params: Vec::new(), cfg: cfg.clone() }))
    }
}

/// French et al.'s consistency loss: `mean_i m_i · mean_k (student_ik − teacher_ik)²` over softmax outputs, with
/// `m_i = [max_k teacher_ik > threshold]`. Also returns the fraction of samples in the mask.
pub fn consistency(student: &Tensor, teacher: &Tensor, threshold: f64) -> (Tensor, Tensor) {
    let k = student.kind();
    let mask = teacher.max_dim(1, false).0.gt(threshold).to_kind(k);
    let d = (student - teacher).square().mean_dim(1, false, k);
    ((d * &mask).mean(k), mask.mean(Kind::Float))
}

type Net = (Box<dyn FeatureExtractor>, ClassifierHead);

struct Model {
    student: Net,
    teacher: Net,
    /// `(teacher variable, student variable, is a parameter)`, by VarStore name.
    names: Vec<(String, String, bool)>,
    /// The `(teacher, student)` parameter pairs the EMA updates, looked up by `begin_stage`.
    params: Vec<(Tensor, Tensor)>,
    cfg: MeanTeacherConfig,
}

impl Model {
    fn noised(&self, x: &Tensor) -> Tensor {
        match self.cfg.noise_std {
            0.0 => x.shallow_clone(),
            s => Tensor::randn(x.size(), (Kind::Float, x.device())) * s + x,
        }
    }
}

impl Method for Model {
    /// Looks up the variable pairs and starts the teacher as a copy of the student.
    fn begin_stage(&mut self, _stage: &dalab_core::Stage, vars: &nn::VarStore) -> Result<()> {
        let all = vars.variables();
        let get =
            |n: &str| all.get(n).map(Tensor::shallow_clone).ok_or_else(|| Error::Other(format!("no variable `{n}`")));
        self.params.clear();
        for (t, s, param) in &self.names {
            let (t, s) = (get(t)?, get(s)?);
            tch::no_grad(|| t.shallow_clone().copy_(&s));
            if *param {
                self.params.push((t, s));
            }
        }
        Ok(())
    }

    fn train_step(&mut self, batch: StageBatch<'_>, _ctx: &StepCtx, opt: &mut dyn Optimizers) -> Result<Scalars> {
        let StageBatch::Both(b) = batch else {
            return Err(dalab_core::Error::Other("mean-teacher: its one stage needs source and target batches".into()));
        };
        if self.params.is_empty() {
            return Err(Error::Other("mean-teacher: begin_stage must run before the first step".into()));
        }
        let (bb, head) = (&self.student.0, &self.student.1);
        let ((_, ls), (_, lt)) = head.forward_pair(bb.as_ref(), &self.noised(&b.source_x), &self.noised(&b.target_x));
        let (tb, th) = (&self.teacher.0, &self.teacher.1);
        let pt = tch::no_grad(|| {
            th.forward_t(&tb.forward_t(&self.noised(&b.target_x), true), true).1.softmax(-1, Kind::Float)
        });
        let cls = ls.cross_entropy_for_logits(&b.source_y);
        let (cons, mask) = consistency(&lt.softmax(-1, Kind::Float), &pt, self.cfg.confidence_threshold);
        let (c, u) = (cls.detach(), cons.detach());
        let total = opt.backward_step("loss", &(cls + cons * self.cfg.consistency_weight), &[])?;
        let a = self.cfg.ema_decay;
        tch::no_grad(|| {
            for (t, s) in &self.params {
                t.shallow_clone().copy_(&(t * a + s * (1.0 - a)));
            }
        });
        Ok(vec![
            ("loss/total".into(), total),
            ("loss/cls".into(), c.into()),
            ("loss/consistency".into(), u.into()),
            ("consistency/mask".into(), mask.into()),
        ])
    }

    fn predict(&self, x: &Tensor) -> Tensor {
        self.teacher.1.predict(self.teacher.0.as_ref(), x)
    }

    fn features(&self, x: &Tensor) -> Tensor {
        self.teacher.1.eval_features(self.teacher.0.as_ref(), x)
    }
}

#[cfg(test)]
dalab_conformance::method_tests!(MeanTeacher, MeanTeacherConfig { ema_decay: 1.0, ..Default::default() }
    => "ema_decay: must be in [0, 1), got 1");

#[cfg(test)]
mod tests {
    use super::*;
    use dalab_core::{DaBatch, Stage};
    use tch::Device;

    #[test]
    fn consistency_on_hand_made_probabilities() {
        let s = Tensor::from_slice(&[0.5f64, 0.5, 0.9, 0.1]).reshape([2, 2]);
        let t = Tensor::from_slice(&[0.6f64, 0.4, 0.98, 0.02]).reshape([2, 2]);
        // Row 0: ((0.1)² + (0.1)²)/2 = 0.01; row 1: ((0.08)² + (0.08)²)/2 = 0.0064.
        let (all, m) = consistency(&s, &t, 0.0);
        assert!((all.double_value(&[]) - (0.01 + 0.0064) / 2.0).abs() < 1e-12 && m.double_value(&[]) == 1.0);
        // Threshold 0.968: only row 1 (teacher confidence 0.98) counts; the mean is still over both rows.
        let (masked, m) = consistency(&s, &t, 0.968);
        assert!((masked.double_value(&[]) - 0.0064 / 2.0).abs() < 1e-12 && m.double_value(&[]) == 0.5);
    }

    /// The teacher is non-trainable, in `vs.variables()`, starts as the student, and after one step equals
    /// α·t + (1 − α)·s exactly, with s the student after its optimizer step.
    #[test]
    fn the_teacher_is_a_non_trainable_ema_of_the_student() {
        let cfg = MeanTeacherConfig::default();
        let (vs, mut m) = dalab_conformance::build::<MeanTeacher>(&cfg, 0);
        let vars = vs.variables();
        let teacher: Vec<&String> = vars.keys().filter(|k| k.starts_with("method.teacher.")).collect();
        let student = vars.keys().filter(|k| k.starts_with("backbone.") || k.starts_with("method.head.")).count();
        assert_eq!((teacher.len(), student), (4, 4)); // fc0 and the classifier, weight and bias each
        assert!(teacher.iter().all(|k| !vars[*k].requires_grad()));
        assert_eq!(vs.trainable_variables().len(), student);
        let mut stepper = dalab_train::Stepper::new(&vs, m.as_ref(), &dalab_conformance::settings(), "mt").unwrap();
        assert_eq!(stepper.opts.iter().map(|o| o.tensors().count()).sum::<usize>(), student);
        m.begin_stage(&Stage::main(), &vs).unwrap();
        let pair = |k: &str| {
            (vars[k].copy(), vars[&k.replacen("method.teacher.", "", 1).replacen("head.", "method.head.", 1)].copy())
        };
        let before: Vec<(String, (Tensor, Tensor))> = teacher.iter().map(|k| (k.to_string(), pair(k))).collect();
        for (k, (t, s)) in &before {
            assert!(t.equal(s), "{k} does not start as the student");
        }
        let (source_x, source_y, target_x) = dalab_conformance::synthetic_shift(24, 1);
        let b = DaBatch { source_x, source_y, target_x };
        stepper
            .iterate(m.as_mut(), &Stage::main(), StageBatch::Both(&b), None, &StepCtx::at(0, 1, Device::Cpu), 1.0)
            .unwrap();
        let a = cfg.ema_decay;
        for (k, (t0, s0)) in &before {
            let (t1, s1) = pair(k);
            assert!(!s1.equal(s0), "the student did not step");
            assert!(t1.equal(&(t0 * a + &s1 * (1.0 - a))), "{k} is not the EMA");
        }
    }
}
