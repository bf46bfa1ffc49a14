//! dalab-data: the data layer of dalab, without libtorch.
//!
//! Everything here produces plain in-memory arrays ([`Domain`]); the trainer (dalab-train) turns them into
//! tensors on the run's device. Target labels live in [`Domain::y`] so that the *evaluator* can score
//! predictions, but the training loop only ever hands a method the target features.

pub mod amazon;
pub mod benchmarks;
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
pub mod representation;
pub mod sampling;
pub mod stream;
pub mod transforms;

pub use dataset::DatasetConfig;
pub use error::{Error, Result};
pub use manifest::data_dir;
pub use stream::ImageFiles;

use ndarray::{ArrayD, Axis};
use std::borrow::Cow;

/// Where a domain's samples are: decoded in memory, or image files decoded batch by batch while training
/// (the trainer decodes them on the rayon pool, ahead of the step that needs them, into a bounded queue).
#[derive(Debug, Clone, PartialEq)]
pub enum Features {
    /// `[n, sample_shape...]` in memory.
    Dense(ArrayD<f32>),
    /// Image files, decoded on demand to `[C, H, W]` each.
    Files(ImageFiles),
}

impl Features {
    /// The full shape `[n, sample_shape...]`.
    pub fn shape(&self) -> Vec<usize> {
        match self {
            Features::Dense(x) => x.shape().to_vec(),
            Features::Files(f) => {
                let mut s = vec![f.len()];
                s.extend(f.sample_shape());
                s
            }
        }
    }

    /// The in-memory array, or `None` for files decoded on demand.
    pub fn dense(&self) -> Option<&ArrayD<f32>> {
        match self {
            Features::Dense(x) => Some(x),
            Features::Files(_) => None,
        }
    }

    /// The in-memory array; files are decoded (all of them, in parallel) first.
    pub fn to_dense(&self) -> Result<Cow<'_, ArrayD<f32>>> {
        match self {
            Features::Dense(x) => Ok(Cow::Borrowed(x)),
            Features::Files(f) => Ok(Cow::Owned(f.decode_all()?.into_dyn())),
        }
    }
}

/// One domain's samples.
///
/// `x` has shape `[n, sample_shape...]` (e.g. `[n, 2]` for moons, `[n, 800]` for SURF, `[n, 3, 28, 28]` for
/// images), `y[i]` is the class index of sample `i` in `0..class_names.len()`.
#[derive(Debug, Clone)]
pub struct Domain {
    pub name: String,
    pub x: Features,
    pub y: Vec<i64>,
    pub class_names: Vec<String>,
}

impl Domain {
    /// The domains' samples in order, as one domain named `a+b+…`; they must agree on sample shape and classes.
    pub fn stack(parts: &[Domain]) -> Result<Self> {
        let first = parts.first().ok_or_else(|| Error::Invalid("no domain to stack".into()))?;
        let name = parts.iter().map(|d| d.name.as_str()).collect::<Vec<_>>().join("+");
        for d in parts {
            if d.sample_shape() != first.sample_shape() || d.class_names != first.class_names {
                return Err(Error::Invalid(format!(
                    "domains `{}` and `{}` differ in sample shape ({:?}, {:?}) or classes",
                    first.name,
                    d.name,
                    first.sample_shape(),
                    d.sample_shape()
                )));
            }
        }
        let y: Vec<i64> = parts.iter().flat_map(|d| d.y.iter().copied()).collect();
        let x = match &first.x {
            Features::Dense(_) => {
                let views: Vec<_> = parts.iter().map(|d| d.dense_x().map(|x| x.view())).collect::<Result<_>>()?;
                Features::Dense(
                    ndarray::concatenate(Axis(0), &views).map_err(|e| Error::Invalid(format!("{name}: {e}")))?,
                )
            }
            Features::Files(f) => {
                let mut all = f.clone();
                for d in &parts[1..] {
                    match &d.x {
                        Features::Files(g) if g.opts == f.opts => all.paths.extend(g.paths.iter().cloned()),
                        _ => {
                            return Err(Error::Invalid(format!(
                                "domains `{}` and `{}` are not decoded alike (image options or in-memory)",
                                first.name, d.name
                            )));
                        }
                    }
                }
                Features::Files(all)
            }
        };
        Ok(Self { name, x, y, class_names: first.class_names.clone() })
    }

    /// Builds an in-memory domain and checks that features, labels and classes agree.
    pub fn new(name: impl Into<String>, x: ArrayD<f32>, y: Vec<i64>, class_names: Vec<String>) -> Result<Self> {
        let name = name.into();
        if x.ndim() < 2 {
            return Err(Error::Invalid(format!(
                "domain `{name}`: features must have shape [n, ...], got {} dimension(s)",
                x.ndim()
            )));
        }
        let n = x.len_of(Axis(0));
        check_labels(&name, n, &y, &class_names)?;
        if let Some(i) = x.iter().position(|v| !v.is_finite()) {
            return Err(Error::Invalid(format!("domain `{name}`: non-finite feature value at flat index {i}")));
        }
        Ok(Self { name, x: Features::Dense(x), y, class_names })
    }

    /// Builds a domain whose images are decoded on demand (`files.len()` samples).
    pub fn from_files(
        name: impl Into<String>,
        files: ImageFiles,
        y: Vec<i64>,
        class_names: Vec<String>,
    ) -> Result<Self> {
        let name = name.into();
        check_labels(&name, files.len(), &y, &class_names)?;
        Ok(Self { name, x: Features::Files(files), y, class_names })
    }

    /// The features as an in-memory array; an error (naming the domain) for a domain streamed from files.
    pub fn dense_x(&self) -> Result<&ArrayD<f32>> {
        self.x.dense().ok_or_else(|| {
            Error::Invalid(format!(
                "domain `{}` is decoded from image files on demand; this needs it in memory (set the dataset's \
                 `load: memory`)",
                self.name
            ))
        })
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
    pub fn sample_shape(&self) -> Vec<usize> {
        self.x.shape()[1..].to_vec()
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

fn check_labels(name: &str, n: usize, y: &[i64], class_names: &[String]) -> Result<()> {
    if n != y.len() {
        return Err(Error::Invalid(format!("domain `{name}`: {n} feature rows but {} labels", y.len())));
    }
    let k = class_names.len() as i64;
    if let Some((i, &bad)) = y.iter().enumerate().find(|&(_, &c)| c < 0 || c >= k) {
        return Err(Error::Invalid(format!("domain `{name}`: label {bad} of sample {i} is outside 0..{k}")));
    }
    Ok(())
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
    /// The source domains in order, each with its rows of `source`: one for a task `a→b`; several for a
    /// multi-source task `a+b→c`, whose `source` is their rows stacked in this order.
    pub source_domains: Vec<(String, std::ops::Range<usize>)>,
    /// Each source domain's separate labelled test set, in the order of `source_domains`, where the benchmark has
    /// one (filled for multi-source tasks, whose sources are tasks of their own; empty otherwise).
    pub source_tests: Vec<Option<Domain>>,
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
        let source_domains = vec![(source.name.clone(), 0..source.len())];
        Ok(Self { source, target, target_test, source_domains, source_tests: Vec::new() })
    }

    /// The multi-source task `a+b+…→c` from its single-source tasks `a→c`, `b→c`, … (same target): the sources
    /// stacked in order into one domain named `a+b+…`, each remembered with its rows.
    pub fn multi_source(parts: Vec<TaskData>, source_tests: Vec<Option<Domain>>) -> Result<Self> {
        let mut parts = parts.into_iter();
        let first = parts.next().ok_or_else(|| Error::Invalid("a multi-source task needs a source".into()))?;
        let mut sources = vec![first.source];
        sources.extend(parts.map(|p| p.source));
        let mut source_domains = Vec::with_capacity(sources.len());
        let mut n = 0;
        for d in &sources {
            source_domains.push((d.name.clone(), n..n + d.len()));
            n += d.len();
        }
        let source = Domain::stack(&sources)?;
        let mut task = TaskData::new(source, first.target, first.target_test)?;
        task.source_domains = source_domains;
        for t in source_tests.iter().flatten() {
            if t.sample_shape() != task.source.sample_shape() || t.class_names != task.source.class_names {
                return Err(Error::Invalid(format!("test set `{}` differs from the sources", t.name)));
            }
        }
        task.source_tests = source_tests;
        Ok(task)
    }
}
