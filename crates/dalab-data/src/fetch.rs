//! `dalab data fetch NAME`: HTTP(S) download of a dataset's files into the data directory.
//!
//! Each file is downloaded into a *partial directory* outside the data directory (default
//! `<system temp>/dalab-fetch/`, named by the expected SHA-256), resumed with an HTTP `Range` request when a
//! previous attempt was interrupted, checked against the manifest's size and SHA-256, and only then moved
//! into place. A failed fetch therefore never leaves a partial or unverified file in the data directory:
//! an interrupted transfer keeps its partial file (to resume) in the partial directory, a file with a
//! wrong checksum is deleted.

use crate::manifest::{Manifest, ManifestFile, find, local_path, sha256_file};
use crate::{Error, Result};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Settings of a fetch.
#[derive(Debug, Clone, Default)]
pub struct FetchOptions {
    /// Download `{mirror}/{path}` instead of each file's origin URL (a mirror laid out as a data directory).
    pub mirror: Option<String>,
    /// Where partial downloads wait to be resumed (default `<system temp>/dalab-fetch`).
    pub partial_dir: Option<PathBuf>,
    /// Connect/response timeout (default 30 s).
    pub timeout: Option<Duration>,
}

/// What happened to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchOutcome {
    /// Already in the data directory with the right SHA-256.
    Present,
    /// Downloaded and verified; `resumed_from` > 0 when a partial download was continued.
    Downloaded { bytes: u64, resumed_from: u64 },
    /// No URL in the manifest (derived or packed file) and not present: `how` says how to make it.
    NoUrl { how: String },
}

/// The outcome for one file of the manifest.
#[derive(Debug, Clone)]
pub struct FetchedFile {
    pub path: String,
    pub outcome: FetchOutcome,
    /// The manifest marks the file optional (its absence is not an error).
    pub optional: bool,
}

impl FetchedFile {
    /// True when the file is neither in place nor optional.
    pub fn is_missing(&self) -> bool {
        matches!(self.outcome, FetchOutcome::NoUrl { .. }) && !self.optional
    }
}

/// Fetches every file of the dataset manifest `name` that is not already present and verified.
pub fn fetch(name: &str, data_dir: &Path, opts: &FetchOptions) -> Result<Vec<FetchedFile>> {
    fetch_manifest(find(name)?, data_dir, opts)
}

/// Like [`fetch`] for a given manifest. Stops at the first file that fails (files already moved into place
/// stay: they are verified).
pub fn fetch_manifest(m: &Manifest, data_dir: &Path, opts: &FetchOptions) -> Result<Vec<FetchedFile>> {
    let partial_dir = opts.partial_dir.clone().unwrap_or_else(|| std::env::temp_dir().join("dalab-fetch"));
    let agent = agent(opts);
    let mut out = Vec::new();
    for f in &m.files {
        let dest = local_path(data_dir, &f.path);
        if dest.is_file() && sha256_file(&dest)? == f.sha256 {
            out.push(FetchedFile { path: f.path.clone(), outcome: FetchOutcome::Present, optional: f.optional });
            continue;
        }
        let url = match (&opts.mirror, &f.url) {
            (Some(base), _) => format!("{}/{}", base.trim_end_matches('/'), f.path),
            (None, Some(u)) => u.clone(),
            (None, None) => {
                let how = f.how.clone().unwrap_or_else(|| "no URL in the manifest".into());
                out.push(FetchedFile {
                    path: f.path.clone(),
                    outcome: FetchOutcome::NoUrl { how },
                    optional: f.optional,
                });
                continue;
            }
        };
        let outcome = fetch_file(&agent, f, &url, &dest, &partial_dir)?;
        out.push(FetchedFile { path: f.path.clone(), outcome, optional: f.optional });
    }
    Ok(out)
}

/// The HTTP agent of a fetch (HTTP errors as statuses; connect and response timeouts, default 30 s).
pub(crate) fn agent(opts: &FetchOptions) -> ureq::Agent {
    let timeout = opts.timeout.unwrap_or(Duration::from_secs(30));
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(timeout))
        .timeout_recv_response(Some(timeout))
        .build()
        .into()
}

/// Downloads `url` into `part` (from scratch: the size is not known beforehand, so there is nothing to resume
/// against). Returns the bytes written; an HTTP error status or a broken transfer deletes `part`.
pub(crate) fn download(agent: &ureq::Agent, url: &str, part: &Path) -> Result<u64> {
    let mut resp = agent.get(url).call().map_err(|e| fetch_err(url, e.to_string()))?;
    let status = resp.status().as_u16();
    if status != 200 {
        return Err(fetch_err(url, format!("HTTP status {status}")));
    }
    let mut file = std::fs::File::create(part).map_err(|e| Error::io(part, e))?;
    let copied = std::io::copy(&mut resp.body_mut().as_reader(), &mut file);
    match copied.and_then(|n| file.flush().map(|()| n)) {
        Ok(n) => Ok(n),
        Err(e) => {
            drop(file);
            std::fs::remove_file(part).ok();
            Err(fetch_err(url, format!("transfer failed ({e}); nothing was kept")))
        }
    }
}

fn fetch_err(url: &str, msg: impl Into<String>) -> Error {
    Error::Fetch { url: url.to_string(), msg: msg.into() }
}

/// Downloads one file (resuming), verifies it and moves it to `dest`.
fn fetch_file(
    agent: &ureq::Agent,
    f: &ManifestFile,
    url: &str,
    dest: &Path,
    partial_dir: &Path,
) -> Result<FetchOutcome> {
    std::fs::create_dir_all(partial_dir).map_err(|e| Error::io(partial_dir, e))?;
    let part = partial_dir.join(format!("{}.part", f.sha256));
    let mut start = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
    if start > f.bytes {
        std::fs::remove_file(&part).map_err(|e| Error::io(&part, e))?;
        start = 0;
    }
    let resumed_from = start;
    if start < f.bytes {
        let mut req = agent.get(url);
        if start > 0 {
            req = req.header("Range", format!("bytes={start}-"));
        }
        let mut resp = req.call().map_err(|e| fetch_err(url, e.to_string()))?;
        let status = resp.status().as_u16();
        let append = match status {
            206 if start > 0 => true,
            200 => false,
            416 if start > 0 => {
                // The server has nothing past `start`: the partial file is all there is; verify below.
                std::fs::remove_file(&part).ok();
                return Err(fetch_err(
                    url,
                    format!(
                        "server refused to resume at byte {start} (HTTP 416); partial download deleted, run the fetch again"
                    ),
                ));
            }
            s => return Err(fetch_err(url, format!("HTTP status {s}"))),
        };
        if !append {
            start = 0;
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(&part)
            .map_err(|e| Error::io(&part, e))?;
        let mut reader = resp.body_mut().as_reader();
        let mut buf = vec![0u8; 1 << 16];
        let mut have = start;
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    file.flush().ok();
                    return Err(fetch_err(
                        url,
                        format!(
                            "transfer interrupted after {have} of {} bytes ({e}); the partial download is kept in {} and the next fetch resumes it",
                            f.bytes,
                            partial_dir.display()
                        ),
                    ));
                }
            };
            have += n as u64;
            if have > f.bytes {
                drop(file);
                std::fs::remove_file(&part).ok();
                return Err(fetch_err(url, format!("more than the expected {} bytes; download deleted", f.bytes)));
            }
            file.write_all(&buf[..n]).map_err(|e| Error::io(&part, e))?;
        }
        file.flush().map_err(|e| Error::io(&part, e))?;
        if have < f.bytes {
            return Err(fetch_err(
                url,
                format!(
                    "transfer ended after {have} of {} bytes; the partial download is kept in {} and the next fetch resumes it",
                    f.bytes,
                    partial_dir.display()
                ),
            ));
        }
    }
    let got = sha256_file(&part)?;
    if got != f.sha256 {
        std::fs::remove_file(&part).ok();
        return Err(fetch_err(
            url,
            format!("SHA-256 mismatch for {}: got {got}, expected {}; the download was deleted", f.path, f.sha256),
        ));
    }
    move_into_place(&part, dest)?;
    Ok(FetchOutcome::Downloaded { bytes: f.bytes, resumed_from })
}

/// Moves a verified download to `dest`: a rename, or (across file systems) a copy to a hidden temporary
/// name next to `dest` followed by a rename, so `dest` appears whole or not at all.
fn move_into_place(part: &Path, dest: &Path) -> Result<()> {
    let parent = dest.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    if std::fs::rename(part, dest).is_ok() {
        return Ok(());
    }
    let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = parent.join(format!(".{name}.dalab-tmp"));
    let res = std::fs::copy(part, &tmp)
        .and_then(|_| std::fs::File::open(&tmp)?.sync_all())
        .and_then(|_| std::fs::rename(&tmp, dest));
    if let Err(e) = res {
        std::fs::remove_file(&tmp).ok();
        return Err(Error::io(dest, e));
    }
    std::fs::remove_file(part).ok();
    Ok(())
}

/// Renders fetch outcomes for the CLI.
pub fn render_outcomes(name: &str, files: &[FetchedFile]) -> String {
    let mut s = String::new();
    for f in files {
        let what = match &f.outcome {
            FetchOutcome::Present => "already present, SHA-256 ok".to_string(),
            FetchOutcome::Downloaded { bytes, resumed_from: 0 } => format!("downloaded {bytes} bytes, SHA-256 ok"),
            FetchOutcome::Downloaded { bytes, resumed_from } => {
                format!("downloaded {bytes} bytes (resumed at {resumed_from}), SHA-256 ok")
            }
            FetchOutcome::NoUrl { .. } if f.optional => "optional copy, not fetched (no URL)".to_string(),
            FetchOutcome::NoUrl { how } => format!("NOT FETCHED (no URL): {how}"),
        };
        s.push_str(&format!("{name}: {}: {what}\n", f.path));
    }
    s
}
