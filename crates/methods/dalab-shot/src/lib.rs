//! SHOT (Liang, Hu & Feng, ICML 2020): source hypothesis transfer, source-free domain adaptation.
//!
//! The model is the backbone, a bottleneck (Linear + batch norm, no ReLU: the authors' `feat_bootleneck` of type
//! `bn`) and a weight-normalised linear classifier (the hypothesis; `weight_norm(Linear)`, type `wn`). Two stages:
//!
//! 1. `source` (source batches only): everything minimises the label-smoothed cross-entropy
//!    `−Σ_k q_k log p_k`, `q = (1 − ε) onehot(y) + ε / K`, ε = `label_smoothing`.
//! 2. `adapt` (target batches only: this stage never sees the source): the classifier is frozen (the stage steps
//!    the group `features` alone) and the feature extractor minimises
//!    `L = L_ent − L_div + β · CE(ℓ(x_t), ŷ)`, with `L_ent` = mean over the batch of `H(p_i)`, `L_div` =
//!    `H(mean_i p_i)` (both `−Σ p log(p + ε)`, ε = 1e-5, as the authors' code) and ŷ the pseudo labels below.
//!
//! **Pseudo labels.** The authors label the whole target set at the start of every epoch, from the model of that
//! moment (eval mode): features `f̂ = [f, 1] / ‖[f, 1]‖`, centroids `c⁰_k = Σ_i p_ik f̂_i / Σ_i p_ik` over the
//! classes the classifier predicts at least once, labels by the nearest centroid (cosine distance), then one
//! refinement round: `c¹_k` = mean of the `f̂_i` labelled `k`, labels by the nearest `c¹` ([`cluster_labels`]).
//! A dalab method sees one batch at a time and keeps nothing outside its VarStore, so it runs the same rule on the
//! statistics of the target batches it is shown. Every iteration of `adapt`, on the target batch (eval mode, no
//! gradient, one extra forward pass — the authors' per-epoch labelling pass costs the same per sample):
//!
//! - it adds `Σ_i p_ik [f̂_i, 1]` and the argmax counts to sums over the current interval;
//! - every `pseudo_label_interval` iterations (and at the first) it sets `c⁰` from those sums (classes not predicted
//!   in the interval excluded) and clears them;
//! - it assigns the batch to the nearest of the latest `c⁰` and adds `Σ_i 1[a_i = k] [f̂_i, 1]` to refinement sums;
//!   at a refresh `c¹` = their means (classes assigned nothing excluded), and they are cleared;
//! - the batch's pseudo labels are its nearest `c¹`.
//!
//! Plain sums over the interval, not a moving average: at a refresh they are the authors' estimator over the samples
//! of the interval, with no momentum to choose. The sums and both centroid sets are non-trainable VarStore variables
//! (`method.pseudo.*`), so checkpoints and saved models hold them; `pseudo_label_interval` ≈ one target epoch
//! (`n_t / batch_size`) is the authors' schedule. Differences from the paper: (a) the centroids pool the batches of
//! the last interval, each seen by the model of its own iteration, rather than the whole target set under one model;
//! (b) the refinement's assignments of an interval are made against the `c⁰` of the previous refresh (but for the
//! refreshing batch itself): one pass over the data cannot assign to centroids it has not finished estimating;
//! (c) labels are computed per batch, from its current features against the frozen `c¹`, not stored per sample at
//! the start of the epoch; (d) the first interval's centroids come from the first batch alone. With
//! `pseudo_label_interval: 1` every batch is labelled by exactly the paper's rule applied to that batch (tested).
//!
//! Defaults (authors' code, `object/image_source.py`, `image_target.py`): bottleneck 256, ε = 0.1, β = 0.3
//! (`cls_par`); their optimiser is SGD (momentum 0.9, Nesterov, weight decay 1e-3), lr 0.01 with the backbone at
//! 0.1× and the schedule `(1 + 10 p)^−0.75`: `optim`, `model.backbone_lr_mult: 0.1`, `schedule` of the experiment.

use dalab_core::StepCtx;
use dalab_core::{Error, FeatureExtractor, Group, Method, Optimizers, Result, Scalars, Stage, StageBatch, StageData};
use tch::{Kind, Reduction, Tensor, nn, nn::Module, nn::ModuleT};

/// ε inside the logarithms of the entropies (the authors' `epsilon`).
const EPS: f64 = 1e-5;

dalab_core::method_config! {
    /// The `methods.shot` options.
    pub struct ShotConfig {
        /// Iterations of the source stage (ours; the authors train 20 source epochs on Office, 30 on digits). The
        /// adaptation stage runs `train.iterations`.
        source_iterations: usize = 5000, at_least_one, at_most_iterations;
        /// Width of the bottleneck (Linear + batch norm).
        bottleneck: usize = 256, at_least_one, at_most_width;
        /// ε of the label-smoothed source cross-entropy.
        label_smoothing: f64 = 0.1, fraction;
        /// β: weight of the pseudo-label cross-entropy.
        pseudo_label_weight: f64 = 0.3, non_negative;
        /// Iterations between refreshes of the centroids (ours; set it to about one target epoch).
        pseudo_label_interval: usize = 100, at_least_one, at_most_iterations;
    }
}

/// `(L_ent, L_div)` of target logits: the mean per-sample entropy and the entropy of the mean prediction (the
/// information maximisation loss is `L_ent − L_div`).
pub fn information_maximisation(logits: &Tensor) -> (Tensor, Tensor) {
    let k = logits.kind();
    let p = logits.softmax(-1, k);
    let ent = -(&p * (&p + EPS).log()).sum_dim_intlist(1, false, k).mean(k);
    let pm = p.mean_dim(0, false, k);
    let div = -(&pm * (&pm + EPS).log()).sum(k);
    (ent, div)
}

/// The authors' features for the cosine distance: `[f, 1] / ‖[f, 1]‖` per row.
pub fn normalise(f: &Tensor) -> Tensor {
    let a = Tensor::cat(&[f, &Tensor::ones([f.size()[0], 1], (f.kind(), f.device()))], 1);
    &a / a.norm_scalaropt_dim(2, [1], true)
}

/// `wᵀ [f̂, 1]`, `[K, D + 1]`: centroid numerators and, in the last column, the weights' sums.
fn sums(w: &Tensor, fh: &Tensor) -> Tensor {
    w.transpose(0, 1).matmul(&Tensor::cat(&[fh, &Tensor::ones([fh.size()[0], 1], (fh.kind(), fh.device()))], 1))
}

/// One-hot rows of labels `a` over `k` classes.
fn onehot(a: &Tensor, k: i64) -> Tensor {
    a.one_hot(k).to_kind(Kind::Float)
}

/// Centroids from [`sums`] (`Σ w f̂ / (1e-8 + Σ w)`, as the authors); the rows of classes not in `keep` are 0.
pub fn centroids(sums: &Tensor, keep: &Tensor) -> Tensor {
    let d = sums.size()[1] - 1;
    sums.narrow(1, 0, d) / (sums.narrow(1, d, 1) + 1e-8) * keep.unsqueeze(1).to_kind(sums.kind())
}

/// The nearest centroid (cosine distance) of each row of `fh`; a zero (excluded) centroid is never the nearest.
pub fn nearest(fh: &Tensor, c: &Tensor) -> Tensor {
    let norm = c.norm_scalaropt_dim(2, [1], false);
    let cos = fh.matmul(&c.transpose(0, 1)) / norm.clamp_min(1e-12);
    cos.masked_fill(&norm.eq(0.0).unsqueeze(0), f64::NEG_INFINITY).argmax(1, false)
}

/// The authors' labelling of one set from its softmax `p` `[n, K]` and normalised features `fh` `[n, D]`: soft
/// centroids over the predicted classes, nearest centroid, one refinement round.
pub fn cluster_labels(p: &Tensor, fh: &Tensor) -> Tensor {
    let k = p.size()[1];
    let predicted = onehot(&p.argmax(1, false), k).sum_dim_intlist(0, false, Kind::Float);
    let a = nearest(fh, &centroids(&sums(p, fh), &predicted.gt(0.0)));
    let hard = sums(&onehot(&a, k), fh);
    nearest(fh, &centroids(&hard, &hard.select(1, -1).gt(0.0)))
}

dalab_core::method_factory! {
    /// The registry entry.
    pub Shot: "shot", "source-free: information maximisation + clustered pseudo labels (Liang et al. 2020)";
    groups: ["features", "classifier"];
    build(cfg: &ShotConfig, vs, env) {
        let (b, k) = (cfg.bottleneck as i64, env.num_classes);
        let bottleneck = nn::linear(vs / "bottleneck" / "linear", env.backbone.out_dim(), b, Default::default());
        // PyTorch's `BatchNorm1d` init (weight 1; tch draws it in [0, 1)), as the official code's layer has it.
        let bn_cfg = nn::BatchNormConfig { ws_init: nn::Init::Const(1.0), ..Default::default() };
        let bn = nn::batch_norm1d(vs / "bottleneck" / "bn", b, bn_cfg);
        let classifier = WeightNorm::new(&(vs / "classifier"), b, k);
        let p = vs / "pseudo";
        let clusters = Clusters {
            sums: p.zeros_no_train("sums", &[2, k, b + 2]),
            predicted: p.zeros_no_train("predicted", &[k]),
            centroids: p.zeros_no_train("centroids", &[2, k, b + 1]),
            interval: cfg.pseudo_label_interval,
        };
        Ok(Box::new(Model { backbone: env.backbone, bottleneck, bn, classifier, clusters, cfg: cfg.clone() }))
    }
}

/// The streaming pseudo-labeller (see the crate documentation); its tensors are `method.pseudo.*` variables.
struct Clusters {
    /// `[2, K, D + 1]`: the soft and the refinement [`sums`] of the current interval.
    sums: Tensor,
    /// `[K]`: how often the classifier predicted each class in the current interval.
    predicted: Tensor,
    /// `[2, K, D]`: `c⁰` and `c¹` of the last refresh.
    centroids: Tensor,
    interval: usize,
}

impl Clusters {
    fn reset(&self) {
        for t in [&self.sums, &self.predicted, &self.centroids] {
            let _ = t.shallow_clone().zero_();
        }
    }

    /// The pseudo labels of a target batch (softmax `p`, normalised features `fh`) at iteration `it` of the stage.
    fn labels(&self, p: &Tensor, fh: &Tensor, it: usize) -> Tensor {
        let k = p.size()[1];
        let refresh = it.is_multiple_of(self.interval);
        let (mut soft, mut hard, mut predicted) = (self.sums.get(0), self.sums.get(1), self.predicted.shallow_clone());
        soft += sums(p, fh);
        predicted += onehot(&p.argmax(1, false), k).sum_dim_intlist(0, false, Kind::Float);
        if refresh {
            self.centroids.get(0).copy_(&centroids(&soft, &predicted.gt(0.0)));
            let _ = (soft.zero_(), predicted.zero_());
        }
        hard += sums(&onehot(&nearest(fh, &self.centroids.get(0)), k), fh);
        if refresh {
            self.centroids.get(1).copy_(&centroids(&hard, &hard.select(1, -1).gt(0.0)));
            let _ = hard.zero_();
        }
        nearest(fh, &self.centroids.get(1))
    }
}

/// `y = x (g · v / ‖v‖)ᵀ + b`, the norm per output row: PyTorch's `weight_norm(Linear, dim=0)`.
struct WeightNorm {
    v: Tensor,
    g: Tensor,
    b: Tensor,
}

impl WeightNorm {
    fn new(p: &nn::Path, d: i64, k: i64) -> Self {
        let v = p.var("weight_v", &[k, d], nn::init::DEFAULT_KAIMING_UNIFORM);
        let g = p.var_copy("weight_g", &tch::no_grad(|| v.norm_scalaropt_dim(2, [1], true)));
        Self { v, g, b: p.zeros("bias", &[k]) }
    }

    fn forward(&self, f: &Tensor) -> Tensor {
        let w = &self.g * &self.v / self.v.norm_scalaropt_dim(2, [1], true);
        f.matmul(&w.transpose(0, 1)) + &self.b
    }
}

struct Model {
    backbone: Box<dyn FeatureExtractor>,
    bottleneck: nn::Linear,
    bn: nn::BatchNorm,
    classifier: WeightNorm,
    clusters: Clusters,
    cfg: ShotConfig,
}

impl Model {
    fn features_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.bn.forward_t(&self.bottleneck.forward(&self.backbone.forward_t(x, train)), train)
    }
}

impl Method for Model {
    fn groups(&self) -> Vec<Group> {
        vec![
            Group::new("features", &["backbone.", "method.bottleneck."]),
            Group::new("classifier", &["method.classifier."]),
        ]
    }

    /// `source` steps every group on source batches; `adapt` only `features`, on target batches.
    fn stages(&self) -> Vec<Stage> {
        let source = Some(self.cfg.source_iterations);
        vec![
            Stage { name: "source", iterations: source, data: StageData::Source, groups: vec![] },
            Stage { name: "adapt", iterations: None, data: StageData::Target, groups: vec!["features"] },
        ]
    }

    fn begin_stage(&mut self, stage: &Stage, _vars: &nn::VarStore) -> Result<()> {
        if stage.name == "adapt" {
            tch::no_grad(|| self.clusters.reset());
        }
        Ok(())
    }

    fn train_step(&mut self, batch: StageBatch<'_>, ctx: &StepCtx, opt: &mut dyn Optimizers) -> Result<Scalars> {
        match batch {
            StageBatch::Source(b) => {
                let logits = self.classifier.forward(&self.features_t(&b.x, true));
                let ce =
                    logits.cross_entropy_loss::<Tensor>(&b.y, None, Reduction::Mean, -100, self.cfg.label_smoothing);
                Ok(vec![("loss/cls".into(), opt.backward_step("loss/cls", &ce, &[])?)])
            }
            StageBatch::Target(b) => {
                let labels = tch::no_grad(|| {
                    let f = self.features_t(&b.x, false);
                    let p = self.classifier.forward(&f).softmax(-1, Kind::Float);
                    self.clusters.labels(&p, &normalise(&f), ctx.iteration)
                });
                let logits = self.classifier.forward(&self.features_t(&b.x, true));
                let (ent, div) = information_maximisation(&logits);
                let pseudo = logits.cross_entropy_for_logits(&labels);
                let agree = logits.argmax(1, false).eq_tensor(&labels).to_kind(Kind::Float).mean(Kind::Float);
                let (e, d, ps) = (ent.detach(), div.detach(), pseudo.detach());
                let loss = ent - div + pseudo * self.cfg.pseudo_label_weight;
                let total = opt.backward_step("loss", &loss, &["features"])?;
                Ok(vec![
                    ("loss/total".into(), total),
                    ("loss/ent".into(), e.into()),
                    ("loss/div".into(), d.into()),
                    ("loss/pseudo".into(), ps.into()),
                    ("pseudo/agreement".into(), agree.into()),
                ])
            }
            StageBatch::Both(_) | StageBatch::Sources(_) => Err(Error::Other(format!(
                "stage `{}`: SHOT never sees the source and target together, nor the source domains apart",
                ctx.stage
            ))),
        }
    }

    fn predict(&self, x: &Tensor) -> Tensor {
        self.classifier.forward(&self.features_t(x, false))
    }

    /// The bottleneck output (eval mode).
    fn features(&self, x: &Tensor) -> Tensor {
        self.features_t(x, false)
    }
}

#[cfg(test)]
dalab_conformance::method_tests!(Shot, ShotConfig { label_smoothing: 1.0, ..Default::default() }
    => "label_smoothing: must be in [0, 1), got 1");

#[cfg(test)]
mod tests {
    use super::*;
    use dalab_core::MethodFactory;
    use tch::Device;

    fn rows(v: &[f64], n: i64) -> Tensor {
        Tensor::from_slice(v).reshape([n, -1]).to_kind(Kind::Float)
    }

    #[test]
    fn information_maximisation_on_hand_made_logits() {
        // softmax rows: uniform (1/3 each), (1/2, 1/4, 1/4) and (1/8, 1/8, 3/4).
        let logits = rows(&[0.0, 0.0, 0.0, 2f64.ln(), 0.0, 0.0, 0.0, 0.0, 6f64.ln()], 3);
        let p = [[1.0 / 3.0; 3], [0.5, 0.25, 0.25], [0.125, 0.125, 0.75]];
        let h = |q: &[f64]| -q.iter().map(|x| x * (x + EPS).ln()).sum::<f64>();
        let ent = p.iter().map(|q| h(q)).sum::<f64>() / 3.0;
        let mean: Vec<f64> = (0..3).map(|k| p.iter().map(|q| q[k]).sum::<f64>() / 3.0).collect();
        let (e, d) = information_maximisation(&logits);
        assert!((e.double_value(&[]) - ent).abs() < 1e-6, "{} vs {ent}", e.double_value(&[]));
        assert!((d.double_value(&[]) - h(&mean)).abs() < 1e-6);
        // Without ε the first row alone is ln 3.
        assert!((h(&p[0]) - 3f64.ln()).abs() < 1e-4);
    }

    /// Unit features at 0°, 60°, 80°, 90°; the classifier says class 0, 0, 0, 1 (class 2 is never the argmax).
    /// c⁰₀ ≈ 53.1°, c⁰₁ ≈ 78.0°; class 2 is excluded (its soft centroid, ≈ 59.6°, would take the 60° point), so
    /// the first assignment is 0, 0, 1, 1. Refinement: c¹₀ = 30° (0° and 60°), c¹₁ = 85° (80°, 90°): the 60° point
    /// is 25° from c¹₁ and 30° from c¹₀, so the labels are 0, 1, 1, 1.
    fn example() -> (Tensor, Tensor) {
        let fh: Vec<f64> =
            [0f64, 60.0, 80.0, 90.0].iter().flat_map(|a| [a.to_radians().cos(), a.to_radians().sin()]).collect();
        let p = rows(&[0.8, 0.1, 0.1, 0.8, 0.1, 0.1, 0.8, 0.1, 0.1, 0.3, 0.6, 0.1], 4);
        (p, rows(&fh, 4))
    }

    #[test]
    fn pseudo_labels_follow_the_clustering_rule_on_a_hand_made_example() {
        let (p, fh) = example();
        let first = nearest(&fh, &centroids(&sums(&p, &fh), &Tensor::from_slice(&[true, true, false])));
        assert_eq!(Vec::<i64>::try_from(first).unwrap(), [0, 0, 1, 1]);
        assert_eq!(Vec::<i64>::try_from(cluster_labels(&p, &fh)).unwrap(), [0, 1, 1, 1]);
        let all = nearest(&fh, &centroids(&sums(&p, &fh), &Tensor::from_slice(&[true, true, true])));
        assert_eq!(Vec::<i64>::try_from(all).unwrap(), [0, 2, 1, 1], "without the exclusion class 2 takes 60°");

        // The streaming labeller: with an interval of 1 it is the rule on each batch; with an interval of 2 the
        // refresh at iteration 2 pools the batches of iterations 1 and 2.
        let vs = nn::VarStore::new(Device::Cpu);
        let mk = |interval| {
            let q = vs.root() / format!("c{interval}");
            let (sums, predicted) = (q.zeros_no_train("s", &[2, 3, 3]), q.zeros_no_train("p", &[3]));
            Clusters { sums, predicted, centroids: q.zeros_no_train("c", &[2, 3, 2]), interval }
        };
        let one = mk(1);
        assert_eq!(Vec::<i64>::try_from(one.labels(&p, &fh, 0)).unwrap(), [0, 1, 1, 1]);
        let (p2, f2) = (p.narrow(0, 1, 3), fh.narrow(0, 1, 3));
        assert!(one.labels(&p2, &f2, 1).equal(&cluster_labels(&p2, &f2)));
        let two = mk(2);
        let (a, b) = (p.narrow(0, 0, 2), p.narrow(0, 2, 2));
        let (fa, fb) = (fh.narrow(0, 0, 2), fh.narrow(0, 2, 2));
        for (it, (q, f)) in [(&a, &fa), (&a, &fa), (&b, &fb)].into_iter().enumerate() {
            let _ = two.labels(q, f, it);
        }
        let pooled = centroids(&sums(&p, &fh), &Tensor::from_slice(&[true, true, false]));
        assert!(two.centroids.get(0).allclose(&pooled, 1e-6, 1e-6, false), "c⁰ pools iterations 1 and 2");
    }

    /// `adapt` declares target-only data, refuses a source-and-target batch, steps the feature extractor and leaves
    /// the classifier exactly as the source stage left it.
    #[test]
    fn adaptation_sees_only_the_target_and_freezes_the_classifier() {
        let cfg = ShotConfig { bottleneck: 8, pseudo_label_interval: 3, ..Default::default() };
        let (vs, mut m) = dalab_conformance::build::<Shot>(&cfg, 0);
        let stages = m.stages();
        assert_eq!(
            stages.iter().map(|s| (s.name, s.data)).collect::<Vec<_>>(),
            [("source", StageData::Source), ("adapt", StageData::Target)]
        );
        assert_eq!(stages[1].groups, ["features"]);
        let (xs, ys, xt) = dalab_conformance::synthetic_shift(24, 2);
        let mut stepper = dalab_train::Stepper::new(&vs, m.as_ref(), &dalab_conformance::settings(), "shot").unwrap();
        let src = dalab_core::SourceBatch { x: xs.shallow_clone(), y: ys.shallow_clone() };
        m.begin_stage(&stages[0], &vs).unwrap();
        for it in 0..5 {
            let ctx = StepCtx { stage: "source", ..StepCtx::at(it, 5, Device::Cpu) };
            stepper.iterate(m.as_mut(), &stages[0], StageBatch::Source(&src), None, &ctx, 1.0).unwrap();
        }
        let snap = |prefix: &str| -> Vec<(String, Tensor)> {
            let mut v: Vec<_> =
                vs.variables().into_iter().filter(|(k, _)| k.starts_with(prefix)).map(|(k, t)| (k, t.copy())).collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        };
        let (classifier, features) = (snap("method.classifier."), snap("backbone."));
        assert_eq!(classifier.len(), 3);
        m.begin_stage(&stages[1], &vs).unwrap();
        let ctx = StepCtx { stage: "adapt", ..StepCtx::at(0, 5, Device::Cpu) };
        let both = dalab_core::DaBatch { source_x: xs, source_y: ys, target_x: xt.shallow_clone() };
        assert!(m.train_step(StageBatch::Both(&both), &ctx, &mut NoSteps).is_err());
        let tgt = dalab_core::TargetBatch { x: xt };
        for it in 0..5 {
            let ctx = StepCtx { stage: "adapt", ..StepCtx::at(it, 5, Device::Cpu) };
            let s = stepper.iterate(m.as_mut(), &stages[1], StageBatch::Target(&tgt), None, &ctx, 1.0).unwrap();
            assert!(s.iter().any(|(k, v)| k == "loss/pseudo" && v.value().is_finite()));
        }
        for ((k, before), (_, after)) in classifier.iter().zip(snap("method.classifier.")) {
            assert!(before.equal(&after), "{k} moved during adaptation");
        }
        assert!(
            features.iter().zip(snap("backbone.")).any(|((_, a), (_, b))| !a.equal(&b)),
            "the features did not move"
        );
        assert_eq!(Shot::GROUPS, ["features", "classifier"]);
    }

    struct NoSteps;
    impl Optimizers for NoSteps {
        fn backward_step(&mut self, _: &str, loss: &Tensor, _: &[&str]) -> Result<dalab_core::Scalar> {
            Ok(loss.into())
        }
    }
}
