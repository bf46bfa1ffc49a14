use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use dalab_cli::{mean_std, registry};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// dalab: domain adaptation experiments on libtorch.
#[derive(Parser, Debug)]
#[command(name = "dalab", version, about)]
struct Cli {
    /// Data directory (default: $DALAB_DATA_DIR, else ./data).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run an experiment YAML: every method × task × seed, with results and TensorBoard logs.
    Run {
        /// The experiment file.
        experiment: PathBuf,
        /// Where results go: <runs-dir>/<experiment name>/<trial id>/.
        #[arg(long, default_value = "runs")]
        runs_dir: PathBuf,
        /// Print the trials and exit without training.
        #[arg(long)]
        dry_run: bool,
    },
    /// List the registered methods.
    Methods,
    /// Print a method's options with their defaults (paste under `methods:` in an experiment).
    ShowConfig {
        /// Method name, as listed by `dalab methods`.
        method: String,
    },
}

fn data_dir(flag: Option<&Path>) -> PathBuf {
    flag.map(Path::to_path_buf)
        .or_else(|| std::env::var_os("DALAB_DATA_DIR").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("data"))
}

/// Exit codes: 0 success, 1 a trial failed or a runtime error, 2 a bad command line or experiment file.
enum Failure {
    Usage(anyhow::Error),
    Runtime(anyhow::Error),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
        Err(Failure::Runtime(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    match cli.cmd {
        Cmd::Methods => {
            for e in registry().entries() {
                println!("{:<14} {}", e.name, e.summary);
            }
            Ok(())
        }
        Cmd::ShowConfig { method } => show_config(&method).map_err(Failure::Usage),
        Cmd::Run { experiment, runs_dir, dry_run } => {
            let reg = registry();
            let exp = dalab_runner::load_experiment(&experiment, &reg).map_err(|e| Failure::Usage(e.into()))?;
            run_experiment(&reg, &exp, &runs_dir, &data_dir(cli.data_dir.as_deref()), dry_run).map_err(Failure::Runtime)
        }
    }
}

fn show_config(method: &str) -> Result<()> {
    let reg = registry();
    let entry = reg
        .get(method)
        .with_context(|| format!("unknown method `{method}` (registered: {})", reg.names().join(", ")))?;
    let cfg = reg.default_config(method)?;
    let body = serde_saphyr::to_string(&cfg).context("cannot render the config as YAML")?;
    println!("# {}: {}", entry.name, entry.summary);
    println!("# every option with its default; paste under `methods:` in an experiment file");
    if cfg.as_object().is_some_and(|o| o.is_empty()) {
        println!("{method}: {{}}");
    } else {
        println!("{method}:");
        for line in body.lines() {
            println!("  {line}");
        }
    }
    Ok(())
}

fn run_experiment(
    reg: &dalab_core::Registry,
    exp: &dalab_runner::ExperimentConfig,
    runs_dir: &Path,
    data_dir: &Path,
    dry_run: bool,
) -> Result<()> {
    let trials = dalab_runner::plan(exp);
    if dry_run {
        for t in &trials {
            println!("{}  {} {}→{} seed {}", t.id(), t.method, t.source, t.target, t.seed);
        }
        return Ok(());
    }
    dalab_core::device::init_cuda();
    let device = exp.device.resolve()?;
    println!(
        "dalab {} · device {} · experiment `{}`: {} trial(s) · results in {}",
        env!("CARGO_PKG_VERSION"),
        dalab_core::device::describe(device),
        exp.name,
        trials.len(),
        runs_dir.join(&exp.name).display()
    );
    let opts = dalab_runner::RunOptions { runs_dir: runs_dir.to_path_buf(), data_dir: data_dir.to_path_buf() };
    let mut results = Vec::new();
    let mut failures = Vec::new();
    for (i, t) in trials.iter().enumerate() {
        match dalab_runner::run_trial(reg, t, &opts) {
            Ok((r, _dir)) => {
                println!(
                    "[{}/{}] {:<12} {}→{} seed {}: source {:.1}, target {:.1} ({} steps, {:.1} s)",
                    i + 1,
                    trials.len(),
                    t.method,
                    t.source,
                    t.target,
                    t.seed,
                    100.0 * r.selected.source,
                    100.0 * r.selected.target,
                    r.steps,
                    r.seconds
                );
                results.push(r);
            }
            Err(e) => {
                println!(
                    "[{}/{}] {:<12} {}→{} seed {}: FAILED: {e}",
                    i + 1,
                    trials.len(),
                    t.method,
                    t.source,
                    t.target,
                    t.seed
                );
                failures.push(e.to_string());
            }
        }
    }
    print_table(exp, &results);
    println!(
        "files: {}/<trial>/ (config.yaml, result.json, metrics.jsonl, TensorBoard events)",
        runs_dir.join(&exp.name).display()
    );
    println!("TensorBoard: tensorboard --logdir {}", runs_dir.join(&exp.name).display());
    if !failures.is_empty() {
        bail!("{} of {} trial(s) failed: {}", failures.len(), trials.len(), failures.join("; "));
    }
    Ok(())
}

fn print_table(exp: &dalab_runner::ExperimentConfig, results: &[dalab_runner::TrialResult]) {
    println!();
    println!("{:<14} {:<24} {:>5}  {:>13}  {:>13}", "method", "task", "seeds", "source acc %", "target acc %");
    for (method, _) in &exp.methods.0 {
        for task in &exp.tasks {
            let rs: Vec<_> = results
                .iter()
                .filter(|r| {
                    &r.method == method && dalab_runner::config::split_task(task) == Some((&r.source, &r.target))
                })
                .collect();
            if rs.is_empty() {
                continue;
            }
            let src: Vec<f64> = rs.iter().map(|r| r.selected.source).collect();
            let tgt: Vec<f64> = rs.iter().map(|r| r.selected.target).collect();
            println!("{:<14} {:<24} {:>5}  {:>13}  {:>13}", method, task, rs.len(), mean_std(&src), mean_std(&tgt));
        }
    }
    println!("model selection: {}", exp.selection.label());
}
