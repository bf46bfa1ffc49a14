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
    pub scalars: Vec<(String, f64)>,
}

impl StepOutput {
    pub fn new(loss: Tensor) -> Self {
        Self { loss, scalars: Vec::new() }
    }

    /// Adds a named scalar; a tensor is read as one f64 (a device sync).
    pub fn with(mut self, name: &str, value: impl IntoScalar) -> Self {
        self.scalars.push((name.to_string(), value.into_scalar()));
        self
    }
}

/// Values that can be logged as one number.
pub trait IntoScalar {
    fn into_scalar(self) -> f64;
}

impl IntoScalar for f64 {
    fn into_scalar(self) -> f64 {
        self
    }
}

impl IntoScalar for &Tensor {
    fn into_scalar(self) -> f64 {
        self.double_value(&[])
    }
}

impl StepCtx {
    /// Iteration `it` of `total` in a single-stage run on `device` (tests, benches).
    pub fn at(it: usize, total: usize, device: Device) -> Self {
        Self { progress: it as f64 / total as f64, iteration: it, total_iterations: total, stage: "train", device }
    }
}
