//! What the fuzz targets share: every reader of dalab-data takes a path, so an input is written to a file of the
//! reader's extension on a RAM disk (`/dev/shm` where it exists), one per process, and read back from there.

use std::path::PathBuf;

/// Writes `data` to this process's scratch file with extension `ext` and returns its path.
pub fn scratch(ext: &str, data: &[u8]) -> PathBuf {
    let dir = if std::path::Path::new("/dev/shm").is_dir() { PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
    let p = dir.join(format!("dalab-fuzz-{}.{ext}", std::process::id()));
    std::fs::write(&p, data).expect("scratch file writable");
    p
}
