//! dalab-train: THE training loop, the same for every method.
//!
//! ```text
//! TaskData ──▶ tensors on the device ──▶ source stream (x, y) + target stream (x only)
//! each step: DaBatch {source_x, source_y, target_x} ──▶ Method::training_loss ──▶ backward, SGD/Adam step
//! every eval_interval: evaluator (the only reader of target labels) ──▶ selection rule ──▶ sinks
//! ```

pub mod config;
pub mod sink;
pub mod stream;

pub use config::{ModelConfig, OptimConfig, OptimKind, Selection, TrainConfig, TrainSettings};
pub use sink::{JsonlSink, Sink, TensorBoardSink};

use dalab_core::{BuildEnv, DaBatch, Registry, StepCtx};
use dalab_data::TaskData;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::PathBuf;
use stream::{BatchStream, DomainInputs, labels_tensor};
use tch::{Device, Kind, Tensor, nn, nn::OptimizerConfig};

/// Errors of a training run. Each names the step, file or key at fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Core(#[from] dalab_core::Error),
    #[error(transparent)]
    Data(#[from] dalab_data::Error),
    #[error(transparent)]
    TensorBoard(#[from] dalab_tensorboard::Error),
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The loss is NaN or infinite.
    #[error("{kind} loss at step {step}")]
    NonFiniteLoss { kind: &'static str, step: usize },
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Accuracies (in [0, 1]) at one evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalRecord {
    /// Number of optimisation steps done.
    pub step: usize,
    /// On the source training data.
    pub source: f64,
    /// On the held-out source split (`selection: source_val` only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub source_val: Option<f64>,
    /// On the target training data (transductive: the data the method adapted to, scored with its labels).
    pub target: f64,
    /// On the separate target test set, where the dataset has one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub target_test: Option<f64>,
}

impl EvalRecord {
    /// `(split name, accuracy)` pairs.
    pub fn accuracies(&self) -> Vec<(&'static str, f64)> {
        let mut v = vec![("source", self.source)];
        if let Some(a) = self.source_val {
            v.push(("source_val", a));
        }
        v.push(("target", self.target));
        if let Some(a) = self.target_test {
            v.push(("target_test", a));
        }
        v
    }
}

/// What one training run produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialOutcome {
    /// The selection rule that picked `selected`.
    pub selection: Selection,
    /// True when `selected` was chosen with target labels (an oracle, not a DA result).
    pub oracle: bool,
    /// The evaluation chosen by the selection rule.
    pub selected: EvalRecord,
    /// The last evaluation.
    pub last: EvalRecord,
    /// Steps run.
    pub steps: usize,
    /// Wall-clock seconds of training and evaluation.
    pub seconds: f64,
    /// The device used, as text.
    pub device: String,
}

/// One trial to train: a method with its resolved config, the training settings, a seed and a device.
#[derive(Debug, Clone)]
pub struct TrialSpec<'a> {
    pub method: &'a str,
    pub method_config: &'a Value,
    pub settings: &'a TrainSettings,
    pub seed: u64,
    pub device: Device,
}

/// Evaluates classification accuracy of `predict` on `(x, y)` in batches, without gradients.
fn accuracy(
    method: &dyn dalab_core::Method,
    x: &DomainInputs,
    y: &Tensor,
    batch: usize,
    device: Device,
) -> Result<f64> {
    tch::no_grad(|| {
        let mut correct = 0i64;
        x.for_each_batch::<Error>(batch, device, |start, xb| {
            let pred = method.predict(xb).argmax(-1, false);
            let len = xb.size()[0];
            correct += pred.eq_tensor(&y.narrow(0, start, len)).sum(Kind::Int64).int64_value(&[]);
            Ok(())
        })?;
        Ok(correct as f64 / x.len().max(1) as f64)
    })
}

struct EvalSet {
    source: (DomainInputs, Tensor),
    source_val: Option<(DomainInputs, Tensor)>,
    target: (DomainInputs, Tensor),
    target_test: Option<(DomainInputs, Tensor)>,
    device: Device,
}

impl EvalSet {
    fn evaluate(&self, m: &dyn dalab_core::Method, step: usize, b: usize) -> Result<EvalRecord> {
        let acc = |(x, y): &(DomainInputs, Tensor)| accuracy(m, x, y, b, self.device);
        Ok(EvalRecord {
            step,
            source: acc(&self.source)?,
            source_val: self.source_val.as_ref().map(acc).transpose()?,
            target: acc(&self.target)?,
            target_test: self.target_test.as_ref().map(acc).transpose()?,
        })
    }
}

/// A copy of every variable of a VarStore, by name.
type Snapshot = Vec<(String, Tensor)>;

fn snapshot(vs: &nn::VarStore) -> Snapshot {
    tch::no_grad(|| vs.variables().into_iter().map(|(k, v)| (k, v.copy())).collect())
}

fn restore(vs: &nn::VarStore, snap: &Snapshot) {
    let vars = vs.variables();
    tch::no_grad(|| {
        for (k, v) in snap {
            if let Some(t) = vars.get(k) {
                t.shallow_clone().copy_(v);
            }
        }
    });
}

/// The optimizer parameter group of the backbone's variables (the method's own layers are group 0).
pub const BACKBONE_GROUP: usize = 1;

/// Freezes the backbone when `mult == 0` (its variables stop requiring gradients). Returns whether the backbone
/// has trainable variables in [`BACKBONE_GROUP`] (only then may the group's learning rate be set).
pub fn apply_backbone_lr_mult(vs: &nn::VarStore, mult: f64) -> bool {
    let vars = vs.variables_.lock().expect("VarStore lock");
    let backbone: Vec<Tensor> = vars
        .trainable_variables
        .iter()
        .filter(|v| v.group == BACKBONE_GROUP)
        .map(|v| v.tensor.shallow_clone())
        .collect();
    if mult == 0.0 {
        for t in &backbone {
            let _ = t.set_requires_grad(false);
        }
    }
    !backbone.is_empty()
}

/// Trains `spec.method` on `task` and reports to `sinks`. On an error (e.g. a NaN loss) the sinks are flushed
/// first, so every step and evaluation logged before the failure is kept.
pub fn train(
    registry: &Registry,
    spec: &TrialSpec<'_>,
    task: &TaskData,
    sinks: &mut [&mut dyn Sink],
) -> Result<(TrialOutcome, nn::VarStore)> {
    let result = train_inner(registry, spec, task, sinks);
    for s in sinks.iter_mut() {
        let flushed = s.flush();
        if result.is_ok() {
            flushed?;
        }
    }
    result
}

fn train_inner(
    registry: &Registry,
    spec: &TrialSpec<'_>,
    task: &TaskData,
    sinks: &mut [&mut dyn Sink],
) -> Result<(TrialOutcome, nn::VarStore)> {
    let started = std::time::Instant::now();
    let st = spec.settings;
    let tc = &st.train;
    if tc.threads > 0 {
        tch::set_num_threads(tc.threads as i32);
    }
    let device = spec.device;
    dalab_core::seed::seed_everything(spec.seed);

    // Data: the source (minus a held-out split for `source_val`) and the target, as tensors on the device or as
    // image files decoded batch by batch ahead of the step (dalab-data's prefetcher).
    let xs = DomainInputs::new(&task.source.x, device);
    let ys = labels_tensor(&task.source.y, device);
    let (train_src, source_val) = if st.selection == Selection::SourceVal {
        let n = task.source.len();
        let n_val = ((n as f64) * tc.source_val_fraction).round() as usize;
        if n_val == 0 || n_val >= n {
            return Err(Error::Invalid(format!(
                "train.source_val_fraction: {} of {n} source samples leaves no validation or no training data",
                tc.source_val_fraction
            )));
        }
        let mut idx: Vec<usize> = (0..n).collect();
        idx.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(dalab_core::seed::derive(spec.seed, 3)));
        let labels = |ix: &[usize]| {
            let i: Vec<i64> = ix.iter().map(|&k| k as i64).collect();
            ys.index_select(0, &Tensor::from_slice(&i).to_device(device))
        };
        let (val, tr) = idx.split_at(n_val);
        ((xs.subset(tr), labels(tr)), Some((xs.subset(val), labels(val))))
    } else {
        ((xs, ys), None)
    };
    let xt = DomainInputs::new(&task.target.x, device);
    let yt = labels_tensor(&task.target.y, device); // evaluator only
    let sparse = tc.sparse_inputs;
    if sparse {
        let is_mlp = matches!(st.model.backbone, dalab_nn::BackboneConfig::Mlp { .. });
        if task.source.sample_shape().len() != 1 || !is_mlp || matches!(xt, DomainInputs::Files(_)) {
            return Err(Error::Invalid(format!(
                "train.sparse_inputs: needs flat feature vectors and `model.backbone.kind: mlp` (features {:?}, \
                 backbone {})",
                task.source.sample_shape(),
                st.model.backbone.kind_name()
            )));
        }
    }
    let src_stream_inputs = train_src.0.share();
    let tgt_stream_inputs = xt.share();
    let eval_set = EvalSet {
        source: train_src,
        source_val,
        target: (xt, yt),
        target_test: task.target_test.as_ref().map(|d| (DomainInputs::new(&d.x, device), labels_tensor(&d.y, device))),
        device,
    };
    let src_labels = eval_set.source.1.shallow_clone();
    let mut src_stream = BatchStream::new(
        src_stream_inputs,
        Some(src_labels),
        tc.batch_size,
        dalab_core::seed::derive(spec.seed, 1),
        device,
    )?;
    let mut tgt_stream =
        BatchStream::new(tgt_stream_inputs, None, tc.batch_size, dalab_core::seed::derive(spec.seed, 2), device)?;

    // Model: backbone from `model:`, then the method around it.
    let vs = nn::VarStore::new(device);
    let input_shape: Vec<i64> = task.source.sample_shape().iter().map(|&d| d as i64).collect();
    // Parameter groups: the method's layers are group 0 (lr = optim.lr), the backbone group 1
    // (lr = optim.lr × model.backbone_lr_mult; 0 freezes it).
    let backbone_path = (vs.root() / "backbone").set_group(BACKBONE_GROUP);
    let backbone = dalab_nn::build_backbone(&st.model.backbone, &backbone_path, &input_shape)?;
    let env = BuildEnv { backbone, num_classes: task.source.num_classes() as i64, input_shape, device };
    let mut method = registry.build(spec.method, spec.method_config, &(vs.root() / "method"), env)?;

    let oc = &st.optim;
    let mut opt = match oc.kind {
        OptimKind::Sgd => nn::Sgd { momentum: oc.momentum, dampening: 0.0, wd: oc.weight_decay, nesterov: oc.nesterov }
            .build(&vs, oc.lr)?,
        OptimKind::Adam => nn::Adam { wd: oc.weight_decay, ..Default::default() }.build(&vs, oc.lr)?,
    };
    let backbone_mult = st.model.backbone_lr_mult;
    let has_backbone_group = apply_backbone_lr_mult(&vs, backbone_mult);

    let total = tc.iterations;
    let mut last: Option<EvalRecord> = None;
    let mut best: Option<(f64, EvalRecord, Snapshot)> = None;
    let mut consider = |rec: &EvalRecord, vs: &nn::VarStore| {
        let score = match st.selection {
            Selection::Last => return,
            Selection::SourceVal => rec.source_val.unwrap_or(f64::NAN),
            Selection::TargetOracle => rec.target_test.unwrap_or(rec.target),
        };
        if best.as_ref().is_none_or(|(b, _, _)| score > *b) {
            best = Some((score, rec.clone(), snapshot(vs)));
        }
    };
    for it in 0..total {
        let p = it as f64 / total as f64;
        let lr = oc.lr * st.schedule.factor(p, it);
        opt.set_lr(lr);
        if has_backbone_group && backbone_mult != 1.0 {
            opt.set_lr_group(BACKBONE_GROUP, lr * backbone_mult);
        }
        let (mut sx, sy) = src_stream.next_batch()?;
        let (mut tx, _) = tgt_stream.next_batch()?;
        if sparse {
            sx = sx.to_sparse_sparse_dim(2);
            tx = tx.to_sparse_sparse_dim(2);
        }
        let batch = DaBatch { source_x: sx, source_y: sy.expect("source stream has labels"), target_x: tx };
        let ctx = StepCtx { progress: p, iteration: it, total_iterations: total, device };
        let out = method.training_loss(&batch, &ctx)?;
        let loss_value = out.loss.double_value(&[]);
        if !loss_value.is_finite() {
            return Err(Error::NonFiniteLoss { kind: if loss_value.is_nan() { "NaN" } else { "infinite" }, step: it });
        }
        opt.backward_step(&out.loss);
        let step = it + 1;
        if step % tc.log_interval == 0 || step == total {
            let mut scalars = Vec::with_capacity(out.scalars.len() + 2);
            scalars.push(("loss/total".to_string(), loss_value));
            scalars.extend(out.scalars);
            scalars.push(("lr".to_string(), lr));
            for s in sinks.iter_mut() {
                s.step(step, &scalars)?;
            }
        }
        if step % tc.eval_interval == 0 || step == total {
            let rec = eval_set.evaluate(method.as_ref(), step, tc.eval_batch_size)?;
            for s in sinks.iter_mut() {
                s.eval(&rec)?;
            }
            consider(&rec, &vs);
            last = Some(rec);
        }
    }
    let last = last.expect("iterations >= 1, so the last step is evaluated");
    let selected = match best {
        Some((_, rec, snap)) => {
            restore(&vs, &snap);
            rec
        }
        None => last.clone(),
    };
    let outcome = TrialOutcome {
        selection: st.selection,
        oracle: st.selection.is_oracle(),
        selected,
        last,
        steps: total,
        seconds: started.elapsed().as_secs_f64(),
        device: dalab_core::device::describe(device),
    };
    Ok((outcome, vs))
}

/// A domain's features as `[n, d]` rows in f64 (samples flattened), for the closed-form methods.
fn rows_f64(d: &dalab_data::Domain) -> Result<ndarray::Array2<f64>> {
    let x = d.x.to_dense()?;
    let n = x.shape()[0];
    let flat = x.view().into_shape_with_order((n, x.len() / n.max(1))).map_err(|e| {
        Error::Invalid(format!("domain `{}`: cannot flatten features of shape {:?}: {e}", d.name, x.shape()))
    })?;
    Ok(flat.mapv(f64::from))
}

/// Fits the closed-form method `spec.method` (a `Registry::add_classic` entry: alignment + linear SVM, ...)
/// on the task's fixed features and scores it like a trained model, with one evaluation record. Such a method
/// has a single model, so `selection` does not apply: the result records `last` and no oracle. The method sees
/// the source features and labels and the target features only ([`dalab_classic::ClassicInputs`]).
pub fn fit_classic(
    registry: &Registry,
    spec: &TrialSpec<'_>,
    task: &TaskData,
    sinks: &mut [&mut dyn Sink],
) -> Result<TrialOutcome> {
    let started = std::time::Instant::now();
    let result = (|| {
        let xs = rows_f64(&task.source)?;
        let xt = rows_f64(&task.target)?;
        let inputs = dalab_classic::ClassicInputs {
            source_x: xs.view(),
            source_y: &task.source.y,
            target_x: xt.view(),
            num_classes: task.source.num_classes(),
            seed: spec.seed,
        };
        let fitted = registry.fit_classic(spec.method, spec.method_config, &inputs)?;
        let score =
            |x: &ndarray::Array2<f64>, y: &[i64]| dalab_classic::accuracy(&fitted.classifier.predict(x.view()), y);
        let rec = EvalRecord {
            step: 0,
            source: score(&xs, &task.source.y),
            source_val: None,
            target: score(&xt, &task.target.y),
            target_test: task.target_test.as_ref().map(|d| Ok::<_, Error>(score(&rows_f64(d)?, &d.y))).transpose()?,
        };
        for s in sinks.iter_mut() {
            s.step(0, &fitted.scalars)?;
            s.eval(&rec)?;
        }
        Ok(TrialOutcome {
            selection: Selection::Last,
            oracle: false,
            selected: rec.clone(),
            last: rec,
            steps: 0,
            seconds: started.elapsed().as_secs_f64(),
            device: "cpu".into(),
        })
    })();
    for s in sinks.iter_mut() {
        let flushed = s.flush();
        if result.is_ok() {
            flushed?;
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One plain SGD step (no momentum) on `loss = Σ backbone.w + Σ method.w` moves every weight by −lr·1, so the
    /// backbone must move by −lr·mult and the method's layer by −lr; with mult = 0 the backbone stays put and gets
    /// no gradient at all.
    #[test]
    fn backbone_lr_mult_scales_or_freezes_the_backbone_group() {
        for mult in [1.0, 0.1, 0.0] {
            let vs = nn::VarStore::new(Device::Cpu);
            let b = (vs.root() / "backbone").set_group(BACKBONE_GROUP).zeros("w", &[3]);
            let m = (vs.root() / "method").zeros("w", &[2]);
            let mut opt = nn::Sgd::default().build(&vs, 0.5).unwrap();
            let has_group = apply_backbone_lr_mult(&vs, mult);
            assert!(has_group);
            opt.set_lr(0.5);
            if mult != 1.0 {
                opt.set_lr_group(BACKBONE_GROUP, 0.5 * mult);
            }
            opt.backward_step(&(b.sum(Kind::Float) + m.sum(Kind::Float)));
            assert_eq!(Vec::<f32>::try_from(&m).unwrap(), vec![-0.5; 2]);
            assert_eq!(Vec::<f32>::try_from(&b).unwrap(), vec![(-0.5 * mult) as f32; 3], "mult {mult}");
            assert_eq!(b.requires_grad(), mult != 0.0);
        }
    }
}
