//! Amazon reviews (Blitzer et al. 2007), the 5000-d count features of the DANN code (svmlight, 0-based).
//!
//! Domains `books`, `dvd`, `electronics`, `kitchen`; 2 classes (`negative` = label -1, `positive` = +1).
//! Protocol (DANN, JMLR 2016): source = the 2000 labelled source train reviews, target = the 2000 target
//! train reviews (unlabelled for the method), target test = the target test file (books 4465, dvd 3586,
//! electronics 5681, kitchen 5945). `transform`: `counts` (default, as in the DANN code), `log1p`, or
//! `binary` (1 where the count is > 0); then the optional per-domain `normalize` (default `none`).

use crate::manifest::find;
use crate::preprocess::FeatureNorm;
use crate::representation::Representation;
use crate::{Domain, Error, Result, TaskData};
use serde::{Deserialize, Serialize};
use std::path::Path;

pub const MANIFEST: &str = "amazon-reviews";
pub const DOMAINS: [&str; 4] = ["books", "dvd", "electronics", "kitchen"];
pub const N_FEATURES: usize = 5000;

/// How word counts become features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CountTransform {
    #[default]
    Counts,
    Log1p,
    Binary,
}

/// Options of the `amazon-reviews` dataset.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AmazonConfig {
    /// `counts` (default), `log1p` or `binary`.
    pub transform: CountTransform,
    /// Per-domain normalisation after the transform (default `none`).
    pub normalize: FeatureNorm,
    /// A representation fitted on the task's unlabelled training features, e.g. `{kind: msda, layers: 5, noise:
    /// 0.5}` for DANN Table 1's mSDA columns ([`crate::representation`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub representation: Option<Representation>,
}

impl AmazonConfig {
    pub fn domain_names() -> Vec<String> {
        DOMAINS.iter().map(|d| d.to_string()).collect()
    }

    /// Loads one split (`train` or `test`) of a domain.
    pub fn load_split(&self, domain: &str, split: &str, data_dir: &Path) -> Result<Domain> {
        if !DOMAINS.contains(&domain) {
            return Err(Error::Invalid(format!(
                "dataset `amazon-reviews` has no domain `{domain}` (domains: {})",
                DOMAINS.join(", ")
            )));
        }
        let m = find(MANIFEST)?;
        let rel = format!("amazon_reviews/dann_5000d_svmlight/{domain}_{split}.svmlight");
        let path = m.require(data_dir, &rel)?;
        let s = crate::formats::svmlight::read(&path, crate::formats::svmlight::IndexBase::Zero, Some(N_FEATURES))
            .map_err(|e| m.explain(&rel, e))?;
        let y = s
            .labels
            .iter()
            .enumerate()
            .map(|(i, &l)| match l {
                v if v == -1.0 || v == 0.0 => Ok(0),
                1.0 => Ok(1),
                v => Err(m.explain(&rel, Error::format(&path, format!("label {v} of sample {i} is not ±1")))),
            })
            .collect::<Result<Vec<i64>>>()?;
        let x = match self.transform {
            CountTransform::Counts => s.dense(|v| v),
            CountTransform::Log1p => s.dense(f32::ln_1p),
            CountTransform::Binary => s.dense(|v| if v > 0.0 { 1.0 } else { 0.0 }),
        };
        let x = if self.normalize == FeatureNorm::None {
            x
        } else {
            let mut x64 = x.mapv(f64::from);
            self.normalize.apply(&mut x64);
            x64.mapv(|v| v as f32)
        };
        let name = if split == "train" { domain.to_string() } else { format!("{domain}-{split}") };
        Domain::new(name, x.into_dyn(), y, vec!["negative".into(), "positive".into()])
    }

    pub fn load_task(&self, source: &str, target: &str, data_dir: &Path) -> Result<TaskData> {
        let s = self.load_split(source, "train", data_dir)?;
        let t = self.load_split(target, "train", data_dir)?;
        let tt = self.load_split(target, "test", data_dir)?;
        TaskData::new(s, t, Some(tt))
    }
}
