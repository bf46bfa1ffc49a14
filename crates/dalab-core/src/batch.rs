use tch::{Device, Tensor};

/// One training step's data, as a method sees it.
///
/// There is deliberately no field for target labels: the training loop keeps them away from methods, and the
/// evaluator is the only code that reads them.
#[derive(Debug)]
pub struct DaBatch {
    /// Source inputs, `[b_s, ...]`.
    pub source_x: Tensor,
    /// Source class indices, `[b_s]`, int64.
    pub source_y: Tensor,
    /// Target inputs, `[b_t, ...]` (unlabelled).
    pub target_x: Tensor,
}

/// Where training stands when a loss is asked for.
#[derive(Debug, Clone, Copy)]
pub struct StepCtx {
    /// Training progress p in [0, 1] (iteration / total iterations of the stage), as in the DANN paper's schedules.
    pub progress: f64,
    /// 0-based iteration within the stage.
    pub iteration: usize,
    /// Total number of iterations of the stage.
    pub total_iterations: usize,
    /// The stage (`train` for single-stage methods).
    pub stage: &'static str,
    pub device: Device,
}

/// A step's loss plus the named scalars (`cls`, `domain`, `lambda`, ...) that the sinks log.
#[derive(Debug)]
pub struct StepOutput {
    /// The total loss to minimise (a scalar tensor with a graph).
    pub loss: Tensor,
    /// Named components, logged as `loss/<name>` or as given (e.g. `lambda`).
    pub scalars: Vec<(String, Scalar)>,
}

impl StepOutput {
    pub fn new(loss: Tensor) -> Self {
        Self { loss, scalars: Vec::new() }
    }

    /// Adds a named scalar: a number, or a scalar tensor (kept on its device, detached, until the trainer logs).
    pub fn with(mut self, name: &str, value: impl Into<Scalar>) -> Self {
        self.scalars.push((name.to_string(), value.into()));
        self
    }
}

/// A logged number: a value, or a scalar tensor that stays on its device until the trainer logs it (every
/// `train.log_interval` steps, all of a step's tensors in one transfer), so that a training step never waits
/// for the device to report a loss.
#[derive(Debug)]
pub enum Scalar {
    Value(f64),
    /// A 0-d (or one-element) tensor, detached from the graph.
    Tensor(Tensor),
}

impl From<f64> for Scalar {
    fn from(v: f64) -> Self {
        Scalar::Value(v)
    }
}

impl From<&Tensor> for Scalar {
    fn from(t: &Tensor) -> Self {
        Scalar::Tensor(t.detach())
    }
}

impl From<Tensor> for Scalar {
    fn from(t: Tensor) -> Self {
        Scalar::Tensor(t.detach())
    }
}

impl Scalar {
    /// The scalar times `k` (a tensor stays on its device).
    pub fn scaled(self, k: f64) -> Scalar {
        match self {
            Scalar::Value(v) => Scalar::Value(v * k),
            Scalar::Tensor(t) => Scalar::Tensor(t * k),
        }
    }

    /// The number (a device sync for a tensor: prefer [`resolve`] for several).
    pub fn value(&self) -> f64 {
        match self {
            Scalar::Value(v) => *v,
            Scalar::Tensor(t) => t.double_value(&[]),
        }
    }
}

/// The values of `scalars`: their tensors stacked on their device and read back in one transfer.
pub fn resolve(scalars: &[(String, Scalar)]) -> Vec<(String, f64)> {
    let tensors: Vec<Tensor> = scalars
        .iter()
        .filter_map(|(_, s)| match s {
            Scalar::Tensor(t) => Some(t.reshape([-1]).narrow(0, 0, 1).to_kind(tch::Kind::Double)),
            Scalar::Value(_) => None,
        })
        .collect();
    let read: Vec<f64> = match tensors.first() {
        None => Vec::new(),
        // One device (the run's): one concatenation there, one transfer.
        Some(first) if tensors.iter().all(|t| t.device() == first.device()) => {
            Vec::<f64>::try_from(Tensor::cat(&tensors, 0).to_device(Device::Cpu)).unwrap_or_default()
        }
        Some(_) => tensors.iter().map(|t| t.double_value(&[0])).collect(),
    };
    let mut it = read.into_iter();
    scalars
        .iter()
        .map(|(k, s)| {
            let v = match s {
                Scalar::Value(v) => *v,
                Scalar::Tensor(_) => it.next().unwrap_or(f64::NAN),
            };
            (k.clone(), v)
        })
        .collect()
}

impl StepCtx {
    /// Iteration `it` of `total` in a single-stage run on `device` (tests, benches).
    pub fn at(it: usize, total: usize, device: Device) -> Self {
        Self { progress: it as f64 / total as f64, iteration: it, total_iterations: total, stage: "train", device }
    }
}
