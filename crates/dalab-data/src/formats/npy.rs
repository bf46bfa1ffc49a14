//! NumPy `.npy` arrays (dalab's reader) and `.npz` archives (the `zip` crate: stored or deflated members, zip64,
//! member CRCs checked; each member read by the `.npy` reader).
//!
//! Supported dtypes: bool, signed/unsigned ints of 1–8 bytes and floats of 4/8 bytes, either endianness, C or Fortran
//! order. Values are returned as `f64` in row-major layout. Why not the `npyz` crate for the `.npy` part: its header
//! parser (py_literal on pest) hung on a fuzzed header (docs/datasets.md, "Which crate reads which format"); this
//! one reads the few keys numpy writes with bounded work per byte.

use crate::{Error, Result};
use ndarray::{ArrayD, IxDyn, ShapeBuilder};
use std::io::{Read, Write};
use std::path::Path;

/// Reads a `.npy` file.
pub fn read_npy(path: &Path) -> Result<ArrayD<f64>> {
    let bytes = super::read_bytes(path)?;
    parse_npy(&bytes).map_err(|m| Error::format(path, m))
}

/// Parses `.npy` bytes; the error is a message without the file name.
pub fn parse_npy(b: &[u8]) -> std::result::Result<ArrayD<f64>, String> {
    if b.len() < 10 || &b[..6] != b"\x93NUMPY" {
        return Err("not a .npy file (bad magic)".into());
    }
    let (hlen, hstart) = match b[6] {
        1 => (u16::from_le_bytes([b[8], b[9]]) as usize, 10),
        2 | 3 => {
            if b.len() < 12 {
                return Err("truncated .npy header".into());
            }
            (u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize, 12)
        }
        v => return Err(format!("unsupported .npy version {v}")),
    };
    if b.len() < hstart + hlen {
        return Err("truncated .npy header".into());
    }
    let header = std::str::from_utf8(&b[hstart..hstart + hlen]).map_err(|_| "non-UTF-8 .npy header".to_string())?;
    let dict = header.trim_end_matches(['\n', ' ', '\x00']).trim_start();
    if !(dict.starts_with('{') && dict.ends_with('}')) {
        return Err("the .npy header is not a Python dict literal `{...}`".into());
    }
    let descr = dict_value(header, "descr").ok_or("no 'descr' in the .npy header")?;
    let descr = descr.trim().trim_matches(|c| c == '\'' || c == '"');
    let fortran = match dict_value(header, "fortran_order").ok_or("no 'fortran_order' in the .npy header")?.trim() {
        "True" => true,
        "False" => false,
        other => return Err(format!("fortran_order must be True or False in the .npy header, got `{other}`")),
    };
    let shape_s = dict_value(header, "shape").ok_or("no 'shape' in the .npy header")?;
    let shape: Vec<usize> = shape_s
        .trim()
        .trim_start_matches('(')
        .trim_end_matches(')')
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_end_matches('L').parse::<usize>().map_err(|_| format!("bad shape {shape_s}")))
        .collect::<std::result::Result<_, _>>()?;
    let (be, kind, width) = parse_descr(descr)?;
    let count = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).unwrap_or(usize::MAX);
    let need = count.saturating_mul(width);
    let data = &b[hstart + hlen..];
    if data.len() < need {
        return Err(format!(
            "truncated .npy data: shape {shape:?} of {descr} needs {need} bytes, file has {}",
            data.len()
        ));
    }
    if data.len() > need {
        return Err(format!(
            "{} bytes after the .npy header, but shape {shape:?} of {descr} is {need} (corrupt header or extra data)",
            data.len()
        ));
    }
    let values = decode(&data[..need], be, kind, width)?;
    let a = if fortran {
        ArrayD::from_shape_vec(IxDyn(&shape).f(), values)
    } else {
        ArrayD::from_shape_vec(IxDyn(&shape), values)
    }
    .map_err(|e| e.to_string())?;
    Ok(a.as_standard_layout().into_owned())
}

/// The text after `'key':` in a Python dict literal, up to the next top-level comma.
fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let pat1 = format!("'{key}':");
    let pat2 = format!("\"{key}\":");
    let i = header.find(&pat1).map(|i| i + pat1.len()).or_else(|| header.find(&pat2).map(|i| i + pat2.len()))?;
    let rest = &header[i..];
    let mut depth = 0i32;
    for (j, c) in rest.char_indices() {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => depth -= 1,
            ',' | '}' if depth == 0 => return Some(&rest[..j]),
            _ => {}
        }
    }
    Some(rest)
}

/// (big endian, kind letter, byte width) of a simple dtype string like `<f4`, `|u1`, `>i8`, `|b1`.
fn parse_descr(d: &str) -> std::result::Result<(bool, char, usize), String> {
    let mut chars = d.chars();
    let (be, rest) = match chars.next() {
        Some('<') | Some('|') | Some('=') => (false, chars.as_str()),
        Some('>') => (true, chars.as_str()),
        _ => (false, d),
    };
    let mut rc = rest.chars();
    let kind = rc.next().ok_or_else(|| format!("unsupported dtype {d:?}"))?;
    let width: usize = rc.as_str().parse().map_err(|_| format!("unsupported dtype {d:?}"))?;
    let ok = match kind {
        'f' => width == 4 || width == 8,
        'i' | 'u' => matches!(width, 1 | 2 | 4 | 8),
        'b' => width == 1,
        _ => false,
    };
    if !ok {
        return Err(format!("unsupported dtype {d:?} (supported: bool, ints, float32, float64)"));
    }
    Ok((be, kind, width))
}

fn decode(b: &[u8], be: bool, kind: char, width: usize) -> std::result::Result<Vec<f64>, String> {
    macro_rules! conv {
        ($t:ty, $w:expr) => {
            b.chunks_exact($w)
                .map(|c| {
                    let a: [u8; $w] = c.try_into().unwrap();
                    (if be { <$t>::from_be_bytes(a) } else { <$t>::from_le_bytes(a) }) as f64
                })
                .collect()
        };
    }
    Ok(match (kind, width) {
        ('b', 1) | ('u', 1) => b.iter().map(|&v| v as f64).collect(),
        ('i', 1) => b.iter().map(|&v| v as i8 as f64).collect(),
        ('i', 2) => conv!(i16, 2),
        ('u', 2) => conv!(u16, 2),
        ('i', 4) => conv!(i32, 4),
        ('u', 4) => conv!(u32, 4),
        ('i', 8) => conv!(i64, 8),
        ('u', 8) => conv!(u64, 8),
        ('f', 4) => conv!(f32, 4),
        ('f', 8) => conv!(f64, 8),
        _ => return Err(format!("unsupported dtype {kind}{width}")),
    })
}

/// Writes a little-endian C-order `.npy` file (`float32` when `f32` is true, else `float64`).
pub fn write_npy(path: &Path, a: &ArrayD<f64>, f32: bool) -> Result<()> {
    std::fs::write(path, npy_bytes(a, f32)).map_err(|e| Error::io(path, e))
}

/// The bytes of a `.npy` file holding `a`.
pub fn npy_bytes(a: &ArrayD<f64>, f32: bool) -> Vec<u8> {
    let shape: Vec<String> = a.shape().iter().map(|d| d.to_string()).collect();
    let shape = if shape.len() == 1 { format!("({},)", shape[0]) } else { format!("({})", shape.join(", ")) };
    let mut h =
        format!("{{'descr': '{}', 'fortran_order': False, 'shape': {shape}, }}", if f32 { "<f4" } else { "<f8" });
    while (10 + h.len() + 1) % 64 != 0 {
        h.push(' ');
    }
    h.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(h.len() as u16).to_le_bytes());
    out.extend_from_slice(h.as_bytes());
    for v in a.iter() {
        if f32 {
            out.extend_from_slice(&(*v as f32).to_le_bytes());
        } else {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    out
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
