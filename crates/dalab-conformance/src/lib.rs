//! The conformance kit: one call, [`check`], runs the checks every method crate must pass.
//!
//! ```ignore
//! #[test]
//! fn conformance() { dalab_conformance::check::<MyMethod>(); }
//! ```
//!
//! On a tiny synthetic shift (3 Gaussian classes in 4-d; the target is the source rotated and shifted):
//! 1. the default config validates and survives a JSON round trip (what `dalab show-config` prints, `dalab run`
//!    reads back) unchanged;
//! 2. the method builds from it on an MLP backbone, and one training step gives a finite loss and finite scalars;
//! 3. the loss decreases over a few dozen SGD steps (mean of the last 5 < mean of the first 5);
//! 4. `predict` is `[n, classes]` and `features` is `[n, d]`;
//! 5. the method never receives target labels: [`DaBatch`] is destructured exhaustively below, so this crate
//!    stops compiling if a field is ever added to it;
//! 6. a checkpoint (`VarStore::save`) loaded into a freshly built model (another seed) gives identical predictions;
//! 7. sparse inputs (`train.sparse_inputs`): the same first step on the batch as sparse COO tensors gives the dense
//!    loss and the dense gradients (to f32 round-off).

use dalab_core::{BuildEnv, DaBatch, Method, MethodFactory, StepCtx, Validate};
use dalab_nn::{Activation, BackboneConfig, build_backbone};
use tch::nn::OptimizerConfig;
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

/// Builds method `M` with `cfg` on a small MLP backbone (hidden 16, ReLU) in a fresh VarStore seeded with `seed`.
pub fn build<M: MethodFactory>(cfg: &M::Config, seed: i64) -> (nn::VarStore, Box<dyn Method>) {
    // Tiny tensors: one libtorch thread avoids oversubscribing the cores that parallel tests share.
    tch::set_num_threads(1);
    tch::manual_seed(seed);
    let vs = nn::VarStore::new(Device::Cpu);
    let bb = BackboneConfig::Mlp { hidden: vec![16], activation: Activation::Relu, dropout: 0.0 };
    let backbone = build_backbone(&bb, &(vs.root() / "backbone"), &[DIM]).expect("MLP backbone builds");
    let env = BuildEnv { backbone, num_classes: CLASSES, input_shape: vec![DIM], device: Device::Cpu };
    let method = M::build(cfg, &(vs.root() / "method"), env).expect("the method builds from its config");
    (vs, method)
}

/// One training step's loss value (and the step's named scalars must be finite).
pub fn step(method: &mut dyn Method, opt: Option<&mut nn::Optimizer>, batch: &DaBatch, it: usize, total: usize) -> f64 {
    // Exhaustive destructuring: adding a field to DaBatch (e.g. target labels) breaks this line on purpose.
    let DaBatch { source_x: _, source_y: _, target_x: _ } = batch;
    let ctx =
        StepCtx { progress: it as f64 / total as f64, iteration: it, total_iterations: total, device: Device::Cpu };
    let out = method.training_loss(batch, &ctx).expect("training_loss");
    let v = out.loss.double_value(&[]);
    assert!(v.is_finite(), "loss at step {it} is {v}");
    for (name, s) in &out.scalars {
        assert!(s.is_finite(), "scalar {name} at step {it} is {s}");
    }
    if let Some(opt) = opt {
        opt.backward_step(&out.loss);
    }
    v
}

/// Runs every check with the method's default config.
pub fn check<M: MethodFactory>() {
    check_with::<M>(&M::Config::default(), 60);
}

/// Runs every check with `cfg`, training `steps` steps (at least 20).
pub fn check_with<M: MethodFactory>(cfg: &M::Config, steps: usize) {
    assert!(steps >= 20);
    // 1. Validation and the show-config round trip.
    cfg.validate().unwrap_or_else(|e| panic!("{}: config does not validate: {e}", M::NAME));
    let json = serde_json::to_value(cfg).expect("config serializes");
    let back: M::Config = serde_json::from_value(json.clone()).expect("printed config parses back");
    assert_eq!(serde_json::to_value(&back).unwrap(), json, "config changes in a round trip");

    // 2.–3. Build, one finite step, then the loss decreases.
    let (xs, ys, xt) = synthetic_shift(96, 0);
    let (vs, mut method) = build::<M>(cfg, 1);
    let batch = || DaBatch { source_x: xs.shallow_clone(), source_y: ys.shallow_clone(), target_x: xt.shallow_clone() };
    let mut opt = nn::Sgd { momentum: 0.9, ..Default::default() }.build(&vs, 0.02).expect("optimizer");
    let losses: Vec<f64> = (0..steps).map(|it| step(method.as_mut(), Some(&mut opt), &batch(), it, steps)).collect();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (first, last) = (mean(&losses[..5]), mean(&losses[steps - 5..]));
    assert!(last < first, "{}: loss did not decrease: first 5 {first}, last 5 {last} ({losses:?})", M::NAME);

    // 4. Shapes.
    let n = xt.size()[0];
    let (pred, feats) = tch::no_grad(|| (method.predict(&xt), method.features(&xt)));
    assert_eq!(pred.size(), vec![n, CLASSES], "predict shape");
    let fs = feats.size();
    assert!(fs.len() == 2 && fs[0] == n && fs[1] >= 1, "features shape {fs:?}");

    // 6. Checkpoint round trip into a model built with another seed.
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("model.ot");
    vs.save(&file).expect("save checkpoint");
    let (mut vs2, method2) = build::<M>(cfg, 99);
    let before = tch::no_grad(|| method2.predict(&xt));
    vs2.load(&file).expect("load checkpoint");
    let after = tch::no_grad(|| method2.predict(&xt));
    assert!(after.equal(&pred), "{}: reloaded checkpoint predicts differently", M::NAME);
    assert!(!before.equal(&pred), "{}: a fresh model already predicts like the trained one", M::NAME);

    // 7. Sparse inputs: two models built alike (same seed, so the same random draws in the step), one step each.
    let grads = |sparse: bool| {
        let (vs, mut m) = build::<M>(cfg, 5);
        let conv = |x: &Tensor| if sparse { x.to_sparse_sparse_dim(2) } else { x.shallow_clone() };
        let b = DaBatch { source_x: conv(&xs), source_y: ys.shallow_clone(), target_x: conv(&xt) };
        let ctx = StepCtx { progress: 0.3, iteration: 3, total_iterations: 10, device: Device::Cpu };
        let out = m.training_loss(&b, &ctx).unwrap_or_else(|e| panic!("{}: sparse={sparse}: {e}", M::NAME));
        out.loss.backward();
        let mut g: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .filter(|(_, v)| v.requires_grad())
            .map(|(k, v)| {
                let g = v.grad();
                (k, if g.defined() { g.to_dense(None, false) } else { v.zeros_like() })
            })
            .collect();
        g.sort_by(|a, b| a.0.cmp(&b.0));
        (out.loss.double_value(&[]), g)
    };
    let ((ld, gd), (ls, gs)) = (grads(false), grads(true));
    assert!((ld - ls).abs() <= 1e-5 * (1.0 + ld.abs()), "{}: sparse loss {ls} vs dense {ld}", M::NAME);
    for ((k, a), (_, b)) in gd.iter().zip(&gs) {
        let scale = 1.0 + a.abs().max().double_value(&[]);
        let diff = (a - b).abs().max().double_value(&[]);
        assert!(diff <= 1e-4 * scale, "{}: gradient of {k} differs by {diff} on sparse inputs", M::NAME);
    }
}
