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

/// The trial folders of an experiment folder (not `.locks`, not the root event file).
fn trial_dirs(exp_dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(exp_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("config.yaml").is_file())
        .collect();
    v.sort();
    v
}

/// Runs the quickstart into `runs` and returns (trial dir, result.json) per method.
fn run_quickstart(runs: &Path) -> Vec<(PathBuf, serde_json::Value)> {
    let exp = repo().join("experiments/quickstart.yaml");
    let out = dalab(&["run", exp.to_str().unwrap(), "--runs-dir", runs.to_str().unwrap()], &repo());
    let (so, se) = text(&out);
    assert!(out.status.success(), "quickstart failed:\n{so}\n{se}");
    assert!(se.contains("device cpu") || se.contains("device cuda"), "dalab must print its device:\n{se}");
    assert!(!so.contains("device cpu") && so.contains("| method |"), "progress on stderr, the table on stdout:\n{so}");
    let mut trials: Vec<_> = trial_dirs(&runs.join("quickstart"))
        .into_iter()
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
    let tensors = tb["tensors"].as_array().unwrap();
    assert!(tensors.contains(&serde_json::json!("config")), "the resolved config is logged as text: {tensors:?}");
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

/// Writes `yaml` to a file and runs `dalab run` on it (with extra args); returns (exit code, stderr).
fn run_bad(yaml: &str) -> (i32, String) {
    run_bad_with(yaml, &[])
}

fn run_bad_with(yaml: &str, extra: &[&str]) -> (i32, String) {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("exp.yaml");
    std::fs::write(&f, yaml).unwrap();
    let runs = tmp.path().join("runs");
    let mut args = vec!["run", f.to_str().unwrap(), "--runs-dir", runs.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = dalab(&args, tmp.path());
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

    let cases: [(&str, String, &[&str]); 9] = [
        ("typo in a key", GOOD.replace("  lr: 0.01", "  lrr: 0.01"), &["exp.yaml:7:", "optim.lrr", "unknown field"]),
        ("wrong type", GOOD.replace("lr: 0.01", "lr: fast"), &["exp.yaml:7:", "optim.lr"]),
        ("negative lr", GOOD.replace("lr: 0.01", "lr: -0.1"), &["optim.lr: must be a finite number > 0, got -0.1"]),
        ("unknown method", GOOD.replace("  dann:", "  dnn:"), &["exp.yaml:4:", "methods.dnn", "unknown method `dnn`"]),
        ("typo in a method option", GOOD.replace("trade_off", "tradeoff"), &["exp.yaml:5:", "methods.dann.tradeoff"]),
        ("bad task", GOOD.replace("moons-rotated]", "mars]"), &["tasks[0]", "no domain `mars`"]),
        ("empty seeds", format!("{GOOD}seeds: []\n"), &["seeds: must list at least one seed"]),
        (
            "sweep over an unknown key",
            format!("{GOOD}sweep:\n  optim.lrate: [0.1]\n"),
            &["sweep.optim.lrate: no such key"],
        ),
        (
            "sweep with a bad value",
            format!("{GOOD}sweep:\n  optim.lr: [0.1, -1]\n"),
            &["sweep point optim.lr=-1", "optim.lr: must be"],
        ),
    ];
    for (what, yaml, needles) in cases {
        let (code, err) = run_bad(&yaml);
        assert_eq!(code, 2, "{what}: exit code; stderr: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{what}: one line expected, got:\n{err}");
        for n in needles {
            assert!(err.contains(n), "{what}: `{n}` not in: {err}");
        }
    }
    // --set is type-checked like the file, and named in the error.
    let (code, err) = run_bad_with(GOOD, &["--set", "optim.lr=fast"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--set optim.lr=fast: optim.lr"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    let (code, err) = run_bad_with(GOOD, &["--set", "optim.lrate=0.1"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--set optim.lrate=0.1") && err.contains("lrate"), "{err}");
    let (code, err) = run_bad("name: t\ntasks: [moons→moons-rotated\n");
    assert_eq!(code, 2);
    assert!(err.contains("exp.yaml:"), "syntax errors carry a position: {err}");
    // Settings and parameter groups are checked against the methods before anything runs.
    for (yaml, needle) in [
        (
            format!("{GOOD}setting: {{semi_supervised: {{labels_per_class: 3}}}}\n"),
            "setting: method `dann` does not run in the `semi_supervised` setting (it supports: unsupervised)",
        ),
        (
            format!("{GOOD}setting: {{semi_supervised: {{labels_per_class: 0}}}}\n"),
            "setting.semi_supervised.labels_per_class: must be >= 1, got 0",
        ),
        (
            GOOD.replace("  lr: 0.01", "  lr: 0.01\n  groups: {critic: {lr: 0.1}}"),
            "optim.groups.critic: no method of this experiment has a parameter group `critic` (dann: all)",
        ),
    ] {
        let (code, err) = run_bad(&yaml);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains(needle) && err.trim_end().lines().count() == 1, "{err}");
    }
}

/// `setting: semi_supervised`: k labelled target samples per class reach the method (source-only's S+T loss),
/// are recorded in result.json and are left out of the target score.
#[test]
fn semi_supervised_labels_are_recorded_and_not_scored() {
    let tmp = tempfile::tempdir().unwrap();
    let yaml = "name: ssda
dataset: {name: moons}
tasks: [moons→moons-rotated]
methods: {source-only: {}}
model: {backbone: {kind: mlp, hidden: [15], activation: sigmoid}}
optim: {lr: 0.05}
schedule: {kind: constant}
train: {iterations: 200, batch_size: 32, eval_interval: 100, threads: 1}
setting: {semi_supervised: {labels_per_class: 3}}
";
    std::fs::write(tmp.path().join("ssda.yaml"), yaml).unwrap();
    let out = dalab(&["run", "ssda.yaml", "--runs-dir", "runs"], tmp.path());
    assert!(out.status.success(), "{:?}", text(&out));
    let d = trial_dirs(&tmp.path().join("runs/ssda")).remove(0);
    let r = read_json(&d.join("result.json"));
    let labelled: Vec<u64> = r["labelled_target"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    assert_eq!(labelled.len(), 6, "3 per class, 2 classes: {labelled:?}");
    // Scored on the 294 unlabelled targets: the accuracy is a multiple of 1/294.
    let acc = r["last"]["target"].as_f64().unwrap();
    assert!((acc * 294.0 - (acc * 294.0).round()).abs() < 1e-9, "{acc} is not k/294");
    assert!(std::fs::read_to_string(d.join("config.yaml")).unwrap().contains("labels_per_class: 3"));
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
    // Every registered method's printed config, pasted under `methods:`, is accepted by `dalab run` as is.
    let names: Vec<String> = so.lines().filter_map(|l| l.split_whitespace().next()).map(str::to_string).collect();
    assert!(names.len() >= 9, "{names:?}");
    // (The methods that need target labels are pasted into a `setting: supervised` file.)
    const LABELLED: [&str; 4] = ["target-only", "layer-transfer", "mtl", "progressive"];
    let (mut all, mut labelled) = (String::new(), String::new());
    for m in &names {
        let out = dalab(&["show-config", m], &repo());
        assert!(out.status.success(), "show-config {m}: {:?}", text(&out));
        let supervised_only = LABELLED.contains(&m.as_str());
        if supervised_only { &mut labelled } else { &mut all }.push_str(&indent(&text(&out).0));
    }
    let tmp = tempfile::tempdir().unwrap();
    let k = LABELLED.len();
    for (methods, setting, n) in [(&all, "", names.len() - k), (&labelled, "setting: supervised\n", k)] {
        let exp = format!("name: t\ntasks: [moons→moons-rotated]\n{setting}methods:\n{methods}");
        let f = tmp.path().join("e.yaml");
        std::fs::write(&f, exp).unwrap();
        let out = dalab(&["run", f.to_str().unwrap(), "--dry-run"], tmp.path());
        let (listed, se) = text(&out);
        assert!(out.status.success(), "{listed}\n{se}");
        assert!(listed.starts_with(&format!("{n} trial(s)")), "{listed}");
    }

    let out = dalab(&["show-config", "nope"], &repo());
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out).1;
    assert!(err.contains("unknown method `nope` (registered: source-only, dann, "), "{err}");
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
    let trial = trial_dirs(&tmp.path().join("runs/nan")).pop().unwrap();
    assert!(trial.join("config.yaml").is_file());
    assert!(!trial.join("result.json").exists(), "a failed trial has no result");
    let failed = read_json(&trial.join("failed.json"));
    assert!(failed["reason"].as_str().unwrap().contains("loss at step"), "{failed}");
}

/// The sweep used by the runner tests: 2 methods × trade-off {1, 6} (DANN only) × 3 seeds = 3 + 6 trials.
const SWEEP: &str = "name: sweep
dataset: {name: moons}
tasks: [moons→moons-rotated]
methods:
  source-only: {}
  dann: {lambda_schedule: {kind: constant}, discriminator: {hidden: []}}
model: {backbone: {kind: mlp, hidden: [15], activation: sigmoid}}
optim: {lr: 0.05, momentum: 0.9}
schedule: {kind: constant}
train: {iterations: 300, batch_size: 32, eval_interval: 50, log_interval: 10, threads: 1}
seeds: [0, 1, 2]
sweep:
  methods.dann.trade_off: [1, 6]
";

fn run_sweep(dir: &Path, jobs: &str) -> Output {
    std::fs::write(dir.join("sweep.yaml"), SWEEP).unwrap();
    dalab(&["run", "sweep.yaml", "--runs-dir", "runs", "--jobs", jobs], dir)
}

/// `(trial id, result.json selected+last, metrics.jsonl)` of every finished trial.
fn snapshot(exp_dir: &Path) -> Vec<(String, serde_json::Value, String)> {
    trial_dirs(exp_dir)
        .into_iter()
        .map(|d| {
            let r = read_json(&d.join("result.json"));
            let m = std::fs::read_to_string(d.join("metrics.jsonl")).unwrap();
            (d.file_name().unwrap().to_string_lossy().into_owned(), serde_json::json!([r["selected"], r["last"]]), m)
        })
        .collect()
}

#[test]
fn sweep_in_parallel_resume_report_and_hparams() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run_sweep(tmp.path(), "2");
    let (so, se) = text(&out);
    assert!(out.status.success(), "{so}\n{se}");
    assert!(se.contains("9 trial(s), 2 at a time, 1 thread(s) each"), "{se}");
    let exp = tmp.path().join("runs/sweep");
    let snap = snapshot(&exp);
    assert_eq!(snap.len(), 9, "source-only is not repeated per trade-off value");

    // Rerunning skips every finished trial and changes nothing.
    let out = run_sweep(tmp.path(), "2");
    let (_, se) = text(&out);
    assert!(out.status.success());
    assert_eq!(se.matches("done earlier, skipped").count(), 9, "{se}");
    assert_eq!(snapshot(&exp), snap);

    // The report: rows = methods × swept values, mean ± std over 3 seeds.
    let out = dalab(&["report", "sweep.yaml", "--runs-dir", "runs"], tmp.path());
    let (md, se) = text(&out);
    assert!(out.status.success(), "{md}\n{se}");
    assert!(md.contains("mean ± std over 3 seeds; model selection: last"), "{md}");
    for row in ["| source-only |", "| dann (trade_off=1) |", "| dann (trade_off=6) |"] {
        assert!(md.contains(row), "{row} missing:\n{md}");
    }
    // The source-only cell equals the mean of its three result.json files (computed here independently).
    let so_acc: Vec<f64> = trial_dirs(&exp)
        .iter()
        .map(|d| read_json(&d.join("result.json")))
        .filter(|r| r["method"] == "source-only")
        .map(|r| 100.0 * r["selected"]["target"].as_f64().unwrap())
        .collect();
    let mean = so_acc.iter().sum::<f64>() / 3.0;
    let csv = std::fs::read_to_string(exp.join("report.csv")).unwrap();
    let line = csv.lines().find(|l| l.starts_with("\"source-only\"")).unwrap();
    let cell: f64 = line.split(',').nth(1).unwrap().parse().unwrap();
    assert!((cell - mean).abs() < 1e-3, "{cell} vs {mean}");
    let png = std::fs::read(exp.join("plots/moons_to_moons-rotated.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");

    // A reference file adds paper rows and differences.
    let reference = "caption: made-up numbers for the test\nrows:\n  - name: paper\n    compare_to: source-only\n    values: {moons→moons-rotated: 50.0}\n";
    std::fs::write(tmp.path().join("ref.yaml"), reference).unwrap();
    let out = dalab(&["report", "runs/sweep", "--reference", "ref.yaml", "--no-plots"], tmp.path());
    let (md, se) = text(&out);
    assert!(out.status.success(), "{se}");
    assert!(md.contains("| *paper* | 50.0 |"), "{md}");
    assert!(md.contains(&format!("| Δ source-only − paper | {:+.1} |", mean - 50.0)), "{md}");

    // TensorBoard's own reader: hparams session data per trial, the experiment summary at the root.
    let pythonpath = std::env::var_os("DALAB_TENSORBOARD_PYTHONPATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".libtorch/pylib"));
    let script = r#"
import json, os, sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2
root = sys.argv[1]
def pd(acc, tag):
    return plugin_data_pb2.HParamsPluginData.FromString(acc.SummaryMetadata(tag).plugin_data.content)
acc = EventAccumulator(root); acc.Reload()
exp = pd(acc, "_hparams_/experiment").experiment
out = {"hparams": sorted(h.name for h in exp.hparam_infos), "metrics": sorted(m.name.tag for m in exp.metric_infos), "trials": {}}
for d in sorted(os.listdir(root)):
    p = os.path.join(root, d)
    if not os.path.isdir(p) or d.startswith(".") or d == "plots":
        continue
    a = EventAccumulator(p, size_guidance={"scalars": 0, "tensors": 0}); a.Reload()
    start = pd(a, "_hparams_/session_start_info").session_start_info
    end = pd(a, "_hparams_/session_end_info").session_end_info
    hp = {k: getattr(v, v.WhichOneof("kind")) for k, v in start.hparams.items()}
    out["trials"][d] = {"hparams": hp, "status": end.status, "group": start.group_name, "final_target": a.Scalars("final/target")[-1].value,
                        "text": a.Tags()["tensors"]}
print(json.dumps(out))
"#;
    let out = Command::new("python3")
        .args(["-c", script, exp.to_str().unwrap()])
        .env("PYTHONPATH", &pythonpath)
        .output()
        .unwrap();
    let (so, se) = text(&out);
    assert!(out.status.success(), "{se}");
    let tb: serde_json::Value = serde_json::from_str(so.trim()).unwrap();
    let names: Vec<&str> = tb["hparams"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    for k in ["method", "methods.dann.trade_off", "seed", "task", "optim.lr", "optim.kind", "train.batch_size"] {
        assert!(names.contains(&k), "{k} not in {names:?}");
    }
    for k in ["train.iterations", "selection", "setting", "methods.dann.discriminator.dropout"] {
        assert!(names.contains(&k), "{k} not in {names:?}");
    }
    assert!(tb["metrics"].as_array().unwrap().contains(&serde_json::json!("final/target")));
    let trials = tb["trials"].as_object().unwrap();
    assert_eq!(trials.len(), 9);
    for (id, t) in trials {
        let r = read_json(&exp.join(id).join("result.json"));
        assert_eq!(t["status"], 1, "{id}: STATUS_SUCCESS");
        assert_eq!(t["hparams"]["method"], r["method"]);
        assert!(t["group"].as_str().unwrap().starts_with(&format!("{}/", r["experiment"].as_str().unwrap())), "{t}");
        assert_eq!(t["hparams"]["optim.lr"].as_f64(), Some(0.05), "{t}");
        assert_eq!(t["hparams"]["seed"].as_f64().unwrap() as u64, r["seed"].as_u64().unwrap());
        if r["method"] == "dann" {
            let (tb_v, ours) = (&t["hparams"]["methods.dann.trade_off"], &r["sweep"]["methods.dann.trade_off"]);
            assert_eq!(tb_v.as_f64(), ours.as_f64(), "{tb_v} vs {ours}");
        }
        let want = r["selected"]["target"].as_f64().unwrap();
        assert!((t["final_target"].as_f64().unwrap() - want).abs() < 1e-6);
        assert!(t["text"].as_array().unwrap().contains(&serde_json::json!("config")));
    }
}

#[test]
fn killed_runs_resume_to_the_uninterrupted_results() {
    // Longer trials than the other sweep tests, so that kills land while trials train.
    let yaml = SWEEP.replace(
        "iterations: 300, batch_size: 32, eval_interval: 50",
        "iterations: 2000, batch_size: 32, eval_interval: 200",
    );
    // Reference: an uninterrupted run.
    let a = tempfile::tempdir().unwrap();
    std::fs::write(a.path().join("sweep.yaml"), &yaml).unwrap();
    let out = dalab(&["run", "sweep.yaml", "--runs-dir", "runs", "--jobs", "2"], a.path());
    assert!(out.status.success(), "{:?}", text(&out));
    let want = snapshot(&a.path().join("runs/sweep"));

    // Kill the runner with SIGKILL at pseudo-random moments, rerunning each time, until 10 kills have hit a
    // runner that was still working.
    let b = tempfile::tempdir().unwrap();
    std::fs::write(b.path().join("sweep.yaml"), &yaml).unwrap();
    let mut state = 0x2545_f491_4f6c_dd1du64; // xorshift64: fixed, so the test is repeatable
    let mut kills = 0;
    for _ in 0..40 {
        if kills == 10 {
            break;
        }
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let wait_ms = 200 + state % 900;
        let mut child = Command::new(env!("CARGO_BIN_EXE_dalab"))
            .args(["run", "sweep.yaml", "--runs-dir", "runs", "--jobs", "2"])
            .current_dir(b.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(wait_ms));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        child.wait().unwrap();
    }
    assert_eq!(kills, 10, "only {kills} runs were still going when killed; make the sweep longer");
    // Trial processes die with their runner; give the kernel a moment, then finish the sweep.
    let mut ok = false;
    for _ in 0..5 {
        std::thread::sleep(std::time::Duration::from_millis(300));
        let out = dalab(&["run", "sweep.yaml", "--runs-dir", "runs", "--jobs", "2"], b.path());
        if out.status.success() {
            ok = true;
            break;
        }
    }
    assert!(ok, "the sweep did not complete after the kills");
    let exp = b.path().join("runs/sweep");
    assert_eq!(snapshot(&exp), want, "same trial ids, same numbers, same metrics");
    // No temporary or failure files left anywhere.
    for d in trial_dirs(&exp) {
        for e in std::fs::read_dir(&d).unwrap() {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            assert!(!name.contains(".tmp-") && name != "failed.json", "{} left in {}", name, d.display());
        }
    }
}

#[test]
fn a_diverging_sweep_point_fails_and_the_others_finish() {
    let tmp = tempfile::tempdir().unwrap();
    // ReLU units: with lr = 1e30 the logits overflow (sigmoid units would saturate and stay finite).
    let yaml = SWEEP
        .replace("seeds: [0, 1, 2]", "seeds: [0]")
        .replace("activation: sigmoid", "activation: relu")
        .replace("optim: {lr: 0.05, momentum: 0.9}", "optim: {lr: 0.05, momentum: 0.0}")
        .replace("  methods.dann.trade_off: [1, 6]", "  optim.lr: [0.05, 1.0e30]");
    std::fs::write(tmp.path().join("d.yaml"), yaml).unwrap();
    let out = dalab(&["run", "d.yaml", "--runs-dir", "runs", "-j", "2"], tmp.path());
    let (so, se) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{so}\n{se}");
    assert!(se.contains("2 of 4 trial(s) failed") && se.contains("NaN loss at step"), "{se}");
    let done = trial_dirs(&tmp.path().join("runs/sweep")).iter().filter(|d| d.join("result.json").exists()).count();
    assert_eq!(done, 2, "the lr=0.05 trials finish");
}

/// The data directory of the tests: DALAB_DATA_DIR, else the shared one beside the checkout.
fn shared_data() -> Option<PathBuf> {
    let d = std::env::var_os("DALAB_DATA_DIR").map(PathBuf::from).unwrap_or_else(|| repo().join("../shared/datasets"));
    if d.is_dir() {
        Some(d)
    } else {
        assert!(std::env::var_os("CI").is_none(), "CI needs the shared data directory ({})", d.display());
        eprintln!("skipping: no data directory at {}", d.display());
        None
    }
}

#[test]
fn data_list_verify_and_the_1nn_baseline() {
    let Some(data) = shared_data() else { return };
    let d = data.to_str().unwrap();
    let out = dalab(&["data", "list", "--data-dir", d], &repo());
    let (so, se) = text(&out);
    assert!(out.status.success(), "{se}");
    for name in ["office-caltech10-surf", "amazon-reviews", "jda-digits", "mnist-m"] {
        assert!(so.contains(name), "{name} missing from `dalab data list`:\n{so}");
    }
    let out = dalab(&["data", "verify", "jda-digits", "--data-dir", d], &repo());
    assert!(out.status.success(), "{:?}", text(&out));

    // An empty data directory: verify fails and names the file, its checksum and the fetch command.
    let empty = tempfile::tempdir().unwrap();
    let out = dalab(&["data", "verify", "jda-digits", "--data-dir", empty.path().to_str().unwrap()], &repo());
    let (so, se) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{so}\n{se}");
    assert!(so.contains("MNIST_vs_USPS.mat") || se.contains("MNIST_vs_USPS.mat"), "{so}\n{se}");

    // The 1-NN sanity check of the JDA digits subsets reproduces the paper (M→U 65.94, U→M 44.70).
    let out = dalab(&["baseline", "1nn", "--dataset", "jda-digits", "--data-dir", d], &repo());
    let (so, se) = text(&out);
    assert!(out.status.success(), "{so}\n{se}");
    assert!(so.contains("65.94") && so.contains("44.70"), "{so}");
}

#[test]
fn divergence_between_feature_files() {
    let Some(data) = shared_data() else { return };
    let surf = data.join("office_caltech10_surf");
    let tmp = tempfile::tempdir().unwrap();
    let dom = |n: &str, f: &str| format!("{n}={}", surf.join(f).display());
    let out = dalab(
        &[
            "divergence",
            "--domain",
            &dom("A", "amazon_SURF_L10.mat"),
            "--domain",
            &dom("W", "webcam_SURF_L10.mat"),
            "--metrics",
            "mmd,coral",
            "--out-dir",
            tmp.path().to_str().unwrap(),
        ],
        &repo(),
    );
    let (so, se) = text(&out);
    assert!(out.status.success(), "{so}\n{se}");
    let json = read_json(&tmp.path().join("divergence.json"));
    let csv = std::fs::read_to_string(tmp.path().join("divergence.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "header + A→W + W→A:\n{csv}");
    let body = json.to_string();
    assert!(body.contains("\"A\"") && body.contains("\"W\""), "{body}");

    // Different feature dimensions (800-d SURF vs 256-d digits) are an error naming the problem.
    let digits = data.join("digits/jda_mnist_usps/MNIST_vs_USPS.mat");
    let out = dalab(
        &[
            "divergence",
            "--source",
            surf.join("amazon_SURF_L10.mat").to_str().unwrap(),
            "--target",
            digits.to_str().unwrap(),
            "--metrics",
            "coral",
            "--out-dir",
            tmp.path().to_str().unwrap(),
        ],
        &repo(),
    );
    let (so, se) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{so}\n{se}");
    assert!(!se.contains("panicked"));
    assert!(se.contains("800") && se.contains("256"), "{se}");

    // The JDA digits store one sample per column: measured as rows, the 2000 labels fit only the columns, and the
    // error says so; with `--layout samples-as-columns` the 2000 MNIST and 1800 USPS digits are the samples.
    let jda = data.join("digits/jda_mnist_usps");
    let args = |layout: &str| {
        let mut a: Vec<String> = ["divergence", "--key", "X_src", "--metrics", "coral", "--layout", layout]
            .into_iter()
            .map(String::from)
            .collect();
        for (n, f) in [("M", "MNIST_vs_USPS.mat"), ("U", "USPS_vs_MNIST.mat")] {
            a.extend(["--domain".to_string(), format!("{n}={}", jda.join(f).display())]);
        }
        a.extend(["--out-dir".to_string(), tmp.path().to_str().unwrap().to_string()]);
        a
    };
    let run = |layout: &str| {
        let a = args(layout);
        dalab(&a.iter().map(String::as_str).collect::<Vec<_>>(), &repo())
    };
    let out = run("rows");
    let (so, se) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{so}\n{se}");
    assert!(se.contains("2000 labels (`Y_src`) for 256 samples of 2000 features"), "{se}");
    assert!(se.contains("give the layout `samples-as-columns`"), "{se}");
    let out = run("samples-as-columns");
    let (so, se) = text(&out);
    assert!(out.status.success(), "{so}\n{se}");
    let json = read_json(&tmp.path().join("divergence.json")).to_string();
    assert!(json.contains("2000") && json.contains("1800"), "sample counts in the report: {json}");
}

/// Two image-folder domains under `dir`: 2 classes × 12 RGB 8×8 PNGs each; class 0 reddish, class 1 bluish, with
/// per-image noise from a fixed LCG; the target domain is the source darkened and shifted in green.
fn write_image_domains(dir: &Path) {
    use dalab_data::formats::images::{Image, encode_png};
    let mut state = 12345u32;
    let mut noise = move || {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
        ((state >> 16) % 64) as i32
    };
    for (dom, scale, green) in [("src", 1.0, 0), ("tgt", 0.6, 60)] {
        for (k, class) in ["a_red", "b_blue"].iter().enumerate() {
            let d = dir.join(dom).join(class);
            std::fs::create_dir_all(&d).unwrap();
            for i in 0..12 {
                let mut data = Vec::with_capacity(192);
                for _ in 0..64 {
                    let (r, b) = if k == 0 { (200, 40) } else { (40, 200) };
                    for (c, base) in [r, 90 + green, b].into_iter().enumerate() {
                        let v = (f64::from(base + noise() - 32) * if c == 1 { 1.0 } else { scale }) as i32;
                        data.push(v.clamp(0, 255) as u8);
                    }
                }
                let img = Image { width: 8, height: 8, channels: 3, data };
                std::fs::write(d.join(format!("{i:02}.png")), encode_png(&img)).unwrap();
            }
        }
    }
}

/// Writes `yaml` (an experiment named `name` with one trial) into `dir`, runs it with `dir` as the data directory
/// and `dir/runs` as the runs directory, and returns the trial's folder.
fn run_single_trial(dir: &Path, name: &str, yaml: &str) -> PathBuf {
    let f = dir.join(format!("{name}.yaml"));
    std::fs::write(&f, yaml).unwrap();
    let runs = dir.join("runs");
    let out = dalab(
        &["run", f.to_str().unwrap(), "--runs-dir", runs.to_str().unwrap(), "--data-dir", dir.to_str().unwrap()],
        dir,
    );
    let (so, se) = text(&out);
    assert!(out.status.success(), "{name}:\n{so}\n{se}");
    let dirs = trial_dirs(&runs.join(name));
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs.into_iter().next().unwrap()
}

/// The TorchScript CNN with BatchNorm of crates/dalab-nn/testdata/make_torchscript_cnn.py (python3, no PyTorch),
/// written into `dir`.
fn tiny_torchscript_cnn(dir: &Path) -> PathBuf {
    let pt = dir.join("cnn.pt");
    let script = repo().join("crates/dalab-nn/testdata/make_torchscript_cnn.py");
    assert!(std::process::Command::new("python3").arg(&script).arg(&pt).status().unwrap().success());
    pt
}

#[test]
fn images_decoded_ahead_of_the_step_train_exactly_like_images_in_memory() {
    let tmp = tempfile::tempdir().unwrap();
    write_image_domains(tmp.path());
    let exp = |load: &str| {
        let yaml = format!(
            "name: img-{load}\ndataset:\n  name: image-folders\n  load: {load}\n  prefetch: 2\n  image: {{size: [6, 6], \
             channels: 3, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25]}}\n  domains:\n    - {{name: S, folder: src}}\n    \
             - {{name: T, folder: tgt}}\ntasks: [S→T]\nmethods:\n  dann: {{trade_off: 0.5}}\nmodel:\n  backbone: {{kind: mlp, \
             hidden: [16]}}\noptim: {{lr: 0.005}}\ntrain: {{iterations: 40, batch_size: 6, eval_interval: 10, \
             eval_batch_size: 7, threads: 1}}\nselection: source_val\nseeds: [3]\n"
        );
        let dir = run_single_trial(tmp.path(), &format!("img-{load}"), &yaml);
        let r = read_json(&dir.join("result.json"));
        let metrics = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
        // Wall-clock fields differ between runs; everything else must not.
        let steps: Vec<String> = metrics
            .lines()
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                if let Some(o) = v.as_object_mut() {
                    o.remove("wall_time");
                    o.remove("seconds");
                }
                v.to_string()
            })
            .collect();
        (r, steps)
    };
    let (mem, mem_steps) = exp("memory");
    let (stream, stream_steps) = exp("stream");
    for key in ["selected", "last"] {
        assert_eq!(mem[key], stream[key], "{key}: {mem} vs {stream}");
    }
    assert_eq!(mem["last"]["step"].as_u64(), Some(40), "{mem}");
    assert_eq!(mem_steps, stream_steps);
}

/// A miniature of the Office-31 layout (`<domain>/images/<class>/frame_NNNN.png`): two domains, two classes,
/// six 40×30 RGB images each; class 0 reddish, class 1 bluish, webcam darker, with per-image noise.
fn write_office31_miniature(root: &Path) {
    use dalab_data::formats::images::{Image, encode_png};
    let mut state = 99u32;
    let mut noise = move || {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
        ((state >> 16) % 48) as i32 - 24
    };
    for (dom, scale) in [("amazon", 1.0), ("webcam", 0.7)] {
        for (k, class) in ["back_pack", "bike"].iter().enumerate() {
            let d = root.join(dom).join("images").join(class);
            std::fs::create_dir_all(&d).unwrap();
            for i in 0..6 {
                let mut data = Vec::with_capacity(40 * 30 * 3);
                for p in 0..(40 * 30) {
                    let (r, b) = if k == 0 { (190, 50) } else { (50, 190) };
                    let stripe = if (p % 40) < 20 { 20 } else { -20 };
                    for base in [r, 100 + stripe, b] {
                        data.push(((f64::from(base + noise()) * scale) as i32).clamp(0, 255) as u8);
                    }
                }
                let img = Image { width: 40, height: 30, channels: 3, data };
                std::fs::write(d.join(format!("frame_{:04}.png", i + 1)), encode_png(&img)).unwrap();
            }
        }
    }
}

/// DANN with the Office-31 preset (TLlib's: 256×256 → random resized crop 224 → flip for training; 256×256 →
/// centre crop 224 for evaluation) on a generated Office-31-layout folder, end to end: the augmented batches are
/// the same whether the images are held in memory or decoded batch by batch, so both runs give the same numbers.
#[test]
fn dann_trains_on_an_office31_layout_with_the_office31_preset() {
    let tmp = tempfile::tempdir().unwrap();
    write_office31_miniature(&tmp.path().join("office31"));
    let run = |load: &str| {
        let yaml = format!(
            "name: o31-{load}\ndataset:\n  name: image-folders\n  load: {load}\n  train_transform: office31\n  \
             eval_transform: office31\n  domains:\n    - {{name: A, folder: office31/amazon/images}}\n    - {{name: W, \
             folder: office31/webcam/images}}\ntasks: [A→W]\nmethods:\n  dann: {{trade_off: 0.3}}\nmodel:\n  backbone: \
             {{kind: mlp, hidden: [8]}}\noptim: {{lr: 0.002}}\ntrain: {{iterations: 12, batch_size: 4, eval_interval: 6, \
             threads: 1}}\nseeds: [1]\n"
        );
        let dir = run_single_trial(tmp.path(), &format!("o31-{load}"), &yaml);
        let config = std::fs::read_to_string(dir.join("config.yaml")).unwrap();
        assert!(
            config.contains("train_transform: office31") && config.contains("eval_transform: office31"),
            "{config}"
        );
        read_json(&dir.join("result.json"))
    };
    let (mem, stream) = (run("memory"), run("stream"));
    assert_eq!(mem["last"]["step"].as_u64(), Some(12), "{mem}");
    for key in ["selected", "last"] {
        assert_eq!(mem[key]["target"], stream[key]["target"], "{key}: {mem} vs {stream}");
        assert_eq!(mem[key]["source"], stream[key]["source"], "{key}: {mem} vs {stream}");
    }
}

/// A TorchScript CNN with BatchNorm (written by crates/dalab-nn/testdata/make_torchscript_cnn.py, no PyTorch
/// needed) as the backbone of DANN on image folders: with `backbone_lr_mult: 0` its conv and BN weights are
/// saved exactly as loaded while its running statistics (updated in training mode) are saved as trained; with the
/// default multiplier the weights move. Both saved models hold every variable of the module.
#[test]
fn a_torchscript_backbone_trains_or_freezes_and_its_batchnorm_statistics_are_saved() {
    let tmp = tempfile::tempdir().unwrap();
    write_image_domains(tmp.path());
    let pt = tiny_torchscript_cnn(tmp.path());
    let run = |mult: f64| {
        let yaml = format!(
            "name: ts{k}\ndataset:\n  name: image-folders\n  image: {{size: [8, 8], channels: 3, mean: [0.5, 0.5, 0.5], \
             std: [0.25, 0.25, 0.25]}}\n  domains:\n    - {{name: S, folder: src}}\n    - {{name: T, folder: tgt}}\n\
             tasks: [S→T]\nmethods:\n  dann: {{trade_off: 0.5}}\nmodel:\n  backbone: {{kind: torchscript, path: {pt}}}\n  \
             backbone_lr_mult: {mult}\noptim: {{lr: 0.05}}\ntrain: {{iterations: 20, batch_size: 6, eval_interval: 10, threads: 1}}\n\
             seeds: [0]\n",
            k = (mult * 10.0) as i64,
            pt = pt.display()
        );
        let dir = run_single_trial(tmp.path(), &format!("ts{}", (mult * 10.0) as i64), &yaml);
        let saved = tch::Tensor::read_safetensors(dir.join("model-last.safetensors")).unwrap();
        saved.into_iter().collect::<std::collections::HashMap<String, tch::Tensor>>()
    };
    let (frozen, trained) = (run(0.0), run(1.0));
    // The values the script writes: conv bias 0.1 o, BN weight 1 + 0.5 o, running mean 0.2 o.
    let v = |m: &std::collections::HashMap<String, tch::Tensor>, k: &str| {
        Vec::<f32>::try_from(m[k].flatten(0, -1)).unwrap()
    };
    let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6);
    let (bias0, gamma0, mean0) = ([0.0, 0.1, 0.2, 0.3], [1.0, 1.5, 2.0, 2.5], [0.0, 0.2, 0.4, 0.6]);
    assert!(close(&v(&frozen, "backbone.conv_b"), &bias0), "{:?}", v(&frozen, "backbone.conv_b"));
    assert!(close(&v(&frozen, "backbone.bn_w"), &gamma0));
    assert!(!close(&v(&frozen, "backbone.bn_mean"), &mean0), "running statistics move in training mode, frozen or not");
    assert!(close(&v(&frozen, "backbone.bn_b"), &[0.0, -0.1, -0.2, -0.3]));
    // Trained: the conv and BN weights move (the conv bias gets no gradient in front of batch norm).
    assert!(!close(&v(&trained, "backbone.conv_w"), &v(&frozen, "backbone.conv_w")));
    assert!(
        !close(&v(&trained, "backbone.bn_w"), &gamma0)
            && !close(&v(&trained, "backbone.bn_b"), &[0.0, -0.1, -0.2, -0.3])
    );
    for m in [&frozen, &trained] {
        for k in ["conv_w", "conv_b", "bn_w", "bn_b", "bn_mean", "bn_var"] {
            assert!(m.contains_key(&format!("backbone.{k}")), "backbone.{k} not saved: {:?}", m.keys());
        }
    }
}

/// experiments/images/office31-dann.yaml (TLlib's DANN protocol, needs a GPU and the images) stays a valid
/// experiment: with a TorchScript file to point at and `device: cpu`, its dry run plans 6 tasks × 3 seeds.
#[test]
fn the_office31_experiment_is_valid() {
    let tmp = tempfile::tempdir().unwrap();
    let pt = tiny_torchscript_cnn(tmp.path());
    let set = format!("model.backbone.path={}", pt.display());
    let out = dalab(
        &["run", "experiments/images/office31-dann.yaml", "--dry-run", "--set", &set, "--set", "device=cpu"],
        &repo(),
    );
    let (so, se) = text(&out);
    assert!(out.status.success(), "{so}\n{se}");
    assert!(so.contains("18 trial(s) of `office31-dann`") && so.contains("dann W→A seed 2"), "{so}");
    let r = dalab_runner::report::load_reference(&repo().join("experiments/images/reference/office31-dann.yaml"));
    assert!(r.is_ok(), "{:?}", r.err());
}

#[test]
fn sparse_inputs_need_flat_features_and_an_mlp() {
    let tmp = tempfile::tempdir().unwrap();
    write_image_domains(tmp.path());
    let yaml = "name: sp\ndataset:\n  name: image-folders\n  image: {size: [28, 28], channels: 1, mean: [0.5], std: [0.5]}\n  \
                domains:\n    - {name: S, folder: src}\n    - {name: T, folder: tgt}\ntasks: [S→T]\nmethods:\n  \
                source-only: {}\nmodel:\n  backbone: {kind: lenet}\ntrain: {iterations: 2, sparse_inputs: true}\n";
    let f = tmp.path().join("sp.yaml");
    std::fs::write(&f, yaml).unwrap();
    let runs = tmp.path().join("runs");
    let out = dalab(
        &["run", f.to_str().unwrap(), "--runs-dir", runs.to_str().unwrap(), "--data-dir", tmp.path().to_str().unwrap()],
        tmp.path(),
    );
    let (so, se) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{so}\n{se}");
    assert!(!se.contains("panicked"), "{se}");
    let all = format!("{so}\n{se}");
    assert!(all.contains("train.sparse_inputs: needs flat feature vectors") && all.contains("lenet"), "{all}");
}

#[test]
fn divergence_over_a_datasets_domains() {
    let Some(data) = shared_data() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (d, out_dir) = (data.to_str().unwrap(), tmp.path().to_str().unwrap());
    let csv_rows = |name: &str| -> Vec<Vec<String>> {
        let csv = std::fs::read_to_string(tmp.path().join(format!("{name}.csv"))).unwrap();
        csv.lines().map(|l| l.split(',').map(str::to_string).collect()).collect()
    };
    // A named dataset with its default protocol (SURF: row-sum normalise, then z-score), two of its domains.
    let out = dalab(
        &[
            "divergence",
            "--dataset",
            "office-caltech10-surf",
            "--domains",
            "D,W",
            "--metrics",
            "mmd,coral",
            "--data-dir",
            d,
            "--out-dir",
            out_dir,
            "--name",
            "named",
        ],
        &repo(),
    );
    let (so, se) = text(&out);
    assert!(out.status.success(), "{so}\n{se}");
    assert!(so.contains("# dataset office-caltech10-surf: each domain's training data after the dataset's preprocessing (normalize: sum-zscore)"), "{so}");
    assert!(se.starts_with("warning: normalize: sum-zscore standardises every feature per domain"), "{se}");
    let rows = csv_rows("named");
    assert_eq!(rows.len(), 3, "header + D→W + W→D: {rows:?}");
    assert_eq!((rows[1][0].as_str(), rows[1][1].as_str(), rows[1][2].as_str()), ("D", "W", "157"));
    // --raw-features: the same files without the per-domain z-score (`sum`), no warning, and a larger shift.
    let out = dalab(
        &[
            "divergence",
            "--dataset",
            "office-caltech10-surf",
            "--domains",
            "D,W",
            "--metrics",
            "mmd,coral",
            "--data-dir",
            d,
            "--out-dir",
            out_dir,
            "--name",
            "raw",
            "--raw-features",
        ],
        &repo(),
    );
    let (so, se) = text(&out);
    assert!(out.status.success() && se.is_empty(), "{so}\n{se}");
    assert!(so.contains("(normalize: sum)"), "{so}");
    let raw = csv_rows("raw");
    let k = raw[0].iter().position(|h| h == "mmd2").unwrap();
    assert_ne!(raw[1][k], rows[1][k], "the features measured differ");

    // The same two domains as a `feature-files` dataset without normalisation must give what the files give
    // directly (features pass through f32 in the dataset: 1e-5 relative).
    let yaml = tmp.path().join("exp.yaml");
    std::fs::write(
        &yaml,
        "name: x\ndataset:\n  name: feature-files\n  domains:\n    - {name: D, path: office_caltech10_surf/dslr_SURF_L10.mat, \
         features: fts, labels: labels}\n    - {name: W, path: office_caltech10_surf/webcam_SURF_L10.mat, features: fts, \
         labels: labels}\n",
    )
    .unwrap();
    let args = |extra: &[&str], name: &str| {
        let mut a = vec!["divergence", "--metrics", "mmd,coral", "--data-dir", d, "--out-dir", out_dir, "--name", name];
        a.extend_from_slice(extra);
        let out = dalab(&a, &repo());
        assert!(out.status.success(), "{:?}", text(&out));
        csv_rows(name)
    };
    let surf = data.join("office_caltech10_surf");
    let (dp, wp) = (
        format!("D={}", surf.join("dslr_SURF_L10.mat").display()),
        format!("W={}", surf.join("webcam_SURF_L10.mat").display()),
    );
    let from_yaml = args(&["--dataset", yaml.to_str().unwrap()], "yaml");
    let from_files = args(&["--domain", &dp, "--domain", &wp, "--key", "fts"], "files");
    assert_eq!(from_yaml.len(), 3);
    let header = &from_yaml[0];
    for col in ["mmd2", "coral"] {
        let k = header.iter().position(|h| h == col).unwrap_or_else(|| panic!("no {col} in {header:?}"));
        for r in 1..3 {
            let (a, b): (f64, f64) = (from_yaml[r][k].parse().unwrap(), from_files[r][k].parse().unwrap());
            assert!((a - b).abs() <= 1e-5 * b.abs(), "{col} row {r}: {a} vs {b}");
        }
    }
    // Errors name the problem.
    let out =
        dalab(&["divergence", "--dataset", "office-caltech10-surf", "--domains", "D,X", "--data-dir", d], &repo());
    let (_, se) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{se}");
    assert!(se.contains("no domain `X`") && se.contains("A, C, D, W"), "{se}");
    let out = dalab(&["divergence", "--dataset", "office-31", "--data-dir", d], &repo());
    assert!(text(&out).1.contains("unknown dataset `office-31`"), "{:?}", text(&out));
}

/// The closed-form methods through `dalab run` and `dalab report`: fitted without the trainer (one evaluation,
/// `steps: 0`, `selection: last`, no oracle), and on the real SURF files they give the published numbers
/// exactly: 1-NN A→W 29.83 % (JDA Table 2, 88 of 295 webcam images) and the CORAL paper's NA D→W 52.5 % (RBF SVM,
/// 155 of 295); the reference rows print their difference.
#[test]
fn closed_form_methods_reproduce_published_cells() {
    let Some(data) = shared_data() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let exp = tmp.path().join("e.yaml");
    std::fs::write(
        &exp,
        "name: closed\ndataset: {name: office-caltech10-surf, protocol: full, normalize: sum-zscore}\n\
         tasks: [A→W, D→W]\nmethods:\n  1nn: {}\n  svm: {kernel: rbf, c_grid: [0.001, 0.01, 0.1, 1, 10, 100]}\n",
    )
    .unwrap();
    let runs = tmp.path().join("runs");
    let (e, r, d) = (exp.to_str().unwrap(), runs.to_str().unwrap(), data.to_str().unwrap());
    let out = dalab(&["run", e, "--runs-dir", r, "--data-dir", d, "--jobs", "2"], tmp.path());
    let (so, se) = text(&out);
    assert!(out.status.success(), "{so}\n{se}");
    let mut hits = std::collections::BTreeMap::new();
    for dir in trial_dirs(&runs.join("closed")) {
        let res = read_json(&dir.join("result.json"));
        assert_eq!(res["steps"], 0);
        assert_eq!(res["selection"], "last");
        assert_eq!(res["oracle"], false);
        let key = format!("{} {}→{}", res["method"].as_str().unwrap(), res["source"].as_str().unwrap(), "W");
        hits.insert(key, (res["selected"]["target"].as_f64().unwrap() * 295.0).round() as i64);
    }
    assert_eq!(hits["1nn A→W"], 88, "{hits:?}");
    assert_eq!(hits["svm D→W"], 155, "{hits:?}");
    let reference = tmp.path().join("ref.yaml");
    std::fs::write(&reference, "tolerance: 1.5\nrows:\n  - {name: P, compare_to: svm, values: {D→W: 52.5}}\n").unwrap();
    let out =
        dalab(&["report", e, "--runs-dir", r, "--reference", reference.to_str().unwrap(), "--no-plots"], tmp.path());
    let (so, se) = text(&out);
    assert!(out.status.success(), "{so}\n{se}");
    assert!(so.contains("| Δ svm − P | – | +0.0 |"), "{so}");
}

/// Checkpointed trials of a single-loss (source-only), an adversarial single-loss with dropout (dann: the
/// generator's state matters), a multi-step (mcd) and a two-stage (adda) method.
const CKPT: &str = "name: ckpt
dataset: {name: moons}
tasks: [moons→moons-rotated]
methods:
  source-only: {}
  dann: {discriminator: {hidden: [16], dropout: 0.5}}
  mcd: {num_k: 2}
  adda: {source_iterations: 600, discriminator: {hidden: [16], dropout: 0.0}}
model: {backbone: {kind: mlp, hidden: [15], activation: relu}}
optim: {lr: 0.05, momentum: 0.9}
train: {iterations: 1500, batch_size: 32, eval_interval: 100, log_interval: 10, threads: 1, checkpoint_interval: 50}
selection: source_val
seeds: [0]
";

/// The checkpoint step of every unfinished trial of an experiment folder.
fn checkpoints(exp_dir: &Path) -> Vec<(String, u64)> {
    if !exp_dir.is_dir() {
        return Vec::new();
    }
    trial_dirs(exp_dir)
        .into_iter()
        .filter(|d| !d.join("result.json").exists())
        .filter_map(|d| {
            let c: serde_json::Value = serde_json::from_slice(&std::fs::read(d.join("checkpoint.json")).ok()?).ok()?;
            Some((d.file_name().unwrap().to_string_lossy().into_owned(), c["step"].as_u64()?))
        })
        .collect()
}

/// Runs `dalab run <yaml>` in `dir` repeatedly, SIGKILLing the runner once inside each trial as soon as its
/// checkpoint is at a step ≥ `min_step(trial id)`, until no trial is left to kill; returns the (trial, step) pairs
/// killed at.
fn kill_once_inside_each_trial(
    dir: &Path,
    yaml: &str,
    exp_dir: &Path,
    min_step: &dyn Fn(&str) -> u64,
) -> Vec<(String, u64)> {
    let mut killed: Vec<(String, u64)> = Vec::new();
    for _ in 0..8 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_dalab"))
            .args(["run", yaml, "--runs-dir", "runs"])
            .current_dir(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let target = loop {
            if child.try_wait().unwrap().is_some() {
                break None;
            }
            let hit = checkpoints(exp_dir)
                .into_iter()
                .find(|(id, step)| *step >= min_step(id) && !killed.iter().any(|(k, _)| k == id));
            if hit.is_some() {
                break hit;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        let Some(t) = target else { break };
        child.kill().unwrap();
        child.wait().unwrap();
        killed.push(t);
        std::thread::sleep(std::time::Duration::from_millis(300)); // the trial process dies with its runner
    }
    killed
}

#[test]
fn killed_trials_continue_from_their_checkpoints_bit_for_bit_and_saved_models_score_alike() {
    let a = tempfile::tempdir().unwrap();
    std::fs::write(a.path().join("ckpt.yaml"), CKPT).unwrap();
    let out = dalab(&["run", "ckpt.yaml", "--runs-dir", "runs"], a.path());
    assert!(out.status.success(), "{:?}", text(&out));
    let exp_a = a.path().join("runs/ckpt");
    let want = snapshot(&exp_a);
    assert_eq!(want.len(), 4);

    // SIGKILL the runner once inside each trial, after its checkpoint at step >= 200 (the adda kill lands in its
    // adaptation stage: its checkpoint is past the 600 source steps), then let the run finish.
    let b = tempfile::tempdir().unwrap();
    std::fs::write(b.path().join("ckpt.yaml"), CKPT).unwrap();
    let exp_b = b.path().join("runs/ckpt");
    let killed = kill_once_inside_each_trial(b.path(), "ckpt.yaml", &exp_b, &|id| {
        if id.starts_with("adda") { 700 } else { 200 }
    });
    let out = dalab(&["run", "ckpt.yaml", "--runs-dir", "runs"], b.path());
    assert!(out.status.success(), "{:?}", text(&out));
    for m in ["source-only", "dann", "mcd", "adda"] {
        assert!(killed.iter().any(|(id, _)| id.starts_with(m)), "no kill landed in the {m} trial: {killed:?}");
    }
    assert_eq!(snapshot(&exp_b), want, "resumed trials: same results.json numbers and metrics.jsonl, bit for bit");
    for d in trial_dirs(&exp_b) {
        let names: Vec<String> =
            std::fs::read_dir(&d).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        let events = names.iter().filter(|n| n.starts_with("events.out.tfevents")).count();
        assert!(events >= 2, "{}: a resumed trial writes a second event file ({names:?})", d.display());
        assert!(!names.iter().any(|n| n.starts_with("checkpoint")), "checkpoints removed when done: {names:?}");
        for f in ["model.safetensors", "model-last.safetensors", "model.json"] {
            assert!(names.contains(&f.to_string()), "{f} missing in {}", d.display());
        }
    }

    // `dalab eval` on the target scores the saved (selected) model exactly as result.json does; `--model last`
    // the last one.
    for d in trial_dirs(&exp_a) {
        let r = read_json(&d.join("result.json"));
        for (which, key) in [("selected", "selected"), ("last", "last")] {
            let out = dalab(&["eval", d.to_str().unwrap(), "--domain", "moons-rotated", "--model", which], a.path());
            let (so, se) = text(&out);
            assert!(out.status.success(), "{se}");
            let frac = so.split(['(', ')']).nth(1).unwrap();
            let (c, n) = frac.split_once('/').unwrap();
            let acc = c.parse::<f64>().unwrap() / n.parse::<f64>().unwrap();
            assert_eq!(acc, r[key]["target"].as_f64().unwrap(), "{}: {so}", d.display());
        }
    }

    // `dalab predict`: a CSV per sample; its predictions give the same accuracy; probabilities sum to 1.
    let so_dir = trial_dirs(&exp_a)
        .into_iter()
        .find(|d| d.file_name().unwrap().to_string_lossy().starts_with("source-only"))
        .unwrap();
    let csv = a.path().join("preds.csv");
    let out = dalab(
        &["predict", so_dir.to_str().unwrap(), "--domain", "moons-rotated", "--out", csv.to_str().unwrap()],
        a.path(),
    );
    assert!(out.status.success(), "{:?}", text(&out));
    let text_csv = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text_csv.lines();
    assert_eq!(lines.next().unwrap(), "index,label,prediction,p0,p1");
    let rows: Vec<Vec<f64>> = lines.map(|l| l.split(',').map(|v| v.parse().unwrap()).collect()).collect();
    let correct = rows.iter().filter(|r| r[1] == r[2]).count() as f64 / rows.len() as f64;
    assert_eq!(correct, read_json(&so_dir.join("result.json"))["selected"]["target"].as_f64().unwrap());
    assert!(rows.iter().all(|r| (r[3] + r[4] - 1.0).abs() < 2e-6 && (r[2] as usize) == usize::from(r[4] > r[3])));

    // The saved model in Python: safetensors + the architecture of config.yaml (docs/configuration.md gives the
    // names): an MLP backbone `backbone.fc{i}` (ReLU here) and the linear `method.classifier`. Its softmax on a
    // feature file equals `dalab predict --features`.
    let feats = a.path().join("points.csv");
    std::fs::write(&feats, "0.5,0.25\n-1.0,0.75\n2.0,-0.5\n").unwrap();
    let out = dalab(&["predict", so_dir.to_str().unwrap(), "--features", feats.to_str().unwrap()], a.path());
    let (so, se) = text(&out);
    assert!(out.status.success(), "{se}");
    let ours: Vec<Vec<f64>> =
        so.lines().skip(1).map(|l| l.split(',').skip(2).map(|v| v.parse().unwrap()).collect()).collect();
    let script = r#"
import json, sys
import numpy as np
from safetensors.numpy import load_file
w = load_file(sys.argv[1])
x = np.loadtxt(sys.argv[2], delimiter=",", dtype=np.float32)
h = np.maximum(x @ w["backbone.fc0.weight"].T + w["backbone.fc0.bias"], 0)
z = h @ w["method.classifier.weight"].T + w["method.classifier.bias"]
p = np.exp(z - z.max(1, keepdims=True)); p /= p.sum(1, keepdims=True)
print(json.dumps(p.tolist()))
"#;
    let pythonpath = std::env::var_os("DALAB_TENSORBOARD_PYTHONPATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".libtorch/pylib"));
    let model = so_dir.join("model.safetensors");
    let out = Command::new("python3")
        .args(["-c", script, model.to_str().unwrap(), feats.to_str().unwrap()])
        .env("PYTHONPATH", &pythonpath)
        .output()
        .expect("python3 runs");
    let (py, se) = text(&out);
    assert!(out.status.success(), "safetensors (run `cargo xtask setup --tensorboard`): {se}");
    let theirs: Vec<Vec<f64>> = serde_json::from_str(py.trim()).unwrap();
    assert_eq!(ours.len(), 3);
    for (a, b) in ours.iter().zip(&theirs) {
        for (u, v) in a.iter().zip(b) {
            assert!((u - v).abs() < 1e-5, "{ours:?} vs {theirs:?}");
        }
    }
}

/// `optim.groups.<g>` reaches only the trials of methods that have group `g`: the others keep their ids.
#[test]
fn group_optimizers_do_not_change_other_methods_trials() {
    let tmp = tempfile::tempdir().unwrap();
    let base = "name: g\ntasks: [moons→moons-rotated]\nmethods: {source-only: {}, adda: {}}\noptim: {lr: 0.01}\n";
    let with = base.replace("optim: {lr: 0.01}", "optim: {lr: 0.01, groups: {discriminator: {lr: 0.0002}}}");
    let ids = |yaml: &str| {
        std::fs::write(tmp.path().join("g.yaml"), yaml).unwrap();
        let out = dalab(&["run", "g.yaml", "--dry-run"], tmp.path());
        assert!(out.status.success(), "{:?}", text(&out));
        text(&out).0.lines().skip(1).map(|l| l.split_whitespace().next().unwrap().to_string()).collect::<Vec<_>>()
    };
    let (a, b) = (ids(base), ids(&with));
    assert_eq!(a[0], b[0], "source-only's trial is unchanged");
    assert!(a[0].starts_with("source-only") && b[1].starts_with("adda"));
    assert_ne!(a[1], b[1], "adda's trial has the group optimizer");
}

/// A row of `bad_configs/expected.tsv`.
struct Case {
    file: String,
    fragment: String,
    /// `line:col`, or empty where the error has no position (checks after parsing).
    pos: String,
}

/// The corpus of malformed experiment files (`crates/dalab-runner/tests/bad_configs/`, table `expected.tsv`):
/// each one is refused by `dalab run` with exit code 2 and one line naming the key path (and `file:line:col`
/// where the parser gives a position), without a panic and before anything is written under the runs directory.
#[test]
fn bad_config_corpus_fails_with_one_line_naming_the_key() {
    let dir = repo().join("crates/dalab-runner/tests/bad_configs");
    let table = std::fs::read_to_string(dir.join("expected.tsv")).unwrap();
    let cases: Vec<Case> = table
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert!(f.len() == 3 && !f[1].is_empty(), "expected.tsv: `file<TAB>fragment<TAB>line:col`, got {l:?}");
            Case { file: f[0].to_string(), fragment: f[1].to_string(), pos: f[2].to_string() }
        })
        .collect();
    assert!(cases.len() >= 40, "the corpus has {} files", cases.len());
    // Every experiment file of the folder is in the table (bases of `extends` are `*.base.yml`).
    for e in std::fs::read_dir(&dir).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".yaml") {
            assert!(cases.iter().any(|c| c.file == name), "{name} is not in expected.tsv");
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let check = |(i, Case { file, fragment, pos }): (usize, &Case)| -> Option<String> {
        let runs = tmp.path().join(format!("runs{i}"));
        let out = dalab(&["run", file, "--runs-dir", runs.to_str().unwrap()], &dir);
        let (so, se) = text(&out);
        let fail = |why: &str| Some(format!("{file}: {why}\n  stdout: {so}\n  stderr: {se}"));
        if se.contains("panicked") || se.contains("RUST_BACKTRACE") {
            return fail("panicked");
        }
        if out.status.code() != Some(2) {
            return fail(&format!("exit code {:?}, want 2", out.status.code()));
        }
        if se.trim_end().lines().count() != 1 || !so.is_empty() {
            return fail("want one line on stderr and nothing on stdout");
        }
        if !se.contains(fragment.as_str()) {
            return fail(&format!("`{fragment}` not in the message"));
        }
        if !pos.is_empty() && !se.contains(&format!("{file}:{pos}: ")) {
            return fail(&format!("position `{file}:{pos}:` not in the message"));
        }
        if runs.exists() {
            return fail("something was written under the runs directory");
        }
        None
    };
    // A few processes at a time (each loads libtorch).
    let failures: Vec<String> = std::thread::scope(|s| {
        let chunks: Vec<Vec<(usize, &Case)>> =
            (0..4).map(|k| cases.iter().enumerate().filter(|(i, _)| i % 4 == k).collect()).collect();
        let handles: Vec<_> =
            chunks.into_iter().map(|c| s.spawn(move || c.into_iter().filter_map(check).collect::<Vec<_>>())).collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    assert!(failures.is_empty(), "{} of {} corpus files:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

/// Every method's default config serializes exactly as before the tagged enums became strict (the output of
/// `dalab show-config` at that commit, `show-config-defaults.txt`), so trial ids — hashes of the resolved
/// config — stay; two ids of that commit are checked too (a constant λ schedule and lr schedule, a median
/// bandwidth: the variants that changed form in Rust).
#[test]
fn default_configs_and_trial_ids_are_unchanged() {
    let out = dalab(&["methods"], &repo());
    let mut all = String::new();
    for m in text(&out).0.lines().filter_map(|l| l.split_whitespace().next()) {
        let out = dalab(&["show-config", m], &repo());
        assert!(out.status.success(), "{m}: {:?}", text(&out));
        all.push_str(&text(&out).0);
    }
    let want =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/show-config-defaults.txt")).unwrap();
    assert!(all == want, "show-config output changed (trial ids would change):\n{all}");
    let tmp = tempfile::tempdir().unwrap();
    let head = "name: t\ntasks: [moons→moons-rotated]\n";
    for (yaml, id) in [
        (
            format!("{head}methods:\n  dann:\n    lambda_schedule: {{kind: constant}}\n"),
            "dann_moons-moons-rotated_s0_1e3fd407",
        ),
        (
            format!("{head}methods:\n  dan:\n    mmd:\n      kernel:\n        bandwidth:\n          kind: median\n"),
            "dan_moons-moons-rotated_s0_a8ddb38d",
        ),
    ] {
        std::fs::write(tmp.path().join("e.yaml"), &yaml).unwrap();
        let out = dalab(&["run", "e.yaml", "--dry-run"], tmp.path());
        let (so, se) = text(&out);
        assert!(out.status.success(), "{se}");
        assert_eq!(so.lines().nth(1).and_then(|l| l.split_whitespace().next()), Some(id), "{yaml}");
    }
}

/// A closed stdout (`dalab run EXP.yaml --dry-run | head -1`) ends dalab quietly: no panic, no message; the
/// status is 0 or the default action of SIGPIPE, as for any Unix tool.
#[test]
fn a_closed_stdout_ends_dalab_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let sweep = repo().join("experiments/quickstart-sweep.yaml");
    for args in [vec!["run", sweep.to_str().unwrap(), "--dry-run"], vec!["methods"], vec!["show-config", "dann"]] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_dalab"))
            .args(&args)
            .current_dir(repo())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take()); // closed before dalab prints its first line
        let out = child.wait_with_output().unwrap();
        let se = String::from_utf8_lossy(&out.stderr);
        assert!(se.is_empty(), "{args:?}: {se}");
        assert!(out.status.success() || out.status.signal() == Some(libc::SIGPIPE), "{args:?}: {:?}", out.status);
    }
}

/// `key: null` (or `~`) in a file that extends another removes the inherited key: here a method.
#[test]
fn extends_null_removes_an_inherited_method() {
    let tmp = tempfile::tempdir().unwrap();
    let base = "name: b\ntasks: [moons→moons-rotated]\nmethods:\n  coral: {}\n  dann: {trade_off: 2}\n";
    std::fs::write(tmp.path().join("base.yaml"), base).unwrap();
    let listed = |child: &str| {
        std::fs::write(tmp.path().join("child.yaml"), child).unwrap();
        let out = dalab(&["run", "child.yaml", "--dry-run"], tmp.path());
        let (so, se) = text(&out);
        assert!(out.status.success(), "{se}");
        so.lines().skip(1).map(|l| l.split_whitespace().nth(1).unwrap().to_string()).collect::<Vec<_>>()
    };
    assert_eq!(listed("extends: base.yaml\nname: c\n"), ["coral", "dann"]);
    assert_eq!(listed("extends: base.yaml\nname: c\nmethods:\n  coral: null\n"), ["dann"]);
    assert_eq!(listed("extends: base.yaml\nname: c\nmethods: {coral: ~, dann: {trade_off: null}}\n"), ["dann"]);
}

/// Every listed validator is scored at every evaluation into metrics.jsonl and result.json (`evaluations`, the same
/// records); `selection: dev` saves the evaluation with the highest DEV score as `model.safetensors`; the saved
/// model's target predictions give the selected evaluation's entropy and IM score again (recomputed here from
/// `dalab predict`'s probabilities, printed to 6 decimals); validators absent from the list are not scored.
#[test]
fn validators_are_scored_at_every_evaluation_and_select_the_model() {
    let tmp = tempfile::tempdir().unwrap();
    let all = ["source_val", "entropy", "im", "bnm", "snd", "iwcv", "dev", "reverse"];
    let yaml = format!(
        "name: val
dataset: {{name: moons}}
tasks: [moons→moons-rotated]
methods: {{dann: {{}}}}
model: {{backbone: {{kind: mlp, hidden: [15], activation: sigmoid}}}}
optim: {{lr: 0.05}}
schedule: {{kind: constant}}
train: {{iterations: 300, batch_size: 32, eval_interval: 50, threads: 1, validators: [{}]}}
selection: dev
",
        all.join(", ")
    );
    std::fs::write(tmp.path().join("val.yaml"), yaml).unwrap();
    let out = dalab(&["run", "val.yaml", "--runs-dir", "runs"], tmp.path());
    let (so, se) = text(&out);
    assert!(out.status.success(), "{se}");
    assert!(so.contains("model selection: dev."), "{so}");
    let d = trial_dirs(&tmp.path().join("runs/val")).remove(0);
    let r = read_json(&d.join("result.json"));
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(d.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let evals = r["evaluations"].as_array().unwrap();
    assert_eq!(evals, &lines);
    assert_eq!(evals.iter().map(|e| e["step"].as_u64().unwrap()).collect::<Vec<_>>(), [50, 100, 150, 200, 250, 300]);
    for e in evals {
        let names: Vec<&str> = e["validators"].as_object().unwrap().keys().map(String::as_str).collect();
        let mut want = all.to_vec();
        want.sort();
        assert_eq!(names, want, "{e}");
        assert_eq!(e["validators"]["source_val"], e["source_val"], "source_val is the held-out accuracy");
    }
    let dev = |e: &serde_json::Value| e["validators"]["dev"].as_f64().unwrap();
    let best = evals.iter().fold(&evals[0], |b, e| if dev(e) > dev(b) { e } else { b });
    assert_eq!(&r["selected"], best);
    assert_eq!(r["selection"], "dev");
    assert_eq!(r["oracle"], false);

    let out = dalab(&["predict", d.to_str().unwrap(), "--domain", "moons-rotated"], tmp.path());
    let (csv, se) = text(&out);
    assert!(out.status.success(), "{se}");
    let p: Vec<[f64; 2]> = csv
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<f64> = l.split(',').map(|v| v.parse().unwrap()).collect();
            [f[3], f[4]]
        })
        .collect();
    let h = |q: &[f64; 2]| -q.iter().filter(|&&v| v > 0.0).map(|&v| v * v.ln()).sum::<f64>();
    let n = p.len() as f64;
    let neg_entropy = -p.iter().map(h).sum::<f64>() / n;
    let mean = [p.iter().map(|q| q[0]).sum::<f64>() / n, p.iter().map(|q| q[1]).sum::<f64>() / n];
    let im = h(&mean) + neg_entropy;
    let got = |k: &str| best["validators"][k].as_f64().unwrap();
    assert!((neg_entropy - got("entropy")).abs() < 1e-4, "{neg_entropy} vs {}", got("entropy"));
    assert!((im - got("im")).abs() < 1e-4, "{im} vs {}", got("im"));

    // The report's selection table and --select-by read these scores; a bad validator name is a usage error.
    let out = dalab(&["report", "val.yaml", "--runs-dir", "runs", "--no-plots", "--selection"], tmp.path());
    assert!(out.status.success(), "{:?}", text(&out));
    let sel = std::fs::read_to_string(d.parent().unwrap().join("selection.md")).unwrap();
    assert!(sel.contains("| `dev` | ") && sel.contains("| target_oracle (ORACLE: uses target labels) | "), "{sel}");
    let out = dalab(&["report", "val.yaml", "--runs-dir", "runs", "--no-plots", "--select-by", "snd"], tmp.path());
    assert!(text(&out).0.contains("sweep point chosen per task and seed by snd"), "{:?}", text(&out));
    let out = dalab(&["report", "val.yaml", "--runs-dir", "runs", "--no-plots", "--divergences"], tmp.path());
    let (so, se) = text(&out);
    assert!(out.status.success(), "{se}");
    assert!(so.contains("**Shift of each task**") && so.contains("| moons→moons-rotated | as the trials | "), "{so}");
    // The DANN paper's Figure 2 for a trial on 2-d inputs: a 1400 × 640 PNG linked from the report.
    let out = dalab(&["report", "val.yaml", "--runs-dir", "runs", "--no-plots", "--boundaries"], tmp.path());
    let (so, se) = text(&out);
    assert!(out.status.success(), "{se}");
    let id = d.file_name().unwrap().to_string_lossy().to_string();
    assert!(so.contains(&format!("decision regions and feature PCA](plots/boundary-{id}.png)")), "{so}");
    let png = std::fs::read(d.parent().unwrap().join(format!("plots/boundary-{id}.png"))).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let be = |i: usize| u32::from_be_bytes(png[i..i + 4].try_into().unwrap());
    assert_eq!((be(16), be(20)), (1400, 640), "IHDR width and height");
    let out = dalab(&["report", "val.yaml", "--runs-dir", "runs", "--select-by", "sdn"], tmp.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.starts_with("error: --select-by: unknown validator `sdn`; known validators: source_val,"));

    // The default list: the four target-only validators, no source-val split.
    let yaml = "name: def\ndataset: {name: moons}\ntasks: [moons→moons-rotated]\nmethods: {source-only: {}}\n\
                train: {iterations: 20, eval_interval: 10, threads: 1}\n";
    std::fs::write(tmp.path().join("def.yaml"), yaml).unwrap();
    assert!(dalab(&["run", "def.yaml", "--runs-dir", "runs"], tmp.path()).status.success());
    let r = read_json(&trial_dirs(&tmp.path().join("runs/def")).remove(0).join("result.json"));
    let names: Vec<&String> = r["last"]["validators"].as_object().unwrap().keys().collect();
    assert_eq!(names, ["bnm", "entropy", "im", "snd"]);
    assert!(r["last"].get("source_val").is_none());
}

/// `target-only` under `setting: supervised`: trained on every labelled target sample (recorded in
/// result.json), refused without target labels, and labelled as such in the report's caption.
#[test]
fn target_only_is_a_labelled_upper_bound() {
    let tmp = tempfile::tempdir().unwrap();
    let yaml = "name: upper
dataset: {name: moons}
tasks: [moons→moons-rotated]
methods: {target-only: {}}
model: {backbone: {kind: mlp, hidden: [15], activation: sigmoid}}
optim: {lr: 0.05}
schedule: {kind: constant}
train: {iterations: 300, batch_size: 32, eval_interval: 100, threads: 1}
setting: supervised
";
    std::fs::write(tmp.path().join("upper.yaml"), yaml).unwrap();
    let out = dalab(&["run", "upper.yaml", "--runs-dir", "runs"], tmp.path());
    let (so, se) = text(&out);
    assert!(out.status.success(), "{se}");
    assert!(
        so.contains(
            "Trained with target labels (`setting:` supervised or semi-supervised; not unsupervised DA): target-only."
        ),
        "{so}"
    );
    let r = read_json(&trial_dirs(&tmp.path().join("runs/upper")).remove(0).join("result.json"));
    assert_eq!(r["labelled_target"].as_array().unwrap().len(), 300, "every target sample labelled");
    assert!(r["last"]["target"].as_f64().unwrap() > 0.9, "trained on the target's own labels: {r}");
    std::fs::write(tmp.path().join("bad.yaml"), yaml.replace("setting: supervised\n", "")).unwrap();
    let out = dalab(&["run", "bad.yaml", "--runs-dir", "runs"], tmp.path());
    assert_eq!(out.status.code(), Some(2), "{:?}", text(&out));
    assert!(text(&out).1.contains("target-only"), "{:?}", text(&out));
}

/// A second runner on an experiment whose trial another runner holds: it runs the others, says once that it waits,
/// and when the lock is released (here the other runner stops without finishing) runs that trial itself and exits
/// 0 with every result present.
#[test]
fn a_second_runner_waits_for_trials_running_elsewhere() {
    let tmp = tempfile::tempdir().unwrap();
    let yaml = "name: two\ndataset: {name: moons}\ntasks: [moons→moons-rotated]\nmethods: {source-only: {}, dann: {}}\n\
                train: {iterations: 50, eval_interval: 25, threads: 1}\n";
    std::fs::write(tmp.path().join("two.yaml"), yaml).unwrap();
    let out = dalab(&["run", "two.yaml", "--runs-dir", "runs", "--dry-run"], tmp.path());
    let listed = text(&out).0;
    let id = |m: &str| {
        listed.lines().find(|l| l.starts_with(m)).and_then(|l| l.split_whitespace().next()).unwrap().to_string()
    };
    let (so_id, dann_id) = (id("source-only_"), id("dann_"));
    let exp_dir = tmp.path().join("runs/two");
    let lock = dalab_runner::store::try_lock(&exp_dir, &dann_id).unwrap().expect("the lock is free");
    let mut child = Command::new(env!("CARGO_BIN_EXE_dalab"))
        .args(["run", "two.yaml", "--runs-dir", "runs"])
        .current_dir(tmp.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Read the runner's progress lines (stderr) as they come; release the lock once it has said that it waits.
    let stdout = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut so = String::new();
    let t0 = std::time::Instant::now();
    while !so.contains("waiting for them") {
        assert!(t0.elapsed().as_secs() < 120, "the runner did not say that it waits:\n{so}");
        if let Ok(l) = rx.recv_timeout(std::time::Duration::from_millis(200)) {
            so.push_str(&l);
            so.push('\n');
        }
    }
    assert!(exp_dir.join(&so_id).join("result.json").exists(), "the free trial ran first:\n{so}");
    assert!(!exp_dir.join(&dann_id).join("result.json").exists(), "the held trial was not run meanwhile");
    assert!(so.contains("1 trial(s) are being run by another runner: waiting for them"), "{so}");
    drop(lock);
    let status = child.wait().unwrap();
    reader.join().unwrap();
    so.extend(rx.try_iter().map(|l| l + "\n"));
    assert!(status.success(), "{so}");
    assert!(exp_dir.join(&dann_id).join("result.json").exists());
}

/// A missing experiment file is one line that says so once (its cause is not repeated).
#[test]
fn a_missing_experiment_file_is_reported_once() {
    let tmp = tempfile::tempdir().unwrap();
    let out = dalab(&["run", "nope.yaml"], tmp.path());
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(text(&out).1, "error: nope.yaml: No such file or directory (os error 2)\n");
}

/// Hydra-style overrides after the file: `key=value`, `~key` (delete) and `sweep.<key>=[...]` (a sweep axis), with
/// the same trials as the equivalent file.
#[test]
fn hydra_style_overrides_set_delete_and_sweep() {
    let tmp = tempfile::tempdir().unwrap();
    let base = "name: h\ndataset: {name: moons}\ntasks: [moons→moons-rotated]\nmethods: {source-only: {}, dann: {}}\n";
    std::fs::write(tmp.path().join("h.yaml"), base).unwrap();
    let equivalent = "name: h\ndataset: {name: moons}\ntasks: [moons→moons-rotated]\nmethods: {dann: {}}\n\
                      train: {iterations: 20}\nsweep:\n  methods.dann.trade_off: [0.5, 2]\n";
    std::fs::write(tmp.path().join("e.yaml"), equivalent).unwrap();
    let ids = |args: &[&str]| {
        let out = dalab(args, tmp.path());
        assert!(out.status.success(), "{:?}", text(&out));
        text(&out).0.lines().skip(1).map(|l| l.split_whitespace().next().unwrap().to_string()).collect::<Vec<_>>()
    };
    let a = ids(&[
        "run",
        "h.yaml",
        "--dry-run",
        "~methods.source-only",
        "train.iterations=20",
        "sweep.methods.dann.trade_off=[0.5, 2]",
    ]);
    assert_eq!(a.len(), 2);
    assert_eq!(a, ids(&["run", "e.yaml", "--dry-run"]));
    let out = dalab(&["run", "h.yaml", "--dry-run", "~methods.dan"], tmp.path());
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(text(&out).1, "error: ~methods.dan: no key `methods.dan` in the experiment to delete\n");
}

/// Three small labelled CSV domains `a`, `b`, `c` (2-d, two classes, 80 samples each, each shifted a little
/// further), written into `dir`.
fn write_three_domains(dir: &Path) {
    let mut state = 12345u64;
    let mut noise = move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((state >> 33) as f64 / (1u64 << 31) as f64) - 0.5
    };
    for (k, name) in ["a", "b", "c"].iter().enumerate() {
        let mut body = String::from("x1,x2,label\n");
        for i in 0..80 {
            let y = i % 2;
            let c = if y == 0 { -1.0 } else { 1.0 };
            let shift = 0.4 * k as f64;
            body.push_str(&format!("{:.4},{:.4},{y}\n", c + shift + noise(), c * 0.5 - shift + noise()));
        }
        std::fs::write(dir.join(format!("{name}.csv")), body).unwrap();
    }
}

const MULTI: &str = "name: multi
dataset:
  name: feature-files
  domains: [{name: a, path: DIR/a.csv}, {name: b, path: DIR/b.csv}, {name: c, path: DIR/c.csv}]
tasks: [a+b→c]
setting: supervised
methods:
  source-only: {}
  target-only: {}
  mtl: {weighting: gradnorm}
  progressive: {task_iterations: 300}
model: {backbone: {kind: mlp, hidden: [8], activation: relu}}
optim: {lr: 0.05, momentum: 0.9}
train: {iterations: 300, batch_size: 16, eval_interval: 100, log_interval: 10, threads: 1, checkpoint_interval: 50}
seeds: [0]
";

/// A multi-source task `a+b→c`: source-only learns the pooled sources, the multi-task methods learn each domain
/// with its own output (scored per domain), the per-task report shows every domain after each stage, and MTL
/// and progressive trials killed inside resume bit for bit (their per-domain batch streams included).
#[test]
fn multi_source_tasks_train_multi_task_methods_and_resume_bit_for_bit() {
    let a = tempfile::tempdir().unwrap();
    write_three_domains(a.path());
    std::fs::write(a.path().join("multi.yaml"), MULTI.replace("DIR", a.path().to_str().unwrap())).unwrap();
    let out = dalab(&["run", "multi.yaml", "--runs-dir", "runs"], a.path());
    let (so, se) = text(&out);
    assert!(out.status.success(), "{so}\n{se}");
    let exp_a = a.path().join("runs/multi");
    let want = snapshot(&exp_a);
    assert_eq!(want.len(), 4);
    let result = |m: &str| {
        let d = trial_dirs(&exp_a).into_iter().find(|d| d.file_name().unwrap().to_string_lossy().starts_with(m));
        read_json(&d.unwrap().join("result.json"))
    };
    let (so_r, mtl, prog) = (result("source-only"), result("mtl"), result("progressive"));
    // Pooled sources: one model, each domain's accuracy recorded too.
    let dom = &so_r["last"]["source_domains"];
    assert!(dom["a"].is_f64() && dom["b"].is_f64(), "{so_r}");
    let pooled = so_r["last"]["source"].as_f64().unwrap();
    assert!((pooled - (dom["a"].as_f64().unwrap() + dom["b"].as_f64().unwrap()) / 2.0).abs() < 1e-12);
    assert!(mtl["last"]["source_domains"]["a"].as_f64().unwrap() > 0.8, "{mtl}");
    let stages: Vec<&str> =
        prog["evaluations"].as_array().unwrap().iter().map(|e| e["stage"].as_str().unwrap()).collect();
    assert_eq!(stages.first(), Some(&"task1"));
    assert_eq!(stages.last(), Some(&"task3"));
    assert_eq!(prog["steps"], 900);
    // The progressive network's task-a accuracy at the end of its stage is its accuracy at the end: no forgetting.
    let evals = prog["evaluations"].as_array().unwrap();
    let end1 = evals.iter().rfind(|e| e["stage"] == "task1").unwrap();
    assert_eq!(end1["source_domains"]["a"], prog["last"]["source_domains"]["a"]);

    let out =
        dalab(&["report", "multi.yaml", "--runs-dir", "runs", "--per-task", "--baseline", "target-only"], a.path());
    let (so, se) = text(&out);
    assert!(out.status.success(), "{se}");
    assert!(so.contains("| method | after stage | a | b | c (target) | forgetting |"), "{so}");
    assert!(so.contains("| progressive | task3 (c (target)) |") && so.contains("| 0.0 |"), "{so}");
    assert!(so.contains("Gain = the row − target-only"), "{so}");

    let b = tempfile::tempdir().unwrap();
    write_three_domains(b.path());
    std::fs::write(b.path().join("multi.yaml"), MULTI.replace("DIR", b.path().to_str().unwrap())).unwrap();
    let exp_b = b.path().join("runs/multi");
    let min = |id: &str| if id.starts_with("progressive") { 350 } else { 100 };
    let killed = kill_once_inside_each_trial(b.path(), "multi.yaml", &exp_b, &min);
    for m in ["mtl", "progressive"] {
        assert!(killed.iter().any(|(id, _)| id.starts_with(m)), "no kill landed in the {m} trial: {killed:?}");
    }
    let out = dalab(&["run", "multi.yaml", "--runs-dir", "runs"], b.path());
    assert!(out.status.success(), "{:?}", text(&out));
    // (The trial ids differ: the config's file paths name each temporary folder.)
    let unhashed = |v: Vec<(String, serde_json::Value, String)>| {
        v.into_iter().map(|(id, r, m)| (id.rsplit_once('_').unwrap().0.to_string(), r, m)).collect::<Vec<_>>()
    };
    assert_eq!(unhashed(snapshot(&exp_b)), unhashed(want), "resumed trials: same results and metrics, bit for bit");
}

/// The Slurm tests run against a real one-node Slurm, which `cargo xtask test` starts (and says so with
/// `DALAB_SLURM_TESTS=1` and `SLURM_CONF`); run alone without it, they say why and return.
fn slurm_available() -> bool {
    if std::env::var_os("DALAB_SLURM_TESTS").is_some() {
        return true;
    }
    eprintln!("no Slurm for this test: `cargo xtask test` starts a one-node Slurm and runs it");
    false
}

/// `dalab status` until no trial is queued or running (at most `secs` seconds); its last output.
fn wait_for_slurm(dir: &Path, args: &[&str], secs: u64) -> String {
    let started = std::time::Instant::now();
    loop {
        let mut a = vec!["status"];
        a.extend_from_slice(args);
        let out = dalab(&a, dir);
        let (so, se) = text(&out);
        assert!(out.status.success(), "{so}\n{se}");
        let last = so.lines().last().unwrap_or("").to_string();
        if last.contains(" 0 running, 0 queued") {
            return so;
        }
        assert!(started.elapsed().as_secs() < secs, "the Slurm job did not finish in {secs} s:\n{so}");
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

/// The quickstart sweep (shortened) submitted as a Slurm job array gives the same report as a local `--jobs 1`
/// run; `dalab status` follows it; resubmitting a finished sweep submits nothing.
#[test]
fn a_sweep_through_slurm_reports_like_a_local_run() {
    if !slurm_available() {
        return;
    }
    let sweep = repo().join("experiments/quickstart-sweep.yaml");
    let sweep = sweep.to_str().unwrap();
    let short = ["--set", "train.iterations=400"];
    let local = tempfile::tempdir().unwrap();
    let out = dalab(&[&["run", sweep, "--runs-dir", "runs", "--jobs", "1"][..], &short].concat(), local.path());
    assert!(out.status.success(), "{:?}", text(&out));
    let report = |dir: &Path| {
        let out = dalab(&[&["report", sweep, "--runs-dir", "runs", "--no-plots"][..], &short].concat(), dir);
        assert!(out.status.success(), "{:?}", text(&out));
        std::fs::read_to_string(dir.join("runs/quickstart-sweep/report.md")).unwrap()
    };
    let want = report(local.path());

    let s = tempfile::tempdir().unwrap();
    let dry = dalab(
        &[&["run", sweep, "--launcher", "slurm", "--max-parallel", "2", "--dry-run"][..], &short].concat(),
        s.path(),
    );
    let (so, _) = text(&dry);
    assert!(so.starts_with("would submit 9 trial(s)") && so.contains("#SBATCH --array=0-8%2"), "{so}");
    assert!(!s.path().join("runs").exists(), "a dry run writes nothing");
    let out = dalab(&[&["run", sweep, "--launcher", "slurm", "--max-parallel", "2"][..], &short].concat(), s.path());
    let (so, se) = text(&out);
    assert!(out.status.success() && so.starts_with("submitted Slurm job "), "{so}\n{se}");
    let status = wait_for_slurm(s.path(), &[&[sweep, "--runs-dir", "runs"][..], &short].concat(), 600);
    assert!(
        status.ends_with("9 trial(s) of `quickstart-sweep`: 9 done, 0 running, 0 queued, 0 failed, 0 pending\n"),
        "{status}"
    );
    assert_eq!(report(s.path()), want, "the Slurm sweep's report is the local run's");
    assert_eq!(
        snapshot(&s.path().join("runs/quickstart-sweep")),
        snapshot(&local.path().join("runs/quickstart-sweep"))
    );
    let again = dalab(&[&["run", sweep, "--launcher", "slurm"][..], &short].concat(), s.path());
    let (so, _) = text(&again);
    assert!(so.starts_with("nothing to submit: 9 of 9 trial(s) of `quickstart-sweep` done"), "{so}");

    // Clear errors: a partition that does not exist; no sbatch on PATH.
    let bad = dalab(&[&["run", sweep, "--launcher", "slurm", "--partition", "nope"][..], &short].concat(), s.path());
    assert_eq!(bad.status.code(), Some(1));
    assert_eq!(text(&bad).1.trim(), "error: launcher.partition: partition `nope` does not exist (partitions: debug)");
    let refused = dalab(
        &[&["run", sweep, "--launcher", "slurm", "--time", "bogus", "--set", "seeds=[7]"][..], &short].concat(),
        s.path(),
    );
    let err = text(&refused).1;
    assert!(err.starts_with("error: the job was not submitted: sbatch failed (exit status: "), "{err}");
    assert!(err.to_lowercase().contains("time"), "Slurm's own message: {err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    let no_path = Command::new(env!("CARGO_BIN_EXE_dalab"))
        .args([&["run", sweep, "--launcher", "slurm", "--set", "seeds=[7]"][..], &short].concat())
        .env("PATH", "/nonexistent")
        .current_dir(s.path())
        .output()
        .unwrap();
    let err = text(&no_path).1;
    assert!(
        err.starts_with("error: `squeue` not found on PATH") || err.starts_with("error: `sbatch` not found on PATH"),
        "{err}"
    );
}

/// An array task cancelled with `scancel` mid-run loses its unfinished trials; resubmitting the experiment
/// submits exactly those, and the finished sweep equals a local run's, nothing lost or run twice.
#[test]
fn a_cancelled_array_task_is_resubmitted_and_the_sweep_finishes() {
    if !slurm_available() {
        return;
    }
    let sweep = repo().join("experiments/quickstart-sweep.yaml");
    let sweep = sweep.to_str().unwrap();
    let sets = ["--set", "train.iterations=1500"];
    let local = tempfile::tempdir().unwrap();
    let out = dalab(&[&["run", sweep, "--runs-dir", "runs", "--jobs", "1"][..], &sets].concat(), local.path());
    assert!(out.status.success(), "{:?}", text(&out));

    let s = tempfile::tempdir().unwrap();
    let submit =
        &[&["run", sweep, "--launcher", "slurm", "--max-parallel", "1", "--trials-per-task", "3"][..], &sets].concat();
    let out = dalab(submit, s.path());
    let (so, _) = text(&out);
    let job = so.strip_prefix("submitted Slurm job ").and_then(|r| r.split(':').next()).unwrap().to_string();
    // Cancel array task 1 as soon as it runs (after task 0's three trials).
    let task = format!("{job}_1");
    let started = std::time::Instant::now();
    loop {
        let q = Command::new("squeue").args(["-h", "-r", "-o", "%i %T"]).output().unwrap();
        if String::from_utf8_lossy(&q.stdout).lines().any(|l| l == format!("{task} RUNNING")) {
            break;
        }
        assert!(started.elapsed().as_secs() < 600, "array task {task} never ran");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_millis(1500)); // inside its first trial
    assert!(Command::new("scancel").arg(&task).status().unwrap().success());
    let status_args = &[&[sweep, "--runs-dir", "runs"][..], &sets].concat();
    let after = wait_for_slurm(s.path(), status_args, 600);
    let done = after.lines().filter(|l| l.starts_with("done ")).count();
    assert!((3..9).contains(&done), "task 1's trials are not all done after the cancel:\n{after}");
    let out = dalab(submit, s.path());
    let (so, _) = text(&out);
    assert!(so.contains(&format!(": {} trial(s) of `quickstart-sweep`", 9 - done)), "only the missing trials:\n{so}");
    let end = wait_for_slurm(s.path(), status_args, 600);
    assert!(end.contains("9 done, 0 running, 0 queued, 0 failed, 0 pending"), "{end}");
    assert_eq!(
        snapshot(&s.path().join("runs/quickstart-sweep")),
        snapshot(&local.path().join("runs/quickstart-sweep"))
    );
}

/// `dalab status` on a local run: pending before, done after, a failure with its reason; and `--launcher slurm`
/// into a runs directory that cannot be written is one line naming it (no Slurm needed for either).
#[test]
fn status_of_a_local_run_and_an_unwritable_runs_directory() {
    let tmp = tempfile::tempdir().unwrap();
    // A closed-form svm that finishes and a source-only that diverges (lr 1e30).
    let yaml = "name: st\ntasks: [moons→moons-rotated]\nmethods: {svm: {}, source-only: {}}\n\
                model: {backbone: {kind: mlp, hidden: [15], activation: relu}}\n\
                optim: {lr: 1.0e30, momentum: 0.0}\nschedule: {kind: constant}\ntrain: {iterations: 50, threads: 1}\n";
    std::fs::write(tmp.path().join("st.yaml"), yaml).unwrap();
    let status = || {
        let out = dalab(&["status", "st.yaml", "--runs-dir", "runs"], tmp.path());
        assert!(out.status.success(), "{:?}", text(&out));
        text(&out).0
    };
    assert!(status().ends_with("2 trial(s) of `st`: 0 done, 0 running, 0 queued, 0 failed, 2 pending\n"));
    let _ = dalab(&["run", "st.yaml", "--runs-dir", "runs"], tmp.path());
    let s = status();
    assert!(s.ends_with("2 trial(s) of `st`: 1 done, 0 running, 0 queued, 1 failed, 0 pending\n"), "{s}");
    let failed = s.lines().find(|l| l.starts_with("failed ")).unwrap();
    assert!(failed.contains("source-only_moons-moons-rotated_s0_") && failed.contains("loss at step"), "{failed}");

    std::fs::write(tmp.path().join("file"), "").unwrap();
    let out = dalab(&["run", "st.yaml", "--launcher", "slurm", "--runs-dir", "file/runs"], tmp.path());
    let err = text(&out).1;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.starts_with("error: the runs directory is not writable: cannot create ")
            && err.contains("file/runs/st/.slurm"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// Unmounts a tmpfs when dropped.
struct Tmpfs(PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Every file below `dir`, recursively.
fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() { out.extend(files_below(&p)) } else { out.push(p) }
    }
    out
}

/// A real full filesystem: the quickstart sweep into a 300 KiB tmpfs fills it in its fourth trial. The runner must
/// keep the finished trials, report the failed one with its own error (the disk-full write) and that its
/// failed.json could not be written, stop starting trials and say so once, leave no temporary file; after the
/// filesystem grows (remount), a rerun skips the finished trials and completes. Needs `mount` (root); elsewhere it
/// says so and returns.
#[test]
fn a_full_disk_stops_the_sweep_keeps_finished_trials_and_a_rerun_completes() {
    let tmp = tempfile::tempdir().unwrap();
    let runs = tmp.path().join("runs");
    std::fs::create_dir(&runs).unwrap();
    let mounted = Command::new("mount").args(["-t", "tmpfs", "-o", "size=300k", "tmpfs"]).arg(&runs).output();
    if !mounted.as_ref().is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: cannot mount a tmpfs here ({mounted:?})");
        return;
    }
    let _guard = Tmpfs(runs.clone());
    let exp = repo().join("experiments/quickstart-sweep.yaml");
    let run = || dalab(&["run", exp.to_str().unwrap(), "--runs-dir", runs.to_str().unwrap(), "--jobs", "1"], &repo());
    let out = run();
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let exp_dir = runs.join("quickstart-sweep");
    let done: Vec<(PathBuf, Vec<u8>)> = trial_dirs(&exp_dir)
        .into_iter()
        .filter(|d| d.join("result.json").is_file())
        .map(|d| {
            let bytes = std::fs::read(d.join("result.json")).unwrap();
            serde_json::from_slice::<serde_json::Value>(&bytes).expect("a finished result is whole");
            (d, bytes)
        })
        .collect();
    assert!(!done.is_empty() && done.len() < 9, "{} finished:\n{err}", done.len());
    let failed: Vec<&str> = err.lines().filter(|l| l.contains(": FAILED: ")).collect();
    assert_eq!(failed.len(), 1, "{err}");
    assert!(
        failed[0].contains("No space left on device") && failed[0].contains("not recorded in failed.json"),
        "{}",
        failed[0]
    );
    assert_eq!(err.matches("the disk is full").count(), 1, "said once:\n{err}");
    let not_started = 9 - done.len() - 1;
    assert!(err.contains(&format!("error: {not_started} trial(s) not started: the disk is full")), "{err}");
    assert!(err.contains("free space and rerun"), "{err}");
    let temps: Vec<PathBuf> =
        files_below(&exp_dir).into_iter().filter(|p| p.to_string_lossy().contains(".tmp-")).collect();
    assert!(temps.is_empty(), "temporary files left: {temps:?}");

    let grown = Command::new("mount").args(["-o", "remount,size=64m"]).arg(&runs).status().unwrap();
    assert!(grown.success());
    let out = run();
    let (_, err) = text(&out);
    assert!(out.status.success(), "{err}");
    assert_eq!(err.matches("done earlier, skipped").count(), done.len(), "{err}");
    let results = trial_dirs(&exp_dir).into_iter().filter(|d| d.join("result.json").is_file()).count();
    assert_eq!(results, 9);
    for (d, bytes) in &done {
        assert_eq!(&std::fs::read(d.join("result.json")).unwrap(), bytes, "{} rewritten", d.display());
    }
}

/// `model.init: xavier` (TF-slim's initialiser, ADDA's code): every weight dalab builds is U(−a, a) with
/// a = √(6 / (fan_in + fan_out)), every bias 0, before any stage copies one network onto another; a TorchScript
/// backbone keeps the file's weights, in the backbone and in every copy a method builds of it (ADDA's target
/// encoder); the default leaves libtorch's non-zero biases.
#[test]
fn xavier_init_sets_dalabs_layers_and_keeps_torchscript_weights() {
    use dalab_train::{ModelConfig, build_model};
    let reg = dalab_cli::registry();
    let adda = serde_json::json!({});
    let lenet: ModelConfig = serde_saphyr::from_str("backbone: {kind: lenet}\ninit: xavier\n").unwrap();
    let (vs, _) =
        build_model(&reg, "adda", &adda, &lenet, 10, &[1, 32, 32], &["source".into()], tch::Device::Cpu).unwrap();
    let vars = vs.variables();
    let max_abs = |n: &str| vars[n].abs().max().double_value(&[]);
    // conv0 [20, 1, 5, 5]: fan_in 25, fan_out 500; fc0 [500, 1250]; the adversary's first layer [500, 10].
    for (name, a) in [
        ("backbone.conv0.weight", (6.0f64 / 525.0).sqrt()),
        ("backbone.fc0.weight", (6.0f64 / 1750.0).sqrt()),
        ("method.target_encoder.conv1.weight", (6.0f64 / (500.0 + 1250.0)).sqrt()),
    ] {
        let m = max_abs(name);
        assert!(m <= a && m > 0.9 * a, "{name}: max |w| {m}, bound {a}");
    }
    let biases: Vec<&String> = vars.keys().filter(|k| k.ends_with(".bias")).collect();
    assert!(biases.len() >= 10, "{biases:?}");
    for b in biases {
        assert_eq!(max_abs(b), 0.0, "{b}");
    }
    let default: ModelConfig = serde_saphyr::from_str("backbone: {kind: lenet}\n").unwrap();
    let (vs, _) =
        build_model(&reg, "adda", &adda, &default, 10, &[1, 32, 32], &["source".into()], tch::Device::Cpu).unwrap();
    // tch's default: He-uniform conv weights (bound √(6/25) for conv0, 4.6× Xavier's), non-zero linear biases.
    let m = vs.variables()["backbone.conv0.weight"].abs().max().double_value(&[]);
    assert!(m > 0.9 * (6.0f64 / 25.0).sqrt(), "{m}");
    assert!(vs.variables()["backbone.fc0.bias"].abs().max().double_value(&[]) > 0.0);

    let pt = repo().join("crates/dalab-nn/testdata/tiny_mlp.pt");
    let ts: ModelConfig =
        serde_saphyr::from_str(&format!("backbone: {{kind: torchscript, path: {}}}\ninit: xavier\n", pt.display()))
            .unwrap();
    let (vs, _) = build_model(&reg, "adda", &adda, &ts, 2, &[3], &["source".into()], tch::Device::Cpu).unwrap();
    let vars = vs.variables();
    let file_bias = [0.0f32, 0.01, 0.02, 0.03];
    for enc in ["backbone", "method.target_encoder"] {
        // tch names a TorchScript module's `fc.bias` `fc_bias`.
        let b = Vec::<f32>::try_from(&vars[&format!("{enc}.fc_bias")]).unwrap();
        assert!(b.iter().zip(file_bias).all(|(x, y)| (x - y).abs() < 1e-7), "{enc}: {b:?}");
    }
    let head_biases: Vec<&String> =
        vars.keys().filter(|k| k.starts_with("method.head") && k.ends_with("bias")).collect();
    assert!(!head_biases.is_empty());
    for b in head_biases {
        assert_eq!(vars[b].abs().max().double_value(&[]), 0.0, "{b}");
    }
}
