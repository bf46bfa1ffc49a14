//! `cargo xtask bench-metrics`: dalab-metrics against the NumPy / scikit-learn peer
//! (`../shared/peers/numpy_divergence_bench.py`) on the same shapes, data distribution and thread counts, in one
//! session; prints the medians and the ratios dalab/peer.
//!
//! ```text
//! cargo xtask bench-metrics [--n 500,2000] [--d 256,2048] [--threads 1,2] [--reps 5] [--metrics a,b]
//!                           [--no-peer] [--peer-cold] [--large N] [--kernels auto,faer,matrixmultiply]
//! ```
//! - `--kernels`: the dalab side once per product kernel (`DALAB_GEMM`, see `dalab_metrics::gemm::Kernel`), each row
//!   of the table naming its kernel, with its time relative to the first kernel listed (default: `auto` only).
//! - `reps` repetitions (default 5), each running, for every thread count t, first dalab then the peer, so that load
//!   changes on a shared machine hit both alike; the medians over the repetitions are compared.
//! - dalab: `cargo bench -p dalab-benches --bench metrics` in its medians mode (`DALAB_BENCH_MEDIANS=1`,
//!   `DALAB_BENCH_REPS=1`, `RAYON_NUM_THREADS=t`): per case a warm-up run, then one timed run.
//! - peer: the script twice in one Python process (`OPENBLAS_NUM_THREADS`/`OMP_NUM_THREADS`/`MKL_NUM_THREADS` = t),
//!   the first pass as an untimed warm-up (output discarded) so that, like dalab's, each timed call runs warm (NumPy's
//!   allocator and pages, BLAS threads); `--peer-cold` times the first pass instead, one cold call per process
//!   (slower: about 1.3–1.6 s instead of 0.7 s for mmd2_biased at n = 2000, d = 2048 on one thread). Scikit-learn is
//!   imported beforehand so that the first a_distance does not pay the import. And a NumPy f32 GEMM `z @ w.T` (w a copy of z, so
//!   that NumPy does not switch to a half-flop symmetric update) of the pairwise-distance shape ((2n × d)·(d × 2n)),
//!   the same product as dalab's `gemm` case, for the GEMM comparison.
//! - NumPy and scikit-learn: the first `python3` that imports both, else a venv at `target/peer-venv` (created
//!   with `python3 -m venv` and `pip install numpy scikit-learn`). Override with `DALAB_PEER_PYTHON`.
//! - `DALAB_REPO_ROOT` overrides the workspace root (default: the parent of xtask/).
//! - `--large N`: also the bounded-memory run, biased MMD² at N rows per domain, d = 256 (peak RSS printed).

use std::collections::BTreeMap;
use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The values of `DALAB_GEMM` (`dalab_metrics::gemm::Kernel`; xtask does not link dalab-metrics).
const KERNELS: [&str; 3] = ["auto", "faer", "matrixmultiply"];

/// The kernel column of the peer's records.
const PEER: &str = "peer";

const PEER_METRICS: [&str; 4] = ["mmd2_biased", "mmd2_linear", "coral", "a_distance"];

struct Opts {
    n: Vec<usize>,
    d: Vec<usize>,
    threads: Vec<usize>,
    reps: usize,
    metrics: Option<String>,
    peer: bool,
    peer_warm: bool,
    large: Option<usize>,
    kernels: Vec<String>,
}

fn parse_list(flag: &str, v: Option<&String>) -> Result<Vec<usize>, String> {
    let v = v.ok_or_else(|| format!("{flag} needs a value"))?;
    v.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse::<usize>().map_err(|e| format!("{flag}: `{s}`: {e}")))
        .collect()
}

fn parse(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        n: vec![500, 2000],
        d: vec![256, 2048],
        threads: vec![1, 2],
        reps: 5,
        metrics: None,
        peer: true,
        peer_warm: true,
        large: None,
        kernels: vec!["auto".into()],
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--n" => o.n = parse_list(a, it.next())?,
            "--d" => o.d = parse_list(a, it.next())?,
            "--threads" => o.threads = parse_list(a, it.next())?,
            "--reps" => o.reps = parse_list(a, it.next())?.first().copied().unwrap_or(5).max(1),
            "--metrics" => o.metrics = Some(it.next().ok_or("--metrics needs a value")?.clone()),
            "--no-peer" => o.peer = false,
            "--peer-cold" => o.peer_warm = false,
            "--large" => o.large = parse_list(a, it.next())?.first().copied(),
            "--kernels" => {
                let v = it.next().ok_or("--kernels needs a value")?;
                o.kernels = v.split(',').map(|k| k.trim().to_string()).filter(|k| !k.is_empty()).collect();
                if let Some(k) = o.kernels.iter().find(|k| !KERNELS.contains(&k.as_str())) {
                    return Err(format!("--kernels: unknown kernel `{k}` (expected {})", KERNELS.join(", ")));
                }
            }
            "-h" | "--help" => {
                return Err("usage: cargo xtask bench-metrics [--n 500,2000] [--d 256,2048] [--threads 1,2] \
                            [--reps 5] [--metrics mmd2_biased,...] [--no-peer] [--peer-cold] [--large 50000] \
                            [--kernels auto,faer,matrixmultiply]"
                    .into());
            }
            other => return Err(format!("bench-metrics: unknown argument `{other}`")),
        }
    }
    if o.kernels.is_empty() {
        return Err("bench-metrics: --kernels needs at least one kernel".into());
    }
    if o.n.is_empty() || o.d.is_empty() || o.threads.is_empty() || o.threads.contains(&0) {
        return Err("bench-metrics: --n, --d and --threads need positive values".into());
    }
    Ok(o)
}

fn root() -> PathBuf {
    if let Some(r) = env::var_os("DALAB_REPO_ROOT") {
        return PathBuf::from(r);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
}

/// `key=value` fields of one output line.
fn fields(line: &str) -> BTreeMap<String, String> {
    line.split_whitespace().filter_map(|f| f.split_once('=').map(|(k, v)| (k.to_string(), v.to_string()))).collect()
}

type Key = (String, String, usize, usize, usize); // metric, kernel ("peer" for the peer), n, d, threads

fn record(out: &mut BTreeMap<Key, Vec<f64>>, line: &str, kernel: &str, threads: usize) {
    let f = fields(line);
    let (Some(m), Some(n), Some(d), Some(s)) = (f.get("metric"), f.get("n"), f.get("d"), f.get("seconds")) else {
        return;
    };
    if let (Ok(n), Ok(d), Ok(s)) = (n.parse(), d.parse(), s.parse()) {
        out.entry((m.clone(), kernel.to_string(), n, d, threads)).or_default().push(s);
    }
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() { f64::NAN } else { v[v.len() / 2] }
}

fn run_output(cmd: &mut Command, what: &str) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("{what}: cannot start: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{what} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn imports_ok(python: &Path) -> bool {
    Command::new(python).args(["-c", "import numpy, sklearn"]).output().map(|o| o.status.success()).unwrap_or(false)
}

/// A python that imports numpy and scikit-learn, installing them into `target/peer-venv` when needed.
fn peer_python() -> Result<PathBuf, String> {
    if let Some(p) = env::var_os("DALAB_PEER_PYTHON") {
        return Ok(PathBuf::from(p));
    }
    let system = PathBuf::from("python3");
    if imports_ok(&system) {
        return Ok(system);
    }
    let venv = root().join("target").join("peer-venv");
    let py = venv.join("bin").join("python3");
    if py.exists() && imports_ok(&py) {
        return Ok(py);
    }
    eprintln!("bench-metrics: installing numpy and scikit-learn into {}", venv.display());
    run_output(Command::new("python3").args(["-m", "venv"]).arg(&venv), "python3 -m venv")?;
    run_output(
        Command::new(&py).args(["-m", "pip", "install", "--quiet", "numpy", "scikit-learn"]),
        "pip install numpy scikit-learn",
    )?;
    if !imports_ok(&py) {
        return Err(format!("{} still cannot import numpy and sklearn", py.display()));
    }
    Ok(py)
}

fn join(v: &[usize]) -> String {
    v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(",")
}

/// One medians-mode run of the dalab bench (a warm-up and one timed run per case) at `t` threads, with the product
/// kernel `kernel`.
fn dalab_run(o: &Opts, kernel: &str, t: usize, out: &mut BTreeMap<Key, Vec<f64>>) -> Result<(), String> {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let shapes: Vec<String> = o.n.iter().flat_map(|n| o.d.iter().map(move |d| format!("{n}x{d}"))).collect();
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(root())
        .args(["bench", "--quiet", "-p", "dalab-benches", "--bench", "metrics"])
        .env("DALAB_BENCH_MEDIANS", "1")
        .env("DALAB_BENCH_REPS", "1")
        .env("DALAB_BENCH_SHAPES", shapes.join(","))
        .env("RAYON_NUM_THREADS", t.to_string())
        .env("DALAB_GEMM", kernel);
    if let Some(m) = &o.metrics {
        cmd.env("DALAB_BENCH_METRICS", m);
    }
    let text = run_output(&mut cmd, "cargo bench -p dalab-benches --bench metrics")?;
    for line in text.lines().filter(|l| l.starts_with("metric=")) {
        let ran = fields(line).get("kernel").cloned().unwrap_or_default();
        if kernel != "auto" && ran != kernel {
            return Err(format!("bench-metrics: asked for kernel {kernel}, the bench ran {ran} (not on this CPU?)"));
        }
        record(out, line, kernel, t);
    }
    Ok(())
}

const GEMM_SNIPPET: &str = "import sys, time, numpy as np
rng = np.random.default_rng(0)
reps = int(sys.argv[1])
for n in map(int, sys.argv[2].split(',')):
    for d in map(int, sys.argv[3].split(',')):
        z = rng.standard_normal((2 * n, d)).astype(np.float32)
        w = z.copy()  # a second buffer: z @ z.T alone would run as a symmetric rank-k update (half the flops)
        z @ w.T
        ts = []
        for _ in range(reps):
            t0 = time.perf_counter(); z @ w.T; ts.append(time.perf_counter() - t0)
        ts.sort()
        print(f'metric=gemm n={n} d={d} seconds={ts[len(ts) // 2]:.5f}', flush=True)
";

fn peer_script() -> Result<PathBuf, String> {
    let script = env::var_os("DALAB_PEER_BENCH")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("..").join("shared").join("peers").join("numpy_divergence_bench.py"));
    if !script.exists() {
        return Err(format!("peer script not found: {} (set DALAB_PEER_BENCH)", script.display()));
    }
    Ok(script)
}

/// One run of the peer script (and of the NumPy GEMM) at `t` BLAS threads.
fn peer_run(o: &Opts, python: &Path, script: &Path, t: usize, out: &mut BTreeMap<Key, Vec<f64>>) -> Result<(), String> {
    let script_path = format!("{:?}", script.display().to_string());
    let warm_up = if o.peer_warm {
        format!("with contextlib.redirect_stdout(io.StringIO()): runpy.run_path({script_path}, run_name='__main__')\n")
    } else {
        String::new()
    };
    let runner = format!(
        "import contextlib, io, runpy, sys; import sklearn.svm; sys.argv = [{script_path}, '--n', {}, '--d', {}]\n\
         {warm_up}runpy.run_path({script_path}, run_name='__main__')",
        o.n.iter().map(|n| format!("'{n}'")).collect::<Vec<_>>().join(", "),
        o.d.iter().map(|d| format!("'{d}'")).collect::<Vec<_>>().join(", "),
    );
    let ts = t.to_string();
    let env_threads =
        [("OPENBLAS_NUM_THREADS", ts.as_str()), ("OMP_NUM_THREADS", ts.as_str()), ("MKL_NUM_THREADS", ts.as_str())];
    let mut cmd = Command::new(python);
    cmd.args(["-c", &runner]).envs(env_threads);
    let text = run_output(&mut cmd, "numpy_divergence_bench.py")?;
    for line in text.lines().filter(|l| l.starts_with("metric=")) {
        record(out, line, PEER, t);
    }
    let mut cmd = Command::new(python);
    cmd.args(["-c", GEMM_SNIPPET, "1", &join(&o.n), &join(&o.d)]).envs(env_threads);
    let text = run_output(&mut cmd, "numpy GEMM")?;
    for line in text.lines().filter(|l| l.starts_with("metric=")) {
        record(out, line, PEER, t);
    }
    Ok(())
}

/// Entry point of `cargo xtask bench-metrics ARGS...`.
pub fn run(args: &[String]) -> Result<(), String> {
    let o = parse(args)?;
    let python = if o.peer { Some(peer_python()?) } else { None };
    let script = if o.peer { Some(peer_script()?) } else { None };
    let (mut dalab, mut peer) = (BTreeMap::new(), BTreeMap::new());
    // Interleaved (dalab, peer) per repetition and thread count, so that a change of load on a shared machine hits
    // both sides alike; medians over the repetitions.
    for rep in 0..o.reps {
        for &t in &o.threads {
            eprintln!("bench-metrics: repetition {}/{}, {t} thread(s)", rep + 1, o.reps);
            for k in &o.kernels {
                dalab_run(&o, k, t, &mut dalab)?;
            }
            if let (Some(py), Some(sc)) = (&python, &script) {
                peer_run(&o, py, sc, t, &mut peer)?;
            }
        }
    }
    let get = |m: &str, k: &str, n: usize, d: usize, t: usize| {
        let map = if k == PEER { &peer } else { &dalab };
        map.get(&(m.to_string(), k.to_string(), n, d, t)).map(|v| median(v))
    };
    println!("\nmedians in seconds ({} runs each); ratio = dalab / peer (< 1: dalab faster)", o.reps);
    let first = o.kernels[0].as_str();
    let several = o.kernels.len() > 1;
    println!(
        "{:<12} {:<14} {:>5} {:>5} {:>7} {:>10} {:>10} {:>8} {:>10}{}",
        "metric",
        "kernel",
        "n",
        "d",
        "threads",
        "dalab_s",
        "peer_s",
        "ratio",
        "peer/dalab",
        if several { format!(" {:>9}", format!("/{first}")) } else { String::new() }
    );
    let mut metrics: Vec<String> = dalab.keys().map(|k| k.0.clone()).collect();
    metrics.dedup();
    let order: Vec<&str> = PEER_METRICS.iter().copied().chain(["gemm"]).collect();
    metrics.sort_by_key(|m| order.iter().position(|x| x == m).unwrap_or(usize::MAX));
    for m in &metrics {
        for &n in &o.n {
            for &d in &o.d {
                for &t in &o.threads {
                    for k in &o.kernels {
                        let Some(ds) = get(m, k, n, d, t) else { continue };
                        let (ps_s, r, inv) = match get(m, PEER, n, d, t) {
                            Some(p) => (format!("{p:.4}"), format!("{:.3}", ds / p), format!("{:.2}x", p / ds)),
                            None => ("-".into(), "-".into(), "-".into()),
                        };
                        let rel = match (several, get(m, first, n, d, t)) {
                            (true, Some(f)) => format!(" {:>9.3}", ds / f),
                            (true, None) => format!(" {:>9}", "-"),
                            (false, _) => String::new(),
                        };
                        println!("{m:<12} {k:<14} {n:>5} {d:>5} {t:>7} {ds:>10.4} {ps_s:>10} {r:>8} {inv:>10}{rel}");
                    }
                }
            }
        }
    }
    if o.threads.len() > 1 {
        let (t1, tn) = (o.threads[0], o.threads[o.threads.len() - 1]);
        println!("\nparallel speed-up of dalab, {t1} -> {tn} threads (time at {t1} / time at {tn})");
        for m in &metrics {
            for k in &o.kernels {
                for &n in &o.n {
                    for &d in &o.d {
                        if let (Some(a), Some(b)) = (get(m, k, n, d, t1), get(m, k, n, d, tn)) {
                            println!("{m:<12} {k:<14} {n:>5} {d:>5} {:>8.2}x", a / b);
                        }
                    }
                }
            }
        }
        println!("\nmmd2_biased / gemm of the same shape (dalab, both on the same thread count and kernel)");
        for k in &o.kernels {
            for &n in &o.n {
                for &d in &o.d {
                    for &t in &o.threads {
                        if let (Some(a), Some(b)) = (get("mmd2_biased", k, n, d, t), get("gemm", k, n, d, t)) {
                            println!("{k:<14} n={n:<5} d={d:<5} threads={t}  {:.2}", a / b);
                        }
                    }
                }
            }
        }
    }
    if let Some(n) = o.large {
        eprintln!("bench-metrics: bounded-memory run, n = {n} per domain, d = 256");
        let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(root())
            .args(["bench", "--quiet", "-p", "dalab-benches", "--bench", "metrics"])
            .env("DALAB_BENCH_LARGE", n.to_string());
        let text = run_output(&mut cmd, "large MMD run")?;
        for line in text.lines().filter(|l| l.starts_with("metric=")) {
            println!("\n{line}");
        }
    }
    Ok(())
}
