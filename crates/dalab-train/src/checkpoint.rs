//! Checkpoints and saved models of a trial folder.
//!
//! - `checkpoint.json` + `checkpoint-<step>.safetensors`: written every `train.checkpoint_interval` steps. The
//!   tensors are every variable of the VarStore (`vars/<name>`), every optimizer state (`optim/<group>/...`) and
//!   the model kept by the selection rule (`best/<name>`); the JSON has the step, the stage, the positions of the
//!   batch streams and the evaluations the selection rule needs. The JSON is written last (temp file + rename),
//!   so it always names a complete tensor file.
//! - `model.safetensors` (the selected model) and `model-last.safetensors` (the last one), with `model.json`
//!   (what rebuilding it needs besides config.yaml): written at the end of training.

use crate::{Error, EvalRecord, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tch::Tensor;

/// The JSON half of a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointState {
    /// Optimisation steps done (over all stages).
    pub step: usize,
    /// Index of the stage being run and iterations of it done.
    pub stage: usize,
    pub stage_iteration: usize,
    /// Batches drawn from the source, target and labelled-target streams.
    pub drawn: [usize; 3],
    /// Batches drawn from each source domain's stream (methods with `StageData::Sources`/`SourceDomain` stages).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drawn_domains: Vec<usize>,
    pub last: Option<EvalRecord>,
    /// Every evaluation so far.
    #[serde(default)]
    pub evaluations: Vec<EvalRecord>,
    /// Score, evaluation and stage index of the model kept by the selection rule (its tensors are `best/...`).
    pub best: Option<(f64, EvalRecord, usize)>,
    /// The loss scaler's state under `train.amp: fp16`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaler: Option<crate::LossScaler>,
    /// The tensor file.
    pub tensors: String,
}

/// What `model.json` records: enough, with config.yaml, to rebuild the model for `dalab predict` / `dalab eval`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub method: String,
    pub num_classes: i64,
    pub input_shape: Vec<i64>,
    /// The stage each model was saved in (a multi-stage method predicts with that stage's networks).
    pub selected_stage: String,
    pub last_stage: String,
    /// The step of the model in `model.safetensors` and of the one in `model-last.safetensors`.
    pub selected_step: usize,
    pub last_step: usize,
    /// The source domains of the task the model was trained on (several for a multi-source task); absent in models
    /// of older versions (one source).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_domains: Vec<String>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.to_path_buf(), source }
}

/// Writes `bytes` to `path` through a temp file, fsync and rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(bytes).and_then(|_| f.sync_all()).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// Writes named tensors as safetensors at `path` (through a temp file and rename).
pub fn write_tensors(path: &Path, tensors: &[(String, Tensor)]) -> Result<()> {
    let tmp = path.with_extension("tmp.safetensors");
    let cpu: Vec<(String, Tensor)> = tensors.iter().map(|(k, t)| (k.clone(), t.to_device(tch::Device::Cpu))).collect();
    Tensor::write_safetensors(&cpu, &tmp)?;
    std::fs::File::open(&tmp).and_then(|f| f.sync_all()).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// Reads a safetensors file into named tensors.
pub fn read_tensors(path: &Path) -> Result<Vec<(String, Tensor)>> {
    if !path.exists() {
        return Err(Error::Invalid(format!("{}: no such file", path.display())));
    }
    Tensor::read_safetensors(path).map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))
}

fn state_path(dir: &Path) -> PathBuf {
    dir.join("checkpoint.json")
}

/// The checkpoint of a trial folder, if it has one.
pub fn load_state(dir: &Path) -> Result<Option<CheckpointState>> {
    let p = state_path(dir);
    if !p.exists() {
        return Ok(None);
    }
    let bytes = std::fs::read(&p).map_err(io(&p))?;
    serde_json::from_slice(&bytes).map(Some).map_err(|e| Error::Invalid(format!("{}: {e}", p.display())))
}

/// Writes a checkpoint: the tensor file first, then the JSON naming it; older tensor files are removed.
pub fn save(dir: &Path, mut state: CheckpointState, tensors: &[(String, Tensor)]) -> Result<()> {
    let name = format!("checkpoint-{}.safetensors", state.step);
    write_tensors(&dir.join(&name), tensors)?;
    state.tensors = name.clone();
    write_atomic(&state_path(dir), &serde_json::to_vec_pretty(&state).expect("checkpoint state serializes"))?;
    remove_stale(dir, Some(&name))
}

/// Removes the checkpoint files of `dir` except `keep`.
pub fn remove_stale(dir: &Path, keep: Option<&str>) -> Result<()> {
    for e in std::fs::read_dir(dir).map_err(io(dir))?.flatten() {
        let n = e.file_name().to_string_lossy().to_string();
        if n.starts_with("checkpoint-") && Some(n.as_str()) != keep {
            std::fs::remove_file(e.path()).map_err(io(&e.path()))?;
        }
    }
    if keep.is_none() {
        let p = state_path(dir);
        if p.exists() {
            std::fs::remove_file(&p).map_err(io(&p))?;
        }
    }
    Ok(())
}

/// Keeps the lines of `metrics.jsonl` whose evaluation step is at most `step` (a resumed trial rewrites the
/// evaluations after its checkpoint).
pub fn truncate_metrics(path: &Path, step: usize) -> Result<()> {
    if !path.exists() {
        return Ok(());
    }
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let mut kept = String::new();
    for line in text.lines() {
        match serde_json::from_str::<EvalRecord>(line) {
            Ok(r) if r.step <= step => {
                kept.push_str(line);
                kept.push('\n');
            }
            _ => break,
        }
    }
    write_atomic(path, kept.as_bytes())
}
