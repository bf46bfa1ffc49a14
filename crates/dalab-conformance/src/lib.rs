//! The conformance kit: one call, [`check`], runs the checks every method crate must pass; [`method_tests!`]
//! writes a crate's two standard tests (conformance, and the validation error of a bad config).
//!
//! ```ignore
//! #[cfg(test)] // the kit is a dev-dependency
//! dalab_conformance::method_tests!(Mcc, MccConfig { temperature: 0.0, ..Default::default() }
//!     => "temperature: must be a finite number > 0, got 0");
//! ```
//!
//! On a tiny synthetic shift (3 Gaussian classes in 4-d; the target is the source rotated and shifted), with the
//! trainer's own optimizer steps ([`dalab_train::Stepper`]: the method's groups, stages and `train_step`):
//! 1. the default config validates and survives a JSON round trip (what `dalab show-config` prints, `dalab run`
//!    reads back) unchanged;
//! 2. the method builds from it on an MLP backbone; every stage runs, each step giving finite scalars;
//! 3. in every stage that logs `loss/total` (single-loss methods) or else `loss/cls`, it decreases over the
//!    stage (mean of the last 5 < mean of the first 5);
//! 4. `predict` is `[n, classes]` and `features` is `[n, d]`;
//! 5. the method never receives target labels: [`DaBatch`] is destructured exhaustively below, so this crate
//!    stops compiling if a field is ever added to it;
//! 6. a saved model (`VarStore::save`) loaded into a freshly built model (another seed, put in the last stage
//!    first, as `dalab predict` does) gives identical predictions;
//! 7. sparse inputs (`train.sparse_inputs`): one optimizer step on the batch as sparse COO tensors moves every
//!    variable as the dense step does (to f32 round-off).

use dalab_core::{BuildEnv, DaBatch, Method, MethodFactory, SourceBatch, Stage, StageBatch, StageData, StepCtx};
use dalab_core::{TargetBatch, Validate};
use dalab_nn::{Activation, BackboneConfig, build_backbone};
use dalab_train::{Stepper, TrainSettings};
use tch::{Device, Kind, Tensor, nn};

/// Number of classes of the synthetic task.
pub const CLASSES: i64 = 3;
/// Input dimension of the synthetic task.
pub const DIM: i64 = 4;

/// The synthetic shift: `(source_x, source_y, target_x)`, `n` samples per domain. Class `c` is a Gaussian
/// around `2·e_c`; the target is the source rotated by 30° in the first plane and shifted by 0.5.
pub fn synthetic_shift(n: i64, seed: i64) -> (Tensor, Tensor, Tensor) {
    tch::manual_seed(seed);
    let opts = (Kind::Float, Device::Cpu);
    let y = Tensor::arange(n, (Kind::Int64, Device::Cpu)).remainder(CLASSES);
    let means = Tensor::eye(DIM, opts).narrow(0, 0, CLASSES) * 2.0;
    let xs = means.index_select(0, &y) + Tensor::randn([n, DIM], opts) * 0.5;
    let yt = y.roll([1], [0]);
    let xt0 = means.index_select(0, &yt) + Tensor::randn([n, DIM], opts) * 0.5;
    let (c, s) = (30f64.to_radians().cos(), 30f64.to_radians().sin());
    let mut rot = Tensor::eye(DIM, (Kind::Double, Device::Cpu));
    let _ = rot.get(0).get(0).fill_(c);
    let _ = rot.get(0).get(1).fill_(-s);
    let _ = rot.get(1).get(0).fill_(s);
    let _ = rot.get(1).get(1).fill_(c);
    rot = rot.to_kind(Kind::Float);
    let xt = xt0.matmul(&rot) + 0.5;
    (xs, y, xt)
}

/// [`synthetic_shift`] as one training batch.
pub fn synthetic_batch(n: i64, seed: i64) -> DaBatch {
    let (source_x, source_y, target_x) = synthetic_shift(n, seed);
    DaBatch { source_x, source_y, target_x }
}

/// The build environment of a method on an MLP backbone of `hidden` ReLU layers over the synthetic task's
/// [`DIM`] inputs and [`CLASSES`] classes, built under `backbone` in `vs`, for a task with the named source
/// domains (tests of multi-stage and multi-task methods).
pub fn env(vs: &nn::VarStore, hidden: &[i64], source_domains: &[&str]) -> BuildEnv {
    let bb = BackboneConfig::Mlp { hidden: hidden.to_vec(), activation: Activation::Relu, dropout: 0.0 };
    let backbone = build_backbone(&bb, &(vs.root() / "backbone"), &[DIM]).expect("MLP backbone builds");
    let make_backbone: dalab_core::BackboneBuilder = Box::new(move |p| build_backbone(&bb, p, &[DIM]));
    BuildEnv {
        backbone,
        make_backbone,
        num_classes: CLASSES,
        input_shape: vec![DIM],
        source_domains: source_domains.iter().map(|s| s.to_string()).collect(),
        device: Device::Cpu,
    }
}

/// Builds method `M` with `cfg` on a small MLP backbone (hidden 16, ReLU) in a fresh VarStore seeded with `seed`.
pub fn build<M: MethodFactory>(cfg: &M::Config, seed: i64) -> (nn::VarStore, Box<dyn Method>) {
    // Tiny tensors: one libtorch thread avoids oversubscribing the cores that parallel tests share.
    tch::set_num_threads(1);
    tch::manual_seed(seed);
    let vs = nn::VarStore::new(Device::Cpu);
    let bb = BackboneConfig::Mlp { hidden: vec![16], activation: Activation::Relu, dropout: 0.0 };
    let backbone = build_backbone(&bb, &(vs.root() / "backbone"), &[DIM]).expect("MLP backbone builds");
    let make_backbone: dalab_core::BackboneBuilder = Box::new(move |p| build_backbone(&bb, p, &[DIM]));
    let env = BuildEnv {
        backbone,
        make_backbone,
        num_classes: CLASSES,
        input_shape: vec![DIM],
        source_domains: vec!["source".into()],
        device: Device::Cpu,
    };
    let method = M::build(cfg, &(vs.root() / "method"), env).expect("the method builds from its config");
    (vs, method)
}

/// One single-loss step's loss value (the step's named scalars must be finite); with a stepper, the trainer's
/// optimizer step follows.
pub fn step(method: &mut dyn Method, opt: Option<&mut Stepper>, batch: &DaBatch, it: usize, total: usize) -> f64 {
    // Exhaustive destructuring: adding a field to DaBatch (e.g. target labels) breaks this line on purpose.
    let DaBatch { source_x: _, source_y: _, target_x: _ } = batch;
    let ctx = StepCtx::at(it, total, Device::Cpu);
    match opt {
        None => {
            let out = method.training_loss(batch, &ctx).expect("training_loss");
            let v = out.loss.double_value(&[]);
            assert!(v.is_finite(), "loss at step {it} is {v}");
            for (name, s) in dalab_core::resolve(&out.scalars) {
                assert!(s.is_finite(), "scalar {name} at step {it} is {s}");
            }
            v
        }
        Some(st) => {
            let scalars = st.iterate(method, &Stage::main(), StageBatch::Both(batch), None, &ctx, 1.0).expect("step");
            st.check_losses().expect("finite losses");
            let scalars = dalab_core::resolve(&scalars);
            scalars.iter().find(|(k, _)| k == "loss/total").map_or(f64::NAN, |(_, v)| *v)
        }
    }
}

/// The settings the kit trains with: SGD, lr 0.02, momentum 0.9 (and each method's group defaults).
pub fn settings() -> TrainSettings {
    let mut st = TrainSettings::default();
    st.optim.lr = 0.02;
    st
}

/// The batch of a stage that sees `data`, from the synthetic domains.
fn stage_batch<'a>(data: StageData, both: &'a DaBatch, src: &'a SourceBatch, tgt: &'a TargetBatch) -> StageBatch<'a> {
    match data {
        StageData::SourceAndTarget => StageBatch::Both(both),
        StageData::Source | StageData::SourceDomain(_) => StageBatch::Source(src),
        StageData::Sources => StageBatch::Sources(std::slice::from_ref(src)),
        StageData::Target => StageBatch::Target(tgt),
    }
}

/// Runs every stage of `method` for `steps` iterations each; returns each stage's tracked loss series.
pub fn train_stages(
    vs: &nn::VarStore,
    method: &mut dyn Method,
    st: &TrainSettings,
    (xs, ys, xt): (&Tensor, &Tensor, &Tensor),
    steps: usize,
) -> Vec<(&'static str, Vec<f64>)> {
    let mut stepper = Stepper::new(vs, method, st, "conformance").expect("groups cover the variables");
    let both = DaBatch { source_x: xs.shallow_clone(), source_y: ys.shallow_clone(), target_x: xt.shallow_clone() };
    let src = SourceBatch { x: xs.shallow_clone(), y: ys.shallow_clone() };
    let tgt = TargetBatch { x: xt.shallow_clone() };
    let mut out = Vec::new();
    for stage in method.stages() {
        method.begin_stage(&stage, vs).expect("begin_stage");
        let mut series = Vec::new();
        for it in 0..steps {
            let ctx = StepCtx { stage: stage.name, ..StepCtx::at(it, steps, Device::Cpu) };
            let batch = stage_batch(stage.data, &both, &src, &tgt);
            let scalars = stepper
                .iterate(method, &stage, batch, None, &ctx, 1.0)
                .unwrap_or_else(|e| panic!("stage {} step {it}: {e}", stage.name));
            stepper.check_losses().unwrap_or_else(|e| panic!("stage {} step {it}: {e}", stage.name));
            let scalars = dalab_core::resolve(&scalars);
            for (name, s) in &scalars {
                assert!(s.is_finite(), "stage {}: scalar {name} at step {it} is {s}", stage.name);
            }
            let tracked = scalars
                .iter()
                .find(|(k, _)| k == "loss/total")
                .or_else(|| scalars.iter().find(|(k, _)| k == "loss/cls"));
            if let Some((_, v)) = tracked {
                series.push(*v);
            }
        }
        out.push((stage.name, series));
    }
    out
}

/// Runs every check with the method's default config.
pub fn check<M: MethodFactory>() {
    check_with::<M>(&M::Config::default(), 60);
}

/// Runs every check with `cfg`, training `steps` steps per stage (at least 20).
pub fn check_with<M: MethodFactory>(cfg: &M::Config, steps: usize) {
    assert!(steps >= 20);
    // 1. Validation and the show-config round trip.
    cfg.validate().unwrap_or_else(|e| panic!("{}: config does not validate: {e}", M::NAME));
    let json = serde_json::to_value(cfg).expect("config serializes");
    let back: M::Config = serde_json::from_value(json.clone()).expect("printed config parses back");
    assert_eq!(serde_json::to_value(&back).unwrap(), json, "config changes in a round trip");

    // 2.–3. Build, run every stage, the tracked loss decreases.
    let (xs, ys, xt) = synthetic_shift(96, 0);
    let (vs, mut method) = build::<M>(cfg, 1);
    let declared: Vec<&str> = method.groups().iter().map(|g| g.name).collect();
    assert_eq!(declared, M::GROUPS, "{}: groups() differ from MethodFactory::GROUPS", M::NAME);
    let st = settings();
    for (stage, losses) in train_stages(&vs, method.as_mut(), &st, (&xs, &ys, &xt), steps) {
        if losses.len() < 10 {
            continue;
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let (first, last) = (mean(&losses[..5]), mean(&losses[losses.len() - 5..]));
        assert!(last < first, "{} stage {stage}: loss did not decrease: first 5 {first}, last 5 {last}", M::NAME);
    }

    // 4. Shapes.
    let n = xt.size()[0];
    let (pred, feats) = tch::no_grad(|| (method.predict(&xt), method.features(&xt)));
    assert_eq!(pred.size(), vec![n, CLASSES], "predict shape");
    let fs = feats.size();
    assert!(fs.len() == 2 && fs[0] == n && fs[1] >= 1, "features shape {fs:?}");

    // 6. Saved model round trip into a model built with another seed, put in the last stage first.
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("model.safetensors");
    vs.save(&file).expect("save model");
    let (mut vs2, mut method2) = build::<M>(cfg, 99);
    if let Some(last) = method2.stages().last() {
        method2.begin_stage(last, &vs2).expect("begin_stage");
    }
    let before = tch::no_grad(|| method2.predict(&xt));
    vs2.load(&file).expect("load model");
    let after = tch::no_grad(|| method2.predict(&xt));
    assert!(after.equal(&pred), "{}: reloaded model predicts differently", M::NAME);
    assert!(!before.equal(&pred), "{}: a fresh model already predicts like the trained one", M::NAME);

    // 7. Sparse inputs: two models built alike (same seed, so the same random draws in the step), one plain SGD
    // step (lr 1, no momentum) each, in the first stage; the variables must move alike.
    let moved = |sparse: bool| {
        let (vs, mut m) = build::<M>(cfg, 5);
        let conv = |x: &Tensor| if sparse { x.to_sparse_sparse_dim(2) } else { x.shallow_clone() };
        let both = DaBatch { source_x: conv(&xs), source_y: ys.shallow_clone(), target_x: conv(&xt) };
        let src = SourceBatch { x: conv(&xs), y: ys.shallow_clone() };
        let tgt = TargetBatch { x: conv(&xt) };
        let stage = m.stages().remove(0);
        m.begin_stage(&stage, &vs).expect("begin_stage");
        let before: Vec<(String, Tensor)> = vs.variables().into_iter().map(|(k, v)| (k, v.copy())).collect();
        let mut st = TrainSettings::default();
        st.optim.lr = 1.0;
        st.optim.momentum = 0.0;
        st.optim.groups.clear();
        let mut stepper = Stepper::new(&vs, m.as_ref(), &st, "conformance").expect("groups");
        let ctx = StepCtx { stage: stage.name, ..StepCtx::at(3, 10, Device::Cpu) };
        stepper
            .iterate(m.as_mut(), &stage, stage_batch(stage.data, &both, &src, &tgt), None, &ctx, 1.0)
            .unwrap_or_else(|e| panic!("{}: sparse={sparse}: {e}", M::NAME));
        let after = vs.variables();
        let mut d: Vec<(String, Tensor)> =
            before.into_iter().map(|(k, b)| (k.clone(), (&after[&k] - b).to_kind(Kind::Double))).collect();
        d.sort_by(|a, b| a.0.cmp(&b.0));
        d
    };
    let (dd, ds) = (moved(false), moved(true));
    for ((k, a), (_, b)) in dd.iter().zip(&ds) {
        let scale = 1.0 + a.abs().max().double_value(&[]);
        let diff = (a - b).abs().max().double_value(&[]);
        assert!(diff <= 1e-4 * scale, "{}: {k} moves differently (by {diff}) on sparse inputs", M::NAME);
    }
}

/// The two standard tests of a method crate: the conformance kit on the default config, and the validation
/// error of a bad config (the expected message, `key: ...`).
#[macro_export]
macro_rules! method_tests {
    ($factory:ty, $bad:expr => $msg:expr) => {
        mod standard_tests {
            use super::*;

            #[test]
            fn conformance() {
                $crate::check::<$factory>();
            }

            #[test]
            fn validation_names_the_key() {
                let bad: <$factory as dalab_core::MethodFactory>::Config = $bad;
                assert_eq!(dalab_core::Validate::validate(&bad).unwrap_err(), $msg);
            }
        }
    };
}
