//! The image benchmarks by name: `office31`, `office-home`, `visda2017`, `domainnet` (`datasets/images/*.yaml`,
//! embedded): their domains, classes (in the order the published image lists number them), the two layouts they
//! are distributed in, and their archives. A benchmark is an [`ImageFoldersConfig`] with these filled in, so it
//! decodes, transforms and streams as any image folder:
//!
//! ```yaml
//! dataset:
//!   name: office31              # office31 | office-home | visda2017 | domainnet
//!   root: office31              # under the data directory (default: the benchmark's own)
//!   layout: folders             # folders (<domain>/<class>/*.jpg) | lists (the image lists, TLlib's); default per benchmark
//!   train_transform: office31
//!   eval_transform: office31
//! ```
//!
//! `dalab data fetch NAME` downloads the archives into the root and extracts them ([`fetch`]). No origin publishes
//! checksums for them: the fetch prints and records (`FETCHED.yaml`) the SHA-256 of what it downloaded.

use crate::fetch::FetchOptions;
use crate::formats::images::ImageOptions;
use crate::image_dataset::{ImageDomain, ImageFoldersConfig, ImageLoad};
use crate::transforms::TransformSpec;
use crate::{Error, Result, TaskData};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One domain of a benchmark.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BenchmarkDomain {
    /// As written in `tasks:` (`A`, `Ar`, `Synthetic`, `c`).
    pub key: String,
    pub name: String,
    /// The class folders, relative to the root (layout `folders`).
    pub folder: String,
    /// The image list, relative to the root (layout `lists`); its paths are relative to the root.
    pub list: String,
    /// The list of the domain's test split (DomainNet), the target test set of a task.
    #[serde(default)]
    pub test_list: Option<String>,
}

/// An archive of a benchmark.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Archive {
    /// The archive's file name (what `--mirror` serves).
    pub file: String,
    /// The file or folder it extracts to, under the root: present means fetched.
    pub extracts: String,
    pub url: String,
    /// Lower-case hex SHA-256, when the origin publishes one (none do today).
    #[serde(default)]
    pub sha256: Option<String>,
}

/// A benchmark's description (`datasets/images/<name>.yaml`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Benchmark {
    pub name: String,
    pub title: String,
    pub origin: String,
    pub license: String,
    pub note: String,
    /// The default root under the data directory.
    pub root: String,
    pub layout: Layout,
    pub domains: Vec<BenchmarkDomain>,
    pub archives: Vec<Archive>,
    pub classes: Vec<String>,
}

/// How a benchmark's images are found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// `<domain folder>/<class>/<image>`: labels from the folder names.
    Folders,
    /// The image lists (`path label` lines, labels indexing `classes`).
    Lists,
}

const EMBEDDED: [(&str, &str); 4] = [
    ("office31", include_str!("../../../datasets/images/office31.yaml")),
    ("office-home", include_str!("../../../datasets/images/office-home.yaml")),
    ("visda2017", include_str!("../../../datasets/images/visda2017.yaml")),
    ("domainnet", include_str!("../../../datasets/images/domainnet.yaml")),
];

/// Every benchmark, parsed once.
pub fn all() -> &'static [Benchmark] {
    static ALL: std::sync::OnceLock<Vec<Benchmark>> = std::sync::OnceLock::new();
    ALL.get_or_init(|| {
        EMBEDDED
            .iter()
            .map(|(n, text)| {
                let b: Benchmark = serde_saphyr::from_str(text)
                    .unwrap_or_else(|e| panic!("datasets/images/{n}.yaml (embedded at build time) is invalid: {e}"));
                assert_eq!(b.name, *n, "datasets/images/{n}.yaml: name");
                b
            })
            .collect()
    })
}

/// The benchmark `name`.
pub fn find(name: &str) -> Option<&'static Benchmark> {
    all().iter().find(|b| b.name == name)
}

/// The `dataset:` options of a benchmark.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BenchmarkConfig {
    /// Where the benchmark is under the data directory (default: its own root, e.g. `office31`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<PathBuf>,
    /// `folders` or `lists` (default: the benchmark's own: lists for DomainNet, whose domains have a test split).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout: Option<Layout>,
    #[serde(default, skip_serializing_if = "is_default_image")]
    pub image: ImageOptions,
    #[serde(default, skip_serializing_if = "ImageLoad::is_auto")]
    pub load: ImageLoad,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefetch: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_transform: Option<TransformSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_transform: Option<TransformSpec>,
}

fn is_default_image(o: &ImageOptions) -> bool {
    *o == ImageOptions::default()
}

impl BenchmarkConfig {
    /// The image-folders dataset this is, for benchmark `b`.
    pub fn resolve(&self, b: &Benchmark) -> ImageFoldersConfig {
        let root = self.root.clone().unwrap_or_else(|| PathBuf::from(&b.root));
        let layout = self.layout.unwrap_or(b.layout);
        let domains = b
            .domains
            .iter()
            .map(|d| match layout {
                Layout::Folders => ImageDomain {
                    name: d.key.clone(),
                    folder: Some(root.join(&d.folder)),
                    list: None,
                    root: None,
                    test_list: None,
                },
                Layout::Lists => ImageDomain {
                    name: d.key.clone(),
                    folder: None,
                    list: Some(root.join(&d.list)),
                    root: Some(root.clone()),
                    test_list: d.test_list.as_ref().map(|t| root.join(t)),
                },
            })
            .collect();
        let mut c = ImageFoldersConfig::new(domains);
        c.classes = Some(b.classes.clone());
        c.all_classes = true;
        c.image = self.image.clone();
        c.load = self.load;
        if let Some(p) = self.prefetch {
            c.prefetch = p;
        }
        c.train_transform = self.train_transform.clone();
        c.eval_transform = self.eval_transform.clone();
        c
    }

    /// Loads a task of benchmark `b`; a missing root names the fetch command.
    pub fn load_task(&self, b: &Benchmark, source: &str, target: &str, data_dir: &Path) -> Result<TaskData> {
        let root = data_dir.join(self.root.clone().unwrap_or_else(|| PathBuf::from(&b.root)));
        if !root.is_dir() {
            return Err(Error::Invalid(format!(
                "{}: {} is not there; `dalab data fetch {}` downloads it (or set `dataset.root`)",
                b.name,
                root.display(),
                b.name
            )));
        }
        self.resolve(b).load_task(source, target, data_dir)
    }
}

/// What [`fetch`] did with one archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArchiveOutcome {
    /// Its folder (or file) is already under the root.
    Present,
    /// Downloaded, checked when a checksum is known, extracted; its size and SHA-256.
    Extracted { bytes: u64, sha256: String },
}

/// Downloads and extracts every archive of benchmark `name` whose content is not under its root yet (from
/// `{mirror}/{file}` with `--mirror`). Each archive is downloaded outside the data directory, checked when a
/// SHA-256 is known, extracted into a temporary folder beside the root and moved into place, so a failed fetch
/// leaves no partial folder. The size and SHA-256 of every download are appended to `<root>/FETCHED.yaml`.
pub fn fetch(name: &str, data_dir: &Path, opts: &FetchOptions) -> Result<Vec<(String, ArchiveOutcome)>> {
    let b = find(name).ok_or_else(|| Error::Invalid(format!("no image benchmark `{name}`")))?;
    let root = data_dir.join(&b.root);
    std::fs::create_dir_all(&root).map_err(|e| Error::io(&root, e))?;
    let partial_dir = opts.partial_dir.clone().unwrap_or_else(|| std::env::temp_dir().join("dalab-fetch"));
    std::fs::create_dir_all(&partial_dir).map_err(|e| Error::io(&partial_dir, e))?;
    let agent = crate::fetch::agent(opts);
    let mut out = Vec::new();
    for a in &b.archives {
        if root.join(&a.extracts).exists() {
            out.push((a.file.clone(), ArchiveOutcome::Present));
            continue;
        }
        let url = match &opts.mirror {
            Some(m) => format!("{}/{}", m.trim_end_matches('/'), a.file),
            None => a.url.clone(),
        };
        let part = partial_dir.join(format!("{}-{}.part", b.name, a.file));
        let bytes = crate::fetch::download(&agent, &url, &part)?;
        let sha = crate::manifest::sha256_file(&part)?;
        if let Some(want) = &a.sha256
            && *want != sha
        {
            std::fs::remove_file(&part).ok();
            return Err(Error::Fetch {
                url,
                msg: format!("SHA-256 mismatch for {}: got {sha}, expected {want}; the download was deleted", a.file),
            });
        }
        let staging = root.join(format!(".extracting-{}", a.file));
        let _ = std::fs::remove_dir_all(&staging);
        let extracted = extract(&part, &staging).and_then(|()| {
            let from = staging.join(&a.extracts);
            if !from.exists() {
                return Err(Error::format(&part, format!("the archive holds no `{}`", a.extracts)));
            }
            std::fs::rename(&from, root.join(&a.extracts)).map_err(|e| Error::io(&from, e))
        });
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::remove_file(&part).ok();
        extracted.map_err(|e| Error::Fetch { url: url.clone(), msg: e.to_string() })?;
        let record = format!("- {{file: {}, url: \"{url}\", bytes: {bytes}, sha256: {sha}}}\n", a.file);
        let log = root.join("FETCHED.yaml");
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&log).map_err(|e| Error::io(&log, e))?;
        std::io::Write::write_all(&mut f, record.as_bytes()).map_err(|e| Error::io(&log, e))?;
        out.push((a.file.clone(), ArchiveOutcome::Extracted { bytes, sha256: sha }));
    }
    Ok(out)
}

/// Extracts a zip, gzipped tar or plain tar archive (recognised by its first bytes, not its name: the same
/// archive is published as `.tar` and `.tgz`) into `dest`. Entries leaving `dest` (`..`, absolute paths) are
/// refused.
pub fn extract(archive: &Path, dest: &Path) -> Result<()> {
    use std::io::Read;
    std::fs::create_dir_all(dest).map_err(|e| Error::io(dest, e))?;
    let mut head = [0u8; 4];
    let n = std::fs::File::open(archive).and_then(|mut f| f.read(&mut head)).map_err(|e| Error::io(archive, e))?;
    let file = std::fs::File::open(archive).map_err(|e| Error::io(archive, e))?;
    let bad = |m: String| Error::format(archive, m);
    if n >= 4 && head == *b"PK\x03\x04" {
        let mut z = zip::ZipArchive::new(file).map_err(|e| bad(format!("bad zip ({e})")))?;
        for i in 0..z.len() {
            let mut entry = z.by_index(i).map_err(|e| bad(format!("bad zip ({e})")))?;
            let Some(rel) = entry.enclosed_name() else {
                let name = entry.name().map(|n| n.to_string()).unwrap_or_default();
                return Err(bad(format!("entry `{name}` leaves the extraction folder")));
            };
            let to = dest.join(rel);
            if entry.is_dir() {
                std::fs::create_dir_all(&to).map_err(|e| Error::io(&to, e))?;
                continue;
            }
            if let Some(p) = to.parent() {
                std::fs::create_dir_all(p).map_err(|e| Error::io(p, e))?;
            }
            let mut w = std::fs::File::create(&to).map_err(|e| Error::io(&to, e))?;
            std::io::copy(&mut entry, &mut w).map_err(|e| bad(format!("bad zip entry ({e})")))?;
        }
        return Ok(());
    }
    let reader: Box<dyn Read> = if n >= 2 && head[..2] == [0x1f, 0x8b] {
        Box::new(flate2::read::GzDecoder::new(std::io::BufReader::new(file)))
    } else {
        Box::new(std::io::BufReader::new(file))
    };
    let mut t = tar::Archive::new(reader);
    for entry in t.entries().map_err(|e| bad(format!("bad tar ({e})")))? {
        let mut entry = entry.map_err(|e| bad(format!("bad tar ({e})")))?;
        // `unpack_in` refuses paths that leave `dest`; it returns false for them.
        let inside = entry.unpack_in(dest).map_err(|e| bad(format!("bad tar entry ({e})")))?;
        if !inside {
            let p = entry.path().map(|p| p.display().to_string()).unwrap_or_default();
            return Err(bad(format!("entry `{p}` leaves the extraction folder")));
        }
    }
    Ok(())
}
