//! The inter-twinning moons of the DANN paper (Ganin et al., JMLR 2016, §5.1.1).
//!
//! Source: an upper moon (label 1) and a lower moon (label 0), `n_per_class` points each, with Gaussian
//! noise of standard deviation `noise` on both coordinates. Target: a new sample from the same generator
//! (another seed), rotated by `rotation_deg` degrees counter-clockwise about the source mean. Both domains
//! are then centred on the source mean, so the rotation is about the origin of the returned features.
//!
//! The generator is seeded ChaCha8 (stable across platforms and `rand` releases): the same config gives
//! bit-identical data everywhere.

use crate::{Domain, Result, TaskData};
use ndarray::{Array2, IxDyn};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::f64::consts::PI;

/// Settings of the moons generator. Defaults are the paper's toy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MoonsConfig {
    /// Points per moon (the paper: 150).
    pub n_per_class: usize,
    /// Standard deviation of the Gaussian noise (0.05).
    pub noise: f64,
    /// Rotation of the target sample, in degrees (35).
    pub rotation_deg: f64,
    /// Seed of the source sample; the target uses `seed + 1`.
    pub seed: u64,
}

impl Default for MoonsConfig {
    fn default() -> Self {
        Self { n_per_class: 150, noise: 0.05, rotation_deg: 35.0, seed: 0 }
    }
}

impl MoonsConfig {
    /// Checks the settings; errors name the key.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.n_per_class == 0 {
            return Err("n_per_class: must be >= 1, got 0".into());
        }
        if !(self.noise.is_finite() && self.noise >= 0.0) {
            return Err(format!("noise: must be a finite number >= 0, got {}", self.noise));
        }
        if !self.rotation_deg.is_finite() {
            return Err(format!("rotation_deg: must be finite, got {}", self.rotation_deg));
        }
        Ok(())
    }
}

/// Standard normal by Box-Muller (written here so the stream does not depend on a distribution crate).
fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (2.0 * PI * u2).cos()
}

/// Raw two-moons sample: rows 0..n are the lower moon (label 0), rows n..2n the upper moon (label 1).
pub fn sample(n_per_class: usize, noise: f64, seed: u64) -> (Array2<f64>, Vec<i64>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut x = Array2::<f64>::zeros((2 * n_per_class, 2));
    let mut y = Vec::with_capacity(2 * n_per_class);
    for i in 0..2 * n_per_class {
        let t = PI * rng.random::<f64>();
        let (a, b) = if i < n_per_class {
            (1.0 - t.cos(), 0.5 - t.sin()) // lower moon, opening upwards
        } else {
            (t.cos(), t.sin()) // upper moon, opening downwards
        };
        x[[i, 0]] = a + noise * normal(&mut rng);
        x[[i, 1]] = b + noise * normal(&mut rng);
        y.push(i64::from(i >= n_per_class));
    }
    (x, y)
}

/// Source and rotated target moons, centred on the source mean.
pub fn task(cfg: &MoonsConfig) -> Result<TaskData> {
    cfg.validate().map_err(|e| crate::Error::Invalid(format!("moons.{e}")))?;
    let (mut xs, ys) = sample(cfg.n_per_class, cfg.noise, cfg.seed);
    let (mut xt, yt) = sample(cfg.n_per_class, cfg.noise, cfg.seed.wrapping_add(1));
    let mean = xs.mean_axis(ndarray::Axis(0)).expect("n >= 1 checked above");
    xs -= &mean;
    xt -= &mean;
    let (s, c) = cfg.rotation_deg.to_radians().sin_cos();
    for mut row in xt.rows_mut() {
        let (a, b) = (row[0], row[1]);
        row[0] = c * a - s * b;
        row[1] = s * a + c * b;
    }
    let classes = vec!["lower".to_string(), "upper".to_string()];
    let to_dyn = |x: Array2<f64>| x.mapv(|v| v as f32).into_shape_with_order(IxDyn(&[2 * cfg.n_per_class, 2]));
    let source = Domain::new("moons", to_dyn(xs).expect("same size"), ys, classes.clone())?;
    let target = Domain::new("moons-rotated", to_dyn(xt).expect("same size"), yt, classes)?;
    TaskData::new(source, target, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_labels_and_centring() {
        let t = task(&MoonsConfig::default()).unwrap();
        assert_eq!(t.source.x.shape(), &[300, 2]);
        assert_eq!(t.target.x.shape(), &[300, 2]);
        assert_eq!(t.source.label_histogram(), vec![150, 150]);
        assert_eq!(t.target.label_histogram(), vec![150, 150]);
        // Source is centred on its own mean.
        let m = t.source.dense_x().unwrap().mean_axis(ndarray::Axis(0)).unwrap();
        assert!(m.iter().all(|v| v.abs() < 1e-6), "{m:?}");
    }

    #[test]
    fn same_seed_same_data_other_seed_other_data() {
        let a = task(&MoonsConfig::default()).unwrap();
        let b = task(&MoonsConfig::default()).unwrap();
        assert_eq!(a.source.x, b.source.x);
        assert_eq!(a.target.x, b.target.x);
        let c = task(&MoonsConfig { seed: 7, ..Default::default() }).unwrap();
        assert_ne!(a.source.x, c.source.x);
    }

    #[test]
    fn target_is_a_rotation_of_a_fresh_sample() {
        // Without noise both samples lie exactly on the moons; rotating the target back by -35° about the
        // (source-mean) origin must put every target point on one of the source curves.
        let cfg = MoonsConfig { noise: 0.0, ..Default::default() };
        let t = task(&cfg).unwrap();
        let (raw, _) = sample(cfg.n_per_class, 0.0, cfg.seed);
        let mean = raw.mean_axis(ndarray::Axis(0)).unwrap();
        let (s, c) = (-cfg.rotation_deg).to_radians().sin_cos();
        for (i, row) in t.target.dense_x().unwrap().outer_iter().enumerate() {
            let (a, b) = (f64::from(row[0]), f64::from(row[1]));
            let (u, v) = (c * a - s * b + mean[0], s * a + c * b + mean[1]);
            let on_curve = if t.target.y[i] == 1 {
                (u * u + v * v).sqrt() - 1.0 // upper moon: unit circle
            } else {
                ((u - 1.0).powi(2) + (v - 0.5).powi(2)).sqrt() - 1.0 // lower moon: circle about (1, 0.5)
            };
            assert!(on_curve.abs() < 1e-5, "target point {i} is {on_curve} off its moon");
        }
        // And the target differs from the source sample (another seed, rotated).
        assert_ne!(t.source.x, t.target.x);
    }

    #[test]
    fn bad_settings_name_the_key() {
        let e = task(&MoonsConfig { noise: -1.0, ..Default::default() }).unwrap_err().to_string();
        assert!(e.starts_with("moons.noise:"), "{e}");
        let e = task(&MoonsConfig { n_per_class: 0, ..Default::default() }).unwrap_err().to_string();
        assert!(e.starts_with("moons.n_per_class:"), "{e}");
    }
}
