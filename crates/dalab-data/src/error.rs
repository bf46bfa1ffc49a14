use std::path::{Path, PathBuf};

/// Errors of the data layer. Each is one line naming the file (and line or key, where there is one) or the
/// setting at fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The operating system refused a file operation.
    #[error("{path}: {source}", path = path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A bad setting or an impossible request (no file involved).
    #[error("{0}")]
    Invalid(String),
    /// A file whose content does not follow its format (or what the dataset expects of it).
    #[error("{}{}: {msg}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Format { path: PathBuf, line: Option<usize>, msg: String },
    /// A file of a known dataset that is not in the data directory.
    #[error(
        "{path}: file not found (dataset `{dataset}`, expected SHA-256 {sha256}); get it with `dalab data fetch {dataset}`",
        path = path.display()
    )]
    Missing { path: PathBuf, dataset: String, sha256: String },
    /// A file of a known dataset whose size or SHA-256 is not the manifest's.
    #[error(
        "{path}: {what} (dataset `{dataset}`, expected SHA-256 {sha256}); get it again with `dalab data fetch {dataset}`",
        path = path.display()
    )]
    Corrupt { path: PathBuf, dataset: String, sha256: String, what: String },
    /// A download that failed; nothing was left in the data directory.
    #[error("fetching {url}: {msg}")]
    Fetch { url: String, msg: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io { path: path.as_ref().to_path_buf(), source }
    }

    /// A format error in `path` (no line).
    pub fn format(path: impl AsRef<Path>, msg: impl Into<String>) -> Self {
        Error::Format { path: path.as_ref().to_path_buf(), line: None, msg: msg.into() }
    }

    /// A format error at 1-based `line` of `path`.
    pub fn at_line(path: impl AsRef<Path>, line: usize, msg: impl Into<String>) -> Self {
        Error::Format { path: path.as_ref().to_path_buf(), line: Some(line), msg: msg.into() }
    }

    /// The file this error is about, if any.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Error::Io { path, .. }
            | Error::Format { path, .. }
            | Error::Missing { path, .. }
            | Error::Corrupt { path, .. } => Some(path),
            Error::Invalid(_) | Error::Fetch { .. } => None,
        }
    }
}
