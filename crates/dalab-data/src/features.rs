//! Feature matrices from files, and the generic `feature-files` dataset declared entirely in YAML.
//!
//! ```yaml
//! dataset:
//!   name: feature-files
//!   normalize: l2            # none | l2 | zscore | sum-zscore | sum (per domain)
//!   label_offset: -1         # added to every label read (here: labels stored 1..K)
//!   classes: [a, b, c]       # optional; default "0".."K-1" with K = 1 + the largest label
//!   domains:
//!     - name: amazon
//!       path: my_feats/amazon.mat     # relative to the data directory, or absolute
//!       features: fts                 # variable in a .mat/.npz (optional when there is one)
//!       labels: labels                # variable in the same .mat/.npz
//!     - name: webcam
//!       path: my_feats/webcam_x.npy
//!       labels_path: my_feats/webcam_y.npy
//!     - name: dslr
//!       path: my_feats/dslr.csv       # CSV: labels in a column, by default the last
//!       label_column: -1
//!     - name: usps
//!       path: my_feats/usps.mat       # one sample per column (the JDA/GFK MAT releases)
//!       features: X
//!       labels: Y
//!       layout: samples-as-columns
//! ```

use crate::preprocess::{FeatureNorm, flatten_rows, to_f32_dyn};
use crate::{Domain, Error, Result, TaskData};
use ndarray::{Array2, Axis};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The most classes a `feature-files` dataset may have: labels (after `label_offset`) are integers in
/// `0..MAX_CLASSES`, checked as the files are read, before anything is allocated per class.
pub const MAX_CLASSES: i64 = 100_000;

/// Variable names taken as "the obvious one" when a .mat/.npz holds several and no key is given.
const OBVIOUS_KEYS: [&str; 6] = ["X", "x", "fts", "features", "feats", "data"];

/// Reads a numeric matrix from `.npy`, `.npz`, `.csv`/`.tsv`/`.txt` (optionally `.gz`), `.mat` or `.h5`.
///
/// `key` picks a variable in a `.mat`/`.npz`; with `None` the only numeric one is taken, or else the one
/// named `X`, `x`, `fts`, `features`, `feats` or `data`; otherwise the error lists the available keys.
/// For `.h5`/`.hdf5` the key is the dataset's path (`train/data`) and is required.
/// 1-d arrays become one column; arrays with more than 2 dimensions are flattened to `[n, rest]`.
pub fn read_matrix(path: &Path, key: Option<&str>) -> Result<Array2<f64>> {
    let name = crate::formats::lower_name(path);
    let base = name.strip_suffix(".gz").unwrap_or(&name);
    if base.ends_with(".npy") {
        if name.ends_with(".gz") {
            let b = crate::formats::read_maybe_gz(path)?;
            return crate::formats::npy::parse_npy(&b).map(flatten_rows).map_err(|m| Error::format(path, m));
        }
        return crate::formats::npy::read_npy(path).map(flatten_rows);
    }
    if base.ends_with(".npz") {
        let z = crate::formats::npy::Npz::open(path)?;
        let key = key.or_else(|| {
            if z.arrays.len() == 1 {
                return None;
            }
            let hits: Vec<&str> = OBVIOUS_KEYS.into_iter().filter(|k| z.arrays.iter().any(|(n, _)| n == k)).collect();
            if hits.len() == 1 { Some(hits[0]) } else { None }
        });
        return z.get(key).map(|a| flatten_rows(a.clone()));
    }
    if base.ends_with(".mat") {
        let m = crate::formats::mat::MatFile::open(path)?;
        let key = key.or_else(|| {
            let numeric = m.vars.iter().filter(|v| v.array().is_some()).count();
            if numeric == 1 {
                return None;
            }
            let hits: Vec<&str> = OBVIOUS_KEYS.into_iter().filter(|k| m.vars.iter().any(|v| v.name == *k)).collect();
            if hits.len() == 1 { Some(hits[0]) } else { None }
        });
        return m.array(key).map(flatten_rows);
    }
    if base.ends_with(".h5") || base.ends_with(".hdf5") {
        let key =
            key.ok_or_else(|| Error::format(path, "an HDF5 file needs the dataset's path as key (e.g. `train/data`)"))?;
        return crate::formats::hdf5::read_dataset(path, key).map(flatten_rows);
    }
    if base.ends_with(".csv") || base.ends_with(".tsv") || base.ends_with(".txt") || base.ends_with(".dat") {
        return crate::formats::text::read(path, None, None);
    }
    Err(Error::format(path, "unknown matrix format (want .npy, .npz, .mat, .h5, .csv, .tsv, .txt, optionally .gz)"))
}

/// Variable names taken as the labels of a .mat/.npz when no key is given ([`read_samples`]).
const OBVIOUS_LABEL_KEYS: [&str; 5] = ["labels", "label", "Y", "y", "gnd"];

/// A features matrix with one sample per row, for tools that need no labels (`dalab divergence`): `layout`
/// says how the file stores its samples, and when a .mat/.npz also holds labels (the variable `labels`, else
/// `Y_src` for the features `X_src`, else one named `labels`, `label`, `Y`, `y` or `gnd`) their count must match the samples — a file that stores one
/// sample per column is then an error that says so, not a transposed matrix measured in silence.
pub fn read_samples(path: &Path, key: Option<&str>, labels: Option<&str>, layout: Layout) -> Result<Array2<f64>> {
    let x = read_matrix(path, key)?;
    let x = match layout {
        Layout::Rows => x,
        Layout::SamplesAsColumns => x.reversed_axes().as_standard_layout().to_owned(),
    };
    let name = crate::formats::lower_name(path);
    let keyed = name.ends_with(".mat") || name.ends_with(".npz");
    if labels.is_some() && !keyed {
        return Err(Error::format(path, "a labels variable needs a .mat or .npz file"));
    }
    let label_key = match labels {
        Some(k) => Some(k.to_string()),
        None if keyed => {
            let names: Vec<String> = if name.ends_with(".mat") {
                crate::formats::mat::MatFile::open(path)?.vars.into_iter().map(|v| v.name).collect()
            } else {
                crate::formats::npy::Npz::open(path)?.arrays.into_iter().map(|(n, _)| n).collect()
            };
            // The features' counterpart first (`X_src` → `Y_src`, the JDA/GFK naming), then the obvious names.
            let counterpart = key.and_then(|k| k.strip_prefix(['X', 'x']).map(|rest| format!("Y{rest}")));
            let mut wanted: Vec<String> = counterpart.into_iter().collect();
            wanted.extend(OBVIOUS_LABEL_KEYS.iter().map(|k| k.to_string()));
            wanted.into_iter().find(|k| names.contains(k) && Some(k.as_str()) != key)
        }
        None => None,
    };
    let Some(lk) = label_key else { return Ok(x) };
    let count = read_matrix(path, Some(&lk))?.len();
    if count == x.nrows() {
        return Ok(x);
    }
    let hint = match layout {
        Layout::Rows if count == x.ncols() => {
            "; the file stores one sample per column: give the layout `samples-as-columns`".to_string()
        }
        Layout::SamplesAsColumns if count == x.ncols() => {
            "; the file stores one sample per row: drop the layout `samples-as-columns`".to_string()
        }
        _ => String::new(),
    };
    Err(Error::format(
        path,
        format!("{count} labels (`{lk}`) for {} samples of {} features{hint}", x.nrows(), x.ncols()),
    ))
}

/// How a features matrix stores its samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// One sample per row (`[n, d]`).
    #[default]
    Rows,
    /// One sample per column (`[d, n]`, as the JDA and GFK MAT files store them): transposed when read.
    SamplesAsColumns,
}

/// One domain of a `feature-files` dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureDomain {
    /// Domain name, as written in `tasks:`.
    pub name: String,
    /// Features file (format by extension), relative to the data directory or absolute.
    pub path: PathBuf,
    /// Variable holding the features in a `.mat`/`.npz` (see [`read_matrix`] for the default).
    #[serde(default)]
    pub features: Option<String>,
    /// Variable holding the labels in the same `.mat`/`.npz` (or in `labels_path`).
    #[serde(default)]
    pub labels: Option<String>,
    /// A separate file holding the labels (one per sample).
    #[serde(default)]
    pub labels_path: Option<PathBuf>,
    /// For tables (CSV, text, npy): the column holding the labels; negative counts from the end (-1 = last).
    /// Default for CSV/text without `labels`/`labels_path`: -1.
    #[serde(default)]
    pub label_column: Option<i64>,
    /// A separate labelled test file of the same layout, used as the target test set when this domain is
    /// the target.
    #[serde(default)]
    pub test_path: Option<PathBuf>,
    /// `rows` (default) or `samples-as-columns` (needs `labels` or `labels_path`).
    #[serde(default)]
    pub layout: Layout,
}

/// The `feature-files` dataset: the user's own feature files, one per domain, declared in YAML.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureFilesConfig {
    pub domains: Vec<FeatureDomain>,
    /// Class names; default `"0"`..`"K-1"` with K = 1 + the largest label of the task's domains.
    #[serde(default)]
    pub classes: Option<Vec<String>>,
    /// Added to every label read (e.g. -1 when labels are stored 1..K).
    #[serde(default)]
    pub label_offset: i64,
    /// Normalisation applied to each domain (with its own statistics).
    #[serde(default)]
    pub normalize: FeatureNorm,
    /// A representation fitted on the task's unlabelled training features ([`crate::representation`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub representation: Option<crate::representation::Representation>,
}

impl FeatureFilesConfig {
    pub fn domain_names(&self) -> Vec<String> {
        self.domains.iter().map(|d| d.name.clone()).collect()
    }

    /// Checks the declaration; errors name the key below `dataset.`.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.domains.is_empty() {
            return Err("domains: at least one domain is needed".into());
        }
        for (i, d) in self.domains.iter().enumerate() {
            if d.name.is_empty() {
                return Err(format!("domains[{i}].name: must not be empty"));
            }
            if self.domains[..i].iter().any(|o| o.name == d.name) {
                return Err(format!("domains[{i}].name: `{}` is declared twice", d.name));
            }
            if d.label_column.is_some() && (d.labels.is_some() || d.labels_path.is_some()) {
                return Err(format!("domains[{i}].label_column: give either label_column or labels/labels_path"));
            }
            if d.layout == Layout::SamplesAsColumns && d.labels.is_none() && d.labels_path.is_none() {
                return Err(format!(
                    "domains[{i}].layout: `samples-as-columns` needs the labels in `labels` or `labels_path`"
                ));
            }
        }
        if let Some(r) = &self.representation {
            r.validate()?;
        }
        if let Some(c) = &self.classes
            && c.is_empty()
        {
            return Err("classes: must not be empty when given".into());
        }
        if let Some(c) = &self.classes
            && c.len() as i64 > MAX_CLASSES
        {
            return Err(format!("classes: at most {MAX_CLASSES} classes (the class limit), got {}", c.len()));
        }
        Ok(())
    }

    /// Loads source, target and (when declared) the target's test file.
    pub fn load_task(&self, source: &str, target: &str, data_dir: &Path) -> Result<TaskData> {
        self.validate().map_err(|e| Error::Invalid(format!("dataset.{e}")))?;
        let find = |n: &str| {
            self.domains.iter().find(|d| d.name == n).ok_or_else(|| {
                Error::Invalid(format!(
                    "dataset `feature-files` has no domain `{n}` (domains: {})",
                    self.domain_names().join(", ")
                ))
            })
        };
        let (s, t) = (find(source)?, find(target)?);
        let (xs, ys) = self.read_domain(s, &s.path, data_dir)?;
        let (xt, yt) = self.read_domain(t, &t.path, data_dir)?;
        let test = match &t.test_path {
            Some(p) => Some(self.read_domain(t, p, data_dir)?),
            None => None,
        };
        if xs.ncols() != xt.ncols() {
            return Err(Error::Invalid(format!(
                "domains `{source}` and `{target}` have {} and {} features",
                xs.ncols(),
                xt.ncols()
            )));
        }
        let max = ys.iter().chain(&yt).chain(test.iter().flat_map(|t| &t.1)).copied().max().unwrap_or(0);
        let classes = match &self.classes {
            Some(c) => c.clone(),
            None => (0..=max).map(|k| k.to_string()).collect(),
        };
        let src = Domain::new(source, to_f32_dyn(&xs), ys, classes.clone())?;
        let tgt = Domain::new(target, to_f32_dyn(&xt), yt, classes.clone())?;
        let test = test.map(|(x, y)| Domain::new(format!("{target}-test"), to_f32_dyn(&x), y, classes)).transpose()?;
        TaskData::new(src, tgt, test)
    }

    /// Reads features and labels of one domain from `file` (its `path` or `test_path`).
    fn read_domain(&self, d: &FeatureDomain, file: &Path, data_dir: &Path) -> Result<(Array2<f64>, Vec<i64>)> {
        let file = data_dir.join(file);
        let lname = crate::formats::lower_name(&file);
        let base = lname.strip_suffix(".gz").unwrap_or(&lname);
        let is_table =
            !(base.ends_with(".mat") || base.ends_with(".npz") || base.ends_with(".h5") || base.ends_with(".hdf5"));
        let read_x = || {
            let x = read_matrix(&file, d.features.as_deref())?;
            Ok::<_, Error>(if d.layout == Layout::SamplesAsColumns {
                x.reversed_axes().as_standard_layout().to_owned()
            } else {
                x
            })
        };
        let (mut x, raw_labels, label_file) = if let Some(lp) = &d.labels_path {
            let lp = data_dir.join(lp);
            let x = read_x()?;
            let y = read_matrix(&lp, d.labels.as_deref())?;
            (x, y.into_iter().collect::<Vec<f64>>(), lp)
        } else if let Some(key) = &d.labels {
            let x = read_x()?;
            let y = read_matrix(&file, Some(key))?;
            (x, y.into_iter().collect(), file.clone())
        } else if is_table || d.label_column.is_some() {
            let t = read_matrix(&file, d.features.as_deref())?;
            let w = t.ncols() as i64;
            let c = d.label_column.unwrap_or(-1);
            let c = if c < 0 { w + c } else { c };
            if !(0..w).contains(&c) {
                return Err(Error::format(&file, format!("label_column {c} is outside the {w} columns")));
            }
            let y: Vec<f64> = t.column(c as usize).to_vec();
            let keep: Vec<usize> = (0..t.ncols()).filter(|&j| j != c as usize).collect();
            (t.select(Axis(1), &keep), y, file.clone())
        } else {
            return Err(Error::Invalid(format!(
                "dataset.domains `{}`: say which variable of {} holds the labels (`labels:`) or give `labels_path:`",
                d.name,
                file.display()
            )));
        };
        if raw_labels.len() != x.nrows() {
            let hint = match d.layout {
                Layout::Rows if raw_labels.len() == x.ncols() => format!(
                    " (the features have {} columns: if they store one sample per column, set `layout: \
                     samples-as-columns` for domain `{}`)",
                    x.ncols(),
                    d.name
                ),
                _ => String::new(),
            };
            return Err(Error::format(
                &label_file,
                format!("{} labels for {} samples in {}{hint}", raw_labels.len(), x.nrows(), file.display()),
            ));
        }
        // Every feature must be finite in f32 (the precision of training): a NaN, an infinity or a value beyond
        // ±f32::MAX (finite in the file, infinite once converted) is an error naming the file, sample and feature.
        if let Some(((r, c), v)) = x.indexed_iter().find(|(_, v)| !(v.is_finite() && v.abs() <= f64::from(f32::MAX))) {
            let what = if v.is_finite() { "is beyond f32's range (±3.4e38)" } else { "is not finite" };
            return Err(Error::format(
                &file,
                format!("domain `{}`: sample {r}, feature {c} (0-based): value {v} {what}", d.name),
            ));
        }
        let mut y = Vec::with_capacity(raw_labels.len());
        for (i, v) in raw_labels.iter().enumerate() {
            // In f64: a label of 2^63 or more, or a large offset, must not overflow an i64.
            let l = v.round() + self.label_offset as f64;
            if v.fract() != 0.0 || l < 0.0 {
                return Err(Error::format(
                    &label_file,
                    format!("label {v} of sample {i} is not an integer >= 0 after label_offset {}", self.label_offset),
                ));
            }
            if l >= MAX_CLASSES as f64 {
                return Err(Error::format(
                    &label_file,
                    format!(
                        "label {v} of sample {i} is {l} after label_offset {}: beyond the class limit (labels must be \
                         below {MAX_CLASSES})",
                        self.label_offset
                    ),
                ));
            }
            y.push(l as i64);
        }
        self.normalize.apply(&mut x);
        Ok((x, y))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::{mat, npy};
    use ndarray::array;

    #[test]
    fn read_samples_checks_the_orientation_against_the_labels() {
        let dir = tempfile::tempdir().unwrap();
        // 3 samples of 4 features stored one per column (4 × 3), with 3 labels: the JDA/GFK layout.
        let cols = array![[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0], [1.5, 2.5, 3.5]];
        let y = array![[1.0], [2.0], [3.0]];
        let f = dir.path().join("usps.mat");
        mat::write(&f, &[("X", &cols, mat::WriteClass::Double), ("Y", &y, mat::WriteClass::Double)], false).unwrap();
        let e = read_samples(&f, Some("X"), None, Layout::Rows).unwrap_err().to_string();
        assert!(e.contains("usps.mat") && e.contains("3 labels (`Y`) for 4 samples of 3 features"), "{e}");
        assert!(e.contains("one sample per column: give the layout `samples-as-columns`"), "{e}");
        let x = read_samples(&f, Some("X"), None, Layout::SamplesAsColumns).unwrap();
        assert_eq!(x.shape(), &[3, 4]);
        assert_eq!(x.row(1).to_vec(), vec![2.0, 5.0, 8.0, 2.5]);
        // Rows already: the obvious labels fit, nothing changes; a named labels variable is used and checked.
        let rows = cols.t().to_owned();
        let g = dir.path().join("rows.npz");
        npy::write_npz(&g, &[("x", &rows.clone().into_dyn()), ("gnd", &array![1.0, 2.0, 3.0].into_dyn())], false)
            .unwrap();
        assert_eq!(read_samples(&g, Some("x"), None, Layout::Rows).unwrap(), rows);
        let e = read_samples(&g, Some("x"), None, Layout::SamplesAsColumns).unwrap_err().to_string();
        assert!(e.contains("drop the layout `samples-as-columns`"), "{e}");
        let e = read_samples(&g, Some("x"), Some("nope"), Layout::Rows).unwrap_err().to_string();
        assert!(e.contains("nope"), "{e}");
        // No labels in the file, or a format without variables: no check.
        let h = dir.path().join("x.npy");
        npy::write_npy(&h, &cols.clone().into_dyn(), false).unwrap();
        assert_eq!(read_samples(&h, None, None, Layout::Rows).unwrap(), cols);
        assert!(read_samples(&h, None, Some("y"), Layout::Rows).is_err());
    }

    #[test]
    fn read_matrix_every_format_and_key_errors() {
        let dir = tempfile::tempdir().unwrap();
        let a = array![[1.0, 2.0], [3.0, 4.0], [5.0, 6.5]];
        let p = dir.path();
        npy::write_npy(&p.join("a.npy"), &a.clone().into_dyn(), false).unwrap();
        npy::write_npz(
            &p.join("a.npz"),
            &[("fts", &a.clone().into_dyn()), ("y", &array![1.0, 2.0, 3.0].into_dyn())],
            true,
        )
        .unwrap();
        npy::write_npz(&p.join("b.npz"), &[("p", &a.clone().into_dyn()), ("q", &a.clone().into_dyn())], false).unwrap();
        std::fs::write(p.join("a.csv"), "1,2\n3,4\n5,6.5\n").unwrap();
        mat::write(
            &p.join("a.mat"),
            &[("fts", &a, mat::WriteClass::Double), ("labels", &a, mat::WriteClass::Uint8)],
            true,
        )
        .unwrap();
        for f in ["a.npy", "a.npz", "a.csv", "a.mat"] {
            assert_eq!(read_matrix(&p.join(f), None).unwrap(), a, "{f}");
        }
        assert_eq!(read_matrix(&p.join("a.npz"), Some("y")).unwrap().shape(), &[3, 1]);
        let e = read_matrix(&p.join("b.npz"), None).unwrap_err().to_string();
        assert!(e.contains("b.npz") && e.contains("p [3, 2]") && e.contains("q [3, 2]"), "{e}");
        let e = read_matrix(&p.join("a.mat"), Some("nope")).unwrap_err().to_string();
        assert!(e.contains("a.mat") && e.contains("no variable `nope`") && e.contains("labels (uint8 3x2)"), "{e}");
        let e = read_matrix(&p.join("missing.npy"), None).unwrap_err().to_string();
        assert!(e.contains("missing.npy"), "{e}");
    }

    #[test]
    fn feature_files_dataset_from_yaml() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        let xa = array![[1.0, 0.0], [0.0, 2.0], [3.0, 4.0]];
        mat::write(
            &p.join("a.mat"),
            &[("fts", &xa, mat::WriteClass::Double), ("labels", &array![[1.0], [2.0], [3.0]], mat::WriteClass::Uint8)],
            false,
        )
        .unwrap();
        npy::write_npy(&p.join("b_x.npy"), &array![[1.0, 1.0], [2.0, 2.0]].into_dyn(), true).unwrap();
        npy::write_npy(&p.join("b_y.npy"), &array![3.0, 1.0].into_dyn(), false).unwrap();
        std::fs::write(p.join("c.csv"), "f1,f2,label\n0.5,0.5,2\n1,1,1\n").unwrap();
        let yaml = "domains:\n  - {name: a, path: a.mat, features: fts, labels: labels}\n  - {name: b, path: b_x.npy, labels_path: b_y.npy}\n  - {name: c, path: c.csv, test_path: c.csv}\nlabel_offset: -1\nnormalize: l2\n";
        let cfg: FeatureFilesConfig = serde_saphyr::from_str(yaml).unwrap();
        let t = cfg.load_task("a", "b", p).unwrap();
        assert_eq!(t.source.label_histogram(), vec![1, 1, 1]);
        assert_eq!(t.target.y, vec![2, 0]);
        assert!((t.source.dense_x().unwrap()[[2, 0]] - 0.6).abs() < 1e-6);
        let t = cfg.load_task("b", "c", p).unwrap();
        assert_eq!(t.target.y, vec![1, 0]);
        assert_eq!(t.target.x.shape(), &[2, 2]);
        assert_eq!(t.target_test.unwrap().len(), 2);
        // A bad label.
        let cfg2 = FeatureFilesConfig { label_offset: -2, ..cfg.clone() };
        let e = cfg2.load_task("a", "b", p).unwrap_err().to_string();
        assert!(e.contains("a.mat") && e.contains("label 1 of sample 0"), "{e}");
        // Labels beyond the class limit (2^31, i64::MAX) or made so by the offset: an error naming file and sample.
        for (label, offset) in [(2f64.powi(31), 0), (i64::MAX as f64, 1), (99_999.0, 1)] {
            npy::write_npy(&p.join("big_y.npy"), &array![0.0, label].into_dyn(), false).unwrap();
            let big = FeatureFilesConfig {
                domains: vec![FeatureDomain {
                    name: "big".into(),
                    path: "b_x.npy".into(),
                    labels_path: Some("big_y.npy".into()),
                    ..cfg.domains[1].clone()
                }],
                label_offset: offset,
                ..cfg.clone()
            };
            let e = big.read_domain(&big.domains[0], Path::new("b_x.npy"), p).unwrap_err().to_string();
            assert!(e.contains("big_y.npy") && e.contains("of sample 1") && e.contains("class limit"), "{e}");
        }
        // A NaN, an infinity or a value beyond f32 (1e39: finite in the file): the file, the sample, the feature.
        for (v, what) in [
            (f64::NAN, "value NaN is not finite"),
            (f64::INFINITY, "value inf is not finite"),
            (1e39, "value 1000000000000000000000000000000000000000 is beyond f32's range"),
        ] {
            npy::write_npy(&p.join("bad_x.npy"), &array![[1.0, 1.0], [2.0, v]].into_dyn(), false).unwrap();
            let bad = FeatureFilesConfig {
                domains: vec![FeatureDomain { name: "bad".into(), path: "bad_x.npy".into(), ..cfg.domains[1].clone() }],
                ..cfg.clone()
            };
            let e = bad.read_domain(&bad.domains[0], Path::new("bad_x.npy"), p).unwrap_err().to_string();
            assert!(e.contains("bad_x.npy: domain `bad`: sample 1, feature 1 (0-based): ") && e.contains(what), "{e}");
        }
        let many = FeatureFilesConfig { classes: Some(vec!["c".into(); 100_001]), ..cfg.clone() };
        assert_eq!(many.validate().unwrap_err(), "classes: at most 100000 classes (the class limit), got 100001");
        let e = serde_saphyr::from_str::<FeatureFilesConfig>("domains: []\nextra: 1\n").unwrap_err().to_string();
        assert!(e.contains("extra"), "{e}");
    }

    /// A MAT file with one sample per column (3 features × 4 samples, as the JDA releases store them): read as
    /// rows it is refused with a hint naming the option; with `layout: samples-as-columns` the samples are the
    /// columns, in order.
    #[test]
    fn samples_as_columns_layout() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        let x = array![[1.0, 2.0, 3.0, 4.0], [0.0, 0.5, 0.0, 0.5], [9.0, 8.0, 7.0, 6.0]];
        let y = array![[1.0, 2.0, 1.0, 2.0]];
        mat::write(&p.join("u.mat"), &[("X", &x, mat::WriteClass::Double), ("Y", &y, mat::WriteClass::Double)], false)
            .unwrap();
        let yaml = |layout: &str| {
            format!("domains:\n  - {{name: u, path: u.mat, features: X, labels: Y{layout}}}\nlabel_offset: -1\n")
        };
        let rows: FeatureFilesConfig = serde_saphyr::from_str(&yaml("")).unwrap();
        let e = rows.load_task("u", "u", p).unwrap_err().to_string();
        assert!(
            e.contains("4 labels for 3 samples") && e.contains("set `layout: samples-as-columns` for domain `u`"),
            "{e}"
        );
        let cols: FeatureFilesConfig = serde_saphyr::from_str(&yaml(", layout: samples-as-columns")).unwrap();
        let t = cols.load_task("u", "u", p).unwrap();
        assert_eq!(t.source.x.shape(), &[4, 3]);
        assert_eq!(
            t.source.dense_x().unwrap().index_axis(Axis(0), 1).iter().copied().collect::<Vec<f32>>(),
            vec![2.0f32, 0.5, 8.0]
        );
        assert_eq!(t.source.y, vec![0, 1, 0, 1]);
        // The layout needs named labels (a label column of a transposed table would be ambiguous).
        let bad: FeatureFilesConfig =
            serde_saphyr::from_str("domains:\n  - {name: c, path: c.csv, layout: samples-as-columns}\n").unwrap();
        assert_eq!(
            bad.validate().unwrap_err(),
            "domains[0].layout: `samples-as-columns` needs the labels in `labels` or `labels_path`"
        );
    }
}
