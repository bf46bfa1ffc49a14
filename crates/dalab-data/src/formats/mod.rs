//! File-format readers. Each returns plain arrays and names the file (and line or key) in its errors.
//!
//! | format | module | notes |
//! |---|---|---|
//! | MAT v5 (compressed or not) | [`mat`] | numeric and logical arrays; cells, structs, chars, sparse are listed but not read |
//! | `.npy`, `.npz` | [`npy`] | little/big endian ints, floats, bool; C or Fortran order; npz stored or deflated |
//! | svmlight / libsvm | [`svmlight`] | 0- or 1-based indices, `#` comments, `qid:` ignored |
//! | idx (`.gz`) | [`idx`] | the MNIST format |
//! | CSV / TSV / whitespace text (`.gz`) | [`text`] | optional header row, fixed width checked per line |
//! | PNGs in a tar(.gz) + label list | [`png_tar`] | the MNIST-M layout, decoded in parallel |
//! | image folders / image lists | [`images`] | Office-31 / Office-Home layouts; PNG and JPEG |
//! | HDF5 (earliest format) | [`hdf5`] | groups, contiguous/compact/chunked data, deflate/shuffle/fletcher32 |
//!
//! HDF5: [`hdf5`] reads numeric datasets of files in the library's "earliest" format (h5py's default) in pure
//! Rust (no C library); newer layouts are reported as unsupported.

pub mod hdf5;
pub mod idx;
pub mod images;
pub mod mat;
pub mod npy;
pub mod png_tar;
pub mod svmlight;
pub mod text;

use crate::{Error, Result};
use std::io::Read;
use std::path::Path;

/// Reads a whole file.
pub fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

/// True when `bytes` start with the gzip magic number.
pub fn is_gzip(bytes: &[u8]) -> bool {
    bytes.len() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b
}

/// Reads a file, decompressing it when it is gzip (by content, whatever the name).
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = read_bytes(path)?;
    if is_gzip(&raw) { gunzip(path, &raw) } else { Ok(raw) }
}

/// Decompresses gzip bytes read from `path` (all members); a truncated or corrupt stream is an error naming it.
pub fn gunzip(path: &Path, raw: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(raw.len() * 4);
    flate2::read::MultiGzDecoder::new(raw)
        .read_to_end(&mut out)
        .map_err(|e| Error::format(path, format!("truncated or corrupt gzip data ({e})")))?;
    Ok(out)
}

/// Decompresses a zlib stream (used by MAT v5 compressed elements).
pub(crate) fn inflate_zlib(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len() * 4);
    flate2::read::ZlibDecoder::new(data).read_to_end(&mut out)?;
    Ok(out)
}

/// File name in lower case, for choosing a format by extension.
pub(crate) fn lower_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_gzip_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.csv.gz");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut enc, &b"1,2,3\n".repeat(1000)).unwrap();
        let gz = enc.finish().unwrap();
        std::fs::write(&p, &gz).unwrap();
        assert_eq!(read_maybe_gz(&p).unwrap().len(), 6000);
        std::fs::write(&p, &gz[..gz.len() / 2]).unwrap();
        let e = read_maybe_gz(&p).unwrap_err().to_string();
        assert!(e.starts_with(&p.display().to_string()) && e.contains("truncated"), "{e}");
        let e = read_maybe_gz(&dir.path().join("nope.gz")).unwrap_err().to_string();
        assert!(e.contains("nope.gz"), "{e}");
    }

    /// Random truncations and byte flips of valid files give errors or values, never a panic.
    #[test]
    fn mutated_files_never_panic() {
        use rand::{Rng, SeedableRng};
        let a = ndarray::Array2::from_shape_fn((6, 5), |(i, j)| (i * 5 + j) as f64);
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("a.mat");
        mat::write(&m, &[("x", &a, mat::WriteClass::Double)], true).unwrap();
        let matb = std::fs::read(&m).unwrap();
        let m2 = dir.path().join("b.mat");
        mat::write(&m2, &[("x", &a, mat::WriteClass::Uint8)], false).unwrap();
        let matb2 = std::fs::read(&m2).unwrap();
        let npyb = npy::npy_bytes(&a.clone().into_dyn(), false);
        let z = dir.path().join("a.npz");
        npy::write_npz(&z, &[("x", &a.clone().into_dyn())], true).unwrap();
        let npzb = std::fs::read(&z).unwrap();
        let pngb = images::encode_png(&images::Image { width: 3, height: 2, channels: 3, data: (0..18).collect() });
        let svm = b"1 0:1 3:2.5\n-1 2:1\n".to_vec();
        let csv = b"a,b\n1,2\n3,4\n".to_vec();
        let p = Path::new("m");
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for round in 0..300 {
            for (kind, orig) in [(0, &matb), (1, &matb2), (2, &npyb), (3, &npzb), (4, &pngb), (5, &svm), (6, &csv)] {
                let mut b = orig.clone();
                if round % 2 == 0 {
                    b.truncate(rng.random_range(0..b.len()));
                } else {
                    for _ in 0..rng.random_range(1..4) {
                        let i = rng.random_range(0..b.len());
                        b[i] = rng.random();
                    }
                }
                match kind {
                    0 | 1 => {
                        let _ = mat::MatFile::parse(p, &b).and_then(|f| f.array(None));
                    }
                    2 => {
                        let _ = npy::parse_npy(&b);
                    }
                    3 => {
                        let _ = npy::Npz::open_bytes(p, &b);
                    }
                    4 => {
                        let _ = images::decode(&b);
                    }
                    5 => {
                        let _ = svmlight::parse(p, &b, svmlight::IndexBase::Zero, Some(4));
                    }
                    _ => {
                        let _ = text::parse(p, &b, text::Delimiter::Char(b','), None);
                    }
                }
            }
        }
    }
}
