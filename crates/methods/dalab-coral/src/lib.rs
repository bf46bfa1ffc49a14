//! CORAL (Sun, Feng & Saenko, AAAI 2016): classic, closed-form correlation alignment.
//!
//! The source features are whitened with their own covariance and re-coloured with the target's,
//! x ↦ x (C_S + λI)^(−1/2) (C_T + λI)^(1/2) (rows not centred, as in the authors' code), and a linear classifier
//! (softmax regression, trained by the common trainer) learns on the transformed source; the target is classified
//! as is. No deep network: the experiment's backbone is ignored and the raw (flattened) inputs are used.
//!
//! The covariances are those of the samples of the first `fit_batches` source and target batches (with the
//! trainer's epoch-wise shuffling, the whole data once `fit_batches · batch_size` ≥ the domain size); the transform
//! is computed once after them (until then the classifier sees the untransformed source).

use dalab_core::{DaBatch, Method, Result, StepCtx, StepOutput};
use tch::{Kind, Tensor, nn, nn::Module};

dalab_core::method_config! {
    /// The `methods.coral` options.
    pub struct CoralConfig {
        /// λ added to both covariances (the paper: 1, "C + I").
        lambda: f64 = 1.0, positive;
        /// Number of first batches whose samples define the covariances.
        fit_batches: usize = 32, at_least_one, at_most_iterations;
    }
}

dalab_core::method_factory! {
    /// The registry entry.
    pub Coral: "coral", "closed-form CORAL transform of the source inputs + linear classifier (Sun et al. 2016)";
    build(cfg: &CoralConfig, vs, env) {
        let d = env.input_shape.iter().product::<i64>();
        let classifier = nn::linear(vs / "classifier", d, env.num_classes, Default::default());
        let matrix = vs.add("transform", Tensor::eye(d, (Kind::Float, vs.device())), false);
        let (source, target) = (Stats::new(vs, "source", d), Stats::new(vs, "target", d));
        Ok(Box::new(Model { classifier, source, target, matrix, cfg: cfg.clone() }))
    }
}

/// `C^p` of a symmetric positive definite matrix, by its eigendecomposition.
pub fn sym_pow(c: &Tensor, p: f64) -> Tensor {
    let (e, v) = c.linalg_eigh("L");
    (&v * e.pow_tensor_scalar(p).unsqueeze(0)).matmul(&v.tr())
}

/// Running sums `[Σx, Σxxᵀ, n]` of a domain, in f64, stored in the VarStore (so checkpoints carry them).
struct Stats(Tensor, Tensor, Tensor);

impl Stats {
    fn new(vs: &nn::Path, name: &str, d: i64) -> Self {
        let z = |shape: &[i64]| Tensor::zeros(shape, (Kind::Double, vs.device()));
        Stats(
            vs.add(&format!("{name}_sum"), z(&[d]), false),
            vs.add(&format!("{name}_outer"), z(&[d, d]), false),
            vs.add(&format!("{name}_n"), z(&[]), false),
        )
    }

    fn add(&mut self, x: &Tensor) {
        let x = x.flatten(1, -1).to_kind(Kind::Double);
        let _ = self.0.g_add_(&x.sum_dim_intlist(0, false, Kind::Double));
        let _ = self.1.g_add_(&x.tr().matmul(&x));
        let _ = self.2.g_add_scalar_(x.size()[0] as f64);
    }

    /// Unbiased covariance + λI.
    fn covariance(&self, lambda: f64) -> Tensor {
        let n = self.2.double_value(&[]);
        let mu = &self.0 / n;
        let d = mu.size()[0];
        (&self.1 - mu.outer(&mu) * n) / (n - 1.0) + Tensor::eye(d, (Kind::Double, mu.device())) * lambda
    }
}

struct Model {
    classifier: nn::Linear,
    source: Stats,
    target: Stats,
    matrix: Tensor,
    cfg: CoralConfig,
}

impl Method for Model {
    fn training_loss(&mut self, batch: &DaBatch, ctx: &StepCtx) -> Result<StepOutput> {
        if ctx.iteration < self.cfg.fit_batches {
            tch::no_grad(|| {
                self.source.add(&batch.source_x);
                self.target.add(&batch.target_x);
                if ctx.iteration + 1 == self.cfg.fit_batches {
                    let l = self.cfg.lambda;
                    let a = sym_pow(&self.source.covariance(l), -0.5).matmul(&sym_pow(&self.target.covariance(l), 0.5));
                    self.matrix.copy_(&a);
                }
            });
        }
        let xs = batch.source_x.flatten(1, -1).matmul(&self.matrix);
        let cls = self.classifier.forward(&xs).cross_entropy_for_logits(&batch.source_y);
        let c = cls.detach();
        Ok(StepOutput::new(cls).with("loss/cls", c))
    }

    fn predict(&self, x: &Tensor) -> Tensor {
        self.classifier.forward(&x.flatten(1, -1))
    }

    fn features(&self, x: &Tensor) -> Tensor {
        x.flatten(1, -1)
    }
}

#[cfg(test)]
dalab_conformance::method_tests!(Coral, CoralConfig { fit_batches: 0, ..Default::default() }
    => "fit_batches: must be >= 1, got 0");

#[cfg(test)]
mod tests {
    use super::*;
    use dalab_metrics::coral::{CoralTransform, CoralTransformSettings};
    use ndarray::Array2;

    /// Cross-crate check: the transform fitted from the batches equals dalab-metrics' `CoralTransform` (pure-Rust
    /// eigensolver, faer) on the same data, to 1e-6 (the matrix is stored in f32).
    #[test]
    fn transform_equals_dalab_metrics() {
        let cfg = CoralConfig { lambda: 1.0, fit_batches: 2 };
        let (vs, mut m) = dalab_conformance::build::<Coral>(&cfg, 0);
        let (xs, ys, xt) = dalab_conformance::synthetic_shift(60, 5);
        for (it, (a, b)) in [(0, 30), (30, 30)].into_iter().enumerate() {
            let batch =
                DaBatch { source_x: xs.narrow(0, a, b), source_y: ys.narrow(0, a, b), target_x: xt.narrow(0, a, b) };
            dalab_conformance::step(m.as_mut(), None, &batch, it, 10);
        }
        let nd = |t: &Tensor| {
            let t = t.to_kind(Kind::Double);
            Array2::from_shape_vec(
                (t.size()[0] as usize, t.size()[1] as usize),
                Vec::<f64>::try_from(t.flatten(0, -1)).unwrap(),
            )
            .unwrap()
        };
        let settings = CoralTransformSettings { lambda: 1.0 };
        let reference = CoralTransform::fit(nd(&xs).view(), nd(&xt).view(), &settings).unwrap().matrix;
        let ours = nd(&vs.variables()["method.transform"]);
        let err = (&ours - &reference).mapv(f64::abs).fold(0.0f64, |a, &b| a.max(b));
        assert!(err < 1e-6, "max |A − A_ref| = {err}");
    }
}
