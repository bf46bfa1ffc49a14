//! Event sinks: where the trainer reports step scalars and evaluations (TensorBoard, metrics.jsonl, ...).

use crate::{EvalRecord, Result};
use dalab_tensorboard::EventWriter;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Receives what happens during training. Errors stop training (after the other sinks are flushed).
pub trait Sink {
    /// Scalars of one step (`loss/total`, `loss/cls`, `loss/domain`, `lambda`, `lr`, ...).
    fn step(&mut self, step: usize, scalars: &[(String, f64)]) -> Result<()>;
    /// One evaluation.
    fn eval(&mut self, record: &EvalRecord) -> Result<()>;
    /// Makes everything written so far durable.
    fn flush(&mut self) -> Result<()>;
}

/// Writes TensorBoard event files: step scalars under their names, evaluations under `accuracy/<split>`
/// (`accuracy/source/<domain>` per source domain where recorded) and `validator/<name>`.
#[derive(Debug)]
pub struct TensorBoardSink {
    writer: EventWriter,
}

impl TensorBoardSink {
    pub fn create(logdir: &Path) -> Result<Self> {
        Ok(Self { writer: EventWriter::create(logdir)? })
    }

    /// The underlying writer (to add text, hparams, ...).
    pub fn writer(&mut self) -> &mut EventWriter {
        &mut self.writer
    }
}

impl Sink for TensorBoardSink {
    fn step(&mut self, step: usize, scalars: &[(String, f64)]) -> Result<()> {
        for (k, v) in scalars {
            self.writer.add_scalar(k, *v, step as i64)?;
        }
        Ok(())
    }

    fn eval(&mut self, r: &EvalRecord) -> Result<()> {
        for (k, v) in r.accuracies() {
            self.writer.add_scalar(&format!("accuracy/{k}"), v, r.step as i64)?;
        }
        for (k, v) in &r.source_domains {
            self.writer.add_scalar(&format!("accuracy/source/{k}"), *v, r.step as i64)?;
        }
        for (k, v) in &r.source_domains_test {
            self.writer.add_scalar(&format!("accuracy/source_test/{k}"), *v, r.step as i64)?;
        }
        for (k, v) in &r.validators {
            self.writer.add_scalar(&format!("validator/{k}"), *v, r.step as i64)?;
        }
        self.writer.flush()?;
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        Ok(self.writer.flush()?)
    }
}

/// Appends one JSON object per evaluation to a `metrics.jsonl` file (flushed at each line).
#[derive(Debug)]
pub struct JsonlSink {
    path: PathBuf,
    file: std::fs::File,
}

impl JsonlSink {
    pub fn create(path: &Path) -> Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(path)
            .map_err(|e| crate::Error::Io { path: path.to_path_buf(), source: e })?;
        Ok(Self { path: path.to_path_buf(), file })
    }

    /// Opens `path` for appending (created when missing): a resumed trial continues its evaluations.
    pub fn append(path: &Path) -> Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| crate::Error::Io { path: path.to_path_buf(), source: e })?;
        Ok(Self { path: path.to_path_buf(), file })
    }
}

impl Sink for JsonlSink {
    fn step(&mut self, _step: usize, _scalars: &[(String, f64)]) -> Result<()> {
        Ok(())
    }

    fn eval(&mut self, r: &EvalRecord) -> Result<()> {
        let line = serde_json::to_string(r).expect("EvalRecord serializes");
        writeln!(self.file, "{line}").map_err(|e| crate::Error::Io { path: self.path.clone(), source: e })
    }

    fn flush(&mut self) -> Result<()> {
        self.file.flush().map_err(|e| crate::Error::Io { path: self.path.clone(), source: e })
    }
}
