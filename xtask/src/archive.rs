//! The trial archive of the paper tables: `docs/results/trials/<table>/<trial id>/`, committed, so a table whose
//! trials take hours (ADDA's digits, mSDA's 12 pairs) is accumulated over several sessions and machines and its
//! document regenerated from a clean clone.
//!
//! ```text
//! docs/results/trials/<table>/<trial id>/
//!   config.yaml      the resolved trial config, as the runner wrote it
//!   result.json      the runner's result (its presence in a runs folder means "done")
//!   metrics.jsonl    one line per evaluation (learning curves)
//!   provenance.txt   machine, commit and date of the run that computed it
//! ```
//!
//! A trial id hashes the resolved trial config (crates/dalab-runner/src/trial.rs), so an archived trial is reused
//! only while its experiment file, overrides and code-visible settings are unchanged: `restore` copies the archived
//! trials of the current plan into the runs folder before a run (the runner skips done trials), `save` archives the
//! plan's trials that finished and are not archived yet. Only these four files travel (the TensorBoard event files
//! and checkpoints stay in the runs folder). Plain file copies: the runner owns the formats.

use crate::Result;
use std::collections::BTreeMap;
use std::path::Path;

/// The files of a trial folder that the archive keeps, `result.json` last (it marks the trial done).
const FILES: &[&str] = &["config.yaml", "metrics.jsonl", "result.json"];
const PROVENANCE: &str = "provenance.txt";

/// Where and when an archived trial ran.
pub struct Provenance<'a> {
    pub machine: &'a str,
    pub commit: &'a str,
    pub date: &'a str,
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    std::fs::copy(from, to).map(|_| ()).map_err(|e| format!("copying {} to {}: {e}", from.display(), to.display()))
}

/// Copies the trials among `ids` that are done in `from` and not in `to` (by `result.json`), calling `prepare` on
/// each new folder of `to` before its files arrive; returns the ids copied.
fn copy_done(from: &Path, to: &Path, ids: &[String], prepare: impl Fn(&Path) -> Result<()>) -> Result<Vec<String>> {
    let mut copied = Vec::new();
    for id in ids {
        let (src, dst) = (from.join(id), to.join(id));
        if !src.join("result.json").is_file() || dst.join("result.json").is_file() {
            continue;
        }
        std::fs::create_dir_all(&dst).map_err(|e| format!("{}: {e}", dst.display()))?;
        prepare(&dst)?;
        for f in FILES.iter().filter(|f| src.join(f).is_file()) {
            copy(&src.join(f), &dst.join(f))?;
        }
        copied.push(id.clone());
    }
    Ok(copied)
}

/// Copies the archived trials among `ids` that `exp_dir` does not have finished into it; returns their ids.
pub fn restore(archive: &Path, exp_dir: &Path, ids: &[String]) -> Result<Vec<String>> {
    copy_done(archive, exp_dir, ids, |dst| {
        // A failed attempt (or the checkpoint of an unfinished one) is superseded by the archived result.
        let _ = std::fs::remove_file(dst.join("failed.json"));
        Ok(())
    })
}

/// Archives the trials among `ids` that finished in `exp_dir` and are not in the archive yet; returns their ids.
pub fn save(exp_dir: &Path, archive: &Path, ids: &[String], p: &Provenance) -> Result<Vec<String>> {
    copy_done(exp_dir, archive, ids, |dst| {
        let text = format!("machine: {}\ncommit: {}\ndate: {}\n", p.machine, p.commit, p.date);
        std::fs::write(dst.join(PROVENANCE), text).map_err(|e| format!("{}: {e}", dst.join(PROVENANCE).display()))
    })
}

/// One sentence on where the archived trials among `ids` ran: how many on each machine, at which commits, and the
/// sum of their own run times (`seconds` of result.json). Empty when none of them is archived.
pub fn summary(archive: &Path, ids: &[String]) -> String {
    let mut by_machine: BTreeMap<String, (usize, Vec<String>)> = BTreeMap::new();
    let (mut n, mut seconds) = (0, 0.0);
    for id in ids {
        seconds +=
            std::fs::read_to_string(archive.join(id).join("result.json")).map(|r| trial_seconds(&r)).unwrap_or(0.0);
        let Ok(text) = std::fs::read_to_string(archive.join(id).join(PROVENANCE)) else { continue };
        let field = |k: &str| {
            text.lines().find_map(|l| l.strip_prefix(k)).map(|v| v.trim().to_string()).unwrap_or("unknown".into())
        };
        let entry = by_machine.entry(field("machine:")).or_default();
        entry.0 += 1;
        let c = field("commit:");
        if !entry.1.contains(&c) {
            entry.1.push(c);
        }
        n += 1;
    }
    if n == 0 {
        return String::new();
    }
    let parts: Vec<String> =
        by_machine.iter().map(|(m, (k, commits))| format!("{k} on {m} (commit {})", commits.join(", "))).collect();
    let time = if seconds < 120.0 { format!("{seconds:.0} s") } else { format!("{:.1} min", seconds / 60.0) };
    format!("{n} of {} trials are archived ({time} of trial time in all): {}", ids.len(), parts.join("; "))
}

/// The `"seconds": x` of a result.json (the runner writes one field per line; 0 when absent).
fn trial_seconds(result: &str) -> f64 {
    result
        .lines()
        .find_map(|l| l.trim().strip_prefix("\"seconds\":"))
        .and_then(|v| v.trim().trim_end_matches(',').parse().ok())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("xtask-archive-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn trial(dir: &Path, id: &str, done: bool) {
        let d = dir.join(id);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("config.yaml"), format!("seed: {id}\n")).unwrap();
        std::fs::write(d.join("metrics.jsonl"), "{\"step\":1}\n").unwrap();
        std::fs::write(d.join("events.out.tfevents.1"), "tb").unwrap();
        if done {
            std::fs::write(
                d.join("result.json"),
                format!("{{\n  \"trial\": \"{id}\",\n  \"seconds\": 30.0,\n  \"device\": \"cpu\"\n}}"),
            )
            .unwrap();
        } else {
            std::fs::write(d.join("failed.json"), "{}").unwrap();
        }
    }

    const A: Provenance = Provenance { machine: "cpu A, 2 cores", commit: "abc1234", date: "2026-12-03" };

    #[test]
    fn save_then_restore_round_trips_the_done_trials_of_the_plan() {
        let root = scratch("round");
        let (runs, archive, fresh) = (root.join("runs"), root.join("archive"), root.join("fresh"));
        trial(&runs, "t1", true);
        trial(&runs, "t2", false);
        trial(&runs, "t3", true);
        let plan: Vec<String> = ["t1", "t2"].map(String::from).to_vec();
        // t3 is not in the plan (an earlier version of the experiment), t2 did not finish.
        assert_eq!(save(&runs, &archive, &plan, &A).unwrap(), ["t1"]);
        assert!(!archive.join("t2").exists() && !archive.join("t3").exists());
        assert!(!archive.join("t1").join("events.out.tfevents.1").exists(), "event files stay in the runs folder");
        // Saving again archives nothing new and keeps the first provenance.
        let b = Provenance { machine: "cpu B", ..A };
        assert!(save(&runs, &archive, &plan, &b).unwrap().is_empty());
        assert!(std::fs::read_to_string(archive.join("t1").join(PROVENANCE)).unwrap().contains("cpu A"));

        assert_eq!(restore(&archive, &fresh, &plan).unwrap(), ["t1"]);
        for f in FILES {
            assert_eq!(
                std::fs::read(fresh.join("t1").join(f)).unwrap(),
                std::fs::read(runs.join("t1").join(f)).unwrap(),
                "{f}"
            );
        }
        assert!(!fresh.join("t1").join(PROVENANCE).exists(), "the runs folder keeps the runner's files only");
        assert!(restore(&archive, &fresh, &plan).unwrap().is_empty(), "a done trial is not overwritten");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn restore_supersedes_a_failed_attempt_and_leaves_unarchived_trials_alone() {
        let root = scratch("failed");
        let (runs, archive) = (root.join("runs"), root.join("archive"));
        trial(&archive, "t1", true);
        trial(&runs, "t1", false);
        trial(&runs, "t2", false);
        let plan: Vec<String> = ["t1", "t2"].map(String::from).to_vec();
        assert_eq!(restore(&archive, &runs, &plan).unwrap(), ["t1"]);
        assert!(runs.join("t1").join("result.json").is_file());
        assert!(!runs.join("t1").join("failed.json").exists());
        assert!(runs.join("t2").join("failed.json").exists() && !runs.join("t2").join("result.json").exists());
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn summary_counts_trials_per_machine_and_names_their_commits() {
        let root = scratch("summary");
        let (runs, archive) = (root.join("runs"), root.join("archive"));
        for id in ["t1", "t2", "t3"] {
            trial(&runs, id, true);
        }
        let all: Vec<String> = ["t1", "t2", "t3", "t4"].map(String::from).to_vec();
        assert_eq!(summary(&archive, &all), "");
        save(&runs, &archive, &all[..2], &A).unwrap();
        save(&runs, &archive, &all, &Provenance { machine: "cpu B", commit: "def5678", date: "2026-12-04" }).unwrap();
        assert_eq!(
            summary(&archive, &all),
            "3 of 4 trials are archived (90 s of trial time in all): 2 on cpu A, 2 cores (commit abc1234); 1 on cpu B (commit def5678)"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
}
