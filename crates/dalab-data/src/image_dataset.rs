//! The `image-folders` dataset: the user's images, per domain either a folder with one sub-folder per class
//! (Office-31: `office31/amazon/images`, Office-Home: `OfficeHome/Art`) or an image list (`path label`
//! lines, paths relative to `root`).
//!
//! ```yaml
//! dataset:
//!   name: image-folders
//!   image: {size: [224, 224], channels: 3}   # mean/std default to ImageNet's
//!   domains:
//!     - {name: A, folder: office31/amazon/images}
//!     - {name: W, folder: office31/webcam/images}
//!     - {name: D, list: lists/dslr.txt, root: office31}
//! ```
//!
//! Classes of folders are the sub-folder names sorted by byte order; every folder domain of a task must have
//! the same classes. With `classes:` given, a folder's label is its name's position in that list (a folder not in
//! it is an error), as the lists number them. Classes of lists are `classes:` when given, else `"0"`..`"K-1"`.
//!
//! `load` says where the decoded images live: `memory` decodes every image up front; `stream` keeps only the file
//! list and the trainer decodes each batch on the rayon pool, `prefetch` batches ahead of the training step (a
//! bounded queue, so memory stays at a few batches: Office-Home at 224×224 would need 9.4 GB decoded); `auto`
//! (default) is `memory` when a domain's decoded images take at most 1 GiB, else `stream`. Both give the same
//! batches and the same numbers.

use crate::formats::images::{self, ImageOptions};
use crate::transforms::{TransformSpec, Transforms};
use crate::{Domain, Error, ImageFiles, Result, TaskData};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One domain of an `image-folders` dataset: exactly one of `folder` and `list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageDomain {
    pub name: String,
    /// A folder with one sub-folder per class (relative to the data directory or absolute).
    #[serde(default)]
    pub folder: Option<PathBuf>,
    /// An image list file (`path label` lines).
    #[serde(default)]
    pub list: Option<PathBuf>,
    /// Where the list's paths start (default: the data directory).
    #[serde(default)]
    pub root: Option<PathBuf>,
    /// A list of target test images, used as the target test set when this domain is the target.
    #[serde(default)]
    pub test_list: Option<PathBuf>,
}

/// Options of the `image-folders` dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageFoldersConfig {
    pub domains: Vec<ImageDomain>,
    #[serde(default)]
    pub classes: Option<Vec<String>>,
    #[serde(default)]
    pub image: ImageOptions,
    /// Decode every image up front (`memory`), batch by batch while training (`stream`), or by size (`auto`).
    #[serde(default, skip_serializing_if = "ImageLoad::is_auto")]
    pub load: ImageLoad,
    /// Batches decoded ahead of the training step when streaming (≥ 1).
    #[serde(default = "default_prefetch", skip_serializing_if = "is_default_prefetch")]
    pub prefetch: usize,
    /// The transform of training batches (source and target): a preset (`office31`) or a list of steps
    /// (`crate::transforms`). Default: the evaluation transform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_transform: Option<TransformSpec>,
    /// The transform of every evaluation pass (deterministic). Default: each image resized to `image.size`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_transform: Option<TransformSpec>,
    /// Every folder domain must have exactly the classes of `classes` (the benchmarks: a truncated download is an
    /// error, not a smaller problem). Not an option of the YAML.
    #[serde(skip)]
    pub all_classes: bool,
}

/// Where decoded images live (see the module documentation).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageLoad {
    #[default]
    Auto,
    Memory,
    Stream,
}

impl ImageLoad {
    pub fn is_auto(&self) -> bool {
        *self == ImageLoad::Auto
    }
}

/// `load: auto` streams a domain whose decoded images would take more than this.
pub const AUTO_STREAM_BYTES: u64 = 1 << 30;

fn default_prefetch() -> usize {
    4
}

fn is_default_prefetch(v: &usize) -> bool {
    *v == default_prefetch()
}

impl ImageFoldersConfig {
    /// The dataset of `domains` with every option at its default.
    pub fn new(domains: Vec<ImageDomain>) -> Self {
        Self {
            domains,
            classes: None,
            image: ImageOptions::default(),
            load: ImageLoad::Auto,
            prefetch: default_prefetch(),
            train_transform: None,
            eval_transform: None,
            all_classes: false,
        }
    }

    pub fn domain_names(&self) -> Vec<String> {
        self.domains.iter().map(|d| d.name.clone()).collect()
    }

    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.domains.is_empty() {
            return Err("domains: at least one domain is needed".into());
        }
        for (i, d) in self.domains.iter().enumerate() {
            if d.folder.is_some() == d.list.is_some() {
                return Err(format!("domains[{i}]: give exactly one of `folder` and `list`"));
            }
            if self.domains[..i].iter().any(|o| o.name == d.name) {
                return Err(format!("domains[{i}].name: `{}` is declared twice", d.name));
            }
        }
        if self.prefetch == 0 {
            return Err("prefetch: must be >= 1, got 0".into());
        }
        self.image.validate().map_err(|e| format!("image.{e}"))?;
        self.transforms().map(|_| ())
    }

    /// The resolved transforms, when `train_transform` or `eval_transform` is given. Errors name the key.
    pub fn transforms(&self) -> std::result::Result<Option<Transforms>, String> {
        if self.train_transform.is_none() && self.eval_transform.is_none() {
            return Ok(None);
        }
        Transforms::new(self.train_transform.as_ref(), self.eval_transform.as_ref(), self.image.size).map(Some)
    }

    /// Finds one domain's files: (files, labels, classes found in its folder if it is one). Nothing is decoded.
    fn scan_domain(
        &self,
        d: &ImageDomain,
        list: Option<&Path>,
        data_dir: &Path,
        transforms: &Option<Arc<Transforms>>,
    ) -> Result<(ImageFiles, Vec<i64>, Option<Vec<String>>)> {
        let files = |paths| ImageFiles {
            transforms: transforms.clone(),
            ..ImageFiles::new(paths, self.image.clone(), self.prefetch)
        };
        match (list, &d.folder) {
            (None, Some(f)) => {
                let dir = data_dir.join(f);
                let (found, paths, labels) = images::scan_folder(&dir)?;
                let Some(classes) = &self.classes else { return Ok((files(paths), labels, Some(found))) };
                // The dataset names its classes: each folder's label is its name's position there.
                let index: Vec<i64> = found
                    .iter()
                    .map(|c| {
                        classes.iter().position(|k| k == c).map(|i| i as i64).ok_or_else(|| {
                            Error::format(&dir, format!("class folder `{c}` is not one of the dataset's classes"))
                        })
                    })
                    .collect::<Result<_>>()?;
                if self.all_classes && found.len() != classes.len() {
                    let missing: Vec<&str> =
                        classes.iter().filter(|k| !found.contains(k)).map(String::as_str).take(5).collect();
                    return Err(Error::format(
                        &dir,
                        format!(
                            "{} of the {} class folders are missing (e.g. {}): an incomplete download?",
                            classes.len() - found.len(),
                            classes.len(),
                            missing.join(", ")
                        ),
                    ));
                }
                let labels = labels.iter().map(|&l| index[l as usize]).collect();
                Ok((files(paths), labels, Some(classes.clone())))
            }
            (l, _) => {
                let l = l.or(d.list.as_deref()).expect("validated: folder or list");
                let root = d.root.as_ref().map_or_else(|| data_dir.to_path_buf(), |r| data_dir.join(r));
                let (paths, labels) = images::scan_list(&data_dir.join(l), &root)?;
                if let Some(c) = &self.classes
                    && let Some((i, bad)) = labels.iter().enumerate().find(|(_, y)| **y as usize >= c.len())
                {
                    return Err(Error::format(
                        data_dir.join(l),
                        format!(
                            "image {} of the list: label {bad} is not below the {} classes of the dataset",
                            i + 1,
                            c.len()
                        ),
                    ));
                }
                Ok((files(paths), labels, None))
            }
        }
    }

    /// A domain of `files`: decoded now, or left to be decoded batch by batch (`load`).
    fn domain(&self, name: String, files: ImageFiles, labels: Vec<i64>, classes: Vec<String>) -> Result<Domain> {
        let stream = match self.load {
            ImageLoad::Memory => false,
            ImageLoad::Stream => true,
            ImageLoad::Auto => files.decoded_bytes() > AUTO_STREAM_BYTES,
        };
        if stream {
            // A missing file fails now, naming it, rather than at the step whose batch first draws it (a file that
            // exists but does not decode still fails at that step, also naming it).
            for p in &files.paths {
                std::fs::metadata(p).map_err(|e| Error::io(p, e))?;
            }
            Domain::from_files(name, files, labels, classes)
        } else if files.transforms.is_some() {
            // Training batches are transformed anew at every draw: the images stay files, decoded once up to the
            // end of the transforms' deterministic prefix.
            Domain::from_files(name, files.cached()?, labels, classes)
        } else {
            Domain::new(name, files.decode_all()?.into_dyn(), labels, classes)
        }
    }

    pub fn load_task(&self, source: &str, target: &str, data_dir: &Path) -> Result<TaskData> {
        self.validate().map_err(|e| Error::Invalid(format!("dataset.{e}")))?;
        let find = |n: &str| {
            self.domains.iter().find(|d| d.name == n).ok_or_else(|| Error::Invalid(format!("no domain `{n}`")))
        };
        let (sd, td) = (find(source)?, find(target)?);
        let tf = self.transforms().map_err(|e| Error::Invalid(format!("dataset.{e}")))?.map(Arc::new);
        let (s, s_labels, sc) = self.scan_domain(sd, None, data_dir, &tf)?;
        let (t, t_labels, tc) = self.scan_domain(td, None, data_dir, &tf)?;
        let test = match &td.test_list {
            Some(l) => {
                let (f, y, _) = self.scan_domain(td, Some(l), data_dir, &tf)?;
                Some((f, y))
            }
            None => None,
        };
        if let (Some(a), Some(b)) = (&sc, &tc)
            && a != b
        {
            return Err(Error::Invalid(format!(
                "domains `{source}` and `{target}` have different class folders ({} and {} classes)",
                a.len(),
                b.len()
            )));
        }
        let max = s_labels.iter().chain(&t_labels).chain(test.iter().flat_map(|t| &t.1)).copied().max().unwrap_or(0);
        let classes = match (&self.classes, sc.or(tc)) {
            (Some(c), _) => c.clone(),
            (None, Some(c)) => c,
            (None, None) => (0..=max).map(|k| k.to_string()).collect(),
        };
        let test = test.map(|(f, y)| self.domain(format!("{target}-test"), f, y, classes.clone())).transpose()?;
        TaskData::new(
            self.domain(source.into(), s, s_labels, classes.clone())?,
            self.domain(target.into(), t, t_labels, classes.clone())?,
            test,
        )
    }
}

#[cfg(test)]
mod tests {
    use crate::formats::images::{Image, encode_png};

    #[test]
    fn folders_and_lists_from_yaml() {
        let dir = tempfile::tempdir().unwrap();
        for dom in ["amazon", "webcam"] {
            for (k, class) in ["bike", "mug"].iter().enumerate() {
                let d = dir.path().join(dom).join("images").join(class);
                std::fs::create_dir_all(&d).unwrap();
                for i in 0..(2 + k) {
                    let img = Image { width: 8, height: 8, channels: 3, data: vec![(i * 40) as u8; 192] };
                    std::fs::write(d.join(format!("{i}.png")), encode_png(&img)).unwrap();
                }
            }
        }
        std::fs::write(dir.path().join("w_test.txt"), "webcam/images/mug/0.png 1\nwebcam/images/bike/1.png 0\n")
            .unwrap();
        let yaml = "name: image-folders\nimage: {size: [4, 4], channels: 3, mean: [0, 0, 0], std: [1, 1, 1]}\ndomains:\n  - {name: A, folder: amazon/images}\n  - {name: W, folder: webcam/images, test_list: w_test.txt}\n  - {name: L, list: w_test.txt}\n";
        let c: crate::DatasetConfig = serde_saphyr::from_str(yaml).unwrap();
        assert_eq!(c.domains(), vec!["A", "W", "L"]);
        let t = c.load_task("A", "W", dir.path()).unwrap();
        assert_eq!(t.source.x.shape(), vec![5, 3, 4, 4]);
        assert_eq!(t.source.class_names, vec!["bike", "mug"]);
        assert_eq!(t.source.label_histogram(), vec![2, 3]);
        let tt = t.target_test.clone().unwrap();
        assert_eq!(tt.y, vec![1, 0]);
        assert!((tt.dense_x().unwrap()[[1, 0, 0, 0]] - 40.0 / 255.0).abs() < 1e-6);
        // Small domains are decoded up front under `auto`; `stream` leaves the files to the trainer, and decoding
        // them gives the same arrays.
        assert!(t.source.x.dense().is_some() && t.target_test.as_ref().unwrap().x.dense().is_some());
        let streamed: crate::DatasetConfig = serde_saphyr::from_str(
            &yaml.replace("name: image-folders\n", "name: image-folders\nload: stream\nprefetch: 2\n"),
        )
        .unwrap();
        let s = streamed.load_task("A", "W", dir.path()).unwrap();
        match &s.source.x {
            crate::Features::Files(f) => assert_eq!((f.len(), f.prefetch), (5, 2)),
            other => panic!("not streamed: {other:?}"),
        }
        assert_eq!(s.source.x.shape(), vec![5, 3, 4, 4]);
        assert_eq!(s.source.y, t.source.y);
        assert_eq!(s.source.x.to_dense().unwrap().as_ref(), t.source.x.dense().unwrap());
        assert_eq!(s.target_test.as_ref().unwrap().x.to_dense().unwrap().as_ref(), tt.x.dense().unwrap());
        assert!(s.source.dense_x().unwrap_err().to_string().contains("domain `A` is decoded from image files"));
        // Streaming checks up front that every file exists.
        std::fs::rename(dir.path().join("webcam/images/mug/0.png"), dir.path().join("moved.png")).unwrap();
        let e = streamed.load_task("L", "A", dir.path()).unwrap_err().to_string();
        assert!(e.contains("webcam/images/mug/0.png"), "{e}");
        std::fs::rename(dir.path().join("moved.png"), dir.path().join("webcam/images/mug/0.png")).unwrap();
        // Defaults are not written out (trial ids of existing experiments do not change).
        let out = serde_saphyr::to_string(&c).unwrap();
        assert!(!out.contains("load") && !out.contains("prefetch"), "{out}");
        let t = c.load_task("L", "A", dir.path()).unwrap();
        assert_eq!(t.source.len(), 2);
        let bad: crate::DatasetConfig =
            serde_saphyr::from_str("name: image-folders\ndomains:\n  - {name: A}\n").unwrap();
        assert_eq!(bad.validate().unwrap_err(), "domains[0]: give exactly one of `folder` and `list`");
    }
}
