//! Office-Caltech10 with SURF bag-of-words features (800-d), the GFK authors' release.
//!
//! Domains: `A` (amazon, 958), `C` (Caltech10, 1123), `D` (dslr, 157), `W` (webcam, 295); 10 classes.
//! Preprocessing (`normalize`, default `sum-zscore`): each sample divided by its sum, then each feature
//! z-scored, per domain (the GFK readme). Protocols (`protocol`):
//! - `full` (default): all source samples (the JDA/GFK unsupervised setting);
//! - `standard` (CORAL, from Saenko et al.): per class, 20 random source samples (8 when the source is
//!   D or W); the draw is seeded by `sample_seed` (the papers report 20 trials: sweep `sample_seed` 0..19).
//!   Normalisation is computed on the whole source domain before the draw.
//!
//! The target is always the whole target domain.

use crate::manifest::find;
use crate::preprocess::{FeatureNorm, to_f32_dyn};
use crate::{Domain, Error, Result, TaskData};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The manifest of the files.
pub const MANIFEST: &str = "office-caltech10-surf";

/// Domain names, their file stems and full names.
pub const DOMAINS: [(&str, &str); 4] = [("A", "amazon"), ("C", "Caltech10"), ("D", "dslr"), ("W", "webcam")];

/// Class names for labels 1..10.
pub const CLASSES: [&str; 10] = [
    "back_pack",
    "bike",
    "calculator",
    "headphones",
    "keyboard",
    "laptop_computer",
    "monitor",
    "mouse",
    "mug",
    "projector",
];

/// Source sampling protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SurfProtocol {
    /// All source samples.
    #[default]
    Full,
    /// CORAL's "standard" protocol: 20 source samples per class (8 for D/W sources), seeded.
    Standard,
}

/// Options of the `office-caltech10-surf` dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OfficeCaltechSurfConfig {
    /// Per-domain feature normalisation (default `sum-zscore`, the GFK protocol).
    pub normalize: FeatureNorm,
    /// `full` (default) or `standard`.
    pub protocol: SurfProtocol,
    /// Seed of the `standard` draw (the trial number); unused by `full`.
    pub sample_seed: u64,
    /// Source samples per class under `standard` (default: 20, or 8 for D/W).
    pub per_class: Option<usize>,
}

impl Default for OfficeCaltechSurfConfig {
    fn default() -> Self {
        Self { normalize: FeatureNorm::SumZscore, protocol: SurfProtocol::Full, sample_seed: 0, per_class: None }
    }
}

impl OfficeCaltechSurfConfig {
    pub fn domain_names() -> Vec<String> {
        DOMAINS.iter().map(|(d, _)| d.to_string()).collect()
    }

    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.per_class == Some(0) {
            return Err("per_class: must be >= 1".into());
        }
        Ok(())
    }

    /// Loads and normalises one whole domain.
    pub fn load_domain(&self, domain: &str, data_dir: &Path) -> Result<Domain> {
        let stem = DOMAINS.iter().find(|(d, _)| *d == domain).map(|(_, s)| *s).ok_or_else(|| {
            Error::Invalid(format!("dataset `office-caltech10-surf` has no domain `{domain}` (domains: A, C, D, W)"))
        })?;
        let m = find(MANIFEST)?;
        let rel = format!("office_caltech10_surf/{stem}_SURF_L10.mat");
        let path = m.require(data_dir, &rel)?;
        let read = || -> Result<(ndarray::Array2<f64>, Vec<f64>)> {
            let mat = crate::formats::mat::MatFile::open(&path)?;
            Ok((mat.matrix(Some("fts"))?, mat.vector("labels")?))
        };
        let (mut x, labels) = read().map_err(|e| m.explain(&rel, e))?;
        if x.nrows() != labels.len() || x.ncols() != 800 {
            return Err(m.explain(
                &rel,
                Error::format(
                    &path,
                    format!(
                        "`fts` is {}x{}, `labels` has {}; expected N x 800 and N",
                        x.nrows(),
                        x.ncols(),
                        labels.len()
                    ),
                ),
            ));
        }
        let y = labels_1_based(&path, &labels, CLASSES.len()).map_err(|e| m.explain(&rel, e))?;
        self.normalize.apply(&mut x);
        Domain::new(domain, to_f32_dyn(&x), y, CLASSES.iter().map(|s| s.to_string()).collect())
    }

    pub fn load_task(&self, source: &str, target: &str, data_dir: &Path) -> Result<TaskData> {
        let mut s = self.load_domain(source, data_dir)?;
        let t = self.load_domain(target, data_dir)?;
        if self.protocol == SurfProtocol::Standard {
            let k = self.per_class.unwrap_or(if source == "D" || source == "W" { 8 } else { 20 });
            let idx = crate::sampling::draw_per_class(&s.y, k, self.sample_seed, &format!("surf-standard/{source}"));
            s = crate::sampling::subset(&s, &idx);
        }
        TaskData::new(s, t, None)
    }
}

/// Labels stored as 1..=k to class indices 0..k; anything else is an error naming the file.
pub(crate) fn labels_1_based(path: &Path, labels: &[f64], k: usize) -> Result<Vec<i64>> {
    labels
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            if v.fract() == 0.0 && v >= 1.0 && v <= k as f64 {
                Ok(v as i64 - 1)
            } else {
                Err(Error::format(path, format!("label {v} of sample {i} is not in 1..={k}")))
            }
        })
        .collect()
}
