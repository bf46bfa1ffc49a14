//! Text options → settings, for command-line front ends (`dalab divergence`). Every name is parsed here with
//! errors that list the accepted values, so the CLI stays a thin layer.

use crate::adist::{ADistanceSettings, Split};
use crate::error::Result;
use crate::mmd::{BandwidthPolicy, Estimator, Kernel, MmdSettings, Precision};
use crate::report::DivergenceSettings;
use crate::validate::invalid;
use std::path::PathBuf;

/// Options of a divergence run as plain values (what a command line gives). Defaults: see [`Default`].
#[derive(Clone, Debug, PartialEq)]
pub struct DivergenceOptions {
    /// Metrics to compute: any of `mmd`, `a-distance`, `coral` (default all three).
    pub metrics: Vec<String>,
    /// Kernel family: `dan` (5 kernels, ×{1/4,1/2,1,2,4}), `dan-paper` (33 kernels, 2^(k/2), k = −16..16),
    /// `gaussian` (one), `linear` (default `dan`).
    pub kernel: String,
    /// Overrides the family's multipliers (Gaussian kernels only).
    pub multipliers: Option<Vec<f64>>,
    /// Kernel weights (default 1 each).
    pub weights: Option<Vec<f64>>,
    /// Bandwidth policy: `mean-sq-dist`, `median`, `fixed` (default `mean-sq-dist`).
    pub bandwidth: String,
    /// σ²_base for `fixed`.
    pub sigma2: Option<f64>,
    /// Subsample cap of the median heuristic (default 1000).
    pub median_max_points: usize,
    /// `biased`, `unbiased`, `linear` (default `biased`).
    pub estimator: String,
    /// `f64` or `f32` Gram products (default `f64`).
    pub precision: String,
    /// Permutations of the MMD two-sample test (default 0: none).
    pub permutations: usize,
    /// Seed of every random choice (default 0).
    pub seed: u64,
    /// C grid of the A-distance SVM (default {1e-3, 1e-2, 1e-1, 1, 10}).
    pub c_grid: Option<Vec<f64>>,
    /// Folds of the A-distance (0 or absent: the two-halves split of the DANN paper).
    pub folds: usize,
}

impl Default for DivergenceOptions {
    fn default() -> Self {
        Self {
            metrics: vec!["mmd".into(), "a-distance".into(), "coral".into()],
            kernel: "dan".into(),
            multipliers: None,
            weights: None,
            bandwidth: "mean-sq-dist".into(),
            sigma2: None,
            median_max_points: 1000,
            estimator: "biased".into(),
            precision: "f64".into(),
            permutations: 0,
            seed: 0,
            c_grid: None,
            folds: 0,
        }
    }
}

fn one_of<'a, T: Clone>(name: &str, got: &str, table: &'a [(&'a str, T)]) -> Result<T> {
    table.iter().find(|(k, _)| k.eq_ignore_ascii_case(got.trim())).map(|(_, v)| v.clone()).ok_or_else(|| {
        let names: Vec<&str> = table.iter().map(|(k, _)| *k).collect();
        invalid(name, format!("`{got}` is not one of {}", names.join(", ")))
    })
}

impl DivergenceOptions {
    /// The settings these options mean, validated.
    pub fn settings(&self) -> Result<DivergenceSettings> {
        let (mut mmd, mut adist, mut coral) = (false, false, false);
        for m in &self.metrics {
            match one_of("metrics", m, &[("mmd", 0), ("a-distance", 1), ("coral", 2)])? {
                0 => mmd = true,
                1 => adist = true,
                _ => coral = true,
            }
        }
        let mmd = if mmd { Some(self.mmd_settings()?) } else { None };
        let a_distance = if adist {
            let mut a = ADistanceSettings { seed: self.seed, ..ADistanceSettings::default() };
            if let Some(c) = &self.c_grid {
                a.c_grid = c.clone();
            }
            if self.folds > 0 {
                a.split = Split::KFold { k: self.folds };
            }
            Some(a)
        } else {
            None
        };
        Ok(DivergenceSettings { mmd, a_distance, coral })
    }

    fn mmd_settings(&self) -> Result<MmdSettings> {
        let family = one_of(
            "kernel",
            &self.kernel,
            &[
                ("dan", Kernel::dan()),
                ("dan-paper", Kernel::gaussian_geometric(2f64.sqrt(), -16, 16)),
                ("gaussian", Kernel::gaussian()),
                ("linear", Kernel::Linear),
            ],
        )?;
        let kernel = match family {
            Kernel::Linear => {
                if self.multipliers.is_some() || self.weights.is_some() {
                    return Err(invalid("kernel", "the linear kernel takes no multipliers or weights"));
                }
                Kernel::Linear
            }
            Kernel::Gaussian { multipliers, weights } => {
                let multipliers = self.multipliers.clone().unwrap_or(multipliers);
                let weights = match &self.weights {
                    Some(w) => w.clone(),
                    None if self.multipliers.is_some() => vec![1.0; multipliers.len()],
                    None => weights,
                };
                Kernel::Gaussian { multipliers, weights }
            }
        };
        let bandwidth = match one_of("bandwidth", &self.bandwidth, &[("mean-sq-dist", 0), ("median", 1), ("fixed", 2)])?
        {
            0 => BandwidthPolicy::MeanSquaredDistance,
            1 => BandwidthPolicy::Median { max_points: self.median_max_points },
            _ => BandwidthPolicy::Fixed {
                sigma2: self.sigma2.ok_or_else(|| invalid("sigma2", "the fixed bandwidth needs a value"))?,
            },
        };
        if self.sigma2.is_some() && !matches!(bandwidth, BandwidthPolicy::Fixed { .. }) {
            return Err(invalid("sigma2", "is only used with the fixed bandwidth"));
        }
        let estimator = one_of(
            "estimator",
            &self.estimator,
            &[("biased", Estimator::Biased), ("unbiased", Estimator::Unbiased), ("linear", Estimator::Linear)],
        )?;
        let precision = one_of("precision", &self.precision, &[("f64", Precision::F64), ("f32", Precision::F32)])?;
        Ok(MmdSettings { kernel, bandwidth, estimator, precision, permutations: self.permutations, seed: self.seed })
    }
}

/// Parses `NAME=PATH` (a named feature file).
pub fn parse_named_path(s: &str) -> Result<(String, PathBuf)> {
    let (name, path) = s.split_once('=').ok_or_else(|| invalid("domain", format!("`{s}` is not NAME=PATH")))?;
    let (name, path) = (name.trim(), path.trim());
    if name.is_empty() || path.is_empty() {
        return Err(invalid("domain", format!("`{s}` has an empty name or path")));
    }
    Ok((name.to_string(), PathBuf::from(path)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_names() {
        let s = DivergenceOptions::default().settings().unwrap();
        assert_eq!(s, DivergenceSettings::default());
        let o = DivergenceOptions {
            metrics: vec!["MMD".into()],
            kernel: "gaussian".into(),
            multipliers: Some(vec![1.0, 2.0]),
            bandwidth: "fixed".into(),
            sigma2: Some(2.5),
            estimator: "unbiased".into(),
            precision: "f32".into(),
            permutations: 10,
            seed: 4,
            ..DivergenceOptions::default()
        };
        let s = o.settings().unwrap();
        assert!(s.a_distance.is_none() && !s.coral);
        let m = s.mmd.unwrap();
        assert_eq!(m.kernel, Kernel::Gaussian { multipliers: vec![1.0, 2.0], weights: vec![1.0, 1.0] });
        assert_eq!(m.bandwidth, BandwidthPolicy::Fixed { sigma2: 2.5 });
        assert_eq!((m.estimator, m.precision, m.permutations, m.seed), (Estimator::Unbiased, Precision::F32, 10, 4));
        let folds = DivergenceOptions { folds: 5, ..DivergenceOptions::default() };
        assert_eq!(folds.settings().unwrap().a_distance.unwrap().split, Split::KFold { k: 5 });
    }

    #[test]
    fn errors_list_the_choices() {
        let o = DivergenceOptions { estimator: "quadratic".into(), ..DivergenceOptions::default() };
        assert_eq!(
            o.settings().unwrap_err().to_string(),
            "invalid setting `estimator`: `quadratic` is not one of biased, unbiased, linear"
        );
        let o = DivergenceOptions { bandwidth: "fixed".into(), ..DivergenceOptions::default() };
        assert_eq!(
            o.settings().unwrap_err().to_string(),
            "invalid setting `sigma2`: the fixed bandwidth needs a value"
        );
        assert_eq!(parse_named_path("amazon=/x/a.npy").unwrap(), ("amazon".into(), PathBuf::from("/x/a.npy")));
        assert!(parse_named_path("a.npy").unwrap_err().to_string().contains("is not NAME=PATH"));
    }
}
