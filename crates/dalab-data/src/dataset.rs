//! Datasets by name: the `dataset:` section of an experiment YAML.
//!
//! | `name` | domains (as written in `tasks:`) | options |
//! |---|---|---|
//! | `moons` | `moons`, `moons-rotated` | [`MoonsConfig`] |
//! | `office-caltech10-surf` | `A`, `C`, `D`, `W` | [`OfficeCaltechSurfConfig`] |
//! | `amazon-reviews` | `books`, `dvd`, `electronics`, `kitchen` | [`AmazonConfig`] |
//! | `digits` | `mnist`, `usps`, `mnist-m` | [`DigitsConfig`] |
//! | `jda-digits` | `mnist`, `usps` | [`JdaDigitsConfig`] |
//! | `feature-files` | declared in YAML | [`FeatureFilesConfig`] |
//! | `image-folders` | declared in YAML | [`ImageFoldersConfig`] |
//! | `office31`, `office-home`, `visda2017`, `domainnet` | `A D W`, `Ar Cl Pr Rw`, `Synthetic Real`, `c i p q r s` | [`BenchmarkConfig`] |

use crate::amazon::AmazonConfig;
use crate::benchmarks::BenchmarkConfig;
use crate::digits::{DigitsConfig, JdaDigitsConfig};
use crate::features::FeatureFilesConfig;
use crate::image_dataset::ImageFoldersConfig;
use crate::moons::MoonsConfig;
use crate::office_caltech::OfficeCaltechSurfConfig;
use crate::{Error, Result, TaskData};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The `dataset:` section of an experiment: `name` picks the dataset, the other keys are its options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "kebab-case", deny_unknown_fields)]
pub enum DatasetConfig {
    /// The inter-twinning moons of the DANN paper, generated in code (no file needed).
    Moons(MoonsConfig),
    /// Office-Caltech10, SURF features (GFK release); protocols `full` and CORAL `standard`.
    #[serde(rename = "office-caltech10-surf")]
    OfficeCaltechSurf(OfficeCaltechSurfConfig),
    /// Amazon reviews, 5000-d counts (DANN files).
    #[serde(rename = "amazon-reviews")]
    AmazonReviews(AmazonConfig),
    /// MNIST / USPS / MNIST-M images; protocols `full` and `adda`.
    Digits(DigitsConfig),
    /// The JDA 16×16 MNIST (2000) / USPS (1800) subsets.
    #[serde(rename = "jda-digits")]
    JdaDigits(JdaDigitsConfig),
    /// The user's own feature files, one per domain.
    #[serde(rename = "feature-files")]
    FeatureFiles(FeatureFilesConfig),
    /// The user's own images: folders with one sub-folder per class, or image lists.
    #[serde(rename = "image-folders")]
    ImageFolders(ImageFoldersConfig),
    /// Office-31 (`datasets/images/office31.yaml`): an image folder with its domains and classes given.
    Office31(BenchmarkConfig),
    /// Office-Home (`datasets/images/office-home.yaml`).
    #[serde(rename = "office-home")]
    OfficeHome(BenchmarkConfig),
    /// VisDA-2017 classification (`datasets/images/visda2017.yaml`).
    Visda2017(BenchmarkConfig),
    /// DomainNet, cleaned (`datasets/images/domainnet.yaml`).
    Domainnet(BenchmarkConfig),
}

impl Default for DatasetConfig {
    fn default() -> Self {
        DatasetConfig::Moons(MoonsConfig::default())
    }
}

impl DatasetConfig {
    /// The dataset's name as written in YAML.
    pub fn name(&self) -> &'static str {
        match self {
            DatasetConfig::Moons(_) => "moons",
            DatasetConfig::OfficeCaltechSurf(_) => "office-caltech10-surf",
            DatasetConfig::AmazonReviews(_) => "amazon-reviews",
            DatasetConfig::Digits(_) => "digits",
            DatasetConfig::JdaDigits(_) => "jda-digits",
            DatasetConfig::FeatureFiles(_) => "feature-files",
            DatasetConfig::ImageFolders(_) => "image-folders",
            DatasetConfig::Office31(_) => "office31",
            DatasetConfig::OfficeHome(_) => "office-home",
            DatasetConfig::Visda2017(_) => "visda2017",
            DatasetConfig::Domainnet(_) => "domainnet",
        }
    }

    /// The benchmark and its options, for the image benchmarks.
    fn benchmark(&self) -> Option<(&'static crate::benchmarks::Benchmark, &BenchmarkConfig)> {
        match self {
            DatasetConfig::Office31(c)
            | DatasetConfig::OfficeHome(c)
            | DatasetConfig::Visda2017(c)
            | DatasetConfig::Domainnet(c) => {
                Some((crate::benchmarks::find(self.name()).expect("every benchmark variant is embedded"), c))
            }
            _ => None,
        }
    }

    /// The feature normalisation of the datasets that have one (`normalize:`).
    fn feature_norm(&mut self) -> Option<&mut crate::preprocess::FeatureNorm> {
        match self {
            DatasetConfig::OfficeCaltechSurf(c) => Some(&mut c.normalize),
            DatasetConfig::AmazonReviews(c) => Some(&mut c.normalize),
            DatasetConfig::JdaDigits(c) => Some(&mut c.normalize),
            DatasetConfig::FeatureFiles(c) => Some(&mut c.normalize),
            _ => None,
        }
    }

    /// The learned representation of the datasets that have one (`representation:`).
    fn representation_mut(&mut self) -> Option<&mut Option<crate::representation::Representation>> {
        match self {
            DatasetConfig::AmazonReviews(c) => Some(&mut c.representation),
            DatasetConfig::FeatureFiles(c) => Some(&mut c.representation),
            _ => None,
        }
    }

    /// `representation:`, where given.
    pub fn representation(&self) -> Option<crate::representation::Representation> {
        self.clone().representation_mut().and_then(|r| r.take())
    }

    /// `normalize: <name>` when the preprocessing standardises each feature per domain (which removes much of a
    /// covariate shift: divergences measured after it understate the shift), else None.
    pub fn per_domain_standardisation(&self) -> Option<String> {
        let mut c = self.clone();
        c.feature_norm().filter(|n| n.standardises_per_domain()).map(|n| format!("normalize: {}", n.name()))
    }

    /// The same dataset with its per-domain standardisation removed (`sum-zscore` → `sum`, `zscore` → `none`): the
    /// features on which a shift stays visible.
    pub fn without_per_domain_standardisation(&self) -> DatasetConfig {
        let mut c = self.clone();
        if let Some(n) = c.feature_norm() {
            *n = n.without_standardisation();
        }
        c
    }

    /// The feature normalisation as text (`normalize: …`), for datasets that have one.
    pub fn normalization(&self) -> Option<String> {
        let mut c = self.clone();
        c.feature_norm().map(|n| format!("normalize: {}", n.name()))
    }

    /// Domain names, in their canonical order.
    pub fn domains(&self) -> Vec<String> {
        match self {
            DatasetConfig::Moons(_) => vec!["moons".into(), "moons-rotated".into()],
            DatasetConfig::OfficeCaltechSurf(_) => OfficeCaltechSurfConfig::domain_names(),
            DatasetConfig::AmazonReviews(_) => AmazonConfig::domain_names(),
            DatasetConfig::Digits(_) => DigitsConfig::domain_names(),
            DatasetConfig::JdaDigits(_) => JdaDigitsConfig::domain_names(),
            DatasetConfig::FeatureFiles(c) => c.domain_names(),
            DatasetConfig::ImageFolders(c) => c.domain_names(),
            _ => self.benchmark().map_or_else(Vec::new, |(b, _)| b.domains.iter().map(|d| d.key.clone()).collect()),
        }
    }

    /// The manifests (`dalab data fetch NAME`) whose files this dataset reads.
    pub fn manifests(&self) -> Vec<&'static str> {
        match self {
            DatasetConfig::OfficeCaltechSurf(_) => vec![crate::office_caltech::MANIFEST],
            DatasetConfig::AmazonReviews(_) => vec![crate::amazon::MANIFEST],
            DatasetConfig::Digits(_) => vec!["mnist", "mnist-5k", "usps", "mnist-m"],
            DatasetConfig::JdaDigits(_) => vec!["jda-digits"],
            _ => vec![],
        }
    }

    /// Checks the options; the message starts with the key path below `dataset.`.
    pub fn validate(&self) -> std::result::Result<(), String> {
        match self {
            DatasetConfig::Moons(c) => c.validate(),
            DatasetConfig::OfficeCaltechSurf(c) => c.validate(),
            DatasetConfig::AmazonReviews(c) => c.representation.as_ref().map_or(Ok(()), |r| r.validate()),
            DatasetConfig::JdaDigits(_) => Ok(()),
            DatasetConfig::Digits(c) => c.validate(),
            DatasetConfig::FeatureFiles(c) => c.validate(),
            DatasetConfig::ImageFolders(c) => c.validate(),
            _ => self.benchmark().map_or(Ok(()), |(b, c)| c.resolve(b).validate()),
        }
    }

    /// Checks that `source → target` is a task of this dataset without loading anything: two distinct domains
    /// of it (and, for `moons`, the one task moons→moons-rotated). A multi-source task names its sources with `+`
    /// (`dvd+electronics→books`): each a domain, all distinct and other than the target. The message names the
    /// problem.
    pub fn check_task(&self, source: &str, target: &str) -> std::result::Result<(), String> {
        if let Some(sources) = multi_sources(source)? {
            for s in &sources {
                self.check_task(s, target)?;
            }
            return Ok(());
        }
        let domains = self.domains();
        for d in [source, target] {
            if !domains.iter().any(|k| k == d) {
                return Err(format!("dataset `{}` has no domain `{d}` (domains: {})", self.name(), domains.join(", ")));
            }
        }
        if source == target {
            return Err(format!("source and target are the same domain `{source}`"));
        }
        if matches!(self, DatasetConfig::Moons(_)) && (source, target) != ("moons", "moons-rotated") {
            return Err(format!("dataset `moons` has one task, moons→moons-rotated, not {source}→{target}"));
        }
        Ok(())
    }

    /// Loads the data of task `source → target`, applying the dataset's protocol. `data_dir` is where
    /// dataset files are looked up (relative paths of `feature-files`/`image-folders` too).
    /// A multi-source task (`a+b→c`) is loaded as its single-source tasks, their sources stacked in order
    /// ([`TaskData::multi_source`]), with each source's own test split where the dataset has one (read from the
    /// task `c→a`, in which the source is the target).
    ///
    /// With a `representation:` the task is loaded without it, then the representation is fitted once on all of
    /// the task's (stacked) source and target training features and maps every split.
    pub fn load_task(&self, source: &str, target: &str, data_dir: &Path) -> Result<TaskData> {
        if let Some(r) = self.representation() {
            let mut raw = self.clone();
            *raw.representation_mut().expect("the dataset has the key") = None;
            return r.apply(raw.load_task(source, target, data_dir)?);
        }
        if let Some(sources) = multi_sources(source).map_err(Error::Invalid)? {
            let parts =
                sources.iter().map(|s| self.load_task(s, target, data_dir)).collect::<Result<Vec<TaskData>>>()?;
            let tests = sources
                .iter()
                .map(|s| self.load_task(target, s, data_dir).map(|t| t.target_test))
                .collect::<Result<Vec<_>>>()?;
            return TaskData::multi_source(parts, tests);
        }
        let domains = self.domains();
        for d in [source, target] {
            if !domains.iter().any(|k| k == d) {
                return Err(Error::Invalid(format!(
                    "dataset `{}` has no domain `{d}` (domains: {})",
                    self.name(),
                    domains.join(", ")
                )));
            }
        }
        if !matches!(self, DatasetConfig::Moons(_)) {
            // (moons::task validates itself, naming `moons.<key>`.)
            self.validate().map_err(|e| Error::Invalid(format!("dataset.{e}")))?;
        }
        match self {
            DatasetConfig::Moons(c) => {
                if (source, target) != ("moons", "moons-rotated") {
                    return Err(Error::Invalid(format!(
                        "dataset `moons` has one task, moons→moons-rotated, not {source}→{target}"
                    )));
                }
                crate::moons::task(c)
            }
            DatasetConfig::OfficeCaltechSurf(c) => c.load_task(source, target, data_dir),
            DatasetConfig::AmazonReviews(c) => c.load_task(source, target, data_dir),
            DatasetConfig::Digits(c) => c.load_task(source, target, data_dir),
            DatasetConfig::JdaDigits(c) => c.load_task(source, target, data_dir),
            DatasetConfig::FeatureFiles(c) => c.load_task(source, target, data_dir),
            DatasetConfig::ImageFolders(c) => c.load_task(source, target, data_dir),
            _ => {
                let (b, c) = self.benchmark().expect("the remaining variants are benchmarks");
                c.load_task(b, source, target, data_dir)
            }
        }
    }
}

/// The sources of a multi-source task `a+b+…` (None for a single source); an error for an empty or repeated one.
fn multi_sources(source: &str) -> std::result::Result<Option<Vec<&str>>, String> {
    if !source.contains('+') {
        return Ok(None);
    }
    let parts: Vec<&str> = source.split('+').map(str::trim).collect();
    if let Some(i) = parts.iter().position(|p| p.is_empty()) {
        return Err(format!("source `{source}`: source {} of the `+` list is empty", i + 1));
    }
    for (i, p) in parts.iter().enumerate() {
        if parts[..i].contains(p) {
            return Err(format!("source `{source}`: domain `{p}` is listed twice"));
        }
    }
    Ok(Some(parts))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Axis;

    /// Per-domain standardisation is recognised and removed for the divergence reports; other normalisations stay.
    #[test]
    fn per_domain_standardisation_is_named_and_removed() {
        let cfg = |y: &str| -> DatasetConfig { serde_saphyr::from_str(y).unwrap() };
        let surf = cfg("name: office-caltech10-surf");
        assert_eq!(surf.per_domain_standardisation().as_deref(), Some("normalize: sum-zscore"));
        let raw = surf.without_per_domain_standardisation();
        assert_eq!(raw.normalization().as_deref(), Some("normalize: sum"));
        assert_eq!(raw.per_domain_standardisation(), None);
        let z = cfg("{name: amazon-reviews, normalize: zscore}");
        assert_eq!(z.without_per_domain_standardisation().normalization().as_deref(), Some("normalize: none"));
        let l2 = cfg("name: jda-digits");
        assert_eq!((l2.per_domain_standardisation(), l2.normalization().as_deref()), (None, Some("normalize: l2")));
        assert_eq!(cfg("name: moons").normalization(), None);
    }

    #[test]
    fn check_task_without_loading() {
        let m = DatasetConfig::default();
        assert!(m.check_task("moons", "moons-rotated").is_ok());
        assert!(m.check_task("moons-rotated", "moons").unwrap_err().contains("one task"));
        let o: DatasetConfig = serde_saphyr::from_str("name: office-caltech10-surf\n").unwrap();
        assert!(o.check_task("A", "W").is_ok());
        assert!(o.check_task("A", "A").unwrap_err().contains("same domain"));
        assert!(o.check_task("A", "X").unwrap_err().contains("no domain `X`"));
        // Multi-source tasks: every source checked; repeated, empty or target sources are errors.
        assert!(o.check_task("A+C+D", "W").is_ok());
        assert!(o.check_task("A+W", "W").unwrap_err().contains("same domain `W`"));
        assert_eq!(o.check_task("A+A", "W").unwrap_err(), "source `A+A`: domain `A` is listed twice");
        assert_eq!(o.check_task("A+", "W").unwrap_err(), "source `A+`: source 2 of the `+` list is empty");
        assert!(o.check_task("A+X", "W").unwrap_err().contains("no domain `X`"));
    }

    /// A multi-source task stacks its sources in order and remembers each one's rows; the target is the same.
    #[test]
    fn multi_source_tasks_stack_their_sources() {
        let dir = tempfile::tempdir().unwrap();
        for (name, rows) in [("a", vec![0.0, 1.0]), ("b", vec![2.0, 3.0, 4.0]), ("c", vec![5.0])] {
            let mut body = String::from("f1,f2,label\n");
            for (i, v) in rows.iter().enumerate() {
                body.push_str(&format!("{v},{v},{}\n", i % 2));
            }
            std::fs::write(dir.path().join(format!("{name}.csv")), body).unwrap();
        }
        let cfg: DatasetConfig = serde_saphyr::from_str(
            "name: feature-files\ndomains: [{name: a, path: a.csv}, {name: b, path: b.csv}, {name: c, path: c.csv}]\n",
        )
        .unwrap();
        let t = cfg.load_task("b+a", "c", dir.path()).unwrap();
        assert_eq!(t.source.name, "b+a");
        assert_eq!(t.source_domains, vec![("b".to_string(), 0..3), ("a".to_string(), 3..5)]);
        assert_eq!(t.source.y, vec![0, 1, 0, 0, 1]);
        let x = t.source.dense_x().unwrap();
        assert_eq!(x.index_axis(ndarray::Axis(1), 0).iter().copied().collect::<Vec<f32>>(), [2.0, 3.0, 4.0, 0.0, 1.0]);
        assert_eq!(t.target.len(), 1);
        assert_eq!(t.source_tests.len(), 2);
        assert!(t.source_tests.iter().all(Option::is_none), "no test files declared");
        assert_eq!(cfg.load_task("a", "c", dir.path()).unwrap().source_domains, vec![("a".to_string(), 0..2)]);
    }

    /// A representation is fitted once per task, on all stacked sources and the target: a multi-source task maps
    /// every source with the same map (its features equal fitting the map on those rows directly).
    #[test]
    fn representation_is_fitted_once_on_the_stacked_task() {
        let dir = tempfile::tempdir().unwrap();
        for (name, rows) in [("a", vec![0.0, 1.0, 3.0]), ("b", vec![2.0, 3.0, 4.0, 1.0]), ("c", vec![5.0, 0.5])] {
            let mut body = String::from("f1,f2,label\n");
            for (i, v) in rows.iter().enumerate() {
                body.push_str(&format!("{v},{},{}\n", (i as f64) * 0.5, i % 2));
            }
            std::fs::write(dir.path().join(format!("{name}.csv")), body).unwrap();
        }
        let cfg: DatasetConfig = serde_saphyr::from_str(
            "name: feature-files\nrepresentation: {kind: msda, layers: 2, noise: 0.3}\n\
             domains: [{name: a, path: a.csv}, {name: b, path: b.csv}, {name: c, path: c.csv}]\n",
        )
        .unwrap();
        assert!(cfg.representation().is_some());
        let t = cfg.load_task("b+a", "c", dir.path()).unwrap();
        assert_eq!(t.source.x.shape(), vec![7, 6]);
        assert_eq!(t.source_domains, vec![("b".to_string(), 0..4), ("a".to_string(), 4..7)]);
        let mut raw = cfg.clone();
        *raw.representation_mut().unwrap() = None;
        let r = raw.load_task("b+a", "c", dir.path()).unwrap();
        let two = |d: &crate::Domain| d.dense_x().unwrap().clone().into_dimensionality::<ndarray::Ix2>().unwrap();
        let all = ndarray::concatenate(Axis(0), &[two(&r.source).view(), two(&r.target).view()]).unwrap();
        let (_, fitted) = crate::representation::Msda::fit(all.view(), 2, 0.3, 1e-5).unwrap();
        assert_eq!(two(&t.source), fitted.slice(ndarray::s![..7, ..]));
        assert_eq!(two(&t.target), fitted.slice(ndarray::s![7.., ..]));
    }

    #[test]
    fn yaml_names_defaults_and_unknown_keys() {
        let c: DatasetConfig =
            serde_saphyr::from_str("name: office-caltech10-surf\nprotocol: standard\nsample_seed: 3\n").unwrap();
        assert_eq!(c.name(), "office-caltech10-surf");
        assert_eq!(c.domains(), vec!["A", "C", "D", "W"]);
        match &c {
            DatasetConfig::OfficeCaltechSurf(o) => {
                assert_eq!(o.sample_seed, 3);
                assert_eq!(o.normalize, crate::preprocess::FeatureNorm::SumZscore);
            }
            _ => panic!("wrong variant"),
        }
        for (y, name) in [
            ("name: amazon-reviews\ntransform: log1p\n", "amazon-reviews"),
            ("name: digits\nprotocol: adda\nsize: 28\n", "digits"),
            ("name: jda-digits\n", "jda-digits"),
            ("name: moons\n", "moons"),
        ] {
            let c: DatasetConfig = serde_saphyr::from_str(y).unwrap();
            assert_eq!(c.name(), name);
            // Round trip through YAML keeps the variant.
            let back: DatasetConfig = serde_saphyr::from_str(&serde_saphyr::to_string(&c).unwrap()).unwrap();
            assert_eq!(back, c);
        }
        assert!(serde_saphyr::from_str::<DatasetConfig>("name: digits\nsizes: 3\n").is_err());
        assert!(serde_saphyr::from_str::<DatasetConfig>("name: amazon-reviews\ntransform: sqrt\n").is_err());
        let c: DatasetConfig = serde_saphyr::from_str("name: digits\nchannels: 2\n").unwrap();
        assert_eq!(c.validate().unwrap_err(), "channels: must be 1 or 3, got 2");
        let e = c.load_task("mnist", "svhn", Path::new(".")).unwrap_err().to_string();
        assert!(e.contains("no domain `svhn`") && e.contains("mnist, usps, mnist-m"), "{e}");
    }
}
