//! MATLAB MAT-file version 5 (what `save` writes by default up to `-v7`; `-v7.3` is HDF5 and not read here).
//!
//! Layout: a 128-byte header (text, subsystem offset, version, endian indicator `IM`/`MI`), then data
//! elements, each an 8-byte tag (type, byte count) or a 4-byte "small element" tag, padded to 8 bytes.
//! A top-level element is a `miMATRIX` or a zlib-compressed (`miCOMPRESSED`) `miMATRIX`. A matrix holds
//! array flags (class), dimensions, name and the real part, stored column-major.
//!
//! Numeric classes (double, single, int8..uint64) and logicals are read into `f64`; other classes
//! (cell, struct, char, sparse, object) are listed by [`MatFile::names`] but cannot be read as arrays.

use crate::{Error, Result};
use ndarray::{Array2, ArrayD, IxDyn};
use std::path::{Path, PathBuf};

const MI_INT8: u32 = 1;
const MI_UINT8: u32 = 2;
const MI_INT16: u32 = 3;
const MI_UINT16: u32 = 4;
const MI_INT32: u32 = 5;
const MI_UINT32: u32 = 6;
const MI_SINGLE: u32 = 7;
const MI_DOUBLE: u32 = 9;
const MI_INT64: u32 = 12;
const MI_UINT64: u32 = 13;
const MI_MATRIX: u32 = 14;
const MI_COMPRESSED: u32 = 15;

/// MATLAB array classes (`mxCLASS`), as stored in the array flags.
fn class_name(c: u8) -> &'static str {
    match c {
        1 => "cell",
        2 => "struct",
        3 => "object",
        4 => "char",
        5 => "sparse",
        6 => "double",
        7 => "single",
        8 => "int8",
        9 => "uint8",
        10 => "int16",
        11 => "uint16",
        12 => "int32",
        13 => "uint32",
        14 => "int64",
        15 => "uint64",
        _ => "unknown",
    }
}

/// One top-level variable of a MAT file.
#[derive(Debug, Clone)]
pub struct MatVar {
    pub name: String,
    /// MATLAB class name (`double`, `uint8`, `cell`, ...).
    pub class: &'static str,
    /// MATLAB dimensions (at least 2).
    pub dims: Vec<usize>,
    /// Values in column-major order; `None` for classes that are not numeric arrays.
    data: Option<Vec<f64>>,
}

impl MatVar {
    /// The values as an array of shape `dims` in standard (row-major) layout.
    pub fn array(&self) -> Option<ArrayD<f64>> {
        let data = self.data.as_ref()?;
        let rev: Vec<usize> = self.dims.iter().rev().copied().collect();
        let a = ArrayD::from_shape_vec(IxDyn(&rev), data.clone()).ok()?;
        Some(a.reversed_axes().as_standard_layout().into_owned())
    }
}

/// A parsed MAT v5 file.
#[derive(Debug, Clone)]
pub struct MatFile {
    pub path: PathBuf,
    pub vars: Vec<MatVar>,
}

impl MatFile {
    /// Reads and parses `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let bytes = super::read_bytes(path)?;
        Self::parse(path, &bytes)
    }

    /// Parses the bytes of a MAT v5 file read from `path` (named in errors).
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Self> {
        if bytes.len() < 128 {
            return Err(Error::format(
                path,
                format!("not a MAT v5 file: {} bytes, shorter than the header", bytes.len()),
            ));
        }
        if bytes.starts_with(b"\x89HDF") || bytes[..128].windows(4).any(|w| w == b"\x89HDF") {
            return Err(Error::format(path, "MAT v7.3 (HDF5) files are not supported; save with -v7"));
        }
        let big_endian = match &bytes[126..128] {
            b"IM" => false,
            b"MI" => true,
            _ => return Err(Error::format(path, "not a MAT v5 file (no endian indicator at byte 126)")),
        };
        let mut vars = Vec::new();
        let mut r = Reader { path, buf: bytes, pos: 128, base: 0, be: big_endian };
        while r.pos < bytes.len() {
            if bytes.len() - r.pos < 8 {
                // Trailing padding shorter than a tag.
                if bytes[r.pos..].iter().all(|&b| b == 0) {
                    break;
                }
                return Err(r.err("truncated element tag"));
            }
            let (ty, n, start) = r.tag()?;
            let body = r.take(n, ty)?;
            match ty {
                MI_MATRIX => {
                    if let Some(v) = parse_matrix(path, body, r.be, start)? {
                        vars.push(v);
                    }
                    r.align();
                }
                MI_COMPRESSED => {
                    let inner = super::inflate_zlib(body).map_err(|e| {
                        Error::format(path, format!("truncated or corrupt compressed element at byte {start} ({e})"))
                    })?;
                    let mut ir = Reader { path, buf: &inner, pos: 0, base: start, be: r.be };
                    while inner.len() - ir.pos >= 8 {
                        let (ity, n, istart) = ir.tag()?;
                        let ib = ir.take(n, ity)?;
                        if ity == MI_MATRIX
                            && let Some(v) = parse_matrix(path, ib, r.be, istart)?
                        {
                            vars.push(v);
                        }
                        ir.align();
                    }
                }
                _ => r.align(), // other top-level elements are ignored
            }
        }
        Ok(MatFile { path: path.to_path_buf(), vars })
    }

    /// Names of all variables, with their class and dimensions (for error messages and `data list`).
    pub fn names(&self) -> Vec<String> {
        self.vars
            .iter()
            .map(|v| {
                let dims: Vec<String> = v.dims.iter().map(|d| d.to_string()).collect();
                format!("{} ({} {})", v.name, v.class, dims.join("x"))
            })
            .collect()
    }

    /// The numeric variable `key`, or, with `None`, the only numeric variable.
    pub fn get(&self, key: Option<&str>) -> Result<&MatVar> {
        let numeric: Vec<&MatVar> = self.vars.iter().filter(|v| v.data.is_some()).collect();
        let v = match key {
            Some(k) => self.vars.iter().find(|v| v.name == k).ok_or_else(|| {
                Error::format(&self.path, format!("no variable `{k}` (variables: {})", self.names().join(", ")))
            })?,
            None => match numeric.as_slice() {
                [one] => one,
                _ => {
                    return Err(Error::format(
                        &self.path,
                        format!(
                            "{} numeric variables, say which one (variables: {})",
                            numeric.len(),
                            self.names().join(", ")
                        ),
                    ));
                }
            },
        };
        if v.data.is_none() {
            return Err(Error::format(
                &self.path,
                format!("variable `{}` is a {} array, not a numeric matrix", v.name, v.class),
            ));
        }
        Ok(v)
    }

    /// Variable `key` as an n-d array (row-major, MATLAB's dimensions).
    pub fn array(&self, key: Option<&str>) -> Result<ArrayD<f64>> {
        let v = self.get(key)?;
        v.array().ok_or_else(|| Error::format(&self.path, format!("variable `{}`: data size mismatch", v.name)))
    }

    /// Variable `key` as a matrix (it must have exactly 2 dimensions).
    pub fn matrix(&self, key: Option<&str>) -> Result<Array2<f64>> {
        let v = self.get(key)?;
        if v.dims.len() != 2 {
            return Err(Error::format(
                &self.path,
                format!("variable `{}` has {} dimensions, expected a matrix", v.name, v.dims.len()),
            ));
        }
        let a = self.array(Some(&v.name))?;
        Ok(a.into_dimensionality().expect("2 dims checked"))
    }

    /// Variable `key` as a vector (an N×1 or 1×N matrix).
    pub fn vector(&self, key: &str) -> Result<Vec<f64>> {
        let v = self.get(Some(key))?;
        if v.dims.iter().filter(|&&d| d != 1).count() > 1 {
            return Err(Error::format(
                &self.path,
                format!("variable `{key}` has dimensions {:?}, expected a vector", v.dims),
            ));
        }
        Ok(v.data.clone().unwrap_or_default())
    }
}

struct Reader<'a> {
    path: &'a Path,
    buf: &'a [u8],
    pos: usize,
    /// Offset of `buf` in the file, for messages (the compressed element's offset inside compressed data).
    base: usize,
    be: bool,
}

impl<'a> Reader<'a> {
    fn err(&self, msg: &str) -> Error {
        Error::format(self.path, format!("{msg} at byte {}", self.base + self.pos))
    }

    fn u32_at(&self, at: usize) -> u32 {
        let b: [u8; 4] = self.buf[at..at + 4].try_into().expect("4 bytes");
        if self.be { u32::from_be_bytes(b) } else { u32::from_le_bytes(b) }
    }

    /// Reads a tag: (type, byte count, offset of the tag). Small-element tags are handled: their data
    /// follows in the same 8 bytes and `pos` is left at it.
    fn tag(&mut self) -> Result<(u32, usize, usize)> {
        if self.buf.len() - self.pos < 4 {
            return Err(self.err("truncated element tag"));
        }
        let start = self.base + self.pos;
        let first = self.u32_at(self.pos);
        if first >> 16 != 0 {
            // Small data element: type in the low 16 bits, size in the high 16, data in the next 4 bytes.
            self.pos += 4;
            return Ok((first & 0xffff, (first >> 16) as usize, start));
        }
        if self.buf.len() - self.pos < 8 {
            return Err(self.err("truncated element tag"));
        }
        let n = self.u32_at(self.pos + 4) as usize;
        self.pos += 8;
        Ok((first, n, start))
    }

    fn take(&mut self, n: usize, ty: u32) -> Result<&'a [u8]> {
        let left = self.buf.len() - self.pos;
        if n > left {
            return Err(Error::format(
                self.path,
                format!(
                    "truncated: element of type {ty} at byte {} claims {n} bytes, {left} left",
                    self.base + self.pos - 8
                ),
            ));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// Skips padding up to the next multiple of 8 (relative to the buffer start).
    fn align(&mut self) {
        let rem = self.pos % 8;
        if rem != 0 {
            self.pos = (self.pos + 8 - rem).min(self.buf.len());
        }
    }
}

/// Parses the body of a `miMATRIX` element (`start` = its file offset, for messages).
fn parse_matrix(path: &Path, body: &[u8], be: bool, start: usize) -> Result<Option<MatVar>> {
    if body.is_empty() {
        return Ok(None); // an empty matrix element (in cells)
    }
    let mut r = Reader { path, buf: body, pos: 0, base: start + 8, be };
    let bad = |msg: &str| Error::format(path, format!("malformed matrix element at byte {start}: {msg}"));
    // Array flags.
    let (ty, n, _) = r.tag()?;
    let flags = r.take(n, ty)?;
    r.align();
    if ty != MI_UINT32 || n < 8 {
        return Err(bad("no array flags"));
    }
    let f0 = if be {
        u32::from_be_bytes(flags[..4].try_into().unwrap())
    } else {
        u32::from_le_bytes(flags[..4].try_into().unwrap())
    };
    let class = (f0 & 0xff) as u8;
    let complex = f0 & 0x0800 != 0;
    let logical = f0 & 0x0200 != 0;
    // Dimensions.
    let (ty, n, _) = r.tag()?;
    let dbytes = r.take(n, ty)?;
    r.align();
    if ty != MI_INT32 || n % 4 != 0 || n < 8 {
        return Err(bad("no dimensions"));
    }
    let dims: Vec<usize> = decode(ty, dbytes, be).into_iter().map(|d| d.max(0.0) as usize).collect();
    // Name.
    let (ty, n, _) = r.tag()?;
    let nbytes = r.take(n, ty)?;
    r.align();
    let name = String::from_utf8_lossy(nbytes).trim_end_matches('\0').to_string();
    let cname = if logical { "logical" } else { class_name(class) };
    if !(6..=15).contains(&class) {
        return Ok(Some(MatVar { name, class: cname, dims, data: None }));
    }
    // Real part.
    let (ty, n, _) = r.tag()?;
    let real = r.take(n, ty)?;
    let width = type_width(ty).ok_or_else(|| bad(&format!("variable `{name}`: unknown data type {ty}")))?;
    let count = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).and_then(|c| c.checked_mul(width));
    if count != Some(real.len()) {
        return Err(Error::format(
            path,
            format!("variable `{name}`: {} bytes of data for dimensions {dims:?} of {width}-byte values", real.len()),
        ));
    }
    if complex {
        return Ok(Some(MatVar { name, class: "complex", dims, data: None }));
    }
    Ok(Some(MatVar { name, class: cname, dims, data: Some(decode(ty, real, be)) }))
}

fn type_width(ty: u32) -> Option<usize> {
    Some(match ty {
        MI_INT8 | MI_UINT8 => 1,
        MI_INT16 | MI_UINT16 => 2,
        MI_INT32 | MI_UINT32 | MI_SINGLE => 4,
        MI_DOUBLE | MI_INT64 | MI_UINT64 => 8,
        _ => return None,
    })
}

/// Decodes numeric data of MAT type `ty` (width checked by the caller) into f64.
fn decode(ty: u32, b: &[u8], be: bool) -> Vec<f64> {
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
    match ty {
        MI_INT8 => b.iter().map(|&v| v as i8 as f64).collect(),
        MI_UINT8 => b.iter().map(|&v| v as f64).collect(),
        MI_INT16 => conv!(i16, 2),
        MI_UINT16 => conv!(u16, 2),
        MI_INT32 => conv!(i32, 4),
        MI_UINT32 => conv!(u32, 4),
        MI_SINGLE => conv!(f32, 4),
        MI_DOUBLE => conv!(f64, 8),
        MI_INT64 => conv!(i64, 8),
        MI_UINT64 => conv!(u64, 8),
        _ => Vec::new(),
    }
}

/// Storage class of a variable written by [`write()`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteClass {
    Double,
    Uint8,
}

/// Writes a little-endian MAT v5 file with the given 2-d variables (row-major arrays, stored column-major as
/// MATLAB does), each optionally zlib-compressed. Used to make test files and to export small results.
pub fn write(path: &Path, vars: &[(&str, &Array2<f64>, WriteClass)], compress: bool) -> Result<()> {
    let mut out = Vec::new();
    let mut header = format!("MATLAB 5.0 MAT-file, written by dalab-data{}", " ".repeat(116)).into_bytes();
    header.truncate(116);
    out.extend_from_slice(&header);
    out.extend_from_slice(&[0u8; 8]);
    out.extend_from_slice(&0x0100u16.to_le_bytes());
    out.extend_from_slice(b"IM");
    for (name, a, class) in vars {
        let mut m = Vec::new();
        let (cls, ty) = match class {
            WriteClass::Double => (6u32, MI_DOUBLE),
            WriteClass::Uint8 => (9u32, MI_UINT8),
        };
        push_el(&mut m, MI_UINT32, &[cls.to_le_bytes(), 0u32.to_le_bytes()].concat());
        let (r, c) = a.dim();
        push_el(&mut m, MI_INT32, &[(r as i32).to_le_bytes(), (c as i32).to_le_bytes()].concat());
        push_el(&mut m, MI_INT8, name.as_bytes());
        let col_major: Vec<f64> = a.t().iter().copied().collect();
        let data: Vec<u8> = match class {
            WriteClass::Double => col_major.iter().flat_map(|v| v.to_le_bytes()).collect(),
            WriteClass::Uint8 => col_major.iter().map(|&v| v as u8).collect(),
        };
        push_el(&mut m, ty, &data);
        let mut el = Vec::new();
        push_el(&mut el, MI_MATRIX, &m);
        if compress {
            let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            std::io::Write::write_all(&mut enc, &el).map_err(|e| Error::io(path, e))?;
            let z = enc.finish().map_err(|e| Error::io(path, e))?;
            out.extend_from_slice(&MI_COMPRESSED.to_le_bytes());
            out.extend_from_slice(&(z.len() as u32).to_le_bytes());
            out.extend_from_slice(&z);
        } else {
            out.extend_from_slice(&el);
        }
    }
    std::fs::write(path, out).map_err(|e| Error::io(path, e))
}

fn push_el(out: &mut Vec<u8>, ty: u32, data: &[u8]) {
    out.extend_from_slice(&ty.to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
    while !out.len().is_multiple_of(8) {
        out.push(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn round_trip_compressed_and_plain() {
        let dir = tempfile::tempdir().unwrap();
        let a = array![[1.0, 2.5, -3.0], [4.0, 5.0, 6.0]];
        let b = array![[1.0], [2.0], [7.0]];
        for compress in [false, true] {
            let p = dir.path().join(format!("t{compress}.mat"));
            write(&p, &[("fts", &a, WriteClass::Double), ("labels", &b, WriteClass::Uint8)], compress).unwrap();
            let m = MatFile::open(&p).unwrap();
            assert_eq!(m.matrix(Some("fts")).unwrap(), a);
            assert_eq!(m.vector("labels").unwrap(), vec![1.0, 2.0, 7.0]);
            assert_eq!(m.get(Some("labels")).unwrap().class, "uint8");
            let e = m.matrix(None).unwrap_err().to_string();
            assert!(e.contains("fts (double 2x3)") && e.contains("labels (uint8 3x1)"), "{e}");
            let e = m.matrix(Some("X")).unwrap_err().to_string();
            assert!(e.contains("no variable `X`") && e.contains(&p.display().to_string()), "{e}");
        }
    }

    #[test]
    fn scipy_written_file() {
        // scipy.io.savemat(f, {'a': np.array([[1, 2], [3, 4]], dtype=np.int16), 's': 'hi'}), v5, uncompressed,
        // then zlib-compressed with do_compression=True: both must give a = [[1, 2], [3, 4]].
        // Built here byte by byte as scipy lays it out (small-element tags for name and dims).
        let mut f = vec![b' '; 116];
        f.extend_from_slice(&[0; 8]);
        f.extend_from_slice(&[0, 1]);
        f.extend_from_slice(b"IM");
        let mut m = Vec::new();
        push_el(&mut m, MI_UINT32, &[10u32.to_le_bytes(), 0u32.to_le_bytes()].concat()); // int16 class
        push_el(&mut m, MI_INT32, &[2i32.to_le_bytes(), 2i32.to_le_bytes()].concat());
        m.extend_from_slice(&((1u32 << 16) | MI_INT8).to_le_bytes()); // small element name "a"
        m.extend_from_slice(&[b'a', 0, 0, 0]);
        let data: Vec<u8> = [1i16, 3, 2, 4].iter().flat_map(|v| v.to_le_bytes()).collect();
        push_el(&mut m, MI_INT16, &data);
        push_el(&mut f, MI_MATRIX, &m);
        // A char array that must be listed but not read.
        let mut c = Vec::new();
        push_el(&mut c, MI_UINT32, &[4u32.to_le_bytes(), 0u32.to_le_bytes()].concat());
        push_el(&mut c, MI_INT32, &[1i32.to_le_bytes(), 2i32.to_le_bytes()].concat());
        push_el(&mut c, MI_INT8, b"s");
        push_el(&mut c, 16, b"hi");
        push_el(&mut f, MI_MATRIX, &c);
        let m = MatFile::parse(Path::new("mem.mat"), &f).unwrap();
        assert_eq!(m.matrix(None).unwrap(), array![[1.0, 2.0], [3.0, 4.0]]);
        let e = m.matrix(Some("s")).unwrap_err().to_string();
        assert!(e.contains("`s` is a char array"), "{e}");
    }

    #[test]
    fn big_endian_file() {
        // The same layout as MATLAB writes on a big-endian machine (`MI`): a 2x3 single matrix.
        fn el(out: &mut Vec<u8>, ty: u32, data: &[u8]) {
            out.extend_from_slice(&ty.to_be_bytes());
            out.extend_from_slice(&(data.len() as u32).to_be_bytes());
            out.extend_from_slice(data);
            while !out.len().is_multiple_of(8) {
                out.push(0);
            }
        }
        let mut f = vec![b' '; 124];
        f.extend_from_slice(&[1, 0]);
        f.extend_from_slice(b"MI");
        let mut m = Vec::new();
        el(&mut m, MI_UINT32, &[7u32.to_be_bytes(), 0u32.to_be_bytes()].concat()); // single
        el(&mut m, MI_INT32, &[2i32.to_be_bytes(), 3i32.to_be_bytes()].concat());
        el(&mut m, MI_INT8, b"be");
        let data: Vec<u8> = [1f32, 4., 2., 5., 3., 6.].iter().flat_map(|v| v.to_be_bytes()).collect();
        el(&mut m, MI_SINGLE, &data);
        el(&mut f, MI_MATRIX, &m);
        let m = MatFile::parse(Path::new("be.mat"), &f).unwrap();
        assert_eq!(m.matrix(Some("be")).unwrap(), array![[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]);
        assert_eq!(m.get(None).unwrap().class, "single");
    }

    #[test]
    fn truncated_files_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let a = Array2::from_shape_fn((50, 40), |(i, j)| (i * 40 + j) as f64);
        for compress in [false, true] {
            let p = dir.path().join(format!("full{compress}.mat"));
            write(&p, &[("x", &a, WriteClass::Double)], compress).unwrap();
            let bytes = std::fs::read(&p).unwrap();
            for cut in [10, 130, bytes.len() / 2, bytes.len() - 3] {
                let q = dir.path().join(format!("cut{compress}_{cut}.mat"));
                std::fs::write(&q, &bytes[..cut]).unwrap();
                let e = MatFile::open(&q).and_then(|m| m.matrix(Some("x"))).unwrap_err().to_string();
                assert!(e.starts_with(&q.display().to_string()), "{e}");
            }
        }
    }
}
