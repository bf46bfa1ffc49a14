//! Differentiable MMD² (DAN), joint MMD² (JAN) and the kernel family they share.
//!
//! The conventions are those of `dalab-metrics` (`docs/metrics.md`), so the two agree number for number:
//! `k(a, b) = Σ_u w_u exp(−‖a − b‖² / (2 m_u σ²_base))`, with `σ²_base` from a [`Bandwidth`] policy computed on the
//! pooled batch `[source; target]` and **detached** (no gradient flows through the bandwidth, as in DAN's code and
//! TLlib). Estimators: `biased` (V-statistic), `unbiased` (U-statistic) and `linear` (Gretton et al. 2012, the DAN
//! paper's linear-time estimator over disjoint consecutive quad-tuples `(x_2i, x_2i+1, y_2i, y_2i+1)`).
//!
//! JMMD (JAN, Long et al. 2017) uses the product of one kernel per layer, `k(z, z') = Π_l k_l(z^l, z'^l)`,
//! with the same estimators.

use dalab_core::Validate;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// How the base squared bandwidth `σ²_base` is chosen (on the pooled batch of each step).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Bandwidth {
    /// Mean of `‖z_i − z_j‖²` over ordered pairs `i ≠ j` of the pooled batch (DAN's released code, TLlib up to
    /// the diagonal). (The option-less variants are `{}` struct variants so that serde rejects unknown keys
    /// beside `kind:`: a unit variant of an internally tagged enum accepts and ignores any.)
    MeanSquaredDistance {},
    /// Median of `‖z_i − z_j‖²` over pairs `i < j` of the pooled batch (mean of the two middle values for an
    /// even count): the median heuristic of the DAN and RTN papers.
    Median {},
    /// A fixed `σ²_base`.
    Fixed { sigma2: f64 },
}

/// A Gaussian kernel family: `Σ_u w_u exp(−d² / (2 m_u σ²_base))`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KernelConfig {
    /// Bandwidth multipliers `m_u` (> 0).
    pub multipliers: Vec<f64>,
    /// Weights `w_u` (>= 0, same length), summed as given.
    pub weights: Vec<f64>,
    pub bandwidth: Bandwidth,
}

impl Default for KernelConfig {
    /// DAN's released code: 5 kernels at `{1/4, 1/2, 1, 2, 4} ×` the mean squared distance, weights 1.
    fn default() -> Self {
        Self {
            multipliers: vec![0.25, 0.5, 1.0, 2.0, 4.0],
            weights: vec![1.0; 5],
            bandwidth: Bandwidth::MeanSquaredDistance {},
        }
    }
}

impl KernelConfig {
    /// One Gaussian kernel with a fixed `σ²` (JAN's kernel on the softmax layer uses σ = 0.92, σ² = 0.8464).
    pub fn fixed(sigma2: f64) -> Self {
        Self { multipliers: vec![1.0], weights: vec![1.0], bandwidth: Bandwidth::Fixed { sigma2 } }
    }

    /// `σ²_base` of the pooled sample `z` (detached scalar tensor).
    pub fn base_sigma2(&self, z: &Tensor) -> Tensor {
        let z = z.detach().flatten(1, -1);
        let n = z.size()[0] as f64;
        match self.bandwidth {
            Bandwidth::Fixed { sigma2 } => Tensor::scalar_tensor(sigma2, (z.kind(), z.device())),
            // Σ_{i≠j} ‖z_i − z_j‖² = 2N Σ_i ‖z_i − z̄‖².
            Bandwidth::MeanSquaredDistance {} => {
                let c = &z - z.mean_dim(0, true, z.kind());
                c.square().sum(z.kind()) * (2.0 * n) / (n * (n - 1.0))
            }
            Bandwidth::Median {} => {
                let d2 = sq_dists(&z, &z);
                let iu = Tensor::triu_indices(n as i64, n as i64, 1, (Kind::Int64, z.device()));
                let v = d2.index(&[Some(iu.get(0)), Some(iu.get(1))]);
                let (sorted, _) = v.sort(0, false);
                let len = sorted.size()[0];
                if len % 2 == 1 { sorted.get(len / 2) } else { (sorted.get(len / 2 - 1) + sorted.get(len / 2)) * 0.5 }
            }
        }
    }

    /// Kernel values for squared distances `d2` (any shape), with `σ²_base = base`.
    pub fn eval(&self, d2: &Tensor, base: &Tensor) -> Tensor {
        let mut k: Option<Tensor> = None;
        for (m, w) in self.multipliers.iter().zip(&self.weights) {
            let term = (d2 / (base * (2.0 * m))).neg().exp() * *w;
            k = Some(match k {
                None => term,
                Some(acc) => acc + term,
            });
        }
        k.expect("validated: at least one kernel")
    }
}

impl Validate for KernelConfig {
    fn validate(&self) -> Result<(), String> {
        if self.multipliers.is_empty() {
            return Err("multipliers: must name at least one bandwidth".into());
        }
        if self.weights.len() != self.multipliers.len() {
            return Err(format!(
                "weights: has {} entries but there are {} multipliers",
                self.weights.len(),
                self.multipliers.len()
            ));
        }
        if let Some((i, m)) = self.multipliers.iter().enumerate().find(|(_, m)| !(m.is_finite() && **m > 0.0)) {
            return Err(format!("multipliers[{i}]: must be a finite number > 0, got {m}"));
        }
        if let Some((i, w)) = self.weights.iter().enumerate().find(|(_, w)| !(w.is_finite() && **w >= 0.0)) {
            return Err(format!("weights[{i}]: must be a finite number >= 0, got {w}"));
        }
        if let Bandwidth::Fixed { sigma2 } = self.bandwidth
            && !(sigma2.is_finite() && sigma2 > 0.0)
        {
            return Err(format!("bandwidth.sigma2: must be a finite number > 0, got {sigma2}"));
        }
        Ok(())
    }
}

/// The MMD² estimator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Estimator {
    /// V-statistic (diagonals included), ≥ 0.
    Biased,
    /// U-statistic (diagonals of the within-domain blocks excluded); can be negative.
    Unbiased,
    /// Linear-time over `⌊min(n_s, n_t)/2⌋` disjoint consecutive quad-tuples; can be negative.
    #[default]
    Linear,
}

/// An MMD: a kernel family and an estimator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct MmdConfig {
    pub kernel: KernelConfig,
    pub estimator: Estimator,
}

impl Validate for MmdConfig {
    fn validate(&self) -> Result<(), String> {
        self.kernel.validate().map_err(|e| format!("kernel.{e}"))
    }
}

/// Squared Euclidean distances between the rows of `a` `[n, d]` and `b` `[m, d]`, `[n, m]`, clamped at 0.
pub fn sq_dists(a: &Tensor, b: &Tensor) -> Tensor {
    let an = a.square().sum_dim_intlist(1, false, a.kind());
    let bn = b.square().sum_dim_intlist(1, false, b.kind());
    (an.unsqueeze(1) + bn.unsqueeze(0) - a.matmul(&b.transpose(0, 1)) * 2.0).clamp_min(0.0)
}

/// MMD² between `xs` `[m, ...]` and `xt` `[n, ...]` (rows flattened), differentiable in both.
pub fn mmd2(xs: &Tensor, xt: &Tensor, cfg: &MmdConfig) -> Tensor {
    jmmd2(&[xs], &[xt], std::slice::from_ref(&cfg.kernel), cfg.estimator)
}

/// Joint MMD² (JAN): layer `l` has source activations `xs[l]`, target activations `xt[l]` and kernel `kernels[l]`;
/// the joint kernel is the product of the layer kernels. With one layer this is [`mmd2`].
pub fn jmmd2(xs: &[&Tensor], xt: &[&Tensor], kernels: &[KernelConfig], estimator: Estimator) -> Tensor {
    assert!(!xs.is_empty() && xs.len() == xt.len() && xs.len() == kernels.len(), "one kernel per layer");
    let (m, n) = (xs[0].size()[0], xt[0].size()[0]);
    let flat = |t: &Tensor| t.flatten(1, -1);
    match estimator {
        Estimator::Linear => {
            let p = m.min(n) / 2;
            assert!(p >= 1, "the linear-time MMD needs at least 2 rows per domain");
            let mut h: Option<[Tensor; 4]> = None;
            for ((s, t), k) in xs.iter().zip(xt).zip(kernels) {
                let (s, t) = (flat(s), flat(t));
                let base = k.base_sigma2(&Tensor::cat(&[&s, &t], 0));
                let (s0, s1) = (s.slice(0, 0, 2 * p, 2), s.slice(0, 1, 2 * p, 2));
                let (t0, t1) = (t.slice(0, 0, 2 * p, 2), t.slice(0, 1, 2 * p, 2));
                let kv = |a: &Tensor, b: &Tensor| k.eval(&(a - b).square().sum_dim_intlist(1, false, a.kind()), &base);
                let layer = [kv(&s0, &s1), kv(&t0, &t1), kv(&s0, &t1), kv(&s1, &t0)];
                h = Some(match h {
                    None => layer,
                    Some(acc) => {
                        let [a, b, c, d] = acc;
                        let [e, f, g, i] = layer;
                        [a * e, b * f, c * g, d * i]
                    }
                });
            }
            let [a, b, c, d] = h.expect("at least one layer");
            let kind = a.kind();
            (a + b - c - d).mean(kind)
        }
        Estimator::Biased | Estimator::Unbiased => {
            let mut kz: Option<Tensor> = None;
            for ((s, t), k) in xs.iter().zip(xt).zip(kernels) {
                let z = Tensor::cat(&[flat(s), flat(t)], 0);
                let base = k.base_sigma2(&z);
                let kl = k.eval(&sq_dists(&z, &z), &base);
                kz = Some(match kz {
                    None => kl,
                    Some(acc) => acc * kl,
                });
            }
            let kz = kz.expect("at least one layer");
            let kind = kz.kind();
            let kss = kz.slice(0, 0, m, 1).slice(1, 0, m, 1);
            let ktt = kz.slice(0, m, m + n, 1).slice(1, m, m + n, 1);
            let kst = kz.slice(0, 0, m, 1).slice(1, m, m + n, 1);
            let (mf, nf) = (m as f64, n as f64);
            if estimator == Estimator::Biased {
                kss.mean(kind) + ktt.mean(kind) - kst.mean(kind) * 2.0
            } else {
                (kss.sum(kind) - kss.trace()) / (mf * (mf - 1.0)) + (ktt.sum(kind) - ktt.trace()) / (nf * (nf - 1.0))
                    - kst.sum(kind) * (2.0 / (mf * nf))
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use dalab_metrics::mmd::{self as m, BandwidthPolicy, Kernel, MmdSettings};
    use ndarray::Array2;
    use tch::Device;

    pub(crate) fn to_nd(t: &Tensor) -> Array2<f64> {
        let t = t.to_kind(Kind::Double).contiguous();
        let (r, c) = (t.size()[0] as usize, t.size()[1] as usize);
        Array2::from_shape_vec((r, c), Vec::<f64>::try_from(t.flatten(0, -1)).unwrap()).unwrap()
    }

    fn metrics_mmd(xs: &Tensor, xt: &Tensor, k: &KernelConfig, est: Estimator) -> f64 {
        let settings = MmdSettings {
            kernel: Kernel::Gaussian { multipliers: k.multipliers.clone(), weights: k.weights.clone() },
            bandwidth: match k.bandwidth {
                Bandwidth::MeanSquaredDistance {} => BandwidthPolicy::MeanSquaredDistance,
                Bandwidth::Median {} => BandwidthPolicy::Median { max_points: 100_000 },
                Bandwidth::Fixed { sigma2 } => BandwidthPolicy::Fixed { sigma2 },
            },
            estimator: match est {
                Estimator::Biased => m::Estimator::Biased,
                Estimator::Unbiased => m::Estimator::Unbiased,
                Estimator::Linear => m::Estimator::Linear,
            },
            ..Default::default()
        };
        m::mmd2(to_nd(xs).view(), to_nd(xt).view(), &settings).unwrap().mmd2
    }

    /// Cross-crate check: every estimator × bandwidth policy equals dalab-metrics' `mmd2` on the same data
    /// (independent implementation in pure Rust), to 1e-10 in f64 and 1e-6 in f32.
    #[test]
    fn mmd_equals_dalab_metrics() {
        tch::manual_seed(3);
        for (kind, tol) in [(Kind::Double, 1e-10), (Kind::Float, 1e-6)] {
            let xs = Tensor::randn([40, 6], (kind, Device::Cpu));
            let xt = Tensor::randn([33, 6], (kind, Device::Cpu)) * 1.3 + 0.4;
            for bw in [Bandwidth::MeanSquaredDistance {}, Bandwidth::Median {}, Bandwidth::Fixed { sigma2: 2.5 }] {
                for est in [Estimator::Biased, Estimator::Unbiased, Estimator::Linear] {
                    let k = KernelConfig { bandwidth: bw.clone(), ..Default::default() };
                    let ours = mmd2(&xs, &xt, &MmdConfig { kernel: k.clone(), estimator: est }).double_value(&[]);
                    let theirs = metrics_mmd(&xs, &xt, &k, est);
                    assert!((ours - theirs).abs() < tol, "{kind:?} {bw:?} {est:?}: {ours} vs {theirs}");
                }
            }
        }
    }

    /// JMMD with two Gaussian layers of fixed bandwidth σ² is, since exp(−a/2σ²)·exp(−b/2σ²) = exp(−(a+b)/2σ²),
    /// the MMD of the concatenated layers with that bandwidth: checked against dalab-metrics on the concatenation.
    #[test]
    fn jmmd_equals_dalab_metrics_on_concatenated_layers() {
        tch::manual_seed(4);
        for (kind, tol) in [(Kind::Double, 1e-10), (Kind::Float, 1e-6)] {
            let (s1, t1) =
                (Tensor::randn([30, 5], (kind, Device::Cpu)), Tensor::randn([30, 5], (kind, Device::Cpu)) + 0.5);
            let (s2, t2) =
                (Tensor::rand([30, 3], (kind, Device::Cpu)), Tensor::rand([30, 3], (kind, Device::Cpu)) * 0.5);
            let k = KernelConfig::fixed(3.0);
            for est in [Estimator::Biased, Estimator::Unbiased, Estimator::Linear] {
                let ours = jmmd2(&[&s1, &s2], &[&t1, &t2], &[k.clone(), k.clone()], est).double_value(&[]);
                let theirs = metrics_mmd(&Tensor::cat(&[&s1, &s2], 1), &Tensor::cat(&[&t1, &t2], 1), &k, est);
                assert!((ours - theirs).abs() < tol, "{kind:?} {est:?}: {ours} vs {theirs}");
            }
        }
    }

    /// Unknown keys beside `kind:` are errors in every bandwidth variant (also the option-less ones), and the
    /// serialized form is `{kind: ...}` alone.
    #[test]
    fn bandwidth_rejects_unknown_keys_in_every_variant() {
        use serde_json::{from_value, json, to_value};
        for v in [
            json!({"kind": "median", "sigma2": 1.0}),
            json!({"kind": "mean-squared-distance", "max_points": 3}),
            json!({"kind": "fixed", "sigma2": 1.0, "sigma": 1.0}),
        ] {
            let e = from_value::<Bandwidth>(v.clone()).unwrap_err().to_string();
            assert!(e.contains("unknown field"), "{v}: {e}");
        }
        assert_eq!(to_value(Bandwidth::Median {}).unwrap(), json!({"kind": "median"}));
        assert_eq!(from_value::<Bandwidth>(json!({"kind": "median"})).unwrap(), Bandwidth::Median {});
    }

    #[test]
    fn gradient_flows_and_bandwidth_is_detached() {
        tch::manual_seed(5);
        let xs = Tensor::randn([16, 4], (Kind::Double, Device::Cpu)).set_requires_grad(true);
        let xt = Tensor::randn([16, 4], (Kind::Double, Device::Cpu)) + 1.0;
        let cfg = MmdConfig { estimator: Estimator::Biased, ..Default::default() };
        let loss = mmd2(&xs, &xt, &cfg);
        let g = Tensor::run_backward(&[&loss], &[&xs], false, false).remove(0);
        // Central finite difference with the bandwidth held at its value (detached) for one coordinate.
        let base = cfg.kernel.base_sigma2(&Tensor::cat(&[&xs, &xt], 0));
        let fixed = MmdConfig {
            kernel: KernelConfig {
                bandwidth: Bandwidth::Fixed { sigma2: base.double_value(&[]) },
                ..cfg.kernel.clone()
            },
            ..cfg.clone()
        };
        let eps = 1e-6;
        let bump = |d: f64| {
            let x = xs.detach().copy();
            let _ = x.get(2).get(1).g_add_scalar_(d);
            mmd2(&x, &xt, &fixed).double_value(&[])
        };
        let fd = (bump(eps) - bump(-eps)) / (2.0 * eps);
        assert!((g.double_value(&[2, 1]) - fd).abs() < 1e-7, "{} vs {fd}", g.double_value(&[2, 1]));
        let bad = KernelConfig { weights: vec![1.0], ..Default::default() };
        assert_eq!(bad.validate().unwrap_err(), "weights: has 1 entries but there are 5 multipliers");
    }
}
