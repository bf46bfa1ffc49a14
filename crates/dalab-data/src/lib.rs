//! dalab-data: the data layer of dalab, without libtorch.
//!
//! Everything here produces plain in-memory arrays ([`Domain`]); the trainer (dalab-train) turns them into
//! tensors on the run's device. Target labels live in [`Domain::y`] so that the *evaluator* can score
//! predictions, but the training loop only ever hands a method the target features.

pub mod amazon;
pub mod dataset;
pub mod digits;
pub mod error;
pub mod features;
pub mod fetch;
pub mod formats;
pub mod image_dataset;
pub mod knn;
pub mod manifest;
pub mod moons;
pub mod office_caltech;
pub mod preprocess;
pub mod sampling;

pub use dataset::DatasetConfig;
pub use error::{Error, Result};
pub use manifest::data_dir;

use ndarray::{ArrayD, Axis};

/// One domain's samples in memory.
///
/// `x` has shape `[n, sample_shape...]` (e.g. `[n, 2]` for moons, `[n, 800]` for SURF, `[n, 3, 28, 28]` for
/// images), `y[i]` is the class index of sample `i` in `0..class_names.len()`.
#[derive(Debug, Clone)]
pub struct Domain {
    pub name: String,
    pub x: ArrayD<f32>,
    pub y: Vec<i64>,
    pub class_names: Vec<String>,
}

impl Domain {
    /// Builds a domain and checks that features, labels and classes agree.
    pub fn new(name: impl Into<String>, x: ArrayD<f32>, y: Vec<i64>, class_names: Vec<String>) -> Result<Self> {
        let name = name.into();
        if x.ndim() < 2 {
            return Err(Error::Invalid(format!(
                "domain `{name}`: features must have shape [n, ...], got {} dimension(s)",
                x.ndim()
            )));
        }
        let n = x.len_of(Axis(0));
        if n != y.len() {
            return Err(Error::Invalid(format!("domain `{name}`: {n} feature rows but {} labels", y.len())));
        }
        let k = class_names.len() as i64;
        if let Some((i, &bad)) = y.iter().enumerate().find(|&(_, &c)| c < 0 || c >= k) {
            return Err(Error::Invalid(format!("domain `{name}`: label {bad} of sample {i} is outside 0..{k}")));
        }
        if let Some(i) = x.iter().position(|v| !v.is_finite()) {
            return Err(Error::Invalid(format!("domain `{name}`: non-finite feature value at flat index {i}")));
        }
        Ok(Self { name, x, y, class_names })
    }

    pub fn len(&self) -> usize {
        self.y.len()
    }

    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    pub fn num_classes(&self) -> usize {
        self.class_names.len()
    }

    /// Shape of one sample (`x.shape()[1..]`).
    pub fn sample_shape(&self) -> &[usize] {
        &self.x.shape()[1..]
    }

    /// Number of samples of each class.
    pub fn label_histogram(&self) -> Vec<usize> {
        let mut h = vec![0; self.num_classes()];
        for &c in &self.y {
            h[c as usize] += 1;
        }
        h
    }
}

/// The data of one adaptation task `source → target`.
#[derive(Debug, Clone)]
pub struct TaskData {
    /// Labelled source training data.
    pub source: Domain,
    /// Target training data. Methods see only its features; its labels are used by the evaluator
    /// (transductive target accuracy, the number most DA papers report).
    pub target: Domain,
    /// A separate labelled target test set, where the benchmark has one (e.g. Amazon reviews).
    pub target_test: Option<Domain>,
}

impl TaskData {
    /// Checks that source and target agree on sample shape and classes.
    pub fn new(source: Domain, target: Domain, target_test: Option<Domain>) -> Result<Self> {
        for other in std::iter::once(&target).chain(target_test.as_ref()) {
            if other.sample_shape() != source.sample_shape() {
                return Err(Error::Invalid(format!(
                    "domains `{}` and `{}` have different sample shapes {:?} and {:?}",
                    source.name,
                    other.name,
                    source.sample_shape(),
                    other.sample_shape()
                )));
            }
            if other.class_names != source.class_names {
                return Err(Error::Invalid(format!(
                    "domains `{}` and `{}` have different classes",
                    source.name, other.name
                )));
            }
        }
        Ok(Self { source, target, target_test })
    }
}
