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
//! the same classes. Classes of lists are `classes:` when given, else `"0"`..`"K-1"`.

use crate::formats::images::{self, ImageOptions};
use crate::{Domain, Error, Result, TaskData};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

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
}

impl ImageFoldersConfig {
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
        self.image.validate().map_err(|e| format!("image.{e}"))
    }

    /// Loads one domain: (images, labels, classes found in its folder if it is one).
    fn load_domain(
        &self,
        d: &ImageDomain,
        list: Option<&Path>,
        data_dir: &Path,
    ) -> Result<(images::ImageSet, Option<Vec<String>>)> {
        match (list, &d.folder) {
            (None, Some(f)) => {
                let (set, classes) = images::read_folder(&data_dir.join(f), &self.image)?;
                Ok((set, Some(classes)))
            }
            (l, _) => {
                let l = l.or(d.list.as_deref()).expect("validated: folder or list");
                let root = d.root.as_ref().map_or_else(|| data_dir.to_path_buf(), |r| data_dir.join(r));
                Ok((images::read_list(&data_dir.join(l), &root, &self.image)?, None))
            }
        }
    }

    pub fn load_task(&self, source: &str, target: &str, data_dir: &Path) -> Result<TaskData> {
        self.validate().map_err(|e| Error::Invalid(format!("dataset.{e}")))?;
        let find = |n: &str| {
            self.domains.iter().find(|d| d.name == n).ok_or_else(|| Error::Invalid(format!("no domain `{n}`")))
        };
        let (sd, td) = (find(source)?, find(target)?);
        let (s, sc) = self.load_domain(sd, None, data_dir)?;
        let (t, tc) = self.load_domain(td, None, data_dir)?;
        let test = match &td.test_list {
            Some(l) => Some(self.load_domain(td, Some(l), data_dir)?.0),
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
        let max =
            s.labels.iter().chain(&t.labels).chain(test.iter().flat_map(|t| &t.labels)).copied().max().unwrap_or(0);
        let classes = match (&self.classes, sc.or(tc)) {
            (Some(c), _) => c.clone(),
            (None, Some(c)) => c,
            (None, None) => (0..=max).map(|k| k.to_string()).collect(),
        };
        let dom =
            |name: String, set: images::ImageSet| Domain::new(name, set.x.into_dyn(), set.labels, classes.clone());
        let test = test.map(|t| dom(format!("{target}-test"), t)).transpose()?;
        TaskData::new(dom(source.into(), s)?, dom(target.into(), t)?, test)
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
        assert_eq!(t.source.x.shape(), &[5, 3, 4, 4]);
        assert_eq!(t.source.class_names, vec!["bike", "mug"]);
        assert_eq!(t.source.label_histogram(), vec![2, 3]);
        let tt = t.target_test.unwrap();
        assert_eq!(tt.y, vec![1, 0]);
        assert!((tt.x[[1, 0, 0, 0]] - 40.0 / 255.0).abs() < 1e-6);
        let t = c.load_task("L", "A", dir.path()).unwrap();
        assert_eq!(t.source.len(), 2);
        let bad: crate::DatasetConfig =
            serde_saphyr::from_str("name: image-folders\ndomains:\n  - {name: A}\n").unwrap();
        assert_eq!(bad.validate().unwrap_err(), "domains[0]: give exactly one of `folder` and `list`");
    }
}
