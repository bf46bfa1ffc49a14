//! The idx format of MNIST (`*-idx3-ubyte`, optionally gzipped): magic `00 00 TT ND`, ND big-endian u32
//! dimensions, then the values (big endian). TT: 0x08 u8, 0x09 i8, 0x0B i16, 0x0C i32, 0x0D f32, 0x0E f64.

use crate::{Error, Result};
use ndarray::{ArrayD, IxDyn};
use std::path::Path;

/// Reads an idx file of unsigned bytes (images, labels) keeping the bytes.
pub fn read_u8(path: &Path) -> Result<ArrayD<u8>> {
    let bytes = super::read_maybe_gz(path)?;
    let (ty, shape, data) = header(path, &bytes)?;
    if ty != 0x08 {
        return Err(Error::format(path, format!("idx type 0x{ty:02x}, expected unsigned bytes (0x08)")));
    }
    ArrayD::from_shape_vec(IxDyn(&shape), data.to_vec())
        .map_err(|e| Error::format(path, format!("idx shape {shape:?}: {e}")))
}

/// Reads an idx file of any type into f64.
pub fn read(path: &Path) -> Result<ArrayD<f64>> {
    let bytes = super::read_maybe_gz(path)?;
    let (ty, shape, d) = header(path, &bytes)?;
    macro_rules! conv {
        ($t:ty, $w:expr) => {
            d.chunks_exact($w).map(|c| <$t>::from_be_bytes(c.try_into().unwrap()) as f64).collect()
        };
    }
    let v: Vec<f64> = match ty {
        0x08 => d.iter().map(|&b| b as f64).collect(),
        0x09 => d.iter().map(|&b| b as i8 as f64).collect(),
        0x0B => conv!(i16, 2),
        0x0C => conv!(i32, 4),
        0x0D => conv!(f32, 4),
        _ => conv!(f64, 8),
    };
    ArrayD::from_shape_vec(IxDyn(&shape), v).map_err(|e| Error::format(path, format!("idx shape {shape:?}: {e}")))
}

/// (type code, shape, data bytes of exactly the right length).
fn header<'a>(path: &Path, b: &'a [u8]) -> Result<(u8, Vec<usize>, &'a [u8])> {
    if b.len() < 4 || b[0] != 0 || b[1] != 0 {
        return Err(Error::format(path, "not an idx file (bad magic number)"));
    }
    let ty = b[2];
    let width: usize = match ty {
        0x08 | 0x09 => 1,
        0x0B => 2,
        0x0C | 0x0D => 4,
        0x0E => 8,
        _ => return Err(Error::format(path, format!("not an idx file (unknown type 0x{ty:02x})"))),
    };
    let nd = b[3] as usize;
    if b.len() < 4 + 4 * nd {
        return Err(Error::format(path, "truncated idx header"));
    }
    let shape: Vec<usize> =
        (0..nd).map(|i| u32::from_be_bytes(b[4 + 4 * i..8 + 4 * i].try_into().unwrap()) as usize).collect();
    // ndarray refuses shapes whose non-zero lengths multiply beyond isize::MAX, even with a zero length among them.
    let nonzero = shape.iter().filter(|&&d| d > 0).try_fold(width, |a: usize, &d| a.checked_mul(d));
    if nonzero.is_none_or(|n| n > isize::MAX as usize) {
        return Err(Error::format(path, format!("idx shape {shape:?} is too large")));
    }
    let need = shape.iter().try_fold(width, |a: usize, &d| a.checked_mul(d)).unwrap_or(usize::MAX);
    let data = &b[4 + 4 * nd..];
    if data.len() < need {
        return Err(Error::format(
            path,
            format!("truncated idx data: shape {shape:?} needs {need} bytes, file has {}", data.len()),
        ));
    }
    Ok((ty, shape, &data[..need]))
}

/// Writes an idx file of unsigned bytes (gzipped when the name ends in `.gz`). For tests.
pub fn write_u8(path: &Path, a: &ArrayD<u8>) -> Result<()> {
    let mut out = vec![0, 0, 0x08, a.ndim() as u8];
    for &d in a.shape() {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend(a.iter().copied());
    if super::lower_name(path).ends_with(".gz") {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut enc, &out).map_err(|e| Error::io(path, e))?;
        out = enc.finish().map_err(|e| Error::io(path, e))?;
    }
    std::fs::write(path, out).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let a = ArrayD::from_shape_fn(IxDyn(&[3, 2, 2]), |i| (i[0] * 4 + i[1] * 2 + i[2]) as u8);
        for name in ["a-idx3-ubyte", "a-idx3-ubyte.gz"] {
            let p = dir.path().join(name);
            write_u8(&p, &a).unwrap();
            assert_eq!(read_u8(&p).unwrap(), a);
            assert_eq!(read(&p).unwrap(), a.mapv(f64::from));
        }
        let p = dir.path().join("a-idx3-ubyte");
        let b = std::fs::read(&p).unwrap();
        std::fs::write(&p, &b[..b.len() - 1]).unwrap();
        let e = read_u8(&p).unwrap_err().to_string();
        assert!(e.starts_with(&p.display().to_string()) && e.contains("truncated idx data"), "{e}");
    }
}
