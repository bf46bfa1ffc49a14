//! dalab-runner: an experiment YAML becomes trials (sweep point × method × task × seed); each trial runs in its
//! own process (`dalab __trial`), trained by the one trainer, and leaves `config.yaml`, `metrics.jsonl`,
//! `result.json` (or `failed.json`) and TensorBoard events in `<runs dir>/<experiment>/<trial id>/`.
//! Rerunning an experiment skips finished trials; a lock keeps two runners off the same trial.

pub mod config;
pub mod exec;
pub mod figures;
pub mod report;
pub mod selection;
pub mod slurm;
pub mod store;
pub mod trial;
mod yaml_index;

pub use config::{Experiment, ExperimentConfig, SweepPoint, load_experiment, parse_experiment};
pub use exec::{Observer, Outcome, RunPlan, run_all};
pub use trial::{Trial, TrialConfig, TrialResult, plan};

use std::path::PathBuf;

/// Errors of the runner: one line each, naming the file, key or trial.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A bad experiment file; the message is `file:line:col: key.path: problem` where the parser gives a position.
    #[error("{0}")]
    Config(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Other(String),
    #[error(transparent)]
    Core(#[from] dalab_core::Error),
    #[error(transparent)]
    Data(#[from] dalab_data::Error),
    #[error(transparent)]
    TensorBoard(#[from] dalab_tensorboard::Error),
    #[error(transparent)]
    Train(#[from] dalab_train::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.to_path_buf(), source }
}
