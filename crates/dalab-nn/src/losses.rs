//! Differentiable losses besides the MMD family: CORAL (Deep CORAL), entropy, and the multilinear maps of CDAN.

use tch::{Kind, Tensor, nn};

/// Unbiased covariance `(X − 1x̄ᵀ)ᵀ(X − 1x̄ᵀ) / (n − 1)` of the rows of `x` `[n, d]`.
pub fn covariance(x: &Tensor) -> Tensor {
    let n = x.size()[0] as f64;
    let c = x - x.mean_dim(0, true, x.kind());
    c.transpose(0, 1).matmul(&c) / (n - 1.0)
}

/// The Deep CORAL loss (Sun & Saenko 2016): `‖C_S − C_T‖²_F / (4 d²)` with unbiased batch covariances.
/// Equals `dalab_metrics::coral::coral_distance`.
pub fn coral_loss(xs: &Tensor, xt: &Tensor) -> Tensor {
    let (xs, xt) = (xs.flatten(1, -1), xt.flatten(1, -1));
    let d = xs.size()[1] as f64;
    (covariance(&xs) - covariance(&xt)).square().sum(xs.kind()) / (4.0 * d * d)
}

/// Entropy `−Σ_c p_c log p_c` of `softmax(logits)` for each row, `[n]`.
pub fn entropy_per_sample(logits: &Tensor) -> Tensor {
    let logp = logits.log_softmax(-1, logits.kind());
    -(logp.exp() * &logp).sum_dim_intlist(-1, false, logits.kind())
}

/// Mean prediction entropy of a batch of logits (entropy minimisation, RTN; the +E weights of CDAN).
pub fn entropy(logits: &Tensor) -> Tensor {
    entropy_per_sample(logits).mean(logits.kind())
}

/// The multilinear map of CDAN: `f ⊗ g` flattened, `[n, d_f · d_g]`, row `i` = `vec(f_i g_iᵀ)`.
pub fn multilinear(f: &Tensor, g: &Tensor) -> Tensor {
    let n = f.size()[0];
    (f.unsqueeze(2) * g.unsqueeze(1)).reshape([n, -1])
}

/// The randomized multilinear map of CDAN: `(f R_f) ⊙ (g R_g) / √d`, with fixed Gaussian matrices `R_f`, `R_g`
/// (not trained; stored in the VarStore so that a checkpoint reproduces them).
#[derive(Debug)]
pub struct RandomizedMultilinear {
    rf: Tensor,
    rg: Tensor,
    out_dim: i64,
}

impl RandomizedMultilinear {
    pub fn new(vs: &nn::Path, f_dim: i64, g_dim: i64, out_dim: i64) -> Self {
        let opts = (Kind::Float, vs.device());
        let rf = vs.add("rf", Tensor::randn([f_dim, out_dim], opts), false);
        let rg = vs.add("rg", Tensor::randn([g_dim, out_dim], opts), false);
        Self { rf, rg, out_dim }
    }

    pub fn forward(&self, f: &Tensor, g: &Tensor) -> Tensor {
        f.matmul(&self.rf) * g.matmul(&self.rg) / (self.out_dim as f64).sqrt()
    }

    pub fn out_dim(&self) -> i64 {
        self.out_dim
    }
}

/// CDAN's entropy conditioning weights `w = 1 + exp(−H(p))`, detached, normalised to sum to the batch size.
pub fn entropy_weights(logits: &Tensor) -> Tensor {
    let w = entropy_per_sample(&logits.detach()).neg().exp() + 1.0;
    let n = w.size()[0] as f64;
    &w / w.sum(Kind::Double).to_kind(w.kind()) * n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mmd::tests::to_nd;
    use tch::Device;

    /// Cross-crate check against `dalab_metrics::coral::coral_distance` (pure Rust) on the same data.
    #[test]
    fn coral_equals_dalab_metrics() {
        tch::manual_seed(7);
        for (kind, tol) in [(Kind::Double, 1e-10), (Kind::Float, 1e-6)] {
            let xs = Tensor::randn([50, 8], (kind, Device::Cpu));
            let xt = Tensor::randn([37, 8], (kind, Device::Cpu)) * 1.7 + 0.2;
            let ours = coral_loss(&xs, &xt).double_value(&[]);
            let theirs = dalab_metrics::coral::coral_distance(to_nd(&xs).view(), to_nd(&xt).view()).unwrap().coral;
            assert!((ours - theirs).abs() < tol, "{kind:?}: {ours} vs {theirs}");
        }
    }

    #[test]
    fn entropy_of_known_distributions() {
        // Uniform over 4 classes: log 4; one-hot-ish logits: ~0; [ln 1, ln 3] -> p = (1/4, 3/4):
        // −(0.25 ln 0.25 + 0.75 ln 0.75) = 0.5623351446188083.
        let l = Tensor::from_slice(&[0.0f64, 0.0, 0.0, 0.0]).reshape([1, 4]);
        assert!((entropy(&l).double_value(&[]) - 4f64.ln()).abs() < 1e-12);
        let l = Tensor::from_slice(&[0.0f64, 3f64.ln()]).reshape([1, 2]);
        assert!((entropy(&l).double_value(&[]) - 0.5623351446188083).abs() < 1e-12);
        let l = Tensor::from_slice(&[100.0f64, 0.0]).reshape([1, 2]);
        assert!(entropy(&l).double_value(&[]).abs() < 1e-12);
    }

    #[test]
    fn multilinear_maps() {
        let f = Tensor::from_slice(&[1.0f64, 2.0, 3.0, 4.0]).reshape([2, 2]);
        let g = Tensor::from_slice(&[1.0f64, 0.0, 10.0, 0.5, 1.0, 2.0]).reshape([2, 3]);
        let m = multilinear(&f, &g);
        // Row 0: [1,2] ⊗ [1,0,10] = [1,0,10,2,0,20].
        assert_eq!(Vec::<f64>::try_from(m.get(0)).unwrap(), vec![1.0, 0.0, 10.0, 2.0, 0.0, 20.0]);
        // Randomized map: E[(fR_f)_k (gR_g)_k] = f·... ; check the inner-product identity in expectation:
        // <T(f1,g1), T(f2,g2)> ≈ <f1,f2><g1,g2> for a large output dimension.
        tch::manual_seed(0);
        let vs = nn::VarStore::new(Device::Cpu);
        let r = RandomizedMultilinear::new(&vs.root(), 2, 3, 20000);
        let t = r.forward(&f.to_kind(Kind::Float), &g.to_kind(Kind::Float));
        let approx = (t.get(0) * t.get(1)).sum(Kind::Float).double_value(&[]);
        let exact = (1.0 * 3.0 + 2.0 * 4.0) * (0.5 + 0.0 + 20.0);
        assert!((approx - exact).abs() / exact < 0.1, "{approx} vs {exact}");
        assert_eq!(vs.trainable_variables().len(), 0, "the random matrices are not trained");
    }
}
