//! Dataset manifests (`datasets/*.yaml` at the workspace root, embedded in the binary): for each dataset
//! its files, byte sizes, SHA-256 and origin URL. Loaders find files through [`Manifest::require`] (and
//! [`Manifest::present`] for optional copies), which turn a missing, wrongly sized or corrupt file into an error
//! naming the file, its expected and found SHA-256 and the fetch command. The SHA-256 of a file is checked when it
//! is first loaded and the verdict cached by path, size and modification time ([`VERIFIED_CACHE`]), so a file
//! costs one hash until it changes; `dalab data verify` checks every file afresh.

use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The environment variable naming the data directory.
pub const DATA_DIR_ENV: &str = "DALAB_DATA_DIR";

/// The data directory: the `--data-dir` flag, else `$DALAB_DATA_DIR`, else `./data`.
pub fn data_dir(cli_flag: Option<&Path>) -> PathBuf {
    if let Some(p) = cli_flag {
        return p.to_path_buf();
    }
    match std::env::var_os(DATA_DIR_ENV) {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => PathBuf::from("./data"),
    }
}

/// One file of a dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestFile {
    /// Path relative to the data directory (`/`-separated).
    pub path: String,
    pub bytes: u64,
    /// Lower-case hex SHA-256 of the file.
    pub sha256: String,
    /// Where `dalab data fetch` downloads it from (byte-identical).
    #[serde(default)]
    pub url: Option<String>,
    /// For files without a URL (derived or packed): how to make it.
    #[serde(default)]
    pub how: Option<String>,
    /// A convenience copy the loaders can do without (e.g. `.npy` copies of an HDF5 file): its absence is
    /// not an error for `verify` and `fetch`.
    #[serde(default)]
    pub optional: bool,
}

/// A dataset manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: String,
    pub title: String,
    pub origin: String,
    pub license: String,
    #[serde(default)]
    pub note: Option<String>,
    pub files: Vec<ManifestFile>,
}

const EMBEDDED: [(&str, &str); 7] = [
    ("office-caltech10-surf.yaml", include_str!("../../../datasets/office-caltech10-surf.yaml")),
    ("amazon-reviews.yaml", include_str!("../../../datasets/amazon-reviews.yaml")),
    ("jda-digits.yaml", include_str!("../../../datasets/jda-digits.yaml")),
    ("mnist.yaml", include_str!("../../../datasets/mnist.yaml")),
    ("mnist-5k.yaml", include_str!("../../../datasets/mnist-5k.yaml")),
    ("usps.yaml", include_str!("../../../datasets/usps.yaml")),
    ("mnist-m.yaml", include_str!("../../../datasets/mnist-m.yaml")),
];

/// Parses one manifest (YAML text; `source` names it in errors).
pub fn parse_manifest(source: &str, text: &str) -> Result<Manifest> {
    let m: Manifest = serde_saphyr::from_str(text).map_err(|e| Error::format(source, format!("bad manifest: {e}")))?;
    for f in &m.files {
        if f.sha256.len() != 64 || !f.sha256.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
            return Err(Error::format(source, format!("file `{}`: sha256 must be 64 lower-case hex digits", f.path)));
        }
        if f.path.starts_with('/') || f.path.split('/').any(|c| c == ".." || c.is_empty()) {
            return Err(Error::format(source, format!("file `{}`: path must be relative, without `..`", f.path)));
        }
    }
    Ok(m)
}

/// All known manifests (embedded at build time from `datasets/`).
pub fn manifests() -> &'static [Manifest] {
    static ALL: OnceLock<Vec<Manifest>> = OnceLock::new();
    ALL.get_or_init(|| {
        EMBEDDED
            .iter()
            .map(|(n, t)| parse_manifest(&format!("datasets/{n}"), t).expect("embedded manifests parse (unit-tested)"))
            .collect()
    })
}

/// The manifest called `name`; the error lists the known names.
pub fn find(name: &str) -> Result<&'static Manifest> {
    manifests().iter().find(|m| m.name == name).ok_or_else(|| {
        let names: Vec<&str> = manifests().iter().map(|m| m.name.as_str()).collect();
        Error::Invalid(format!("no dataset manifest `{name}` (known: {})", names.join(", ")))
    })
}

impl Manifest {
    /// The manifest entry of `rel` (a path relative to the data directory).
    pub fn file(&self, rel: &str) -> Result<&ManifestFile> {
        self.files
            .iter()
            .find(|f| f.path == rel)
            .ok_or_else(|| Error::Invalid(format!("manifest `{}` has no file `{rel}`", self.name)))
    }

    /// Path of `rel` in `data_dir` if the file exists, checked like [`Manifest::require`] (an optional copy
    /// that is present but corrupt is an error, not a silent fallback).
    pub fn present(&self, data_dir: &Path, rel: &str) -> Result<Option<PathBuf>> {
        let p = local_path(data_dir, rel);
        if p.is_file() { self.require(data_dir, rel).map(Some) } else { Ok(None) }
    }

    /// Path of `rel` in `data_dir`, checked to exist, to have the manifest's size (files with a URL) and its
    /// SHA-256 (once per size and modification time: [`VERIFIED_CACHE`]).
    pub fn require(&self, data_dir: &Path, rel: &str) -> Result<PathBuf> {
        let f = self.file(rel)?;
        let path = local_path(data_dir, &f.path);
        let meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::Missing { path, dataset: self.name.clone(), sha256: f.sha256.clone() });
            }
            Err(e) => return Err(Error::io(&path, e)),
        };
        if f.url.is_some() && meta.len() != f.bytes {
            return Err(Error::Corrupt {
                path,
                dataset: self.name.clone(),
                sha256: f.sha256.clone(),
                what: format!("{} bytes, expected {} (truncated or another version?)", meta.len(), f.bytes),
            });
        }
        let key = verified_key(&path, &meta, &f.sha256);
        let cache = verified_cache_path();
        if cache.as_ref().is_some_and(|c| read_verified(c).contains(&key)) {
            return Ok(path);
        }
        let found = sha256_file(&path)?;
        if found != f.sha256 {
            return Err(Error::Corrupt {
                path,
                dataset: self.name.clone(),
                sha256: f.sha256.clone(),
                what: format!("SHA-256 {found}: the content differs from the manifest's (corrupt or edited)"),
            });
        }
        if let Some(c) = cache {
            record_verified(&c, &key);
        }
        Ok(path)
    }

    /// Adds the dataset's expected SHA-256 and fetch hint to a format error about one of its files.
    pub fn explain(&self, rel: &str, e: Error) -> Error {
        match (e, self.file(rel)) {
            (Error::Format { path, line, msg }, Ok(f)) => Error::Corrupt {
                path,
                dataset: self.name.clone(),
                sha256: f.sha256.clone(),
                what: match line {
                    Some(l) => format!("line {l}: {msg}"),
                    None => msg,
                },
            },
            (e, _) => e,
        }
    }
}

/// The file (under `$DALAB_CACHE_DIR`, else `$XDG_CACHE_HOME/dalab`, else `~/.cache/dalab`) that records the files
/// whose SHA-256 matched their manifest, one line each: `sha256 <TAB> bytes <TAB> mtime (ns) <TAB> path`. A file
/// whose size or modification time changed is hashed again.
pub const VERIFIED_CACHE: &str = "verified-data-v1.tsv";

fn verified_cache_path() -> Option<PathBuf> {
    let dir = match (std::env::var_os("DALAB_CACHE_DIR"), std::env::var_os("XDG_CACHE_HOME"), std::env::var_os("HOME"))
    {
        (Some(d), _, _) if !d.is_empty() => PathBuf::from(d),
        (_, Some(x), _) if !x.is_empty() => PathBuf::from(x).join("dalab"),
        (_, _, Some(h)) if !h.is_empty() => PathBuf::from(h).join(".cache").join("dalab"),
        _ => return None,
    };
    Some(dir.join(VERIFIED_CACHE))
}

fn verified_key(path: &Path, meta: &std::fs::Metadata, sha256: &str) -> String {
    let mtime =
        meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
    let abs = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    format!("{sha256}\t{}\t{mtime}\t{}", meta.len(), abs.display())
}

fn read_verified(cache: &Path) -> std::collections::HashSet<String> {
    std::fs::read_to_string(cache).map(|t| t.lines().map(str::to_string).collect()).unwrap_or_default()
}

/// Appends a verdict (one `write` of one line in append mode, so concurrent loaders do not interleave); a cache
/// that cannot be written only costs a hash next time.
fn record_verified(cache: &Path, key: &str) {
    use std::io::Write;
    if let Some(dir) = cache.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(cache) {
        let _ = f.write_all(format!("{key}\n").as_bytes());
    }
}

/// `data_dir` joined with a `/`-separated relative path.
pub fn local_path(data_dir: &Path, rel: &str) -> PathBuf {
    rel.split('/').fold(data_dir.to_path_buf(), |p, c| p.join(c))
}

/// Lower-case hex SHA-256 of a file (streamed).
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// State of one file in the data directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileState {
    /// Present with the manifest's size (SHA-256 not checked).
    Present,
    /// Present with another size.
    WrongSize,
    /// Present and its SHA-256 matches.
    Verified,
    /// Present but its SHA-256 differs.
    BadChecksum,
    Missing,
    /// An optional file that is absent.
    OptionalMissing,
}

impl FileState {
    pub fn label(self) -> &'static str {
        match self {
            FileState::Present => "present",
            FileState::WrongSize => "WRONG SIZE",
            FileState::Verified => "ok",
            FileState::BadChecksum => "BAD SHA-256",
            FileState::Missing => "missing",
            FileState::OptionalMissing => "absent (optional)",
        }
    }
    pub fn is_ok(self) -> bool {
        matches!(self, FileState::Present | FileState::Verified | FileState::OptionalMissing)
    }
}

/// One file's state as found in the data directory.
#[derive(Debug, Clone)]
pub struct FileReport {
    pub dataset: String,
    pub path: String,
    pub state: FileState,
    pub expected_sha256: String,
    /// The SHA-256 found (only when it was computed).
    pub actual_sha256: Option<String>,
}

/// Presence (and size) of every file of every manifest: what `dalab data list` shows.
pub fn list(data_dir: &Path) -> Vec<FileReport> {
    let mut out = Vec::new();
    for m in manifests() {
        for f in &m.files {
            let state = match std::fs::metadata(local_path(data_dir, &f.path)) {
                Ok(md) if md.len() == f.bytes => FileState::Present,
                Ok(_) => FileState::WrongSize,
                Err(_) if f.optional => FileState::OptionalMissing,
                Err(_) => FileState::Missing,
            };
            out.push(FileReport {
                dataset: m.name.clone(),
                path: f.path.clone(),
                state,
                expected_sha256: f.sha256.clone(),
                actual_sha256: None,
            });
        }
    }
    out
}

/// Checks the SHA-256 of the files of dataset `name` (all datasets with `None`), in parallel.
pub fn verify(data_dir: &Path, name: Option<&str>) -> Result<Vec<FileReport>> {
    use rayon::prelude::*;
    let ms: Vec<&Manifest> = match name {
        Some(n) => vec![find(n)?],
        None => manifests().iter().collect(),
    };
    let jobs: Vec<(&Manifest, &ManifestFile)> = ms.iter().flat_map(|m| m.files.iter().map(move |f| (*m, f))).collect();
    jobs.par_iter()
        .map(|(m, f)| {
            let p = local_path(data_dir, &f.path);
            let (state, actual) = if p.is_file() {
                let h = sha256_file(&p)?;
                (if h == f.sha256 { FileState::Verified } else { FileState::BadChecksum }, Some(h))
            } else if f.optional {
                (FileState::OptionalMissing, None)
            } else {
                (FileState::Missing, None)
            };
            Ok(FileReport {
                dataset: m.name.clone(),
                path: f.path.clone(),
                state,
                expected_sha256: f.sha256.clone(),
                actual_sha256: actual,
            })
        })
        .collect()
}

/// Renders file reports as an aligned text table (for the CLI).
pub fn render_reports(reports: &[FileReport], show_sha: bool) -> String {
    let wd = reports.iter().map(|r| r.dataset.len()).max().unwrap_or(7).max(7);
    let wp = reports.iter().map(|r| r.path.len()).max().unwrap_or(4).max(4);
    let mut s = format!("{:<wd$}  {:<wp$}  state\n", "dataset", "file");
    for r in reports {
        s.push_str(&format!("{:<wd$}  {:<wp$}  {}", r.dataset, r.path, r.state.label()));
        if show_sha && r.state == FileState::BadChecksum {
            s.push_str(&format!(
                " (got {}, expected {})",
                r.actual_sha256.as_deref().unwrap_or("?"),
                r.expected_sha256
            ));
        }
        s.push('\n');
    }
    s
}

/// What `dalab data list` prints: each known dataset with its origin and how many of its files are present,
/// then the state of every file.
pub fn render_list(data_dir: &Path) -> String {
    let reports = list(data_dir);
    let mut s = format!("data directory: {}\n\n", data_dir.display());
    for m in manifests() {
        let mine: Vec<&FileReport> = reports.iter().filter(|r| r.dataset == m.name).collect();
        let ok = mine.iter().filter(|r| r.state == FileState::Present).count();
        let fetchable = m.files.iter().filter(|f| f.url.is_some()).count();
        let optional = m.files.iter().filter(|f| f.optional).count();
        let opt = if optional > 0 { format!(", {optional} optional") } else { String::new() };
        s.push_str(&format!(
            "{:<22} {ok}/{} files present  ({fetchable} fetchable{opt})  {}\n{:<22} origin: {}\n",
            m.name,
            mine.len(),
            m.title,
            "",
            m.origin
        ));
    }
    s.push('\n');
    s.push_str(&render_reports(&reports, false));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_manifests_parse_and_are_consistent() {
        let ms = manifests();
        assert_eq!(ms.len(), 7);
        let mut paths = std::collections::HashSet::new();
        for m in ms {
            assert!(!m.files.is_empty(), "{}", m.name);
            for f in &m.files {
                assert!(paths.insert(f.path.clone()), "{} listed twice", f.path);
                assert!(f.url.is_some() || f.how.is_some(), "{} has neither url nor how", f.path);
                if let Some(u) = &f.url {
                    assert!(u.starts_with("https://"), "{u}");
                }
            }
        }
        // Every file of the shared data README is in a manifest.
        assert_eq!(paths.len(), 29);
        assert!(find("nope").unwrap_err().to_string().contains("office-caltech10-surf"));
    }

    #[test]
    fn bad_manifests_are_rejected() {
        let e = parse_manifest("m.yaml", "name: a\ntitle: t\norigin: o\nlicense: l\nfiles:\n  - {path: ../x, bytes: 1, sha256: 0000000000000000000000000000000000000000000000000000000000000000}\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("m.yaml") && e.contains("relative"), "{e}");
        let e = parse_manifest("m.yaml", "name: a\ntitle: t\norigin: o\nlicense: l\nfiles: []\nextra: 1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("m.yaml"), "{e}");
    }

    #[test]
    fn data_dir_precedence() {
        assert_eq!(data_dir(Some(Path::new("/x"))), PathBuf::from("/x"));
        // The environment may or may not be set by CI; the fallback only applies when it is unset.
        let expect = std::env::var_os(DATA_DIR_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("./data"));
        assert_eq!(data_dir(None), expect);
    }

    #[test]
    fn a_corrupt_file_of_the_right_size_is_caught_at_load_and_a_good_one_hashed_once() {
        let dir = tempfile::tempdir().unwrap();
        let cache = tempfile::tempdir().unwrap();
        // SAFETY: nextest runs each test in its own process; no other thread reads the environment here.
        unsafe { std::env::set_var("DALAB_CACHE_DIR", cache.path()) };
        let content = b"dalab manifest check\n";
        let sha = hex::encode(Sha256::digest(content));
        let yaml = format!(
            "name: t\ntitle: t\norigin: o\nlicense: l\nfiles:\n  - {{path: t/a.bin, bytes: {}, sha256: {sha}, url: https://x.invalid/a}}\n",
            content.len()
        );
        let m = parse_manifest("t.yaml", &yaml).unwrap();
        let p = local_path(dir.path(), "t/a.bin");
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
        assert_eq!(m.require(dir.path(), "t/a.bin").unwrap(), p);
        let cached = std::fs::read_to_string(cache.path().join(VERIFIED_CACHE)).unwrap();
        assert_eq!(cached.lines().count(), 1);
        assert!(cached.starts_with(&format!("{sha}\t{}\t", content.len())), "{cached}");
        // One byte flipped, same size: caught, with both digests and the fetch command.
        let mut bad = content.to_vec();
        bad[3] ^= 1;
        std::fs::write(&p, &bad).unwrap();
        let mtime = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
        std::fs::File::options().write(true).open(&p).unwrap().set_modified(mtime).unwrap();
        let e = m.require(dir.path(), "t/a.bin").unwrap_err().to_string();
        let found = hex::encode(Sha256::digest(&bad));
        assert_eq!(
            e,
            format!(
                "{}: SHA-256 {found}: the content differs from the manifest's (corrupt or edited) (dataset `t`, \
                 expected SHA-256 {sha}); get it again with `dalab data fetch t`",
                p.display()
            )
        );
        assert!(m.present(dir.path(), "t/a.bin").is_err(), "a corrupt optional copy is an error too");
        // The verdict is cached by size and modification time: the original content back, with the mtime it
        // was verified at, is not hashed again (the cache has still one line).
        std::fs::write(&p, content).unwrap();
        let meta = std::fs::metadata(&p).unwrap();
        let key = verified_key(&p, &meta, &sha);
        assert!(!read_verified(&cache.path().join(VERIFIED_CACHE)).contains(&key), "a new mtime is a new key");
        assert!(m.require(dir.path(), "t/a.bin").is_ok());
        assert_eq!(std::fs::read_to_string(cache.path().join(VERIFIED_CACHE)).unwrap().lines().count(), 2);
        assert!(m.require(dir.path(), "t/a.bin").is_ok());
        assert_eq!(std::fs::read_to_string(cache.path().join(VERIFIED_CACHE)).unwrap().lines().count(), 2);
    }

    #[test]
    fn require_reports_missing_and_wrong_size_with_sha_and_fetch_command() {
        let dir = tempfile::tempdir().unwrap();
        let m = find("office-caltech10-surf").unwrap();
        let rel = "office_caltech10_surf/dslr_SURF_L10.mat";
        let e = m.require(dir.path(), rel).unwrap_err().to_string();
        assert!(e.contains("dslr_SURF_L10.mat: file not found"), "{e}");
        assert!(e.contains("44d673c68e1d07b837893aa74dba3b986e4a6cc3fd66f0dd357683bdef059216"), "{e}");
        assert!(e.contains("`dalab data fetch office-caltech10-surf`"), "{e}");
        let p = local_path(dir.path(), rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, b"short").unwrap();
        let e = m.require(dir.path(), rel).unwrap_err().to_string();
        assert!(e.contains("5 bytes, expected 18348") && e.contains("dalab data fetch office-caltech10-surf"), "{e}");
        let reports = verify(dir.path(), Some("office-caltech10-surf")).unwrap();
        let bad = reports.iter().find(|r| r.path == rel).unwrap();
        assert_eq!(bad.state, FileState::BadChecksum);
        assert!(reports.iter().filter(|r| r.path != rel).all(|r| r.state == FileState::Missing));
        let table = render_reports(&reports, true);
        assert!(table.contains("BAD SHA-256 (got "), "{table}");
        let l = render_list(dir.path());
        assert!(l.contains("office-caltech10-surf  0/9 files present  (9 fetchable)"), "{l}");
        assert!(l.contains("office_caltech10_surf/dslr_SURF_L10.mat") && l.contains("WRONG SIZE"), "{l}");
    }
}
