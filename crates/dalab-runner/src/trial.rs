//! Trials: their resolved configs, ids, the plan of an experiment, and one trial's run with its output files.

use crate::config::Experiment;
use crate::store::{FailedRecord, write_atomic};
use crate::{Error, Result, io_err};
use dalab_core::Registry;
use dalab_core::device::DeviceSpec;
use dalab_core::schedule::LrSchedule;
use dalab_data::DatasetConfig;
use dalab_tensorboard::hparams::{self, HValue};
use dalab_train::{
    EvalRecord, JsonlSink, ModelConfig, OptimConfig, Selection, SettingConfig, Sink, TensorBoardSink, TrainConfig,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// Everything that defines one trial's numbers: written to its `config.yaml`, hashed into its id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrialConfig {
    pub experiment: String,
    pub method: String,
    /// The method's options with every default filled in.
    pub method_config: Value,
    pub dataset: DatasetConfig,
    pub source: String,
    pub target: String,
    pub seed: u64,
    pub model: ModelConfig,
    pub optim: OptimConfig,
    pub schedule: LrSchedule,
    pub train: TrainConfig,
    pub selection: Selection,
    /// Not written out when `unsupervised`, so the ids of experiments that do not set it stay.
    #[serde(default, skip_serializing_if = "SettingConfig::is_unsupervised")]
    pub setting: SettingConfig,
    pub device: DeviceSpec,
}

impl TrialConfig {
    /// `<method>_<source>-<target>_s<seed>_<8 hex digits of the config hash>`: readable, deterministic, unique.
    pub fn id(&self) -> String {
        let json = serde_json::to_string(self).expect("trial configs serialize");
        let clean = |s: &str| {
            s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect::<String>()
        };
        format!(
            "{}_{}-{}_s{}_{:08x}",
            clean(&self.method),
            clean(&self.source),
            clean(&self.target),
            self.seed,
            fnv1a64(json.as_bytes()) as u32
        )
    }
}

/// FNV-1a, 64 bit: a stable hash (unlike std's, which may change between Rust releases).
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// A trial: its config and the sweep values it was made with (only the keys that apply to its method).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    pub config: TrialConfig,
    /// `dotted key → value` of the sweep point (empty without a sweep).
    #[serde(default)]
    pub sweep: Map<String, Value>,
}

impl Trial {
    pub fn id(&self) -> String {
        self.config.id()
    }

    /// `<runs dir>/<experiment>/<id>`.
    pub fn dir(&self, runs_dir: &Path) -> PathBuf {
        runs_dir.join(&self.config.experiment).join(self.id())
    }

    /// Row label of reports: the method and its sweep values.
    pub fn label(&self) -> String {
        label(&self.config.method, &self.sweep)
    }
}

/// `method` or `method (key=value, ...)`; a swept option set `methods.<method>: {a: 1, b: 2}` gives `a=1, b=2`.
pub fn label(method: &str, sweep: &Map<String, Value>) -> String {
    if sweep.is_empty() {
        return method.to_string();
    }
    let prefix = format!("methods.{method}.");
    let mut vals: Vec<String> = Vec::new();
    for (k, v) in sweep {
        match v {
            // A sweep over whole option sets (`methods.mtl: [{sharing: hard}, {sharing: soft}]`): their keys.
            Value::Object(o) if k.strip_prefix("methods.") == Some(method) => {
                vals.extend(o.iter().map(|(a, b)| format!("{a}={b}")));
            }
            _ => vals.push(format!("{}={}", k.strip_prefix(&prefix).unwrap_or(k), v)),
        }
    }
    format!("{method} ({})", vals.join(", "))
}

/// The trials of an experiment in order (sweep point, method, task, seed), without duplicates: a trial that
/// a sweep does not change (e.g. `source-only` under a sweep of `methods.dann.*`) is run once.
pub fn plan(exp: &Experiment) -> Vec<Trial> {
    let mut out: Vec<Trial> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for point in &exp.points {
        let c = &point.config;
        for (method, method_config) in &c.methods.0 {
            let sweep: Map<String, Value> = point
                .values
                .iter()
                .filter(|(k, _)| match k.strip_prefix("methods.") {
                    Some(rest) => rest.split('.').next() == Some(method.as_str()),
                    None => true,
                })
                .cloned()
                .collect();
            for (s, t) in c.task_pairs() {
                // Only this method's parameter groups: an experiment-wide `optim.groups.discriminator` must not
                // change the configs (and ids) of methods without that group.
                let mut optim = c.optim.clone();
                let own = exp.groups.get(method);
                optim.groups.retain(|k, _| own.is_some_and(|g| g.contains(&k.as_str())));
                for &seed in &c.seeds {
                    let config = TrialConfig {
                        experiment: c.name.clone(),
                        method: method.clone(),
                        method_config: method_config.clone(),
                        dataset: c.dataset.clone(),
                        source: s.clone(),
                        target: t.clone(),
                        seed,
                        model: c.model.clone(),
                        optim: optim.clone(),
                        schedule: c.schedule,
                        train: c.train.clone(),
                        selection: c.selection,
                        setting: c.setting,
                        device: c.device.clone(),
                    };
                    if seen.insert(config.id()) {
                        out.push(Trial { config, sweep: sweep.clone() });
                    }
                }
            }
        }
    }
    out
}

/// `result.json`: what a finished trial produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialResult {
    pub trial: String,
    pub experiment: String,
    pub method: String,
    pub source: String,
    pub target: String,
    pub seed: u64,
    /// The sweep values of this trial.
    #[serde(default)]
    pub sweep: Map<String, Value>,
    /// The model-selection rule; `oracle` is true when it used target labels.
    pub selection: Selection,
    pub oracle: bool,
    pub selected: EvalRecord,
    pub last: EvalRecord,
    /// Every evaluation (step, accuracies, validator scores), in order. Empty in results of older versions.
    #[serde(default)]
    pub evaluations: Vec<EvalRecord>,
    pub steps: usize,
    pub seconds: f64,
    pub device: String,
    /// The target samples whose labels the method was given (semi-supervised / supervised settings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labelled_target: Option<Vec<usize>>,
    pub dalab_version: String,
}

impl TrialResult {
    pub fn task(&self) -> String {
        format!("{}→{}", self.source, self.target)
    }
}

/// How a trial process runs: where to read data, how many threads, which device.
#[derive(Debug, Clone)]
pub struct TrialEnv {
    pub runs_dir: PathBuf,
    pub data_dir: PathBuf,
    /// libtorch intra-op threads for this trial (the runner splits the cores between parallel trials).
    pub threads: usize,
    /// A concrete device assigned by the runner (e.g. `cuda:1`); None = the config's.
    pub device: Option<DeviceSpec>,
}

/// Reports progress of a running trial (the child process writes it to stdout for the runner).
pub trait ProgressSink {
    /// `step` of `total` done; `loss`: the last logged training loss (see [`progress_loss`]).
    fn progress(&mut self, step: usize, total: usize, loss: Option<f64>);
}

/// The line a trial process writes on its stdout for the runner ([`parse_progress_line`] reads it back).
pub fn progress_line(step: usize, total: usize, loss: Option<f64>) -> String {
    match loss {
        Some(l) => format!("progress {step} {total} {l}"),
        None => format!("progress {step} {total}"),
    }
}

/// `(step, total, loss)` of a [`progress_line`]; None for any other line.
pub fn parse_progress_line(line: &str) -> Option<(usize, usize, Option<f64>)> {
    let mut it = line.split_whitespace();
    if it.next() != Some("progress") {
        return None;
    }
    let (step, total) = (it.next()?.parse().ok()?, it.next()?.parse().ok()?);
    Some((step, total, it.next().and_then(|l| l.parse::<f64>().ok())))
}

/// The loss a progress line shows among one step's scalars: `loss/total`, else the first `loss…` scalar.
pub fn progress_loss(scalars: &[(String, f64)]) -> Option<f64> {
    let find = |pred: &dyn Fn(&str) -> bool| scalars.iter().find(|(k, _)| pred(k)).map(|(_, v)| *v);
    find(&|k| k == "loss/total").or_else(|| find(&|k| k == "loss" || k.starts_with("loss/")))
}

struct ProgressAdapter<'a> {
    inner: &'a mut dyn ProgressSink,
    total: usize,
}

impl Sink for ProgressAdapter<'_> {
    fn step(&mut self, step: usize, scalars: &[(String, f64)]) -> dalab_train::Result<()> {
        self.inner.progress(step, self.total, progress_loss(scalars));
        Ok(())
    }
    fn eval(&mut self, _: &EvalRecord) -> dalab_train::Result<()> {
        Ok(())
    }
    fn flush(&mut self) -> dalab_train::Result<()> {
        Ok(())
    }
}

fn hvalue(v: &Value) -> HValue {
    match v {
        Value::Number(n) => HValue::Number(n.as_f64().unwrap_or(f64::NAN)),
        Value::Bool(b) => HValue::Bool(*b),
        Value::String(s) => HValue::Text(s.clone()),
        other => HValue::Text(other.to_string()),
    }
}

/// The hyperparameters shown in TensorBoard's HParams dashboard for a trial: method, task, seed, the swept keys,
/// the training settings a reader compares first (`optim.kind`, `optim.lr`, `train.batch_size`,
/// `train.iterations`, `selection`, `setting`) and every scalar option of the method (`methods.<m>.<key>`, nested
/// keys dotted).
pub fn trial_hparams(t: &Trial) -> Vec<(String, HValue)> {
    let c = &t.config;
    let mut hp = vec![
        ("method".to_string(), HValue::Text(c.method.clone())),
        ("task".to_string(), HValue::Text(format!("{}→{}", c.source, c.target))),
        ("seed".to_string(), HValue::Number(c.seed as f64)),
    ];
    hp.extend(t.sweep.iter().map(|(k, v)| (k.clone(), hvalue(v))));
    fn text(v: &impl Serialize) -> HValue {
        hvalue(&serde_json::to_value(v).expect("serializes"))
    }
    for (k, v) in [
        ("optim.kind", text(&c.optim.kind)),
        ("optim.lr", HValue::Number(c.optim.lr)),
        ("train.batch_size", HValue::Number(c.train.batch_size as f64)),
        ("train.iterations", HValue::Number(c.train.iterations as f64)),
        ("selection", HValue::Text(c.selection.name().to_string())),
        ("setting", text(&c.setting)),
    ] {
        if !hp.iter().any(|(name, _)| name == k) {
            hp.push((k.to_string(), v));
        }
    }
    let mut leaves = Vec::new();
    flatten(&format!("methods.{}", c.method), &c.method_config, &mut leaves);
    for (k, v) in leaves {
        if !hp.iter().any(|(name, _)| *name == k) {
            hp.push((k, v));
        }
    }
    hp
}

/// The scalar leaves of `v` under `prefix` (objects dotted; lists as their JSON text).
fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, HValue)>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                flatten(&format!("{prefix}.{k}"), x, out);
            }
        }
        Value::Null => {}
        x => out.push((prefix.to_string(), hvalue(x))),
    }
}

/// The HParams session group of a trial: the experiment and the row label, so that two experiments under one log
/// directory never merge their groups.
pub fn trial_group(t: &Trial) -> String {
    format!("{}/{}", t.config.experiment, t.label())
}

/// Runs one trial in this process, in an (emptied) trial folder; the caller holds the trial's lock.
/// On a training error, `failed.json` records the reason and the error is returned.
pub fn run_trial(
    registry: &Registry,
    trial: &Trial,
    env: &TrialEnv,
    progress: &mut dyn ProgressSink,
) -> Result<TrialResult> {
    let id = trial.id();
    let dir = trial.dir(&env.runs_dir);
    let c = &trial.config;
    let yaml = serde_saphyr::to_string(c).map_err(|e| Error::Other(format!("cannot render config.yaml: {e}")))?;
    // A killed trial with a checkpoint of this very config continues from it; anything else starts afresh.
    let resume = match dalab_train::checkpoint::load_state(&dir) {
        Ok(Some(ck)) if std::fs::read_to_string(dir.join("config.yaml")).is_ok_and(|y| y == yaml) => Some(ck),
        _ => None,
    };
    match &resume {
        Some(ck) => {
            dalab_train::checkpoint::truncate_metrics(&dir.join("metrics.jsonl"), ck.step)?;
            let failed = dir.join("failed.json");
            if failed.exists() {
                std::fs::remove_file(&failed).map_err(io_err(&failed))?;
            }
        }
        None => {
            if dir.exists() {
                std::fs::remove_dir_all(&dir).map_err(io_err(&dir))?;
            }
            std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
            write_atomic(&dir.join("config.yaml"), yaml.as_bytes())?;
        }
    }

    let mut tb = TensorBoardSink::create(&dir)?;
    tb.writer().add_text("config", &format!("```yaml\n{yaml}```"), 0)?;
    hparams::write_session_start(tb.writer(), &trial_hparams(trial), &trial_group(trial))?;
    tb.writer().flush()?;
    let result = train_and_record(registry, trial, env, progress, &dir, &mut tb);
    let status = if result.is_ok() { hparams::Status::Success } else { hparams::Status::Failure };
    hparams::write_session_end(tb.writer(), status)?;
    tb.writer().flush()?;
    match result {
        Ok(r) => {
            let json = serde_json::to_vec_pretty(&r).expect("results serialize");
            write_atomic(&dir.join("result.json"), &json)?;
            Ok(r)
        }
        Err(e) => {
            let rec = FailedRecord { trial: id, reason: e.to_string() };
            write_atomic(&dir.join("failed.json"), &serde_json::to_vec_pretty(&rec).expect("serializes"))?;
            Err(e)
        }
    }
}

fn train_and_record(
    registry: &Registry,
    trial: &Trial,
    env: &TrialEnv,
    progress: &mut dyn ProgressSink,
    dir: &Path,
    tb: &mut TensorBoardSink,
) -> Result<TrialResult> {
    let c = &trial.config;
    let device = env.device.as_ref().unwrap_or(&c.device).resolve()?;
    let task = c.dataset.load_task(&c.source, &c.target, &env.data_dir)?;
    let mut jsonl = JsonlSink::append(&dir.join("metrics.jsonl"))?;
    let mut train = c.train.clone();
    train.threads = env.threads.max(1);
    let settings = dalab_train::TrainSettings {
        model: c.model.clone(),
        optim: c.optim.clone(),
        schedule: c.schedule,
        train,
        selection: c.selection,
        setting: c.setting,
    };
    let spec = dalab_train::TrialSpec {
        method: &c.method,
        method_config: &c.method_config,
        settings: &settings,
        seed: c.seed,
        device,
        out_dir: Some(dir),
    };
    let classic = registry.is_classic(&c.method);
    let mut prog = ProgressAdapter { inner: progress, total: if classic { 0 } else { c.train.iterations } };
    let outcome = {
        let mut sinks: [&mut dyn Sink; 3] = [tb, &mut jsonl, &mut prog];
        if classic {
            dalab_train::fit_classic(registry, &spec, &task, &mut sinks)?
        } else {
            dalab_train::train(registry, &spec, &task, &mut sinks)?.0
        }
    };
    // The selected model's numbers, as the HParams dashboard's metrics.
    let w = tb.writer();
    for (k, v) in outcome.selected.accuracies() {
        w.add_scalar(&format!("final/{k}"), v, outcome.steps as i64)?;
    }
    Ok(TrialResult {
        trial: trial.id(),
        experiment: c.experiment.clone(),
        method: c.method.clone(),
        source: c.source.clone(),
        target: c.target.clone(),
        seed: c.seed,
        sweep: trial.sweep.clone(),
        selection: outcome.selection,
        oracle: outcome.oracle,
        selected: outcome.selected,
        last: outcome.last,
        evaluations: outcome.evaluations,
        steps: outcome.steps,
        seconds: outcome.seconds,
        device: outcome.device,
        labelled_target: outcome.labelled_target,
        dalab_version: env!("CARGO_PKG_VERSION").to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_name_swept_keys_and_swept_option_sets() {
        let m = |v: Value| v.as_object().unwrap().clone();
        assert_eq!(label("dann", &Map::new()), "dann");
        assert_eq!(
            label("dann", &m(serde_json::json!({"methods.dann.trade_off": 0.1, "seed": 1}))),
            "dann (trade_off=0.1, seed=1)"
        );
        let set = m(serde_json::json!({"methods.mtl": {"sharing": "soft", "weighting": "fixed"}}));
        assert_eq!(label("mtl", &set), r#"mtl (sharing="soft", weighting="fixed")"#);
    }

    #[test]
    fn progress_lines_carry_the_loss_and_read_back() {
        let pick = |v: &[(&str, f64)]| progress_loss(&v.iter().map(|(k, x)| (k.to_string(), *x)).collect::<Vec<_>>());
        assert_eq!(pick(&[("lr", 0.1), ("loss/cls", 0.7), ("loss/total", 0.9)]), Some(0.9));
        assert_eq!(pick(&[("lambda", 1.0), ("loss/discrepancy", 0.3), ("loss/cls", 0.7)]), Some(0.3));
        assert_eq!(pick(&[("loss", 2.5)]), Some(2.5));
        assert_eq!(pick(&[("lossy", 1.0), ("lr", 0.1)]), None);
        for (step, total, loss) in [(10, 100, Some(0.123_456_789_f64)), (100, 100, None), (0, 0, Some(f64::NAN))] {
            let (s, t, l) = parse_progress_line(&progress_line(step, total, loss)).unwrap();
            assert_eq!((s, t), (step, total));
            assert_eq!(l.map(f64::to_bits), loss.map(f64::to_bits), "{loss:?}");
        }
        // An older child's line without a loss, and lines that are not progress.
        assert_eq!(parse_progress_line("progress 5 10"), Some((5, 10, None)));
        assert_eq!(parse_progress_line("progress five 10"), None);
        assert_eq!(parse_progress_line("warning: progress 5 10"), None);
    }
}
