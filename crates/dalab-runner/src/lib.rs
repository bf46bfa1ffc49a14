//! dalab-runner: an experiment YAML becomes trials (method × task × seed); each trial is trained by the one
//! trainer and leaves `config.yaml`, `metrics.jsonl`, `result.json` and TensorBoard events in
//! `<runs dir>/<experiment>/<trial id>/`.

pub mod config;
pub mod trial;

pub use config::{ExperimentConfig, load_experiment, parse_experiment};
pub use trial::{RunOptions, TrialConfig, TrialResult, plan, run_trial};

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
    #[error("trial {trial}: {source}")]
    Trial {
        trial: String,
        #[source]
        source: dalab_train::Error,
    },
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
