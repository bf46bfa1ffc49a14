//! Running trials: each in its own process (`dalab __trial`), up to `jobs` at a time.
//!
//! A process per trial gives every trial its own libtorch generator (seeds stay exact when trials run in
//! parallel), its own thread budget, and isolation: a crash or a kill ends one trial, not the sweep. The child
//! asks the kernel to kill it when the runner dies (`PR_SET_PDEATHSIG`), so killing the runner leaves no orphan
//! training behind; the interrupted trial has no `result.json` and is run again from scratch next time.

use crate::store::{FailedRecord, TrialStatus, status, try_lock, write_atomic};
use crate::trial::{ProgressSink, Trial, TrialEnv, TrialResult, run_trial};
use crate::{Error, Result, io_err};
use dalab_core::Registry;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

/// Exit code of a trial process that found the trial locked by another runner.
pub const EXIT_BUSY: i32 = 75;

/// How a trial ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Trained now.
    Done(Box<TrialResult>),
    /// Finished by an earlier run: skipped.
    AlreadyDone(Box<TrialResult>),
    /// Failed, with the reason (also in its `failed.json`).
    Failed(String),
    /// Another runner holds its lock.
    Busy,
    /// Not started: the runner stopped starting trials (the disk is full), with the reason.
    NotStarted(String),
}

impl Outcome {
    pub fn result(&self) -> Option<&TrialResult> {
        match self {
            Outcome::Done(r) | Outcome::AlreadyDone(r) => Some(r),
            _ => None,
        }
    }
}

/// What the runner reports while it works (the CLI draws progress bars or prints lines).
pub trait Observer {
    fn started(&mut self, index: usize, trial: &Trial);
    /// `step` of `total` done; `loss`: the trial's last logged training loss (`loss/total`, else its first
    /// `loss/…` scalar), where it logs one.
    fn progress(&mut self, index: usize, trial: &Trial, step: usize, total: usize, loss: Option<f64>);
    fn finished(&mut self, index: usize, trial: &Trial, outcome: &Outcome);
}

/// How to run the trials of an experiment.
#[derive(Debug, Clone)]
pub struct RunPlan {
    /// The `dalab` executable (its `__trial` subcommand runs one trial).
    pub exe: PathBuf,
    pub runs_dir: PathBuf,
    pub data_dir: PathBuf,
    /// Trials run at the same time.
    pub jobs: usize,
    /// libtorch threads per trial.
    pub threads: usize,
    /// Device per job slot (e.g. `cuda:0`, `cuda:1`); empty = each trial's configured device.
    pub devices: Vec<String>,
}

struct Running {
    index: usize,
    slot: usize,
    child: Child,
    stderr: std::thread::JoinHandle<String>,
}

enum Msg {
    Progress(usize, usize, usize, Option<f64>),
    Eof(usize),
}

/// Runs every trial that is not finished yet; returns one outcome per trial, in order.
/// The trials of `outcomes` that another runner was running ([`Outcome::Busy`]): waits for each to finish (its
/// lock), then takes its result, its failure, or — when the other runner stopped without finishing it — runs it
/// here. Returns how many were waited for.
pub fn wait_for_busy(
    plan: &RunPlan,
    trials: &[Trial],
    outcomes: &mut [Outcome],
    obs: &mut dyn Observer,
) -> Result<usize> {
    let busy: Vec<usize> = (0..trials.len()).filter(|&i| matches!(outcomes[i], Outcome::Busy)).collect();
    let mut rerun = Vec::new();
    for &i in &busy {
        let t = &trials[i];
        let exp_dir = plan.runs_dir.join(&t.config.experiment);
        drop(crate::store::wait_lock(&exp_dir, &t.id())?);
        outcomes[i] = match status(&t.dir(&plan.runs_dir)) {
            TrialStatus::Done(r) => Outcome::AlreadyDone(r),
            TrialStatus::Failed(reason) => Outcome::Failed(reason),
            TrialStatus::Pending => {
                rerun.push(i);
                continue;
            }
        };
        obs.finished(i, t, &outcomes[i]);
    }
    if !rerun.is_empty() {
        let subset: Vec<Trial> = rerun.iter().map(|&i| trials[i].clone()).collect();
        let mut mapped = Remap { inner: obs, index: &rerun };
        for (&i, o) in rerun.iter().zip(run_all(plan, &subset, &mut mapped)?) {
            outcomes[i] = o;
        }
    }
    Ok(busy.len())
}

/// An observer of a subset of the trials, reporting their indices in the whole list.
struct Remap<'a> {
    inner: &'a mut dyn Observer,
    index: &'a [usize],
}

impl Observer for Remap<'_> {
    fn started(&mut self, i: usize, t: &Trial) {
        self.inner.started(self.index[i], t);
    }
    fn progress(&mut self, i: usize, t: &Trial, step: usize, total: usize, loss: Option<f64>) {
        self.inner.progress(self.index[i], t, step, total, loss);
    }
    fn finished(&mut self, i: usize, t: &Trial, o: &Outcome) {
        self.inner.finished(self.index[i], t, o);
    }
}

/// What a crashed trial process said about it: a Rust panic's location and message (the lines after `panicked
/// at`, not the `RUST_BACKTRACE` note), else its last line that is not such a note.
fn crash_reason(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let note = |l: &str| l.starts_with("note: run with `RUST_BACKTRACE") || l.starts_with("stack backtrace:");
    if let Some(i) = lines.iter().position(|l| l.contains("panicked at")) {
        let msg: Vec<&str> = lines[i + 1..].iter().take_while(|l| !note(l)).take(3).copied().collect();
        return format!("{} {}", lines[i], msg.join(" ")).trim().to_string();
    }
    lines.iter().rev().find(|l| !note(l)).copied().unwrap_or("").to_string()
}

pub fn run_all(plan: &RunPlan, trials: &[Trial], obs: &mut dyn Observer) -> Result<Vec<Outcome>> {
    let mut outcomes: Vec<Option<Outcome>> = vec![None; trials.len()];
    let mut queue = std::collections::VecDeque::new();
    for (i, t) in trials.iter().enumerate() {
        match status(&t.dir(&plan.runs_dir)) {
            TrialStatus::Done(r) => {
                let o = Outcome::AlreadyDone(r);
                obs.finished(i, t, &o);
                outcomes[i] = Some(o);
            }
            _ => queue.push_back(i),
        }
    }
    let jobs = plan.jobs.max(1);
    let (tx, rx) = mpsc::channel::<Msg>();
    let mut running: Vec<Running> = Vec::new();
    let mut free_slots: Vec<usize> = (0..jobs).rev().collect();
    // Set when a write fails for lack of space: no further trial is started (the running ones finish), and the
    // queued ones are reported once as not started.
    let mut disk_full: Option<String> = None;
    while (!queue.is_empty() && disk_full.is_none()) || !running.is_empty() {
        while running.len() < jobs && disk_full.is_none() {
            let Some(i) = queue.pop_front() else { break };
            let slot = free_slots.pop().expect("a slot is free when fewer than `jobs` run");
            obs.started(i, &trials[i]);
            match spawn(plan, &trials[i], slot, i, tx.clone()) {
                Ok((child, stderr)) => running.push(Running { index: i, slot, child, stderr }),
                Err(e) => {
                    free_slots.push(slot);
                    if is_disk_full(&e) {
                        disk_full = Some(e.to_string());
                    }
                    let o = Outcome::Failed(e.to_string());
                    obs.finished(i, &trials[i], &o);
                    outcomes[i] = Some(o);
                }
            }
        }
        if running.is_empty() {
            continue;
        }
        match rx.recv().map_err(|_| Error::Other("internal: trial channel closed".into()))? {
            Msg::Progress(i, step, total, loss) => obs.progress(i, &trials[i], step, total, loss),
            Msg::Eof(i) => {
                let pos = running.iter().position(|r| r.index == i).expect("a running trial ends once");
                let mut r = running.swap_remove(pos);
                let exit = r.child.wait().map_err(|e| Error::Other(format!("waiting for trial process: {e}")))?;
                let stderr = r.stderr.join().unwrap_or_default();
                free_slots.push(r.slot);
                let o = match outcome_of(plan, &trials[i], exit, &stderr) {
                    Ok(o) => o,
                    // Its failure could not be recorded (e.g. no space for failed.json): say why it failed and why
                    // that is not on disk, keep going.
                    Err(unrecorded) => {
                        let (reason, e) = *unrecorded;
                        if is_disk_full(&e) {
                            disk_full = Some(e.to_string());
                        }
                        Outcome::Failed(format!("{reason} (not recorded in failed.json: {e})"))
                    }
                };
                // A trial that failed for lack of space but could still record it: the next ones would too.
                if let Outcome::Failed(reason) = &o
                    && disk_full.is_none()
                    && DISK_FULL_TEXTS.iter().any(|t| reason.contains(t))
                {
                    disk_full = Some(reason.clone());
                }
                obs.finished(i, &trials[i], &o);
                outcomes[i] = Some(o);
            }
        }
    }
    if let Some(why) = disk_full {
        for i in queue {
            let o = Outcome::NotStarted(format!("not started: the disk is full ({why})"));
            obs.finished(i, &trials[i], &o);
            outcomes[i] = Some(o);
        }
    }
    Ok(outcomes.into_iter().map(|o| o.expect("every trial has an outcome")).collect())
}

/// How std prints ENOSPC and EDQUOT (`io::Error`'s Display on Linux), as they appear in a trial's recorded reason.
const DISK_FULL_TEXTS: [&str; 2] = ["(os error 28)", "(os error 122)"];

/// Whether `e` is a write that failed for lack of space (ENOSPC, or a disk quota).
pub fn is_disk_full(e: &Error) -> bool {
    use std::io::ErrorKind;
    let io = match e {
        Error::Io { source, .. } => Some(source),
        Error::Train(dalab_train::Error::Io { source, .. }) => Some(source),
        _ => None,
    };
    io.is_some_and(|s| matches!(s.kind(), ErrorKind::StorageFull | ErrorKind::QuotaExceeded))
}

fn spawn(
    plan: &RunPlan,
    trial: &Trial,
    slot: usize,
    index: usize,
    tx: mpsc::Sender<Msg>,
) -> Result<(Child, std::thread::JoinHandle<String>)> {
    let mut cmd = Command::new(&plan.exe);
    cmd.arg("__trial")
        .arg("--runs-dir")
        .arg(&plan.runs_dir)
        .arg("--data-dir")
        .arg(&plan.data_dir)
        .arg("--threads")
        .arg(plan.threads.to_string())
        .arg("--parent-pid")
        .arg(std::process::id().to_string());
    if let Some(d) = plan.devices.get(slot) {
        cmd.arg("--device").arg(d);
    }
    // libtorch/OpenMP read these at start; the child also sets its intra-op threads explicitly. Rayon's pool
    // (image decoding ahead of the step, metrics) gets the same share of the cores.
    cmd.env("OMP_NUM_THREADS", plan.threads.to_string())
        .env("MKL_NUM_THREADS", plan.threads.to_string())
        .env("RAYON_NUM_THREADS", plan.threads.to_string());
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| Error::Other(format!("cannot start {}: {e}", plan.exe.display())))?;
    let json = serde_json::to_vec(trial).expect("trials serialize");
    let mut stdin = child.stdin.take().expect("piped");
    // A child that died at once closes the pipe; its exit status tells why.
    let _ = stdin.write_all(&json);
    drop(stdin);
    let stdout = child.stdout.take().expect("piped");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(std::result::Result::ok) {
            if let Some((s, t, loss)) = crate::trial::parse_progress_line(&line) {
                let _ = tx.send(Msg::Progress(index, s, t, loss));
            }
        }
        let _ = tx.send(Msg::Eof(index));
    });
    let mut stderr = child.stderr.take().expect("piped");
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    Ok((child, err_reader))
}

/// What a finished trial process did. Err: its failure (the reason) could not be written to failed.json (the error).
fn outcome_of(
    plan: &RunPlan,
    trial: &Trial,
    exit: std::process::ExitStatus,
    stderr: &str,
) -> std::result::Result<Outcome, Box<(String, Error)>> {
    use std::os::unix::process::ExitStatusExt;
    let dir = trial.dir(&plan.runs_dir);
    if exit.code() == Some(EXIT_BUSY) {
        return Ok(Outcome::Busy);
    }
    match status(&dir) {
        TrialStatus::Done(r) if exit.success() => Ok(Outcome::Done(r)),
        TrialStatus::Failed(reason) if exit.code() == Some(1) => Ok(Outcome::Failed(reason)),
        _ => {
            // The process died without recording why (a signal, a crash): record it for it.
            let last = crash_reason(stderr);
            let last = last.as_str();
            let reason = match exit.signal() {
                Some(sig) => format!("the trial process was killed by signal {sig}{}", suffix(last)),
                None => format!("the trial process exited with {exit}{}", suffix(last)),
            };
            if dir.is_dir() {
                let rec = FailedRecord { trial: trial.id(), reason: reason.clone() };
                if let Err(e) =
                    write_atomic(&dir.join("failed.json"), &serde_json::to_vec_pretty(&rec).expect("serializes"))
                {
                    return Err(Box::new((reason, e)));
                }
            }
            Ok(Outcome::Failed(reason))
        }
    }
}

fn suffix(last: &str) -> String {
    if last.is_empty() { String::new() } else { format!(": {last}") }
}

/// In a trial process: asks the kernel to SIGKILL this process when the runner `parent_pid` dies. Returns false
/// when the runner is already gone (the caller should exit).
pub fn die_with_parent(parent_pid: u32) -> bool {
    // SAFETY: prctl(PR_SET_PDEATHSIG) and getppid have no memory-safety preconditions.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        libc::getppid() as u32 == parent_pid
    }
}

/// What a trial process did.
#[derive(Debug)]
pub enum ChildOutcome {
    Done(Box<TrialResult>),
    /// Another process holds the trial's lock.
    Busy,
}

/// The body of a trial process: lock the trial, skip it if another runner finished it meanwhile, else run it.
pub fn run_child(
    registry: &Registry,
    trial: &Trial,
    env: &TrialEnv,
    progress: &mut dyn ProgressSink,
) -> Result<ChildOutcome> {
    let exp_dir = env.runs_dir.join(&trial.config.experiment);
    std::fs::create_dir_all(&exp_dir).map_err(io_err(&exp_dir))?;
    let Some(_lock) = try_lock(&exp_dir, &trial.id())? else {
        return Ok(ChildOutcome::Busy);
    };
    if let TrialStatus::Done(r) = status(&trial.dir(&env.runs_dir)) {
        return Ok(ChildOutcome::Done(r));
    }
    if env.threads > 0 {
        tch::set_num_threads(env.threads as i32);
    }
    run_trial(registry, trial, env, progress).map(|r| ChildOutcome::Done(Box::new(r)))
}

/// Writes the HParams experiment summary in the experiment folder (TensorBoard's log dir): the hyperparameters
/// (method, task, seed and every swept key, with the values they take) and the metrics (`final/*` scalars of
/// each trial). Replaces the summary of an earlier run of the experiment.
pub fn write_experiment_summary(exp: &crate::Experiment, trials: &[Trial], runs_dir: &std::path::Path) -> Result<()> {
    use dalab_tensorboard::hparams::{HValue, write_experiment};
    let dir = runs_dir.join(&exp.name);
    std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    for e in std::fs::read_dir(&dir).map_err(io_err(&dir))?.flatten() {
        let p = e.path();
        if p.is_file() && e.file_name().to_string_lossy().starts_with("events.out.tfevents.") {
            std::fs::remove_file(&p).map_err(io_err(&p))?;
        }
    }
    let mut hp: Vec<(String, Vec<HValue>)> = Vec::new();
    for t in trials {
        for (k, v) in crate::trial::trial_hparams(t) {
            match hp.iter_mut().find(|(name, _)| *name == k) {
                Some((_, vals)) => {
                    if !vals.contains(&v) {
                        vals.push(v);
                    }
                }
                None => hp.push((k, vec![v])),
            }
        }
    }
    let mut w = dalab_tensorboard::EventWriter::create(&dir)?;
    let metrics = ["final/target", "final/target_test", "final/source", "final/source_val"];
    write_experiment(&mut w, &exp.name, &exp.base().description, &hp, &metrics)?;
    w.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::crash_reason;

    #[test]
    fn a_panic_keeps_its_message_not_the_backtrace_note() {
        let stderr = "start\nthread 'main' (77) panicked at crates/x/src/lib.rs:10:5:\nindex out of bounds: the len is 3\n\
                      note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n";
        assert_eq!(
            crash_reason(stderr),
            "thread 'main' (77) panicked at crates/x/src/lib.rs:10:5: index out of bounds: the len is 3"
        );
        assert_eq!(crash_reason("a\nlibtorch: out of memory\n\n"), "libtorch: out of memory");
        assert_eq!(crash_reason(""), "");
    }

    /// A real ENOSPC (a write to /dev/full) is recognised as a full disk, wherever it is wrapped; other I/O errors
    /// are not.
    #[test]
    fn a_full_disk_is_recognised() {
        use super::is_disk_full;
        use crate::Error;
        let full = std::fs::write("/dev/full", b"x").unwrap_err();
        assert_eq!(full.raw_os_error(), Some(libc::ENOSPC));
        let p = std::path::PathBuf::from("/dev/full");
        assert!(is_disk_full(&Error::Io { path: p.clone(), source: full }));
        let full = std::fs::write("/dev/full", b"x").unwrap_err();
        assert!(is_disk_full(&Error::Train(dalab_train::Error::Io { path: p.clone(), source: full })));
        let missing = std::fs::read("/nonexistent/x").unwrap_err();
        assert!(!is_disk_full(&Error::Io { path: p, source: missing }));
        assert!(!is_disk_full(&Error::Other("no space".into())));
    }
}
