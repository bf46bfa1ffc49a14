//! NumPy `.npy` arrays and `.npz` archives, on the `npyz` crate (header, dtypes, byte orders, both memory orders)
//! and the `zip` crate (the archive: stored or deflated members, zip64). What stays here is what those crates leave
//! to the caller: the data's length checked against the header before anything is read (a truncated file, or extra
//! bytes after the data, is an error naming both sizes), the dtype turned into `f64`, and messages that name the
//! file and the member.
//!
//! Supported dtypes: bool, signed/unsigned ints of 1–8 bytes and floats of 4/8 bytes, either endianness, C or Fortran
//! order. Values are returned as `f64` in row-major layout.

use crate::{Error, Result};
use ndarray::{ArrayD, IxDyn, ShapeBuilder};
use npyz::{DType, Order, TypeChar, WriterBuilder};
use std::io::{Read, Write};
use std::path::Path;

/// Reads a `.npy` file.
pub fn read_npy(path: &Path) -> Result<ArrayD<f64>> {
    let bytes = super::read_bytes(path)?;
    parse_npy(&bytes).map_err(|m| Error::format(path, m))
}

/// Offset of the data: the magic, the version and the header length, as the format defines them (npyz reads the
/// header but does not say where it ends).
fn data_offset(b: &[u8]) -> std::result::Result<usize, String> {
    if b.len() < 10 || &b[..6] != b"\x93NUMPY" {
        return Err("not a .npy file (bad magic)".into());
    }
    let (len, start) = match b[6] {
        1 => (u16::from_le_bytes([b[8], b[9]]) as usize, 10),
        2 | 3 if b.len() >= 12 => (u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize, 12),
        2 | 3 => return Err("truncated .npy header".into()),
        v => return Err(format!("unsupported .npy version {v}")),
    };
    if b.len() < start + len {
        return Err("truncated .npy header".into());
    }
    Ok(start + len)
}

/// npyz's error about the header, on one line (its parser's message spans several, with a caret under the column),
/// followed by the header text itself.
fn header_error(b: &[u8], offset: usize, e: &std::io::Error) -> String {
    let text = e.to_string();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        // Not the blank, `|` and `<n> | <source>` lines of the pest report.
        .filter(|l| !l.is_empty() && !l.starts_with('|'))
        .filter(|l| l.split_once(" | ").is_none_or(|(n, _)| n.trim().parse::<u32>().is_err()))
        .collect();
    let start = if b[6] == 1 { 10 } else { 12 };
    let header = String::from_utf8_lossy(&b[start..offset]);
    let msg = lines.join(" ").replace(":  --> ", " at ").replace(" = expected", ": expected");
    format!("bad .npy header: {msg} (header: {})", header.trim_end())
}

/// Parses `.npy` bytes; the error is a message without the file name.
pub fn parse_npy(b: &[u8]) -> std::result::Result<ArrayD<f64>, String> {
    let offset = data_offset(b)?;
    let file = npyz::NpyFile::new(b).map_err(|e| header_error(b, offset, &e))?;
    let DType::Plain(ts) = file.dtype() else {
        return Err(format!("unsupported dtype {} (structured arrays are not read)", file.dtype().descr()));
    };
    let (kind, width) = (ts.type_char(), ts.size_field() as usize);
    let ok = match kind {
        TypeChar::Float => width == 4 || width == 8,
        TypeChar::Int | TypeChar::Uint => matches!(width, 1 | 2 | 4 | 8),
        TypeChar::Bool => width == 1,
        _ => false,
    };
    if !ok {
        return Err(format!("unsupported dtype {ts} (supported: bool, ints, float32, float64)"));
    }
    let shape: Vec<usize> = file
        .shape()
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| format!("bad shape {:?}", file.shape())))
        .collect::<std::result::Result<_, _>>()?;
    let count = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).unwrap_or(usize::MAX);
    let need = count.saturating_mul(width);
    let have = b.len() - offset;
    if have < need {
        return Err(format!("truncated .npy data: shape {shape:?} of {ts} needs {need} bytes, file has {have}"));
    }
    if have > need {
        return Err(format!(
            "{have} bytes after the .npy header, but shape {shape:?} of {ts} is {need} (corrupt header or extra data)"
        ));
    }
    let fortran = file.order() == Order::Fortran;
    let values = decode(file, kind, width).map_err(|e| format!("bad .npy data: {e}"))?;
    let a = if fortran {
        ArrayD::from_shape_vec(IxDyn(&shape).f(), values)
    } else {
        ArrayD::from_shape_vec(IxDyn(&shape), values)
    }
    .map_err(|e| e.to_string())?;
    Ok(a.as_standard_layout().into_owned())
}

/// The values of `file` (a checked plain dtype) as `f64`, by npyz in the type of the dtype (npyz swaps the bytes).
fn decode(file: npyz::NpyFile<&[u8]>, kind: TypeChar, width: usize) -> std::io::Result<Vec<f64>> {
    fn all<T: npyz::Deserialize>(file: npyz::NpyFile<&[u8]>, f: impl Fn(T) -> f64) -> std::io::Result<Vec<f64>> {
        Ok(file.into_vec::<T>()?.into_iter().map(f).collect())
    }
    match (kind, width) {
        (TypeChar::Bool, _) => all(file, |v: bool| f64::from(u8::from(v))),
        (TypeChar::Uint, 1) => all(file, |v: u8| f64::from(v)),
        (TypeChar::Int, 1) => all(file, |v: i8| f64::from(v)),
        (TypeChar::Int, 2) => all(file, |v: i16| f64::from(v)),
        (TypeChar::Uint, 2) => all(file, |v: u16| f64::from(v)),
        (TypeChar::Int, 4) => all(file, |v: i32| f64::from(v)),
        (TypeChar::Uint, 4) => all(file, |v: u32| f64::from(v)),
        (TypeChar::Int, _) => all(file, |v: i64| v as f64),
        (TypeChar::Uint, _) => all(file, |v: u64| v as f64),
        (TypeChar::Float, 4) => all(file, |v: f32| f64::from(v)),
        _ => all(file, |v: f64| v),
    }
}

/// Writes a little-endian C-order `.npy` file (`float32` when `f32` is true, else `float64`).
pub fn write_npy(path: &Path, a: &ArrayD<f64>, f32: bool) -> Result<()> {
    std::fs::write(path, npy_bytes(a, f32)).map_err(|e| Error::io(path, e))
}

/// The bytes of a `.npy` file holding `a` (npyz's writer).
pub fn npy_bytes(a: &ArrayD<f64>, f32: bool) -> Vec<u8> {
    fn write<T: npyz::AutoSerialize>(shape: &[u64], values: impl Iterator<Item = T>) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut w = npyz::WriteOptions::new().default_dtype().shape(shape).writer(&mut out).begin_nd()?;
        w.extend(values)?;
        w.finish()?;
        Ok(out)
    }
    let shape: Vec<u64> = a.shape().iter().map(|&d| d as u64).collect();
    let bytes = if f32 { write(&shape, a.iter().map(|&v| v as f32)) } else { write(&shape, a.iter().copied()) };
    bytes.expect("writing into memory does not fail")
}

/// The members of an `.npz` archive (names without the `.npy` suffix, in archive order).
#[derive(Debug, Clone)]
pub struct Npz {
    pub path: std::path::PathBuf,
    pub arrays: Vec<(String, ArrayD<f64>)>,
}

impl Npz {
    /// Reads every `.npy` member of an `.npz` file.
    pub fn open(path: &Path) -> Result<Self> {
        let bytes = super::read_bytes(path)?;
        Self::open_bytes(path, &bytes)
    }

    /// Parses the bytes of an `.npz` file read from `path` (named in errors).
    pub fn open_bytes(path: &Path, bytes: &[u8]) -> Result<Self> {
        let zip_err = |e: zip::result::ZipError| Error::format(path, format!("not a readable zip archive: {e}"));
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(zip_err)?;
        let mut arrays = Vec::new();
        for i in 0..archive.len() {
            let mut member = archive.by_index(i).map_err(zip_err)?;
            let name = member.name().map_err(zip_err)?.to_string();
            // The declared size bounds the buffer: a corrupt header cannot ask for more than the archive holds.
            let mut data = Vec::with_capacity((member.size() as usize).min(bytes.len().saturating_mul(1032)));
            member
                .read_to_end(&mut data)
                .map_err(|e| Error::format(path, format!("member `{name}`: corrupt zip data ({e})")))?;
            let key = name.strip_suffix(".npy").unwrap_or(&name).to_string();
            let a = parse_npy(&data).map_err(|m| Error::format(path, format!("member `{name}`: {m}")))?;
            arrays.push((key, a));
        }
        Ok(Npz { path: path.to_path_buf(), arrays })
    }

    /// Member `key`, or with `None` the only member.
    pub fn get(&self, key: Option<&str>) -> Result<&ArrayD<f64>> {
        let names = || self.arrays.iter().map(|(k, a)| format!("{k} {:?}", a.shape())).collect::<Vec<_>>().join(", ");
        match key {
            Some(k) => self
                .arrays
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, a)| a)
                .ok_or_else(|| Error::format(&self.path, format!("no array `{k}` (arrays: {})", names()))),
            None if self.arrays.len() == 1 => Ok(&self.arrays[0].1),
            None => Err(Error::format(
                &self.path,
                format!("{} arrays, say which one (arrays: {})", self.arrays.len(), names()),
            )),
        }
    }
}

/// Writes an `.npz` archive (deflated when `compress`), members named `<key>.npy` (the `zip` crate's writer). For
/// tests and exports.
pub fn write_npz(path: &Path, arrays: &[(&str, &ArrayD<f64>)], compress: bool) -> Result<()> {
    let method = if compress { zip::CompressionMethod::Deflated } else { zip::CompressionMethod::Stored };
    let options = zip::write::SimpleFileOptions::default().compression_method(method);
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let zip_err = |e: zip::result::ZipError| Error::format(path, format!("writing the archive: {e}"));
    for (key, a) in arrays {
        w.start_file(format!("{key}.npy"), options).map_err(zip_err)?;
        w.write_all(&npy_bytes(a, false)).map_err(|e| Error::io(path, e))?;
    }
    let out = w.finish().map_err(zip_err)?.into_inner();
    std::fs::write(path, out).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    /// `np.save(f, np.array([[1, 2, 3], [4, 5, 6]], dtype='>i2', order='F'))`, byte for byte.
    const NUMPY_BE_FORTRAN: &[u8] = b"\x93NUMPY\x01\x00v\x00{'descr': '>i2', 'fortran_order': True, 'shape': (2, 3), }                                                           \n\x00\x01\x00\x04\x00\x02\x00\x05\x00\x03\x00\x06";

    /// `np.savez_compressed(f, x=np.array([[1.5, 2], [3, 4]], dtype='<f4'), y=np.array([1, 0]))` (numpy 2.4,
    /// zip64 local headers), byte for byte.
    const NUMPY_NPZ: &[u8] =
        b"\x50\x4b\x03\x04\x2d\x00\x00\x00\x08\x00\x00\x00\x21\x00\xbf\x0c\x99\x34\xff\xff\xff\xff\xff\xff\
      \xff\xff\x05\x00\x14\x00\x78\x2e\x6e\x70\x79\x01\x00\x10\x00\x90\x00\x00\x00\x00\x00\x00\x00\x53\
      \x00\x00\x00\x00\x00\x00\x00\x9b\xec\x17\xea\x1b\x10\xc9\xc8\x50\xc6\x50\xad\x9e\x92\x5a\x9c\x5c\
      \xa4\x6e\xa5\xa0\x6e\x93\x66\xa2\xae\xa3\xa0\x9e\x96\x5f\x54\x52\x94\x98\x17\x9f\x5f\x94\x92\x0a\
      \x12\x77\x4b\xcc\x29\x4e\x05\x8a\x17\x67\x24\x16\xa4\x02\xf9\x1a\x46\x3a\x0a\x46\x9a\x3a\x0a\xb5\
      \x0a\x64\x03\x2e\x06\x86\x03\xf6\x0c\x0c\x0c\x0e\x40\x04\xc4\x0d\x0e\x00\x50\x4b\x03\x04\x2d\x00\
      \x00\x00\x08\x00\x00\x00\x21\x00\x71\xfb\x39\xab\xff\xff\xff\xff\xff\xff\xff\xff\x05\x00\x14\x00\
      \x79\x2e\x6e\x70\x79\x01\x00\x10\x00\x90\x00\x00\x00\x00\x00\x00\x00\x48\x00\x00\x00\x00\x00\x00\
      \x00\x9b\xec\x17\xea\x1b\x10\xc9\xc8\x50\xc6\x50\xad\x9e\x92\x5a\x9c\x5c\xa4\x6e\xa5\xa0\x6e\x93\
      \x69\xa1\xae\xa3\xa0\x9e\x96\x5f\x54\x52\x94\x98\x17\x9f\x5f\x94\x92\x0a\x12\x77\x4b\xcc\x29\x4e\
      \x05\x8a\x17\x67\x24\x16\xa4\x02\xf9\x1a\x46\x3a\x9a\x3a\x0a\xb5\x0a\x14\x00\x2e\x46\x06\x54\x00\
      \x00\x50\x4b\x01\x02\x2d\x03\x2d\x00\x00\x00\x08\x00\x00\x00\x21\x00\xbf\x0c\x99\x34\x53\x00\x00\
      \x00\x90\x00\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x80\x01\x00\x00\x00\x00\x78\
      \x2e\x6e\x70\x79\x50\x4b\x01\x02\x2d\x03\x2d\x00\x00\x00\x08\x00\x00\x00\x21\x00\x71\xfb\x39\xab\
      \x48\x00\x00\x00\x90\x00\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x80\x01\x8a\x00\
      \x00\x00\x79\x2e\x6e\x70\x79\x50\x4b\x05\x06\x00\x00\x00\x00\x02\x00\x02\x00\x66\x00\x00\x00\x09\
      \x01\x00\x00\x00\x00";

    #[test]
    fn numpy_npz_file() {
        let z = Npz::open_bytes(Path::new("np.npz"), NUMPY_NPZ).unwrap();
        assert_eq!(z.get(Some("x")).unwrap(), &array![[1.5, 2.0], [3.0, 4.0]].into_dyn());
        assert_eq!(z.get(Some("y")).unwrap(), &array![1.0, 0.0].into_dyn());
    }

    #[test]
    fn numpy_file_big_endian_fortran_order() {
        let a = parse_npy(NUMPY_BE_FORTRAN).unwrap();
        assert_eq!(a, array![[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]].into_dyn());
    }

    #[test]
    fn npy_and_npz_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let x = array![[0.5, 1.5], [2.5, -3.5], [4.0, 5.0]].into_dyn();
        let y = array![1.0, 0.0, 2.0].into_dyn();
        let p = dir.path().join("x.npy");
        write_npy(&p, &x, true).unwrap();
        assert_eq!(read_npy(&p).unwrap(), x);
        for compress in [false, true] {
            let p = dir.path().join(format!("d{compress}.npz"));
            write_npz(&p, &[("x", &x), ("y", &y)], compress).unwrap();
            let z = Npz::open(&p).unwrap();
            assert_eq!(z.get(Some("x")).unwrap(), &x);
            assert_eq!(z.get(Some("y")).unwrap(), &y);
            let e = z.get(None).unwrap_err().to_string();
            assert!(e.contains("2 arrays") && e.contains("x [3, 2]") && e.contains("y [3]"), "{e}");
            // Truncated archive.
            let b = std::fs::read(&p).unwrap();
            std::fs::write(&p, &b[..b.len() - 30]).unwrap();
            let e = Npz::open(&p).unwrap_err().to_string();
            assert!(e.starts_with(&p.display().to_string()), "{e}");
        }
    }

    #[test]
    fn truncated_npy_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.npy");
        let b = npy_bytes(&ndarray::Array2::<f64>::zeros((10, 10)).into_dyn(), false);
        std::fs::write(&p, &b[..b.len() - 8]).unwrap();
        let e = read_npy(&p).unwrap_err().to_string();
        assert!(e.starts_with(&p.display().to_string()) && e.contains("truncated"), "{e}");
    }
}
