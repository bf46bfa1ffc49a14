//! Benchmarks of `dalab-metrics` at the shapes of `../shared/peers/numpy_divergence_bench.py`:
//! n ∈ {500, 2000} rows per domain, d ∈ {256, 2048}, source ~ N(0, 1), target ~ N(0.1, 1.1²), plus one GEMM of
//! the shape of the pairwise-distance product ((2n × d) · (d × 2n), f32 as the peer) by the kernel of the MMD's f32
//! Gram tiles (`dalab_metrics::gemm`: faer's product; `DALAB_GEMM=matrixmultiply` for ndarray's).
//!
//! Modes (environment variables):
//! - none: criterion (`cargo bench -p dalab-benches --bench metrics`), small sample counts;
//! - `DALAB_BENCH_MEDIANS=1`: no criterion; times each case `DALAB_BENCH_REPS` times (default 5) and prints
//!   `metric=… n=… d=… threads=… seconds=<median> value=…` lines like the peer (used by `cargo xtask bench-metrics`);
//!   `DALAB_BENCH_SHAPES=500x256,2000x2048` restricts the shapes, `DALAB_BENCH_METRICS=mmd2_biased,gemm` the metrics;
//! - `DALAB_BENCH_LARGE=50000`: one biased multi-kernel MMD² at n = 50,000 per domain, d = 256 (f32 Gram
//!   products), then prints the wall time and the peak resident memory (VmHWM from /proc/self/status).
//!
//! The thread count is rayon's (`RAYON_NUM_THREADS`).

use criterion::{Criterion, criterion_group};
use dalab_metrics::adist::{ADistanceSettings, proxy_a_distance};
use dalab_metrics::coral::coral_distance;
use dalab_metrics::gemm::{kernel, kernel_name, matmul_nt_into};
use dalab_metrics::mmd::{Estimator, MmdSettings, Precision, mmd2};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use std::hint::black_box;
use std::time::{Duration, Instant};

const SHAPES: [(usize, usize); 4] = [(500, 256), (500, 2048), (2000, 256), (2000, 2048)];
const METRICS: [&str; 5] = ["mmd2_biased", "mmd2_linear", "coral", "a_distance", "gemm"];

fn normal(rng: &mut impl Rng, n: usize, d: usize, scale: f64, shift: f64) -> Array2<f64> {
    Array2::from_shape_simple_fn((n, d), || {
        let u1: f64 = 1.0 - rng.random::<f64>();
        let u2: f64 = rng.random::<f64>();
        // Rounded through f32, as the peer's data.
        f64::from(((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos() * scale + shift) as f32)
    })
}

fn data(n: usize, d: usize) -> (Array2<f64>, Array2<f64>) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let xs = normal(&mut rng, n, d, 1.0, 0.0);
    let xt = normal(&mut rng, n, d, 1.1, 0.1);
    (xs, xt)
}

/// The settings the peer uses: DAN's 5 kernels, mean squared distance, f32 products.
fn mmd_biased_settings() -> MmdSettings {
    MmdSettings { precision: Precision::F32, ..MmdSettings::default() }
}

fn mmd_linear_settings() -> MmdSettings {
    MmdSettings { estimator: Estimator::Linear, ..MmdSettings::default() }
}

/// Runs one metric once; returns its value.
fn run_metric(name: &str, xs: &Array2<f64>, xt: &Array2<f64>, gemm: &mut Option<GemmCase>) -> f64 {
    match name {
        "mmd2_biased" => mmd2(xs.view(), xt.view(), &mmd_biased_settings()).map(|r| r.mmd2),
        "mmd2_linear" => mmd2(xs.view(), xt.view(), &mmd_linear_settings()).map(|r| r.mmd2),
        "coral" => coral_distance(xs.view(), xt.view()).map(|r| r.coral),
        "a_distance" => proxy_a_distance(xs.view(), xt.view(), &ADistanceSettings::default()).map(|r| r.d_a),
        "gemm" => {
            let g = gemm.get_or_insert_with(|| GemmCase::new(xs, xt));
            Ok(g.run())
        }
        other => panic!("unknown metric {other}"),
    }
    .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// `Z Zᵀ` for the pooled f32 sample, full square (no symmetry saving), through `dalab_metrics::gemm::matmul_nt_into`:
/// the kernel the MMD's f32 Gram tiles use (`DALAB_GEMM` chooses it, `dalab_metrics::gemm::kernel_name()` says
/// which), row blocks on the rayon pool, packing included.
struct GemmCase {
    z: Array2<f32>,
    out: Array2<f32>,
}

impl GemmCase {
    fn new(xs: &Array2<f64>, xt: &Array2<f64>) -> Self {
        let z = ndarray::concatenate(ndarray::Axis(0), &[xs.view(), xt.view()]).unwrap().mapv(|v| v as f32);
        let n = z.nrows();
        Self { z, out: Array2::zeros((n, n)) }
    }

    fn run(&mut self) -> f64 {
        matmul_nt_into(self.z.view(), self.z.view(), self.out.view_mut());
        f64::from(self.out[[0, 0]])
    }
}

fn env_list(name: &str) -> Option<Vec<String>> {
    std::env::var(name).ok().map(|v| v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
}

fn selected_shapes() -> Vec<(usize, usize)> {
    match env_list("DALAB_BENCH_SHAPES") {
        Some(list) => list
            .iter()
            .filter_map(|s| {
                let (n, d) = s.split_once('x')?;
                Some((n.parse().ok()?, d.parse().ok()?))
            })
            .collect(),
        None => SHAPES.to_vec(),
    }
}

fn selected_metrics() -> Vec<String> {
    env_list("DALAB_BENCH_METRICS").unwrap_or_else(|| METRICS.iter().map(|s| s.to_string()).collect())
}

fn medians_mode() {
    let reps: usize = std::env::var("DALAB_BENCH_REPS").ok().and_then(|v| v.parse().ok()).unwrap_or(5).max(1);
    let threads = rayon::current_num_threads();
    eprintln!("product kernel: {}", kernel_name());
    for (n, d) in selected_shapes() {
        let (xs, xt) = data(n, d);
        let mut gemm = None;
        for m in selected_metrics() {
            let mut times = Vec::with_capacity(reps);
            let mut value = 0.0;
            // One untimed warm-up run.
            black_box(run_metric(&m, &xs, &xt, &mut gemm));
            for _ in 0..reps {
                let t = Instant::now();
                value = black_box(run_metric(&m, &xs, &xt, &mut gemm));
                times.push(t.elapsed().as_secs_f64());
            }
            times.sort_by(f64::total_cmp);
            let med = times[times.len() / 2];
            println!(
                "metric={m} n={n} d={d} threads={threads} seconds={med:.5} value={value:.6} kernel={}",
                kernel().name()
            );
        }
    }
}

fn peak_rss_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn large_mode(n: usize) {
    let d = 256;
    let (xs, xt) = data(n, d);
    let after_data = peak_rss_kib().unwrap_or(0);
    let t = Instant::now();
    let r = mmd2(xs.view(), xt.view(), &mmd_biased_settings()).unwrap_or_else(|e| panic!("{e}"));
    let secs = t.elapsed().as_secs_f64();
    let peak = peak_rss_kib().unwrap_or(0);
    println!(
        "metric=mmd2_biased_large n={n} d={d} threads={} seconds={secs:.2} value={:.6} input_f64_mib={:.1} \
         peak_rss_after_data_mib={:.1} peak_rss_mib={:.1} dense_kernel_matrix_would_be_mib={:.0}",
        rayon::current_num_threads(),
        r.mmd2,
        (2 * n * d * 8) as f64 / 1048576.0,
        after_data as f64 / 1024.0,
        peak as f64 / 1024.0,
        ((2 * n) * (2 * n) * 8) as f64 / 1048576.0,
    );
}

fn criterion_benches(c: &mut Criterion) {
    for (n, d) in selected_shapes() {
        let (xs, xt) = data(n, d);
        let mut gemm = None;
        let mut group = c.benchmark_group(format!("n{n}_d{d}"));
        group.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
        for m in selected_metrics() {
            group.bench_function(m.as_str(), |b| b.iter(|| run_metric(&m, &xs, &xt, &mut gemm)));
        }
        group.finish();
    }
}

criterion_group!(benches, criterion_benches);

fn main() {
    if let Some(n) = std::env::var("DALAB_BENCH_LARGE").ok().and_then(|v| v.parse().ok()) {
        large_mode(n);
    } else if std::env::var("DALAB_BENCH_MEDIANS").is_ok_and(|v| v == "1") {
        medians_mode();
    } else {
        benches();
        Criterion::default().configure_from_args().final_summary();
    }
}
