//! `dalab run --launcher slurm`, `dalab status` and the array task `dalab __slurm-task` (dalab_runner::slurm).

use anyhow::{Context, Result};
use dalab_runner::slurm::{self, SlurmConfig, SlurmPlan, Submitted, TrialState};
use dalab_runner::{Experiment, Outcome, Trial};
use std::path::Path;

fn absolute(p: &Path) -> Result<std::path::PathBuf> {
    std::path::absolute(p).with_context(|| format!("{}: cannot make the path absolute", p.display()))
}

/// Submits the experiment's pending trials as a job array (or prints the script with `dry_run`).
pub fn submit(exp: &Experiment, cfg: &SlurmConfig, runs_dir: &Path, data: &Path, dry_run: bool) -> Result<()> {
    let trials = dalab_runner::plan(exp);
    // The array tasks run on other nodes, from other working directories: every path absolute.
    let (exe, runs, data) = (std::env::current_exe()?, absolute(runs_dir)?, absolute(data)?);
    let plan =
        SlurmPlan { exe: &exe, runs_dir: &runs, data_dir: &data, threads: exp.base().train.threads, config: cfg };
    let submitted = slurm::submit(&trials, &plan, &exp.name, dry_run)?;
    if !dry_run {
        // TensorBoard's HParams summary of the experiment, as a local run writes it.
        dalab_runner::exec::write_experiment_summary(exp, &trials, &runs)?;
    }
    match submitted {
        (Submitted::Nothing { done, in_flight }, _) => {
            println!(
                "nothing to submit: {done} of {} trial(s) of `{}` done, {in_flight} running or queued",
                trials.len(),
                exp.name
            );
        }
        (Submitted::Job { trials: n, tasks, .. }, Some(script)) if dry_run => {
            println!("would submit {n} trial(s) of `{}` as {tasks} array task(s):\n", exp.name);
            print!("{script}");
        }
        (Submitted::Job { job, trials: n, tasks, dir }, _) => {
            println!(
                "submitted Slurm job {job}: {n} trial(s) of `{}` in {tasks} array task(s); logs in {}/logs; \
                 `dalab status` shows where each trial stands",
                exp.name,
                dir.display()
            );
        }
    }
    Ok(())
}

/// `dalab status`: every trial's state and the counts.
pub fn status(exp: &Experiment, runs_dir: &Path) -> Result<()> {
    let trials = dalab_runner::plan(exp);
    let subs = slurm::submissions(runs_dir, &exp.name)?;
    let queue = if subs.is_empty() {
        None
    } else {
        match slurm::queue() {
            Ok(q) => Some(q),
            Err(e) => {
                eprintln!("note: the Slurm queue is unknown ({e}); queued trials show as pending");
                None
            }
        }
    };
    let states = slurm::states(&trials, runs_dir, &subs, queue.as_ref())?;
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for (t, s) in trials.iter().zip(&states) {
        let detail = match s {
            TrialState::Failed(r) => format!("  {r}"),
            TrialState::Running(Some(task)) | TrialState::Queued(task) => format!("  (Slurm {task})"),
            _ => String::new(),
        };
        println!("{:<8} {}  {}{detail}", s.name(), t.id(), crate::describe(t));
        match counts.iter_mut().find(|(n, _)| *n == s.name()) {
            Some((_, c)) => *c += 1,
            None => counts.push((s.name(), 1)),
        }
    }
    let summary: Vec<String> = ["done", "running", "queued", "failed", "pending"]
        .iter()
        .map(|n| format!("{} {n}", counts.iter().find(|(k, _)| k == n).map_or(0, |(_, c)| *c)))
        .collect();
    println!("{} trial(s) of `{}`: {}", trials.len(), exp.name, summary.join(", "));
    Ok(())
}

/// One array task: its trials, one after another, each in its `dalab __trial` process as a local run runs it.
pub fn task(runs_dir: &Path, data: &Path, threads: usize, file: &Path) -> Result<(), crate::Failure> {
    let trials: Vec<Trial> = slurm::read_task(file).map_err(crate::runtime)?;
    let plan = dalab_runner::RunPlan {
        exe: std::env::current_exe().map_err(crate::runtime)?,
        runs_dir: runs_dir.to_path_buf(),
        data_dir: data.to_path_buf(),
        jobs: 1,
        threads: threads.max(1),
        devices: vec![],
    };
    let mut progress = crate::Progress::new(&trials);
    let outcomes = dalab_runner::run_all(&plan, &trials, &mut progress).map_err(crate::runtime)?;
    let failed: Vec<String> = trials
        .iter()
        .zip(&outcomes)
        .filter_map(|(t, o)| match o {
            Outcome::Failed(r) => Some(format!("{}: {r}", t.id())),
            Outcome::Busy => Some(format!("{}: run by another process", t.id())),
            Outcome::NotStarted(r) => Some(format!("{}: {r}", t.id())),
            _ => None,
        })
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(crate::runtime(anyhow::anyhow!(
            "{} of {} trial(s) not done: {}",
            failed.len(),
            trials.len(),
            failed.join("; ")
        )))
    }
}
