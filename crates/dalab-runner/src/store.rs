//! The trial store on disk: atomic writes, a trial's status, and the per-trial lock.
//!
//! ```text
//! <runs dir>/<experiment>/
//!   .locks/<trial id>.lock        locked (std's File::lock, flock on Linux) by the process running the trial
//!                                 (released when it dies)
//!   <trial id>/config.yaml        the resolved trial config (atomic)
//!   <trial id>/metrics.jsonl      one line per evaluation
//!   <trial id>/events.out.tfevents.*
//!   <trial id>/result.json        written last, atomically: its presence means "done"
//!   <trial id>/failed.json        or this, with the reason (the trial is retried on the next run)
//! ```

use crate::trial::TrialResult;
use crate::{Result, io_err};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// `failed.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailedRecord {
    pub trial: String,
    pub reason: String,
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, fsync, rename, fsync the folder.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_file_name(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        std::process::id()
    ));
    let written = (|| {
        let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
        f.write_all(bytes).and_then(|_| f.sync_all()).map_err(io_err(&tmp))?;
        std::fs::rename(&tmp, path).map_err(io_err(path))
    })();
    if written.is_err() {
        // A write that failed (a full disk, say) leaves no partial temporary file behind.
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    if let Some(parent) = path.parent() {
        // Make the rename durable; a failure here loses nothing already written.
        let _ = File::open(parent).and_then(|d| d.sync_all());
    }
    Ok(())
}

/// Where a trial stands on disk.
#[derive(Debug, Clone, PartialEq)]
pub enum TrialStatus {
    /// `result.json` exists and parses.
    Done(Box<TrialResult>),
    /// `failed.json` exists: the reason.
    Failed(String),
    /// The folder exists without a result (an interrupted run), or does not exist.
    Pending,
}

/// Reads a trial folder's status. A `result.json` that does not parse counts as pending (it is rerun).
pub fn status(dir: &Path) -> TrialStatus {
    if let Ok(bytes) = std::fs::read(dir.join("result.json"))
        && let Ok(r) = serde_json::from_slice::<TrialResult>(&bytes)
    {
        return TrialStatus::Done(Box::new(r));
    }
    if let Ok(bytes) = std::fs::read(dir.join("failed.json"))
        && let Ok(f) = serde_json::from_slice::<FailedRecord>(&bytes)
    {
        return TrialStatus::Failed(f.reason);
    }
    TrialStatus::Pending
}

/// An exclusive lock on a trial, held while the file stays open (and released by the OS when the process dies).
#[derive(Debug)]
pub struct TrialLock {
    _file: File,
    pub path: PathBuf,
}

/// Tries to lock trial `id` of the experiment folder; `Ok(None)` when another process holds it.
pub fn try_lock(exp_dir: &Path, id: &str) -> Result<Option<TrialLock>> {
    let (file, path) = lock_file(exp_dir, id)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(TrialLock { _file: file, path })),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(io_err(&path)(e)),
    }
}

/// `<exp>/.locks/<id>.lock`, opened for locking (created when missing).
fn lock_file(exp_dir: &Path, id: &str) -> Result<(File, PathBuf)> {
    let dir = exp_dir.join(".locks");
    std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let path = dir.join(format!("{id}.lock"));
    let file =
        std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(io_err(&path))?;
    Ok((file, path))
}

/// Waits until no other process holds the trial's lock, then holds it (released on drop).
pub fn wait_lock(exp_dir: &Path, id: &str) -> Result<TrialLock> {
    let (file, path) = lock_file(exp_dir, id)?;
    file.lock().map_err(io_err(&path))?;
    Ok(TrialLock { _file: file, path })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A write that fails (here the rename onto a directory) leaves neither the target nor a temporary file.
    #[test]
    fn a_failed_atomic_write_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("result.json");
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("inside"), b"x").unwrap();
        assert!(write_atomic(&target, b"{}").is_err());
        let left: Vec<String> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
        assert_eq!(left, ["result.json"], "only the directory that was there");
        write_atomic(&dir.path().join("ok.json"), b"{}").unwrap();
        assert_eq!(std::fs::read(dir.path().join("ok.json")).unwrap(), b"{}");
    }

    #[test]
    fn lock_is_exclusive_and_released_on_drop() {
        let tmp = std::env::temp_dir().join(format!("dalab-lock-{}", std::process::id()));
        let a = try_lock(&tmp, "t1").unwrap();
        assert!(a.is_some());
        // flock locks belong to the open file description: a second open in the same process conflicts too.
        assert!(try_lock(&tmp, "t1").unwrap().is_none());
        assert!(try_lock(&tmp, "t2").unwrap().is_some());
        drop(a);
        assert!(try_lock(&tmp, "t1").unwrap().is_some());
        std::fs::remove_dir_all(&tmp).unwrap();
    }

    #[test]
    fn atomic_write_and_status() {
        let tmp = std::env::temp_dir().join(format!("dalab-store-{}", std::process::id()));
        std::fs::create_dir_all(&tmp).unwrap();
        assert_eq!(status(&tmp), TrialStatus::Pending);
        write_atomic(&tmp.join("result.json"), b"{ not json").unwrap();
        assert_eq!(status(&tmp), TrialStatus::Pending, "a corrupt result is rerun");
        let rec = FailedRecord { trial: "x".into(), reason: "NaN loss at step 3".into() };
        write_atomic(&tmp.join("failed.json"), &serde_json::to_vec(&rec).unwrap()).unwrap();
        assert_eq!(status(&tmp), TrialStatus::Failed("NaN loss at step 3".into()));
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(&tmp).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 2, "{names:?}");
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
