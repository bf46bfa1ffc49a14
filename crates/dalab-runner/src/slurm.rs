//! Trials as Slurm job-array tasks (`dalab run --launcher slurm`), and where each trial stands (`dalab status`).
//!
//! dalab schedules nothing itself on a cluster: the pending trials are written to a submission folder on the
//! shared filesystem (`<runs>/<experiment>/.slurm/<stamp>/tasks/<k>.json`, a few trials per array task when there
//! are many), one sbatch script runs array task `k` as `dalab __slurm-task tasks/<k>.json`, and that runs its
//! trials through the same code path as a local run ([`crate::run_all`]: a `dalab __trial` process per trial,
//! the trial's lock, atomic result.json, failure records, TensorBoard files). Resubmitting the experiment submits
//! only the trials without a result that no process is running (their lock) and no earlier array task still has
//! queued or running (`squeue`; accounting, `sacct`, is often disabled on small clusters and is not needed).
//!
//! The Slurm commands are run as programs (`sbatch`, `squeue`, `sinfo`): there is no maintained Rust client of
//! Slurm's API, and the command-line tools are what every cluster has.

use crate::store::{TrialStatus, status, try_lock, write_atomic};
use crate::trial::Trial;
use crate::{Error, Result, io_err};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Slurm's default `MaxArraySize` is 1001: at most 1000 array tasks per submission.
pub const MAX_ARRAY_TASKS: usize = 1000;

/// `launcher:` in the experiment YAML (or `--launcher`): where trials run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Launcher {
    /// Child processes on this machine (`--jobs`).
    #[default]
    Local,
    /// A Slurm job array.
    Slurm(SlurmConfig),
}

impl Launcher {
    pub fn is_local(&self) -> bool {
        matches!(self, Launcher::Local)
    }
}

/// The Slurm launcher's options (`launcher: {kind: slurm, ...}`; each also a `dalab run` flag).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlurmConfig {
    /// `--partition`; default: the cluster's default partition.
    pub partition: Option<String>,
    /// `--time` of each array task (Slurm's formats, e.g. `2:00:00`).
    pub time: Option<String>,
    /// `--mem` of each array task (e.g. `4G`).
    pub mem: Option<String>,
    /// CPUs of each array task (`--cpus-per-task`), the trial's libtorch threads.
    pub cpus_per_trial: usize,
    /// GPUs of each array task (`--gres=gpu:G`); the trial uses the device Slurm gives it.
    pub gpus_per_trial: usize,
    /// Array tasks running at once (the `%K` throttle); default: no throttle.
    pub max_parallel: Option<usize>,
    /// Trials run one after another by each array task; default: 1, or more to stay within 1000 array tasks.
    pub trials_per_task: Option<usize>,
    /// More `#SBATCH` lines, verbatim (e.g. `--account=abc`, `--qos=short`).
    pub sbatch_args: Vec<String>,
}

impl Default for SlurmConfig {
    fn default() -> Self {
        Self {
            partition: None,
            time: None,
            mem: None,
            cpus_per_trial: 1,
            gpus_per_trial: 0,
            max_parallel: None,
            trials_per_task: None,
            sbatch_args: Vec::new(),
        }
    }
}

impl SlurmConfig {
    /// Checks the options; the message starts with the key.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.cpus_per_trial == 0 {
            return Err("cpus_per_trial: must be at least 1".into());
        }
        if self.max_parallel == Some(0) {
            return Err("max_parallel: must be at least 1".into());
        }
        if self.trials_per_task == Some(0) {
            return Err("trials_per_task: must be at least 1".into());
        }
        for (k, v) in [("partition", &self.partition), ("time", &self.time), ("mem", &self.mem)] {
            if let Some(v) = v
                && (v.is_empty() || v.chars().any(|c| c.is_whitespace() || c == '\''))
            {
                return Err(format!("{k}: `{v}` is not a Slurm value (empty, a space or a quote)"));
            }
        }
        if let Some(a) = self.sbatch_args.iter().find(|a| !a.starts_with('-') || a.contains('\n')) {
            return Err(format!("sbatch_args: `{a}` is not an sbatch option (`--name=value`, one line)"));
        }
        Ok(())
    }

    /// The number of trials each array task runs for `n` trials.
    pub fn batch(&self, n: usize) -> usize {
        self.trials_per_task.unwrap_or(1).max(n.div_ceil(MAX_ARRAY_TASKS)).max(1)
    }
}

/// One submission, as recorded in `<experiment>/.slurm/submissions.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Submission {
    /// Slurm's job id of the array.
    pub job: String,
    /// The submission folder (script, tasks, logs).
    pub dir: PathBuf,
    /// The trial ids of each array task, by index.
    pub tasks: Vec<Vec<String>>,
}

/// What the runner needs to write a submission.
#[derive(Debug, Clone)]
pub struct SlurmPlan<'a> {
    /// The `dalab` executable the array tasks run (on the shared filesystem).
    pub exe: &'a Path,
    pub runs_dir: &'a Path,
    pub data_dir: &'a Path,
    /// The experiment's `train.threads` (0 = the task's CPUs).
    pub threads: usize,
    pub config: &'a SlurmConfig,
}

/// Where a trial of an experiment stands, for `dalab status` and for resubmission.
#[derive(Debug, Clone, PartialEq)]
pub enum TrialState {
    Done,
    Failed(String),
    /// A process holds its lock; with the Slurm array task (`<job>_<index>`) running it, when known.
    Running(Option<String>),
    /// Queued in Slurm (array task `<job>_<index>`), not started.
    Queued(String),
    /// Neither finished nor queued nor running.
    Pending,
}

impl TrialState {
    pub fn name(&self) -> &'static str {
        match self {
            TrialState::Done => "done",
            TrialState::Failed(_) => "failed",
            TrialState::Running(_) => "running",
            TrialState::Queued(_) => "queued",
            TrialState::Pending => "pending",
        }
    }
}

fn slurm_dir(runs_dir: &Path, experiment: &str) -> PathBuf {
    runs_dir.join(experiment).join(".slurm")
}

/// The submissions recorded for an experiment, oldest first (none when it was never submitted).
pub fn submissions(runs_dir: &Path, experiment: &str) -> Result<Vec<Submission>> {
    let path = slurm_dir(runs_dir, experiment).join("submissions.jsonl");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(&path)(e)),
    };
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| Error::Other(format!("{}:{}: {e}", path.display(), i + 1))))
        .collect()
}

/// Runs a Slurm command; its stdout, or a one-line error (the command missing; its own error message).
fn slurm(cmd: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(cmd).args(args).output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::Other(format!(
                "`{cmd}` not found on PATH: `--launcher slurm` needs Slurm's client commands (sbatch, squeue, sinfo; \
                 Debian: apt-get install slurm-client)"
            ))
        } else {
            Error::Other(format!("cannot run `{cmd}`: {e}"))
        }
    })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        // Slurm prints `sbatch: error: …` lines; the last is the verdict.
        let msg = stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.trim().trim_start_matches(&format!("{cmd}: ")).trim_start_matches("error: "))
            .next_back()
            .unwrap_or("no message")
            .to_string();
        return Err(Error::Other(format!("{cmd} failed ({}): {msg}", out.status)));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The state of every array task Slurm still knows (`squeue -r`: one line per array element), by `<job>_<index>`.
pub fn queue() -> Result<std::collections::HashMap<String, String>> {
    let out = slurm("squeue", &["-h", "-r", "-o", "%i %T"])?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_once(' ').map(|(id, st)| (id.trim().to_string(), st.trim().to_string())))
        .collect())
}

/// Where each trial stands: its result or failure on disk, its lock, and the Slurm queue for the array tasks of
/// earlier submissions (`queue`: `None` when the experiment was never submitted to Slurm).
pub fn states(
    trials: &[Trial],
    runs_dir: &Path,
    subs: &[Submission],
    queue: Option<&std::collections::HashMap<String, String>>,
) -> Result<Vec<TrialState>> {
    // The latest array task of each trial.
    let mut task_of: std::collections::HashMap<&str, String> = std::collections::HashMap::new();
    for s in subs {
        for (k, ids) in s.tasks.iter().enumerate() {
            for id in ids {
                task_of.insert(id.as_str(), format!("{}_{k}", s.job));
            }
        }
    }
    let mut out = Vec::with_capacity(trials.len());
    for t in trials {
        let id = t.id();
        let exp_dir = runs_dir.join(&t.config.experiment);
        let st = match status(&t.dir(runs_dir)) {
            TrialStatus::Done(_) => TrialState::Done,
            _ if exp_dir.join(".locks").join(format!("{id}.lock")).exists() && try_lock(&exp_dir, &id)?.is_none() => {
                TrialState::Running(task_of.get(id.as_str()).cloned())
            }
            other => {
                let slurm_state = task_of.get(id.as_str()).and_then(|task| {
                    let st = queue?.get(task)?;
                    Some((task.clone(), st.clone()))
                });
                match (slurm_state, other) {
                    (Some((task, st)), _) if st == "RUNNING" || st == "COMPLETING" => TrialState::Running(Some(task)),
                    (Some((task, _)), _) => TrialState::Queued(task),
                    (None, TrialStatus::Failed(reason)) => TrialState::Failed(reason),
                    (None, _) => TrialState::Pending,
                }
            }
        };
        out.push(st);
    }
    Ok(out)
}

/// `'…'` for the shell.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The sbatch script of a submission folder `dir` with `tasks` array tasks.
pub fn script(plan: &SlurmPlan<'_>, experiment: &str, dir: &Path, tasks: usize) -> String {
    let c = plan.config;
    let mut s = String::from("#!/bin/bash\n");
    s.push_str(&format!("#SBATCH --job-name=dalab-{experiment}\n"));
    let throttle = c.max_parallel.map(|k| format!("%{k}")).unwrap_or_default();
    s.push_str(&format!("#SBATCH --array=0-{}{throttle}\n", tasks - 1));
    s.push_str(&format!("#SBATCH --cpus-per-task={}\n", c.cpus_per_trial));
    s.push_str(&format!("#SBATCH --output={}/logs/%A_%a.out\n", dir.display()));
    for (flag, v) in [("partition", &c.partition), ("time", &c.time), ("mem", &c.mem)] {
        if let Some(v) = v {
            s.push_str(&format!("#SBATCH --{flag}={v}\n"));
        }
    }
    if c.gpus_per_trial > 0 {
        s.push_str(&format!("#SBATCH --gres=gpu:{}\n", c.gpus_per_trial));
    }
    for a in &c.sbatch_args {
        s.push_str(&format!("#SBATCH {a}\n"));
    }
    let threads = if plan.threads > 0 { plan.threads.min(c.cpus_per_trial) } else { c.cpus_per_trial };
    s.push_str(&format!(
        "# Written by `dalab run --launcher slurm`: array task k runs the trials of tasks/k.json, each as a local run\n\
         # would (its lock, an atomic result.json, a failed.json with the reason).\n\
         exec {} --data-dir {} __slurm-task --runs-dir {} --threads {threads} {}\"$SLURM_ARRAY_TASK_ID.json\"\n",
        quote(&plan.exe.display().to_string()),
        quote(&plan.data_dir.display().to_string()),
        quote(&plan.runs_dir.display().to_string()),
        quote(&format!("{}/tasks/", dir.display())),
    ));
    s
}

/// What [`submit`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Submitted {
    /// A job array: its job id, the trials submitted, the array tasks.
    Job { job: String, trials: usize, tasks: usize, dir: PathBuf },
    /// Nothing to submit: every trial is done, running or queued (counts of done, in flight).
    Nothing { done: usize, in_flight: usize },
}

/// The trials to submit (neither done nor running nor queued), and the counts of done and in-flight ones.
pub fn to_submit<'t>(
    trials: &'t [Trial],
    plan: &SlurmPlan<'_>,
    experiment: &str,
) -> Result<(Vec<&'t Trial>, usize, usize)> {
    let subs = submissions(plan.runs_dir, experiment)?;
    let q = if subs.is_empty() { None } else { Some(queue()?) };
    let st = states(trials, plan.runs_dir, &subs, q.as_ref())?;
    let done = st.iter().filter(|s| **s == TrialState::Done).count();
    let in_flight = st.iter().filter(|s| matches!(s, TrialState::Running(_) | TrialState::Queued(_))).count();
    let todo = trials
        .iter()
        .zip(&st)
        .filter(|(_, s)| matches!(s, TrialState::Pending | TrialState::Failed(_)))
        .map(|(t, _)| t)
        .collect();
    Ok((todo, done, in_flight))
}

/// Submits the trials that need running as one job array (see the module comment). `dry_run`: returns the script
/// that would be submitted and writes nothing.
pub fn submit(
    trials: &[Trial],
    plan: &SlurmPlan<'_>,
    experiment: &str,
    dry_run: bool,
) -> Result<(Submitted, Option<String>)> {
    plan.config.validate().map_err(|e| Error::Other(format!("launcher.{e}")))?;
    let base = slurm_dir(plan.runs_dir, experiment);
    if !dry_run {
        std::fs::create_dir_all(&base).map_err(|e| {
            Error::Other(format!("the runs directory is not writable: cannot create {}: {e}", base.display()))
        })?;
    }
    if let Some(p) = &plan.config.partition {
        let names = slurm("sinfo", &["-h", "-o", "%R"])?;
        let names: Vec<&str> = names.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        if !names.contains(&p.as_str()) {
            return Err(Error::Other(format!(
                "launcher.partition: partition `{p}` does not exist (partitions: {})",
                names.join(", ")
            )));
        }
    }
    let (todo, done, in_flight) = to_submit(trials, plan, experiment)?;
    if todo.is_empty() {
        return Ok((Submitted::Nothing { done, in_flight }, None));
    }
    let per = plan.config.batch(todo.len());
    let groups: Vec<Vec<&Trial>> = todo.chunks(per).map(|c| c.to_vec()).collect();
    let stamp = format!(
        "{}-{}",
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis()),
        std::process::id()
    );
    let dir = std::path::absolute(base.join(&stamp)).map_err(io_err(&base))?;
    let text = script(plan, experiment, &dir, groups.len());
    if dry_run {
        return Ok((Submitted::Job { job: String::new(), trials: todo.len(), tasks: groups.len(), dir }, Some(text)));
    }
    for sub in ["tasks", "logs"] {
        let d = dir.join(sub);
        std::fs::create_dir_all(&d).map_err(|e| {
            Error::Other(format!("the runs directory is not writable: cannot create {}: {e}", d.display()))
        })?;
    }
    for (k, g) in groups.iter().enumerate() {
        let body = serde_json::to_vec_pretty(g).expect("trials serialize");
        write_atomic(&dir.join("tasks").join(format!("{k}.json")), &body)?;
    }
    let script_path = dir.join("job.sbatch");
    write_atomic(&script_path, text.as_bytes())?;
    let out = slurm("sbatch", &["--parsable", &script_path.display().to_string()])
        .map_err(|e| Error::Other(format!("the job was not submitted: {e}")))?;
    let job = out.trim().split(';').next().unwrap_or("").to_string();
    if job.is_empty() || !job.chars().all(|c| c.is_ascii_digit()) {
        return Err(Error::Other(format!("sbatch printed no job id (`{}`)", out.trim())));
    }
    let record = Submission {
        job: job.clone(),
        dir: dir.clone(),
        tasks: groups.iter().map(|g| g.iter().map(|t| t.id()).collect()).collect(),
    };
    let path = base.join("submissions.jsonl");
    let mut all = std::fs::read(&path).unwrap_or_default();
    all.extend(serde_json::to_vec(&record).expect("serializes"));
    all.push(b'\n');
    write_atomic(&path, &all)?;
    Ok((Submitted::Job { job, trials: todo.len(), tasks: groups.len(), dir }, Some(text)))
}

/// The trials of one array task's file (`tasks/<k>.json`).
pub fn read_task(path: &Path) -> Result<Vec<Trial>> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Other(format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_batches_throttles_and_quotes() {
        let cfg = SlurmConfig {
            partition: Some("gpu".into()),
            time: Some("1:00:00".into()),
            mem: Some("4G".into()),
            cpus_per_trial: 2,
            gpus_per_trial: 1,
            max_parallel: Some(3),
            trials_per_task: None,
            sbatch_args: vec!["--account=abc".into()],
        };
        let plan = SlurmPlan {
            exe: Path::new("/opt/dalab/bin/dalab"),
            runs_dir: Path::new("/shared/it's runs"),
            data_dir: Path::new("/data"),
            threads: 1,
            config: &cfg,
        };
        let s = script(&plan, "e", Path::new("/shared/runs/e/.slurm/1"), 5);
        for line in [
            "#SBATCH --job-name=dalab-e",
            "#SBATCH --array=0-4%3",
            "#SBATCH --cpus-per-task=2",
            "#SBATCH --output=/shared/runs/e/.slurm/1/logs/%A_%a.out",
            "#SBATCH --partition=gpu",
            "#SBATCH --time=1:00:00",
            "#SBATCH --mem=4G",
            "#SBATCH --gres=gpu:1",
            "#SBATCH --account=abc",
            "exec '/opt/dalab/bin/dalab' --data-dir '/data' __slurm-task --runs-dir '/shared/it'\\''s runs' --threads 1 \
             '/shared/runs/e/.slurm/1/tasks/'\"$SLURM_ARRAY_TASK_ID.json\"",
        ] {
            assert!(s.lines().any(|l| l == line), "`{line}` missing from:\n{s}");
        }
        assert_eq!(cfg.batch(10), 1);
        assert_eq!(cfg.batch(2500), 3, "at most 1000 array tasks");
        assert_eq!(SlurmConfig { trials_per_task: Some(4), ..cfg.clone() }.batch(10), 4);
        let bad = SlurmConfig { partition: Some("a b".into()), ..cfg.clone() };
        assert_eq!(bad.validate().unwrap_err(), "partition: `a b` is not a Slurm value (empty, a space or a quote)");
        let bad = SlurmConfig { sbatch_args: vec!["account=abc".into()], ..cfg };
        assert!(bad.validate().unwrap_err().starts_with("sbatch_args: `account=abc`"));
    }

    #[test]
    fn a_missing_command_is_one_line() {
        let e = slurm("dalab-no-such-slurm-command", &[]).unwrap_err().to_string();
        assert!(e.starts_with("`dalab-no-such-slurm-command` not found on PATH"), "{e}");
        assert!(!e.contains('\n'));
    }
}
