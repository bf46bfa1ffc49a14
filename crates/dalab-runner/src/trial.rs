//! Trials: their resolved configs, ids, and one trial's run with its output files.

use crate::config::{ExperimentConfig, split_task};
use crate::{Error, Result};
use dalab_core::Registry;
use dalab_core::device::DeviceSpec;
use dalab_core::schedule::LrSchedule;
use dalab_data::DatasetConfig;
use dalab_train::{EvalRecord, JsonlSink, ModelConfig, OptimConfig, Selection, Sink, TensorBoardSink, TrainConfig};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Everything that defines one trial: written to its `config.yaml`, hashed into its id.
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
    pub device: DeviceSpec,
}

impl TrialConfig {
    /// `<method>_<source>-<target>_s<seed>_<8 hex digits of the config hash>`: readable and unique.
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

/// The trials of an experiment, in order: methods, then tasks, then seeds.
pub fn plan(exp: &ExperimentConfig) -> Vec<TrialConfig> {
    let mut out = Vec::new();
    for (method, method_config) in &exp.methods.0 {
        for task in &exp.tasks {
            let (s, t) = split_task(task).expect("tasks are validated before planning");
            for &seed in &exp.seeds {
                out.push(TrialConfig {
                    experiment: exp.name.clone(),
                    method: method.clone(),
                    method_config: method_config.clone(),
                    dataset: exp.dataset.clone(),
                    source: s.to_string(),
                    target: t.to_string(),
                    seed,
                    model: exp.model.clone(),
                    optim: exp.optim.clone(),
                    schedule: exp.schedule,
                    train: exp.train.clone(),
                    selection: exp.selection,
                    device: exp.device.clone(),
                });
            }
        }
    }
    out
}

/// Where trials read data and write results.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Results go to `<runs_dir>/<experiment>/<trial id>/`.
    pub runs_dir: PathBuf,
    /// The data directory (see dalab-data).
    pub data_dir: PathBuf,
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
    /// The model-selection rule; `oracle` is true when it used target labels.
    pub selection: Selection,
    pub oracle: bool,
    pub selected: EvalRecord,
    pub last: EvalRecord,
    pub steps: usize,
    pub seconds: f64,
    pub device: String,
    pub dalab_version: String,
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, fsync, then rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let io = |e| Error::Io { path: path.to_path_buf(), source: e };
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp).map_err(io)?;
    f.write_all(bytes).and_then(|_| f.sync_all()).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// Runs one trial; its folder is emptied first, so a rerun does not mix old and new event files.
pub fn run_trial(registry: &Registry, trial: &TrialConfig, opts: &RunOptions) -> Result<(TrialResult, PathBuf)> {
    let id = trial.id();
    let dir = opts.runs_dir.join(&trial.experiment).join(&id);
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |e| Error::Io { path: p, source: e }
    };
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(io(&dir))?;
    }
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let yaml = serde_saphyr::to_string(trial).map_err(|e| Error::Config(format!("cannot write config.yaml: {e}")))?;
    write_atomic(&dir.join("config.yaml"), yaml.as_bytes())?;

    let device = trial.device.resolve()?;
    let task = trial.dataset.load_task(&trial.source, &trial.target, &opts.data_dir)?;
    let mut tb = TensorBoardSink::create(&dir)?;
    tb.writer().add_text("config", &format!("```yaml\n{yaml}```"), 0)?;
    let mut jsonl = JsonlSink::create(&dir.join("metrics.jsonl"))?;
    let settings = dalab_train::TrainSettings {
        model: trial.model.clone(),
        optim: trial.optim.clone(),
        schedule: trial.schedule,
        train: trial.train.clone(),
        selection: trial.selection,
    };
    let spec = dalab_train::TrialSpec {
        method: &trial.method,
        method_config: &trial.method_config,
        settings: &settings,
        seed: trial.seed,
        device,
    };
    let mut sinks: [&mut dyn Sink; 2] = [&mut tb, &mut jsonl];
    let (outcome, _vs) = dalab_train::train(registry, &spec, &task, &mut sinks)
        .map_err(|source| Error::Trial { trial: id.clone(), source })?;
    let result = TrialResult {
        trial: id,
        experiment: trial.experiment.clone(),
        method: trial.method.clone(),
        source: trial.source.clone(),
        target: trial.target.clone(),
        seed: trial.seed,
        selection: outcome.selection,
        oracle: outcome.oracle,
        selected: outcome.selected,
        last: outcome.last,
        steps: outcome.steps,
        seconds: outcome.seconds,
        device: outcome.device,
        dalab_version: env!("CARGO_PKG_VERSION").to_string(),
    };
    let json = serde_json::to_vec_pretty(&result).expect("results serialize");
    write_atomic(&dir.join("result.json"), &json)?;
    Ok((result, dir))
}
