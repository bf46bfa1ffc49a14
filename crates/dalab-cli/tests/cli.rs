//! End-to-end tests of the `dalab` binary: the quickstart's claim, reproducibility, TensorBoard files read by
//! the real TensorBoard, and one-line errors for bad experiment files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn dalab(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dalab")).args(args).current_dir(cwd).output().expect("dalab runs")
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

fn read_json(p: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).unwrap()
}

/// Runs the quickstart into `runs` and returns (trial dir, result.json) per method.
fn run_quickstart(runs: &Path) -> Vec<(PathBuf, serde_json::Value)> {
    let exp = repo().join("experiments/quickstart.yaml");
    let out = dalab(&["run", exp.to_str().unwrap(), "--runs-dir", runs.to_str().unwrap()], &repo());
    let (so, se) = text(&out);
    assert!(out.status.success(), "quickstart failed:\n{so}\n{se}");
    assert!(so.contains("device cpu") || so.contains("device cuda"), "dalab must print its device:\n{so}");
    let mut trials: Vec<_> = std::fs::read_dir(runs.join("quickstart"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|d| {
            let r = read_json(&d.join("result.json"));
            (d, r)
        })
        .collect();
    trials.sort_by_key(|(d, _)| d.clone());
    trials
}

#[test]
fn quickstart_dann_beats_source_only_reproducibly_and_tensorboard_reads_it() {
    let tmp = tempfile::tempdir().unwrap();
    let a = run_quickstart(&tmp.path().join("a"));
    assert_eq!(a.len(), 2, "one trial per method");
    let by_method = |m: &str| &a.iter().find(|(_, r)| r["method"] == m).unwrap().1;
    let (so, dann) = (by_method("source-only"), by_method("dann"));
    let acc = |r: &serde_json::Value| r["selected"]["target"].as_f64().unwrap();
    // The JMLR paper's Figure 2: DANN separates the rotated target, the plain network does not.
    assert!(acc(dann) >= acc(so) + 0.10, "DANN target {} vs source-only {}", acc(dann), acc(so));
    assert!(so["selected"]["source"].as_f64().unwrap() > 0.95);
    assert_eq!(dann["selection"], "last");
    assert_eq!(dann["oracle"], false);
    for (dir, _) in &a {
        for f in ["config.yaml", "result.json", "metrics.jsonl"] {
            assert!(dir.join(f).is_file(), "{} missing in {}", f, dir.display());
        }
    }

    // Same seed => the same numbers (CPU): a second run gives identical results and metrics.
    let b = run_quickstart(&tmp.path().join("b"));
    for ((da, ra), (db, rb)) in a.iter().zip(&b) {
        assert_eq!(da.file_name(), db.file_name(), "trial ids are deterministic");
        assert_eq!(ra["selected"], rb["selected"]);
        assert_eq!(ra["last"], rb["last"]);
        let ma = std::fs::read_to_string(da.join("metrics.jsonl")).unwrap();
        let mb = std::fs::read_to_string(db.join("metrics.jsonl")).unwrap();
        assert_eq!(ma, mb);
    }

    // The real TensorBoard reads the event files: tags and values match what dalab recorded.
    let (dann_dir, dann_res) = a.iter().find(|(_, r)| r["method"] == "dann").unwrap();
    check_with_tensorboard(dann_dir, dann_res);
}

fn check_with_tensorboard(dir: &Path, result: &serde_json::Value) {
    let pythonpath = std::env::var_os("DALAB_TENSORBOARD_PYTHONPATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".libtorch/pylib"));
    assert!(
        pythonpath.join("tensorboard").is_dir(),
        "the tensorboard package is not at {} — run `cargo xtask setup --tensorboard` (cargo xtask test does)",
        pythonpath.display()
    );
    let script = r#"
import json, sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
acc = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0, "tensors": 0})
acc.Reload()
tags = acc.Tags()
out = {"scalars": {t: [[e.step, e.value] for e in acc.Scalars(t)] for t in tags["scalars"]},
       "tensors": sorted(tags["tensors"])}
print(json.dumps(out))
"#;
    let out = Command::new("python3")
        .args(["-c", script, dir.to_str().unwrap()])
        .env("PYTHONPATH", &pythonpath)
        .output()
        .expect("python3 runs");
    let (so, se) = text(&out);
    assert!(out.status.success(), "EventAccumulator failed: {se}");
    let tb: serde_json::Value = serde_json::from_str(so.trim()).unwrap();
    let scalars = tb["scalars"].as_object().unwrap();
    for tag in ["loss/total", "loss/cls", "loss/domain", "lambda", "lr", "accuracy/source", "accuracy/target"] {
        assert!(scalars.contains_key(tag), "tag {tag} missing; TensorBoard saw {:?}", scalars.keys());
    }
    assert_eq!(tb["tensors"], serde_json::json!(["config"]), "the resolved config is logged as text");
    // The last target-accuracy point is the result's `last` evaluation (f32 in the event file).
    let target = scalars["accuracy/target"].as_array().unwrap();
    let last = target.last().unwrap().as_array().unwrap();
    assert_eq!(last[0].as_i64().unwrap(), result["last"]["step"].as_i64().unwrap());
    let want = result["last"]["target"].as_f64().unwrap();
    assert!((last[1].as_f64().unwrap() - want).abs() < 1e-6, "{last:?} vs {want}");
    assert_eq!(target.len(), 30, "3000 steps / eval every 100");
    // λ is the constant 6 of the toy; lr the constant 0.05.
    assert!(scalars["lambda"].as_array().unwrap().iter().all(|p| (p[1].as_f64().unwrap() - 6.0).abs() < 1e-6));
    assert!(scalars["lr"].as_array().unwrap().iter().all(|p| (p[1].as_f64().unwrap() - 0.05).abs() < 1e-7));
}

/// Writes `yaml` to a file and runs `dalab run` on it; returns (exit code, stderr).
fn run_bad(yaml: &str) -> (i32, String) {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("exp.yaml");
    std::fs::write(&f, yaml).unwrap();
    let out = dalab(&["run", f.to_str().unwrap(), "--runs-dir", tmp.path().join("runs").to_str().unwrap()], tmp.path());
    let (_, se) = text(&out);
    assert!(!se.contains("panicked"), "dalab panicked:\n{se}");
    assert!(!tmp.path().join("runs").exists(), "no trial may start on a bad file");
    (out.status.code().unwrap_or(-1), se)
}

const GOOD: &str = "name: t\ntasks: [moons→moons-rotated]\nmethods:\n  dann:\n    trade_off: 1.0\noptim:\n  lr: 0.01\n";

#[test]
fn bad_experiment_files_fail_with_one_line_naming_the_key() {
    // The good file parses (dry run: no training).
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("ok.yaml");
    std::fs::write(&f, GOOD).unwrap();
    let out = dalab(&["run", f.to_str().unwrap(), "--dry-run"], tmp.path());
    assert!(out.status.success(), "{:?}", text(&out));

    let cases: [(&str, String, &[&str]); 6] = [
        ("typo in a key", GOOD.replace("  lr: 0.01", "  lrr: 0.01"), &["exp.yaml:7:", "optim.lrr", "unknown field"]),
        ("wrong type", GOOD.replace("lr: 0.01", "lr: fast"), &["exp.yaml:7:", "optim.lr"]),
        ("negative lr", GOOD.replace("lr: 0.01", "lr: -0.1"), &["optim.lr: must be a finite number > 0, got -0.1"]),
        ("unknown method", GOOD.replace("  dann:", "  dnn:"), &["exp.yaml:4:", "methods.dnn", "unknown method `dnn`"]),
        ("typo in a method option", GOOD.replace("trade_off", "tradeoff"), &["exp.yaml:5:", "methods.dann.tradeoff"]),
        ("bad task", GOOD.replace("moons-rotated]", "mars]"), &["tasks[0]", "no domain `mars`"]),
    ];
    for (what, yaml, needles) in cases {
        let (code, err) = run_bad(&yaml);
        assert_eq!(code, 2, "{what}: exit code; stderr: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{what}: one line expected, got:\n{err}");
        for n in needles {
            assert!(err.contains(n), "{what}: `{n}` not in: {err}");
        }
    }
    let (code, err) = run_bad("name: t\ntasks: [moons→moons-rotated\n");
    assert_eq!(code, 2);
    assert!(err.contains("exp.yaml:"), "syntax errors carry a position: {err}");
}

#[test]
fn methods_and_show_config() {
    let out = dalab(&["methods"], &repo());
    let (so, _) = text(&out);
    assert!(out.status.success());
    assert!(so.lines().any(|l| l.starts_with("dann ")) && so.lines().any(|l| l.starts_with("source-only ")));

    // show-config prints every option; pasted under `methods:` it is accepted as is.
    let out = dalab(&["show-config", "dann"], &repo());
    let (cfg, _) = text(&out);
    assert!(out.status.success());
    for key in ["trade_off: 1", "lambda_schedule:", "kind: dann", "gamma: 10", "discriminator:", "dropout: 0.5"] {
        assert!(cfg.contains(key), "`{key}` missing from:\n{cfg}");
    }
    let exp = format!("name: t\ntasks: [moons→moons-rotated]\nmethods:\n{}", indent(&cfg));
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("e.yaml");
    std::fs::write(&f, exp).unwrap();
    let out = dalab(&["run", f.to_str().unwrap(), "--dry-run"], tmp.path());
    assert!(out.status.success(), "{:?}", text(&out));

    let out = dalab(&["show-config", "nope"], &repo());
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("unknown method `nope` (registered: source-only, dann)"));
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("  {l}\n")).collect()
}

#[test]
fn a_diverging_trial_is_reported_with_its_step_and_keeps_the_others() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("nan.yaml");
    let yaml = "name: nan\ntasks: [moons→moons-rotated]\nmethods:\n  source-only: {}\n\
                model: {backbone: {kind: mlp, hidden: [15], activation: relu}}\n\
                optim: {lr: 1.0e30, momentum: 0.0}\nschedule: {kind: constant}\n\
                train: {iterations: 50, batch_size: 32, eval_interval: 10, log_interval: 1, threads: 1}\n";
    std::fs::write(&f, yaml).unwrap();
    let out = dalab(&["run", f.to_str().unwrap(), "--runs-dir", "runs"], tmp.path());
    let (so, se) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{so}\n{se}");
    assert!(se.contains("NaN loss at step") || se.contains("infinite loss at step"), "{se}");
    assert!(!se.contains("panicked"));
    // What was logged before the failure is on disk.
    let trial = std::fs::read_dir(tmp.path().join("runs/nan")).unwrap().next().unwrap().unwrap().path();
    assert!(trial.join("config.yaml").is_file());
    assert!(!trial.join("result.json").exists(), "a failed trial has no result");
}
