//! DANN training throughput (iterations/s), the two workloads of `../shared/peers/torch_dann_bench.py` with the
//! same networks, batch 64 + 64, SGD momentum 0.9, one optimizer step per iteration (the trainer's own optimizer,
//! `dalab_train::Stepper`), random data:
//!
//! - `amazon`: shallow DANN, 5000-d dense input → Linear(5000, 100) + sigmoid; label head Linear(100, 2); domain
//!   head Linear(100, ·). Run through the real `dalab-dann` method, which forwards the source and the target
//!   batches separately (its domain head has one logit + BCE instead of the peer's two + CE: the same cost).
//! - `amazon-cat`: the same network with ONE forward over the concatenated batch, as the peer (and every method
//!   built on `ClassifierHead::forward_pair`) does.
//! - `amazon-sparse`: `amazon-cat` on inputs with the density of the real Amazon features (1.55% non-zero: 78 of
//!   5000 per row on average in books/kitchen train) as a sparse COO tensor; dalab-nn's MLP runs its first layer as
//!   a weighted embedding-bag sum. The peer has no such workload (its inputs are dense).
//! - `digits`: the DANN paper's MNIST network: conv(32,5)-relu-pool-conv(48,5)-relu-pool → 768 features, label
//!   head 768-100-100-10, domain head 768-100-(1); built from dalab-nn parts (`dann-digits` backbone,
//!   `ClassifierHead` with hidden [100, 100], `Discriminator` with hidden [100]) exactly as the peer's, one forward.
//!
//! Output, one line per workload (median of `REPEATS` runs of `ITERS` iterations after a warm-up), in the peer's
//! format: `workload=amazon threads=1 half_batch=64 iters_per_s=...`.
//!
//!   cargo bench -p dalab-benches --bench dann -- [--threads N] [--iters N] [--repeats N] [--workload W]
//!                                                 [--optimizer dalab|tch]

use dalab_core::schedule::LambdaSchedule;
use dalab_core::{BuildEnv, DaBatch, FeatureExtractor, Method, MethodFactory, StepCtx, StepOutput};
use dalab_dann::{Dann, DannConfig};
use dalab_nn::{
    Activation, BackboneConfig, ClassifierHead, Discriminator, DiscriminatorConfig, HeadConfig, build_backbone,
    grad_reverse,
};
use std::time::Instant;
use tch::nn::{self, OptimizerConfig};
use tch::{Device, Kind, Tensor};

const HALF: i64 = 64;

/// DANN with one backbone forward over the concatenated batch, as the peer does (the digits network, and the
/// `amazon-cat` variant of the shallow one), built from dalab-nn parts.
struct CatDann {
    backbone: Box<dyn FeatureExtractor>,
    head: ClassifierHead,
    disc: Discriminator,
}

impl Method for CatDann {
    fn training_loss(&mut self, b: &DaBatch, ctx: &StepCtx) -> dalab_core::Result<StepOutput> {
        let f = self.backbone.forward_t(&Tensor::cat(&[&b.source_x, &b.target_x], 0), true);
        let n = b.source_x.size()[0];
        let cls = self.head.logits(&f.narrow(0, 0, n)).cross_entropy_for_logits(&b.source_y);
        let lambda = LambdaSchedule::default().at(ctx.progress);
        let (fr, nt) = (grad_reverse(&f, lambda), b.target_x.size()[0]);
        let (domain, _) = self.disc.domain_loss(&fr.narrow(0, 0, n), &fr.narrow(0, n, nt));
        Ok(StepOutput::new(cls + domain))
    }
    fn predict(&self, x: &Tensor) -> Tensor {
        self.head.logits(&self.backbone.forward_t(x, false))
    }
    fn features(&self, x: &Tensor) -> Tensor {
        self.backbone.forward_t(x, false)
    }
}

fn build(workload: &str, vs: &nn::VarStore) -> (Box<dyn Method>, DaBatch) {
    let opts = (Kind::Float, Device::Cpu);
    match workload {
        "amazon" => {
            let bb = BackboneConfig::Mlp { hidden: vec![100], activation: Activation::Sigmoid, dropout: 0.0 };
            let backbone = build_backbone(&bb, &(vs.root() / "backbone"), &[5000]).unwrap();
            let make_backbone: dalab_core::BackboneBuilder = Box::new(move |p| build_backbone(&bb, p, &[5000]));
            let env = BuildEnv {
                backbone,
                make_backbone,
                num_classes: 2,
                input_shape: vec![5000],
                source_domains: vec!["books".into()],
                device: Device::Cpu,
            };
            let disc = DiscriminatorConfig { hidden: vec![], ..Default::default() };
            let cfg = DannConfig { discriminator: disc, ..Default::default() };
            let m = Dann::build(&cfg, &(vs.root() / "method"), env).unwrap();
            let y = Tensor::randint(2, [HALF], (Kind::Int64, Device::Cpu));
            (
                m,
                DaBatch {
                    source_x: Tensor::rand([HALF, 5000], opts),
                    source_y: y,
                    target_x: Tensor::rand([HALF, 5000], opts),
                },
            )
        }
        "amazon-cat" | "amazon-sparse" => {
            let bb = BackboneConfig::Mlp { hidden: vec![100], activation: Activation::Sigmoid, dropout: 0.0 };
            let backbone = build_backbone(&bb, &(vs.root() / "backbone"), &[5000]).unwrap();
            let head = ClassifierHead::new(&(vs.root() / "head"), 100, 2, &HeadConfig::default());
            let disc_cfg = DiscriminatorConfig { hidden: vec![], ..Default::default() };
            let disc = Discriminator::new(&(vs.root() / "disc"), 100, &disc_cfg);
            let x = |n| {
                if workload == "amazon-cat" {
                    Tensor::rand([n, 5000], opts)
                } else {
                    // 1.55% non-zero, as the 5000-d Amazon features; stored sparse (COO).
                    let mask = Tensor::rand([n, 5000], opts).ge(0.9845).to_kind(Kind::Float);
                    (mask * Tensor::rand([n, 5000], opts)).to_sparse_sparse_dim(2)
                }
            };
            let y = Tensor::randint(2, [HALF], (Kind::Int64, Device::Cpu));
            (Box::new(CatDann { backbone, head, disc }), DaBatch { source_x: x(HALF), source_y: y, target_x: x(HALF) })
        }
        _ => {
            let backbone =
                build_backbone(&BackboneConfig::DannDigits { fc: vec![] }, &(vs.root() / "backbone"), &[1, 28, 28])
                    .unwrap();
            let head_cfg = HeadConfig { hidden: vec![100, 100], ..Default::default() };
            let head = ClassifierHead::new(&(vs.root() / "head"), 768, 10, &head_cfg);
            let disc_cfg = DiscriminatorConfig { hidden: vec![100], dropout: 0.0, ..Default::default() };
            let disc = Discriminator::new(&(vs.root() / "disc"), 768, &disc_cfg);
            let b = DaBatch {
                source_x: Tensor::rand([HALF, 1, 28, 28], opts),
                source_y: Tensor::randint(10, [HALF], (Kind::Int64, Device::Cpu)),
                target_x: Tensor::rand([HALF, 1, 28, 28], opts),
            };
            (Box::new(CatDann { backbone, head, disc }), b)
        }
    }
}

/// Which optimizer steps the model: the trainer's own (`dalab`: `dalab_train::Stepper`, what `dalab run` uses) or
/// tch's C++ `nn::Sgd` (`tch`: what the trainer used before its optimizers became checkpointable), for an A/B of the
/// optimizer change in one binary.
#[derive(Clone, Copy, PartialEq)]
enum Opt {
    Dalab,
    Tch,
}

fn bench(workload: &str, iters: usize, repeats: usize, which: Opt) -> f64 {
    tch::manual_seed(0);
    let vs = nn::VarStore::new(Device::Cpu);
    let (mut m, b) = build(workload, &vs);
    // SGD, lr 0.01, momentum 0.9 either way.
    let mut stepper =
        dalab_train::Stepper::new(&vs, m.as_ref(), &dalab_train::TrainSettings::default(), "bench").unwrap();
    let mut sgd = nn::Sgd { momentum: 0.9, ..Default::default() }.build(&vs, 0.01).unwrap();
    let stage = dalab_core::Stage::main();
    let mut step = |it: usize, total: usize| {
        let ctx = StepCtx::at(it, total, Device::Cpu);
        match which {
            Opt::Dalab => {
                stepper.iterate(m.as_mut(), &stage, dalab_core::StageBatch::Both(&b), None, &ctx, 1.0).unwrap();
            }
            Opt::Tch => {
                let out = m.training_loss(&b, &ctx).unwrap();
                let _ = out.loss.double_value(&[]); // the trainer's NaN check, as before
                sgd.backward_step(&out.loss);
            }
        }
    };
    for i in 0..(iters / 10).max(10) {
        step(i, iters);
    }
    let mut rates: Vec<f64> = (0..repeats)
        .map(|_| {
            let t0 = Instant::now();
            for i in 0..iters {
                step(i, iters);
            }
            iters as f64 / t0.elapsed().as_secs_f64()
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |k: &str, d: &str| args.iter().position(|a| a == k).map_or(d.to_string(), |i| args[i + 1].clone());
    let threads: i32 = arg("--threads", "1").parse().unwrap();
    let iters: usize = arg("--iters", "300").parse().unwrap();
    let repeats: usize = arg("--repeats", "5").parse().unwrap();
    let workload = arg("--workload", "all");
    let which = match arg("--optimizer", "dalab").as_str() {
        "dalab" => Opt::Dalab,
        "tch" => Opt::Tch,
        other => panic!("--optimizer: `dalab` or `tch`, got {other}"),
    };
    tch::set_num_threads(threads);
    let all = ["amazon", "amazon-cat", "amazon-sparse", "digits"];
    for w in all.iter().filter(|w| workload == "all" || workload == **w) {
        let r = bench(w, iters, repeats, which);
        let o = if which == Opt::Dalab { "dalab" } else { "tch" };
        println!("workload={w} threads={} half_batch={HALF} optimizer={o} iters_per_s={r:.1}", tch::get_num_threads());
    }
}
