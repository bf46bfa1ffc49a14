mod cmd_data;
mod cmd_divergence;
mod cmd_model;
mod cmd_slurm;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use dalab_cli::registry;
use dalab_runner::exec::{ChildOutcome, EXIT_BUSY, die_with_parent, run_child};
use dalab_runner::trial::{ProgressSink, TrialEnv};
use dalab_runner::{Observer, Outcome, Trial, report};
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// dalab: domain adaptation experiments on libtorch.
#[derive(Parser, Debug)]
#[command(name = "dalab", version, about)]
struct Cli {
    /// Data directory (default: $DALAB_DATA_DIR, else ./data). Missing files: `dalab data fetch NAME`.
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run an experiment YAML: every sweep point × method × task × seed. Finished trials are skipped, so
    /// rerunning after a crash resumes; failed trials are retried.
    Run {
        /// The experiment file.
        experiment: PathBuf,
        /// Where results go: <runs-dir>/<experiment name>/<trial id>/.
        #[arg(long, default_value = "runs")]
        runs_dir: PathBuf,
        /// Override a key: `--set optim.lr=0.01` (repeatable; the value is YAML, type-checked like the file).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// Hydra-style overrides after the file, applied after the `--set`s: `optim.lr=0.01`, `~methods.dan` (delete
        /// a key), `sweep.methods.dann.trade_off=[0.1,1]` (a sweep axis).
        #[arg(value_name = "OVERRIDE")]
        overrides: Vec<String>,
        /// Trials run at the same time. CPU: the cores are split between them; CUDA: one trial per device.
        #[arg(long, short = 'j', default_value_t = 1)]
        jobs: usize,
        /// Print the expanded trials (with `--launcher slurm`: the sbatch script) and exit without training.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        slurm: SlurmArgs,
    },
    /// Where each trial of an experiment stands: done, failed (the reason), running or queued (with the Slurm
    /// array task), pending; and the counts.
    Status {
        /// The experiment file.
        experiment: PathBuf,
        #[arg(long, default_value = "runs")]
        runs_dir: PathBuf,
        /// `--set` overrides, as given to `dalab run`.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
    },
    /// Result tables (Markdown + CSV) and accuracy curves (PNG) of an experiment.
    Report {
        /// An experiment YAML (its trials) or an experiment folder (every trial in it).
        source: PathBuf,
        /// Where the experiment folders are (with a YAML source).
        #[arg(long, default_value = "runs")]
        runs_dir: PathBuf,
        /// Paper numbers to add as rows (YAML: caption, rows of name / compare_to / values).
        #[arg(long)]
        reference: Option<PathBuf>,
        /// Where to write report.md, report.csv and plots/ (default: the experiment folder).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Skip the PNG plots.
        #[arg(long)]
        no_plots: bool,
        /// `--set` overrides, as given to `dalab run` (with a YAML source).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// Pick one sweep point per method × task × seed by this validator's score of each trial's kept model
        /// (`target_oracle`: by target accuracy, marked ORACLE); rows become methods.
        #[arg(long, value_name = "VALIDATOR")]
        select_by: Option<String>,
        /// Also write selection.md: each validator's pick (of a checkpoint, of a sweep point) against the ORACLE's
        /// and `last`, with Spearman's ρ (docs/model-selection.md).
        #[arg(long)]
        selection: bool,
        /// The row that the gain table (and its negative-transfer flags) compares every other row with.
        #[arg(long, default_value = report::BASELINE)]
        baseline: String,
        /// Also measure each task's shift (proxy A-distance; MMD² with DAN's kernels and a permutation test) on
        /// its features before any per-domain standardisation, into the report beside the gains.
        #[arg(long)]
        divergences: bool,
        /// For every trial on 2-d inputs (the moons), the DANN paper's Figure 2: decision regions and a PCA of the
        /// features of both domains, as plots/boundary-<trial>.png (also drawn when the reference file lists
        /// `figures: [boundaries]`).
        #[arg(long)]
        boundaries: bool,
        /// Target accuracy against the values of this swept key (full dotted key or its last part), a line per
        /// method and combination of the other swept values: a table and plots/sweep-<key>-<task>.png (also drawn
        /// for a reference file's `figures: [{sweep: KEY}]`).
        #[arg(long, value_name = "KEY")]
        plot_sweep: Vec<String>,
        /// Torrey & Shavlik's measures of transfer per row: start, slope (mean accuracy over the first third of
        /// the steps) and asymptote of each trial's learning curve (its last stage), mean ± std over seeds.
        #[arg(long)]
        transfer_measures: bool,
        /// The accuracy on every domain of each task `a+b+…→c` after each stage (the sources with their own
        /// outputs: multi-task learning, progressive networks, fine-tuning through a sequence) and the forgetting.
        #[arg(long)]
        per_task: bool,
    },
    /// Dataset files: list what is known and present, verify checksums, fetch from the origin.
    #[command(subcommand)]
    Data(cmd_data::DataCmd),
    /// Classical baselines that pin a dataset's preprocessing (e.g. `dalab baseline 1nn`).
    Baseline(cmd_data::BaselineArgs),
    /// MMD², proxy A-distance and CORAL distance between domains given as feature files (.npy/.npz/.csv/.mat).
    Divergence(Box<cmd_divergence::DivergenceArgs>),
    /// Per-sample predictions and class probabilities of a trial's saved model, as CSV.
    Predict {
        #[command(flatten)]
        input: cmd_model::InputArgs,
        /// Where to write the CSV (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The accuracy of a trial's saved model on a labelled domain.
    Eval {
        #[command(flatten)]
        input: cmd_model::InputArgs,
    },
    /// List the registered methods.
    Methods,
    /// Print a method's options with their defaults (paste under `methods:` in an experiment).
    ShowConfig {
        /// Method name, as listed by `dalab methods`.
        method: String,
    },
    /// Internal: run one trial (JSON on stdin); started by `dalab run`.
    /// One Slurm array task: the trials of a task file, one after another, as a local run runs them.
    #[command(name = "__slurm-task", hide = true)]
    SlurmTask {
        #[arg(long)]
        runs_dir: PathBuf,
        #[arg(long)]
        threads: usize,
        file: PathBuf,
    },
    #[command(name = "__trial", hide = true)]
    Trial {
        #[arg(long)]
        runs_dir: PathBuf,
        #[arg(long)]
        threads: usize,
        #[arg(long)]
        device: Option<String>,
        #[arg(long)]
        parent_pid: u32,
    },
}

/// `dalab run`'s launcher flags (each overrides the experiment's `launcher:` key).
#[derive(clap::Args, Debug, Default)]
struct SlurmArgs {
    /// `local` (child processes, `--jobs`) or `slurm` (a job array; docs/configuration.md, "Running on a cluster").
    #[arg(long, value_name = "local|slurm")]
    launcher: Option<String>,
    /// Slurm partition.
    #[arg(long)]
    partition: Option<String>,
    /// Time limit of each array task (Slurm's format, e.g. 2:00:00).
    #[arg(long)]
    time: Option<String>,
    /// Memory of each array task (e.g. 4G).
    #[arg(long)]
    mem: Option<String>,
    /// CPUs of each array task (the trial's threads).
    #[arg(long)]
    cpus_per_trial: Option<usize>,
    /// GPUs of each array task.
    #[arg(long)]
    gpus_per_trial: Option<usize>,
    /// Array tasks running at once (the `%K` throttle).
    #[arg(long)]
    max_parallel: Option<usize>,
    /// Trials each array task runs one after another.
    #[arg(long)]
    trials_per_task: Option<usize>,
    /// One more `#SBATCH` option, verbatim (repeatable), e.g. `--sbatch-arg=--account=abc`.
    #[arg(long = "sbatch-arg", value_name = "OPTION", allow_hyphen_values = true)]
    sbatch_args: Vec<String>,
}

impl SlurmArgs {
    /// The launcher: the experiment's, with these flags over it; an error for a Slurm flag without Slurm.
    fn launcher(&self, exp: &dalab_runner::Experiment) -> Result<dalab_runner::slurm::Launcher> {
        use dalab_runner::slurm::{Launcher, SlurmConfig};
        let from_file = exp.base().launcher.clone();
        let kind = match self.launcher.as_deref() {
            None => from_file,
            Some("local") => Launcher::Local,
            Some("slurm") => match from_file {
                Launcher::Slurm(c) => Launcher::Slurm(c),
                Launcher::Local => Launcher::Slurm(SlurmConfig::default()),
            },
            Some(other) => anyhow::bail!("--launcher: `{other}` is not a launcher (local, slurm)"),
        };
        let any_slurm_flag = self.partition.is_some()
            || self.time.is_some()
            || self.mem.is_some()
            || self.cpus_per_trial.is_some()
            || self.gpus_per_trial.is_some()
            || self.max_parallel.is_some()
            || self.trials_per_task.is_some()
            || !self.sbatch_args.is_empty();
        match kind {
            Launcher::Local if any_slurm_flag => {
                anyhow::bail!("--partition, --time, --mem, …: Slurm options need `--launcher slurm`")
            }
            Launcher::Local => Ok(Launcher::Local),
            Launcher::Slurm(mut c) => {
                if let Some(v) = &self.partition {
                    c.partition = Some(v.clone());
                }
                if let Some(v) = &self.time {
                    c.time = Some(v.clone());
                }
                if let Some(v) = &self.mem {
                    c.mem = Some(v.clone());
                }
                if let Some(v) = self.cpus_per_trial {
                    c.cpus_per_trial = v;
                }
                if let Some(v) = self.gpus_per_trial {
                    c.gpus_per_trial = v;
                }
                if self.max_parallel.is_some() {
                    c.max_parallel = self.max_parallel;
                }
                if self.trials_per_task.is_some() {
                    c.trials_per_task = self.trials_per_task;
                }
                c.sbatch_args.extend(self.sbatch_args.iter().cloned());
                c.validate().map_err(|e| anyhow::anyhow!("launcher.{e}"))?;
                Ok(Launcher::Slurm(c))
            }
        }
    }
}

/// Exit codes: 0 success, 1 a trial failed or a runtime error, 2 a bad command line or experiment file.
pub(crate) enum Failure {
    Usage(anyhow::Error),
    Runtime(anyhow::Error),
    Code(u8),
}

fn main() -> ExitCode {
    // A closed stdout (`dalab run EXP.yaml --dry-run | head -1`) ends dalab quietly, as it ends `seq`, `grep`
    // or `cat`: the shell reports the status of `head`. Rust starts every program with SIGPIPE ignored, so a
    // write to a closed pipe is an EPIPE error instead, and `println!` panics on it ("failed printing to
    // stdout: Broken pipe", exit 101, a backtrace hint). Handling EPIPE at each of the printing sites instead
    // would be a rule every new `println!` must remember; the default action holds for all of them.
    // Nothing is lost when the runner itself dies this way: results are written atomically and a rerun resumes
    // (as after `kill -9`), and its trial children die with it (PR_SET_PDEATHSIG). Its one write into a pipe,
    // the trial JSON to a child's stdin, is small (far below a pipe's buffer) and made while the child is still
    // loading, before it could close that pipe. The trial child keeps SIGPIPE ignored (below): its progress
    // lines go to the runner, and a failed write there is ignored, never a reason to die mid-checkpoint.
    // SAFETY: signal() with SIG_DFL installs no handler; it runs before any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    if matches!(cli.cmd, Cmd::Trial { .. }) {
        // SAFETY: as above; SIG_IGN is the disposition Rust's runtime starts with.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        }
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(e)) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::from(2)
        }
        Err(Failure::Runtime(e)) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::from(1)
        }
        Err(Failure::Code(c)) => ExitCode::from(c),
    }
}

fn usage<E: Into<anyhow::Error>>(e: E) -> Failure {
    Failure::Usage(e.into())
}

pub(crate) fn runtime<E: Into<anyhow::Error>>(e: E) -> Failure {
    Failure::Runtime(e.into())
}

fn run(cli: Cli) -> Result<(), Failure> {
    let data = dalab_data::data_dir(cli.data_dir.as_deref());
    match cli.cmd {
        Cmd::Data(c) => cmd_data::run_data(&c, cli.data_dir.as_deref()).map_err(runtime),
        Cmd::Baseline(a) => cmd_data::run_baseline(&a, cli.data_dir.as_deref()).map_err(runtime),
        Cmd::Divergence(a) => cmd_divergence::run(&a, &data).map_err(runtime),
        Cmd::Predict { input, out } => cmd_model::predict(&input, out.as_deref(), &data).map_err(runtime),
        Cmd::Eval { input } => cmd_model::eval(&input, &data).map_err(runtime),
        Cmd::Methods => {
            for e in registry().entries() {
                println!("{:<14} {}", e.name, e.summary);
            }
            Ok(())
        }
        Cmd::ShowConfig { method } => show_config(&method).map_err(usage),
        Cmd::Run { experiment, runs_dir, mut sets, overrides, jobs, dry_run, slurm } => {
            let reg = registry();
            sets.extend(overrides);
            let exp = dalab_runner::load_experiment(&experiment, &sets, &reg).map_err(usage)?;
            match slurm.launcher(&exp).map_err(usage)? {
                dalab_runner::slurm::Launcher::Local => run_experiment(&exp, &runs_dir, &data, jobs, dry_run),
                dalab_runner::slurm::Launcher::Slurm(c) => {
                    cmd_slurm::submit(&exp, &c, &runs_dir, &data, dry_run).map_err(runtime)
                }
            }
        }
        Cmd::Status { experiment, runs_dir, sets } => {
            let exp = dalab_runner::load_experiment(&experiment, &sets, &registry()).map_err(usage)?;
            cmd_slurm::status(&exp, &runs_dir).map_err(runtime)
        }
        Cmd::SlurmTask { runs_dir, threads, file } => cmd_slurm::task(&runs_dir, &data, threads, &file),
        Cmd::Report {
            source,
            runs_dir,
            reference,
            out,
            no_plots,
            sets,
            select_by,
            selection,
            baseline,
            divergences,
            boundaries,
            plot_sweep,
            transfer_measures,
            per_task,
        } => {
            let select_by = select_by
                .map(|v| v.parse::<dalab_train::Validator>())
                .transpose()
                .map_err(|e| usage(anyhow::anyhow!("--select-by: {e}")))?;
            let opts = ReportOptions {
                reference: reference.as_deref(),
                out: out.as_deref(),
                no_plots,
                select_by,
                selection,
                baseline,
                divergences: divergences.then_some(data.as_path()),
                boundaries,
                plot_sweep,
                transfer_measures,
                per_task,
                data_dir: data.as_path(),
            };
            report_cmd(&source, &runs_dir, &opts, &sets)
        }
        Cmd::Trial { runs_dir, threads, device, parent_pid } => {
            trial_child(runs_dir, data, threads, device, parent_pid)
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

/// The `__trial` child: one trial, progress lines on stdout, the error on stderr.
fn trial_child(
    runs_dir: PathBuf,
    data_dir: PathBuf,
    threads: usize,
    device: Option<String>,
    parent_pid: u32,
) -> Result<(), Failure> {
    if !die_with_parent(parent_pid) {
        return Err(runtime(anyhow::anyhow!("the runner (pid {parent_pid}) is gone")));
    }
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input).map_err(runtime)?;
    let trial: Trial = serde_json::from_str(&input).context("bad trial on stdin").map_err(runtime)?;
    dalab_core::device::init_cuda();
    struct Stdout(std::io::Stdout, usize);
    impl ProgressSink for Stdout {
        fn progress(&mut self, step: usize, total: usize, loss: Option<f64>) {
            // About 200 updates per trial at most.
            if step == total || step >= self.1 + total.div_ceil(200) {
                self.1 = step;
                let _ = writeln!(self.0, "{}", dalab_runner::trial::progress_line(step, total, loss));
                let _ = self.0.flush();
            }
        }
    }
    let env = TrialEnv { runs_dir, data_dir, threads, device: device.map(dalab_core::device::DeviceSpec) };
    match run_child(&registry(), &trial, &env, &mut Stdout(std::io::stdout(), 0)) {
        Ok(ChildOutcome::Done(_)) => Ok(()),
        Ok(ChildOutcome::Busy) => Err(Failure::Code(EXIT_BUSY as u8)),
        Err(e) => Err(runtime(e)),
    }
}

/// Progress: bars on a terminal, one line per trial otherwise. The overall bar counts training steps (a trial weighs
/// its `train.iterations`), so that its ETA moves while trials run, and is computed from the steps done in this
/// session only (trials finished earlier do not make the rate look faster).
pub(crate) struct Progress {
    bars: Option<Bars>,
    total: usize,
    done: usize,
}

struct Bars {
    mp: indicatif::MultiProgress,
    overall: indicatif::ProgressBar,
    per: Vec<Option<indicatif::ProgressBar>>,
    /// Each trial's weight (its iterations, at least 1) and the steps of it counted so far.
    weight: Vec<u64>,
    counted: Vec<u64>,
    /// Steps counted for trials done before this session (not work done now).
    skipped: u64,
    started: std::time::Instant,
}

impl Bars {
    /// Counts trial `i` at `steps` of its weight and refreshes the overall ETA.
    fn count(&mut self, i: usize, steps: u64) {
        let steps = steps.min(self.weight[i]);
        if steps > self.counted[i] {
            self.overall.inc(steps - self.counted[i]);
            self.counted[i] = steps;
        }
        let (pos, len) = (self.overall.position(), self.overall.length().unwrap_or(0));
        if let Some(secs) = dalab_cli::eta_seconds(self.started.elapsed().as_secs_f64(), pos, len, self.skipped) {
            self.overall.set_message(indicatif::HumanDuration(std::time::Duration::from_secs_f64(secs)).to_string());
        }
    }
}

impl Progress {
    pub(crate) fn new(trials: &[Trial]) -> Self {
        let total = trials.len();
        let bars = std::io::stderr().is_terminal().then(|| {
            let weight: Vec<u64> = trials.iter().map(|t| t.config.train.iterations.max(1) as u64).collect();
            let mp = indicatif::MultiProgress::new();
            let overall = mp.add(indicatif::ProgressBar::new(weight.iter().sum()));
            overall.set_style(
                indicatif::ProgressStyle::with_template("trials {prefix} [{bar:30}] {elapsed} (ETA {msg})")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            overall.set_prefix(format!("0/{total}"));
            overall.set_message("…");
            overall.enable_steady_tick(std::time::Duration::from_secs(1));
            Bars {
                mp,
                overall,
                per: vec![None; total],
                counted: vec![0; total],
                weight,
                skipped: 0,
                started: std::time::Instant::now(),
            }
        });
        Self { bars, total, done: 0 }
    }

    fn line(&self, msg: String) {
        match &self.bars {
            Some(b) => {
                let _ = b.mp.println(msg);
            }
            None => eprintln!("{msg}"),
        }
    }
}

pub(crate) fn describe(t: &Trial) -> String {
    let c = &t.config;
    format!("{} {}→{} seed {}", t.label(), c.source, c.target, c.seed)
}

impl Observer for Progress {
    fn started(&mut self, i: usize, t: &Trial) {
        match &mut self.bars {
            Some(bars) => {
                let b = bars.mp.add(indicatif::ProgressBar::new(t.config.train.iterations as u64));
                b.set_style(
                    indicatif::ProgressStyle::with_template(
                        "  {prefix} [{bar:25}] {pos}/{len} steps, {rate} steps/s, ETA {eta}{msg}",
                    )
                    .expect("valid template")
                    .with_key("rate", |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                        let _ = write!(w, "{:.0}", s.per_sec());
                    })
                    .progress_chars("=> "),
                );
                b.set_prefix(describe(t));
                bars.per[i] = Some(b);
            }
            None => eprintln!("start {}: {}", t.id(), describe(t)),
        }
    }

    fn progress(&mut self, i: usize, _t: &Trial, step: usize, _total: usize, loss: Option<f64>) {
        if let Some(bars) = &mut self.bars {
            if let Some(b) = &bars.per[i] {
                b.set_position(step as u64);
                if let Some(l) = loss {
                    b.set_message(format!(", loss {l:.4}"));
                }
            }
            bars.count(i, step as u64);
        }
    }

    fn finished(&mut self, i: usize, t: &Trial, o: &Outcome) {
        // A trial another runner holds is counted when it finishes there (`wait_for_busy`).
        if !matches!(o, Outcome::Busy) {
            self.done += 1;
        }
        if let Some(bars) = &mut self.bars {
            if let Outcome::AlreadyDone(_) = o {
                bars.skipped += bars.weight[i] - bars.counted[i];
            }
            if !matches!(o, Outcome::Busy) {
                bars.count(i, bars.weight[i]);
            }
            bars.overall.set_prefix(format!("{}/{}", self.done, self.total));
            if let Some(b) = bars.per[i].take() {
                b.finish_and_clear();
                bars.mp.remove(&b);
            }
        }
        let head = format!("[{}/{}] {}", self.done, self.total, describe(t));
        let msg = match o {
            Outcome::Done(r) => format!(
                "{head}: source {:.1}, {} ({} steps, {:.1} s)",
                100.0 * r.selected.source,
                match r.selected.target_test {
                    Some(t) => format!("target test {:.1}", 100.0 * t),
                    None => format!("target {:.1}", 100.0 * r.selected.target),
                },
                r.steps,
                r.seconds
            ),
            Outcome::AlreadyDone(_) => format!("{head}: done earlier, skipped"),
            Outcome::Failed(reason) => format!("{head}: FAILED: {reason}"),
            Outcome::Busy => format!("{head}: being run by another runner; waited for after the others"),
            Outcome::NotStarted(_) => return,
        };
        self.line(msg);
    }
}

/// An error and its causes on one line, each cause once: a cause whose text the message already holds (errors that
/// print their source themselves) is not repeated.
fn one_line(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for c in e.chain() {
        let t = c.to_string();
        if out.is_empty() {
            out = t;
        } else if !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
    }
    out
}

fn run_experiment(
    exp: &dalab_runner::Experiment,
    runs_dir: &Path,
    data: &Path,
    jobs: usize,
    dry: bool,
) -> Result<(), Failure> {
    let trials = dalab_runner::plan(exp);
    if dry {
        println!("{} trial(s) of `{}`:", trials.len(), exp.name);
        for t in &trials {
            let sweep = if t.sweep.is_empty() {
                String::new()
            } else {
                format!("  {}", serde_json::Value::Object(t.sweep.clone()))
            };
            println!("{}  {}{sweep}", t.id(), describe(t));
        }
        return Ok(());
    }
    dalab_core::device::init_cuda();
    let device = exp.base().device.resolve().map_err(usage)?;
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let (jobs, threads, devices) = match device {
        tch::Device::Cuda(_) => {
            let n = tch::Cuda::device_count().max(1) as usize;
            let j = jobs.clamp(1, n);
            (j, (cores / j).max(1), (0..j).map(|i| format!("cuda:{i}")).collect::<Vec<_>>())
        }
        _ => {
            let j = jobs.clamp(1, cores);
            if j < jobs {
                eprintln!("note: --jobs {jobs} > {cores} cores; running {j} trials at a time");
            }
            let cfg_threads = exp.base().train.threads;
            let t = if cfg_threads > 0 { cfg_threads.min(cores / j) } else { cores / j };
            (j, t.max(1), vec![])
        }
    };
    let exp_dir = runs_dir.join(&exp.name);
    eprintln!(
        "dalab {} · device {} · experiment `{}`: {} trial(s), {} at a time, {} thread(s) each · results in {}",
        env!("CARGO_PKG_VERSION"),
        match device {
            tch::Device::Cpu => "cpu".to_string(),
            d => dalab_core::device::describe(d),
        },
        exp.name,
        trials.len(),
        jobs,
        threads,
        exp_dir.display()
    );
    dalab_runner::exec::write_experiment_summary(exp, &trials, runs_dir).map_err(runtime)?;
    let plan = dalab_runner::RunPlan {
        exe: std::env::current_exe().map_err(runtime)?,
        runs_dir: runs_dir.to_path_buf(),
        data_dir: data.to_path_buf(),
        jobs,
        threads,
        devices,
    };
    let mut progress = Progress::new(&trials);
    let mut outcomes = dalab_runner::run_all(&plan, &trials, &mut progress).map_err(runtime)?;
    let busy = outcomes.iter().filter(|o| matches!(o, Outcome::Busy)).count();
    if busy > 0 {
        eprintln!("{busy} trial(s) are being run by another runner: waiting for them");
        dalab_runner::exec::wait_for_busy(&plan, &trials, &mut outcomes, &mut progress).map_err(runtime)?;
    }
    if let Some(bars) = &progress.bars {
        bars.overall.finish_and_clear();
    }
    let ids: std::collections::HashSet<String> = trials.iter().map(Trial::id).collect();
    if outcomes.iter().any(|o| o.result().is_some()) {
        let table =
            report::collect(&exp_dir, Some(&ids), &row_order(&trials), &task_order(&trials), None).map_err(runtime)?;
        println!();
        print!("{}", table.markdown(None));
    }
    println!("files: {}/<trial>/ (config.yaml, result.json, metrics.jsonl, TensorBoard events)", exp_dir.display());
    println!("TensorBoard: tensorboard --logdir {}", exp_dir.display());
    let failed: Vec<String> = trials
        .iter()
        .zip(&outcomes)
        .filter_map(|(t, o)| match o {
            Outcome::Failed(r) => Some(format!("{}: {r}", t.id())),
            _ => None,
        })
        .collect();
    let busy = outcomes.iter().filter(|o| matches!(o, Outcome::Busy)).count();
    let not_started: Vec<&str> = outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::NotStarted(r) => Some(r.as_str()),
            _ => None,
        })
        .collect();
    if let Some(why) = not_started.first() {
        return Err(runtime(anyhow::anyhow!(
            "{} trial(s) {why}; free space and rerun: finished trials are kept and skipped",
            not_started.len()
        )));
    }
    if !failed.is_empty() {
        return Err(runtime(anyhow::anyhow!(
            "{} of {} trial(s) failed: {}",
            failed.len(),
            trials.len(),
            failed.join("; ")
        )));
    }
    if busy > 0 {
        return Err(runtime(anyhow::anyhow!("{busy} trial(s) are being run by another runner; rerun to collect them")));
    }
    Ok(())
}

fn row_order(trials: &[Trial]) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for t in trials {
        let l = t.label();
        if !v.contains(&l) {
            v.push(l);
        }
    }
    v
}

fn task_order(trials: &[Trial]) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for t in trials {
        let l = format!("{}→{}", t.config.source, t.config.target);
        if !v.contains(&l) {
            v.push(l);
        }
    }
    v
}

/// `dalab report`'s options besides the source.
struct ReportOptions<'a> {
    reference: Option<&'a Path>,
    out: Option<&'a Path>,
    no_plots: bool,
    select_by: Option<dalab_train::Validator>,
    selection: bool,
    baseline: String,
    /// `--divergences`, with the data directory.
    divergences: Option<&'a Path>,
    boundaries: bool,
    plot_sweep: Vec<String>,
    transfer_measures: bool,
    per_task: bool,
    data_dir: &'a Path,
}

fn report_cmd(source: &Path, runs_dir: &Path, opts: &ReportOptions<'_>, sets: &[String]) -> Result<(), Failure> {
    let (exp_dir, only, rows, tasks, left_out) = if source.is_dir() {
        (source.to_path_buf(), None, vec![], vec![], vec![])
    } else {
        let exp = dalab_runner::load_experiment(source, sets, &registry()).map_err(usage)?;
        let trials = dalab_runner::plan(&exp);
        let ids: std::collections::HashSet<String> = trials.iter().map(Trial::id).collect();
        let rows = row_order(&trials);
        // The rows of the file that the overrides removed (`~methods.dann`): their paper rows show without Δ.
        let left_out = if sets.is_empty() {
            vec![]
        } else {
            let whole = dalab_runner::load_experiment(source, &[], &registry()).map_err(usage)?;
            row_order(&dalab_runner::plan(&whole)).into_iter().filter(|r| !rows.contains(r)).collect()
        };
        (runs_dir.join(&exp.name), Some(ids), rows, task_order(&trials), left_out)
    };
    let reference = opts.reference.map(report::load_reference).transpose().map_err(usage)?;
    let split = reference.as_ref().and_then(|r| r.split);
    let mut table =
        report::collect_with(&exp_dir, only.as_ref(), &rows, &tasks, split, opts.select_by).map_err(runtime)?;
    table.baseline = match reference.as_ref().and_then(|r| r.baseline.clone()) {
        Some(b) if opts.baseline == report::BASELINE => b,
        _ => opts.baseline.clone(),
    };
    if let Some(r) = &reference {
        table.check_reference(r, !sets.is_empty(), &left_out).map_err(usage)?;
    }
    let (out, no_plots) = (opts.out, opts.no_plots);
    let out = out.map(Path::to_path_buf).unwrap_or_else(|| exp_dir.clone());
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display())).map_err(runtime)?;
    let mut md = table.markdown(reference.as_ref());
    if let Some(data_dir) = opts.divergences {
        md.push_str(&cmd_divergence::task_divergences(&table, data_dir).map_err(runtime)?);
    }
    let wants = |f: report::Figure| reference.as_ref().is_some_and(|r| r.figures.contains(&f));
    if opts.transfer_measures || wants(report::Figure::TransferMeasures) {
        md.push_str(&report::transfer_measures_markdown(&table).map_err(runtime)?);
    }
    if opts.per_task || wants(report::Figure::PerTask) {
        md.push_str(&report::per_task_markdown(&table).map_err(runtime)?);
    }
    let mut sweeps = opts.plot_sweep.clone();
    for f in reference.iter().flat_map(|r| &r.figures) {
        if let report::Figure::Sweep(k) = f
            && !sweeps.contains(k)
        {
            sweeps.push(k.clone());
        }
    }
    if !sweeps.is_empty() {
        let (results, _) = report::load_results(&exp_dir, only.as_ref()).map_err(runtime)?;
        for k in &sweeps {
            let (text, _) = report::plot_sweep(&results, k, table.test_split, &table.experiment, &out.join("plots"))
                .map_err(runtime)?;
            md.push_str(&text);
        }
    }
    if opts.boundaries || wants(report::Figure::Boundaries) {
        let mut figs = Vec::new();
        for row in &table.rows {
            for task in &table.tasks {
                for d in table.trial_dirs.get(&(row.clone(), task.clone())).into_iter().flatten() {
                    let dir = out.join("plots");
                    if let Some(p) = cmd_model::boundary_figure(d, opts.data_dir, &dir).map_err(runtime)? {
                        let name = p.file_name().expect("a file").to_string_lossy().to_string();
                        figs.push(format!("![{row}, {task}: decision regions and feature PCA](plots/{name})"));
                    }
                }
            }
        }
        if !figs.is_empty() {
            md.push_str(&format!(
                "\n**Decision regions and features** (the DANN paper's Figure 2: left, the input plane shaded by the \
                 selected model's predicted class, source ● by label, target ×; right, the first two principal \
                 components of the features of both domains).\n\n{}\n",
                figs.join("\n\n")
            ));
        }
    }
    let write = |name: &str, body: &str| -> Result<(), Failure> {
        let p = out.join(name);
        dalab_runner::store::write_atomic(&p, body.as_bytes()).map_err(runtime)
    };
    write("report.md", &md)?;
    write("report.csv", &table.csv(reference.as_ref()))?;
    print!("{md}");
    println!("\nwrote {} and {}", out.join("report.md").display(), out.join("report.csv").display());
    if opts.selection {
        let (results, _) = report::load_results(&exp_dir, only.as_ref()).map_err(runtime)?;
        let refs: Vec<&dalab_runner::TrialResult> = results.iter().map(|(r, _)| r).collect();
        let sel = dalab_runner::selection::markdown(
            &table.experiment,
            &dalab_runner::selection::regret(&refs, table.test_split),
            table.test_split,
        );
        write("selection.md", &sel)?;
        print!("\n{sel}");
        println!("\nwrote {}", out.join("selection.md").display());
    }
    if !no_plots {
        match report::plot_curves(&table, reference.as_ref(), &out.join("plots")) {
            Ok(files) => {
                for f in files {
                    println!("wrote {}", f.display());
                }
            }
            Err(e) => return Err(runtime(anyhow::anyhow!("tables written; plots not drawn: {e}"))),
        }
    }
    Ok(())
}
