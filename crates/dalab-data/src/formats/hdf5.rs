//! A small HDF5 reader in pure Rust, enough for numeric datasets in files written with the library's
//! "earliest" format (h5py's default): superblock version 0/1, version-1 object headers, symbol-table groups
//! (v1 B-trees, local heaps), contiguous, compact or chunked layout with the deflate, shuffle and
//! Fletcher-32 filters, integer and float data of either byte order.
//!
//! Newer features (superblock 2/3, v2 object headers, link messages, fractal heaps, v2 B-trees, other
//! filters) are reported as unsupported, not guessed at. Every read is bounds-checked: a truncated or
//! corrupt file is an error naming it.

use crate::{Error, Result};
use ndarray::{ArrayD, IxDyn};
use std::path::Path;

const UNDEF: u64 = u64::MAX;

/// An open HDF5 file (all bytes in memory).
#[derive(Debug)]
pub struct H5File<'a> {
    path: &'a Path,
    b: Vec<u8>,
    so: usize,
    sl: usize,
    base: u64,
    root_header: u64,
}

/// The messages of an object header that this reader uses.
#[derive(Debug, Default)]
struct Header {
    dims: Option<Vec<u64>>,
    dtype: Option<(u8, bool, bool, usize)>, // (class 0 int / 1 float, big endian, signed, size)
    layout: Option<Layout>,
    filters: Vec<(u16, Vec<u32>)>,
    symtab: Option<(u64, u64)>, // (B-tree, local heap)
}

#[derive(Debug)]
enum Layout {
    Compact(Vec<u8>),
    Contiguous(u64),
    Chunked(u64, Vec<u64>), // B-tree address, chunk dims (without the element-size dimension)
}

impl<'a> H5File<'a> {
    /// Parses the superblock of the HDF5 file at `path` (read into memory).
    pub fn open(path: &'a Path) -> Result<Self> {
        let b = super::read_bytes(path)?;
        Self::from_bytes(path, b)
    }

    /// Parses the superblock of HDF5 bytes read from `path` (named in errors).
    pub fn from_bytes(path: &'a Path, b: Vec<u8>) -> Result<Self> {
        // The superblock is at 0, 512, 1024, ... .
        let sig = b"\x89HDF\r\n\x1a\n";
        let mut at = None;
        let mut off = 0usize;
        while off + 8 <= b.len() {
            if &b[off..off + 8] == sig {
                at = Some(off);
                break;
            }
            off = if off == 0 { 512 } else { off * 2 };
        }
        let mut f = H5File { path, b, so: 8, sl: 8, base: 0, root_header: 0 };
        let s = at.ok_or_else(|| f.err("not an HDF5 file (no signature)"))?;
        let version = f.u8(s + 8)?;
        if version > 1 {
            return Err(f.err(&format!("HDF5 superblock version {version} is not supported (only 0 and 1)")));
        }
        f.so = f.u8(s + 13)? as usize;
        f.sl = f.u8(s + 14)? as usize;
        if !matches!(f.so, 2 | 4 | 8) || !matches!(f.sl, 2 | 4 | 8) {
            return Err(f.err("bad sizes of offsets/lengths in the HDF5 superblock"));
        }
        let mut p = s + 24;
        if version == 1 {
            p += 4; // indexed storage K + reserved
        }
        f.base = f.uint(p, f.so)?;
        p += 4 * f.so; // base, free-space, end-of-file, driver info addresses
        // Root group symbol table entry: link name offset, object header address, ...
        f.root_header = f.uint(p + f.so, f.so)?;
        Ok(f)
    }

    fn err(&self, msg: &str) -> Error {
        Error::format(self.path, msg)
    }

    fn bytes(&self, at: usize, n: usize) -> Result<&[u8]> {
        at.checked_add(n)
            .and_then(|end| self.b.get(at..end))
            .ok_or_else(|| self.err(&format!("truncated HDF5 file: {n} bytes at {at} are past its end")))
    }

    fn u8(&self, at: usize) -> Result<u8> {
        Ok(self.bytes(at, 1)?[0])
    }

    fn u16(&self, at: usize) -> Result<u16> {
        Ok(self.uint(at, 2)? as u16)
    }

    fn u32(&self, at: usize) -> Result<u32> {
        Ok(self.uint(at, 4)? as u32)
    }

    /// Little-endian unsigned integer of `n` bytes.
    fn uint(&self, at: usize, n: usize) -> Result<u64> {
        Ok(self.bytes(at, n)?.iter().rev().fold(0u64, |a, &b| (a << 8) | u64::from(b)))
    }

    fn addr(&self, a: u64) -> Result<usize> {
        if a == UNDEF || (self.so < 8 && a == (1u64 << (8 * self.so)) - 1) {
            return Err(self.err("undefined address in HDF5 structure"));
        }
        usize::try_from(a.checked_add(self.base).ok_or_else(|| self.err("bad address"))?)
            .map_err(|_| self.err("bad address"))
    }

    /// Reads the messages of the version-1 object header at `addr`.
    fn header(&self, addr: u64) -> Result<Header> {
        let a = self.addr(addr)?;
        let version = self.u8(a)?;
        if version != 1 {
            return Err(self.err(&format!(
                "object header version {version} at byte {a} is not supported (files written with libver='latest')"
            )));
        }
        let nmsgs = self.u16(a + 2)? as usize;
        let size = self.u32(a + 8)? as usize;
        let mut blocks = vec![(a + 16, size)];
        let mut h = Header::default();
        let mut seen = 0usize;
        while let Some((start, len)) = blocks.pop() {
            let mut p = start;
            while p + 8 <= start + len && seen < nmsgs {
                let ty = self.u16(p)?;
                let sz = self.u16(p + 2)? as usize;
                let d = p + 8;
                self.bytes(d, sz)?;
                match ty {
                    0x0001 => h.dims = Some(self.dataspace(d)?),
                    0x0003 => h.dtype = Some(self.datatype(d)?),
                    0x0008 => h.layout = Some(self.layout(d)?),
                    0x000B => h.filters = self.filters(d)?,
                    0x0010 => {
                        let c = self.addr(self.uint(d, self.so)?)?;
                        let l = self.uint(d + self.so, self.sl)? as usize;
                        blocks.push((c, l));
                    }
                    0x0011 => h.symtab = Some((self.uint(d, self.so)?, self.uint(d + self.so, self.so)?)),
                    _ => {}
                }
                seen += 1;
                p = d + sz;
                if blocks.len() > 1000 {
                    return Err(self.err("too many header continuation blocks"));
                }
            }
        }
        Ok(h)
    }

    fn dataspace(&self, d: usize) -> Result<Vec<u64>> {
        let version = self.u8(d)?;
        let nd = self.u8(d + 1)? as usize;
        let start = match version {
            1 => d + 8,
            2 => d + 4,
            v => return Err(self.err(&format!("dataspace message version {v} not supported"))),
        };
        (0..nd).map(|i| self.uint(start + i * self.sl, self.sl)).collect()
    }

    fn datatype(&self, d: usize) -> Result<(u8, bool, bool, usize)> {
        let cv = self.u8(d)?;
        let class = cv & 0x0f;
        let bits = self.u8(d + 1)?;
        let size = self.u32(d + 4)? as usize;
        let be = bits & 1 != 0;
        match (class, size) {
            (0, 1 | 2 | 4 | 8) => Ok((0, be, bits & 0x08 != 0, size)),
            (1, 4 | 8) => Ok((1, be, true, size)),
            _ => Err(self
                .err(&format!("HDF5 datatype class {class} of {size} bytes is not supported (ints and floats only)"))),
        }
    }

    fn layout(&self, d: usize) -> Result<Layout> {
        let version = self.u8(d)?;
        match version {
            3 | 4 => match self.u8(d + 1)? {
                0 => {
                    let n = self.u16(d + 2)? as usize;
                    Ok(Layout::Compact(self.bytes(d + 4, n)?.to_vec()))
                }
                1 => Ok(Layout::Contiguous(self.uint(d + 2, self.so)?)),
                2 if version == 3 => {
                    let nd = self.u8(d + 2)? as usize;
                    let bt = self.uint(d + 3, self.so)?;
                    let dims: Vec<u64> =
                        (0..nd).map(|i| self.uint(d + 3 + self.so + 4 * i, 4)).collect::<Result<_>>()?;
                    Ok(Layout::Chunked(bt, dims[..nd.saturating_sub(1)].to_vec()))
                }
                c => Err(self.err(&format!("HDF5 layout class {c} (message version {version}) not supported"))),
            },
            1 | 2 => {
                let nd = self.u8(d + 1)? as usize;
                let class = self.u8(d + 2)?;
                let mut p = d + 8;
                let addr = if class != 0 {
                    let a = self.uint(p, self.so)?;
                    p += self.so;
                    a
                } else {
                    0
                };
                let dims: Vec<u64> = (0..nd).map(|i| self.uint(p + 4 * i, 4)).collect::<Result<_>>()?;
                p += 4 * nd;
                match class {
                    0 => {
                        let n = self.u32(p)? as usize;
                        Ok(Layout::Compact(self.bytes(p + 4, n)?.to_vec()))
                    }
                    1 => Ok(Layout::Contiguous(addr)),
                    _ => Ok(Layout::Chunked(addr, dims[..nd.saturating_sub(1)].to_vec())),
                }
            }
            _ => Err(self.err(&format!("HDF5 layout message version {version} not supported"))),
        }
    }

    fn filters(&self, d: usize) -> Result<Vec<(u16, Vec<u32>)>> {
        let version = self.u8(d)?;
        let n = self.u8(d + 1)? as usize;
        let mut p = if version == 1 { d + 8 } else { d + 2 };
        let mut out = Vec::new();
        for _ in 0..n {
            let id = self.u16(p)?;
            let name_len = if version == 1 || id >= 256 { self.u16(p + 2)? as usize } else { 0 };
            let (nvals_at, mut q) = if version == 1 || id >= 256 { (p + 6, p + 8) } else { (p + 4, p + 6) };
            let nvals = self.u16(nvals_at)? as usize;
            if version == 1 {
                q += name_len.div_ceil(8) * 8;
            } else {
                q += name_len;
            }
            let vals: Vec<u32> = (0..nvals).map(|i| self.u32(q + 4 * i)).collect::<Result<_>>()?;
            q += 4 * nvals;
            if version == 1 && nvals % 2 == 1 {
                q += 4;
            }
            out.push((id, vals));
            p = q;
        }
        Ok(out)
    }

    /// Finds `name` in the group whose symbol table is (B-tree, heap); returns its object header address.
    fn lookup(&self, symtab: (u64, u64), name: &str) -> Result<u64> {
        let heap = self.addr(symtab.1)?;
        if self.bytes(heap, 4)? != b"HEAP" {
            return Err(self.err("corrupt HDF5 local heap"));
        }
        let data = self.addr(self.uint(heap + 8 + 2 * self.sl, self.so)?)?;
        let mut found = Vec::new();
        let mut stack = vec![(symtab.0, 0usize)];
        let mut visited = 0usize;
        while let Some((node, depth)) = stack.pop() {
            visited += 1;
            if depth > 64 || visited > 100_000 {
                return Err(self.err("HDF5 group B-tree too deep"));
            }
            let a = self.addr(node)?;
            let sig = self.bytes(a, 4)?;
            if sig == b"SNOD" {
                let n = self.u16(a + 6)? as usize;
                let entry = 2 * self.so + 24;
                for i in 0..n {
                    let e = a + 8 + i * entry;
                    let name_off = self.uint(e, self.so)? as usize;
                    let nm = self.cstr(data + name_off)?;
                    let hdr = self.uint(e + self.so, self.so)?;
                    found.push(nm.clone());
                    if nm == name {
                        return Ok(hdr);
                    }
                }
                continue;
            }
            if sig != b"TREE" || self.u8(a + 4)? != 0 {
                return Err(self.err("corrupt HDF5 group B-tree"));
            }
            let used = self.u16(a + 6)? as usize;
            let mut p = a + 8 + 2 * self.so + self.sl; // past the first key
            for _ in 0..used {
                stack.push((self.uint(p, self.so)?, depth + 1));
                p += self.so + self.sl;
            }
        }
        Err(self.err(&format!("no object `{name}` in the group (has: {})", found.join(", "))))
    }

    fn cstr(&self, at: usize) -> Result<String> {
        let rest = self.b.get(at..).ok_or_else(|| self.err("name past the end of the file"))?;
        let end = rest.iter().position(|&c| c == 0).ok_or_else(|| self.err("unterminated name"))?;
        Ok(String::from_utf8_lossy(&rest[..end]).into_owned())
    }

    /// Reads the dataset at `/`-separated `path` (e.g. `train/data`) as f64, in its row-major shape.
    pub fn dataset(&self, path: &str) -> Result<ArrayD<f64>> {
        let mut hdr = self.header(self.root_header)?;
        for part in path.split('/').filter(|s| !s.is_empty()) {
            let st = hdr
                .symtab
                .ok_or_else(|| self.err(&format!("`{part}` is looked up in something that is not a group")))?;
            let addr = self.lookup(st, part).map_err(|e| match e {
                Error::Format { path: p, line, msg } => Error::Format { path: p, line, msg: format!("{path}: {msg}") },
                e => e,
            })?;
            hdr = self.header(addr)?;
        }
        let named = |m: &str| self.err(&format!("dataset `{path}`: {m}"));
        let dims = hdr.dims.clone().ok_or_else(|| named("no dataspace (is it a group?)"))?;
        let (class, be, signed, size) = hdr.dtype.ok_or_else(|| named("no datatype"))?;
        let count =
            dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d as usize)).ok_or_else(|| named("too large"))?;
        let nbytes = count.checked_mul(size).ok_or_else(|| named("too large"))?;
        if nbytes > self.b.len().saturating_mul(1100) + (1 << 20) {
            return Err(named("claims more data than the file can hold"));
        }
        let raw: Vec<u8> = match hdr.layout.as_ref().ok_or_else(|| named("no data layout"))? {
            Layout::Compact(v) => v.clone(),
            Layout::Contiguous(a) => {
                if *a == UNDEF {
                    vec![0; nbytes]
                } else {
                    self.bytes(self.addr(*a)?, nbytes)?.to_vec()
                }
            }
            Layout::Chunked(bt, cdims) => self.read_chunked(*bt, cdims, &dims, size, &hdr.filters, nbytes)?,
        };
        if raw.len() < nbytes {
            return Err(named("data shorter than its dataspace"));
        }
        let v = decode(&raw[..nbytes], class, be, signed, size);
        let shape: Vec<usize> = dims.iter().map(|&d| d as usize).collect();
        ArrayD::from_shape_vec(IxDyn(&shape), v).map_err(|e| named(&e.to_string()))
    }

    fn read_chunked(
        &self,
        bt: u64,
        cdims: &[u64],
        dims: &[u64],
        size: usize,
        filters: &[(u16, Vec<u32>)],
        nbytes: usize,
    ) -> Result<Vec<u8>> {
        let nd = dims.len();
        if cdims.len() != nd || cdims.contains(&0) {
            return Err(self.err("chunk dimensions do not match the dataspace"));
        }
        let mut out = vec![0u8; nbytes];
        let chunk_elems = cdims
            .iter()
            .try_fold(1usize, |a, &c| a.checked_mul(c as usize))
            .filter(|&n| n.saturating_mul(size) <= nbytes.max(1 << 20).saturating_mul(64))
            .ok_or_else(|| self.err("chunk dimensions too large"))?;
        let mut stack = vec![(bt, 0usize)];
        let mut visited = 0usize;
        while let Some((node, depth)) = stack.pop() {
            visited += 1;
            if depth > 64 || visited > 1_000_000 {
                return Err(self.err("HDF5 chunk B-tree too deep"));
            }
            let a = self.addr(node)?;
            if self.bytes(a, 4)? != b"TREE" || self.u8(a + 4)? != 1 {
                return Err(self.err("corrupt HDF5 chunk B-tree"));
            }
            let level = self.u8(a + 5)?;
            let used = self.u16(a + 6)? as usize;
            let key_len = 8 + 8 * (nd + 1);
            let mut p = a + 8 + 2 * self.so;
            for _ in 0..used {
                let csize = self.u32(p)? as usize;
                let mask = self.u32(p + 4)?;
                let offs: Vec<u64> = (0..nd).map(|i| self.uint(p + 8 + 8 * i, 8)).collect::<Result<_>>()?;
                let child = self.uint(p + key_len, self.so)?;
                p += key_len + self.so;
                if level > 0 {
                    stack.push((child, depth + 1));
                    continue;
                }
                let stored = self.bytes(self.addr(child)?, csize)?;
                let data = self.unfilter(stored, filters, mask, chunk_elems * size)?;
                if data.len() < chunk_elems * size {
                    return Err(self.err("HDF5 chunk shorter than its dimensions"));
                }
                copy_chunk(&data, &offs, cdims, dims, size, &mut out);
            }
        }
        Ok(out)
    }

    /// Undoes the filter pipeline on one chunk (filters applied in reverse order; mask bit i skips filter i).
    fn unfilter(&self, stored: &[u8], filters: &[(u16, Vec<u32>)], mask: u32, expect: usize) -> Result<Vec<u8>> {
        let mut data = stored.to_vec();
        for (i, (id, vals)) in filters.iter().enumerate().rev() {
            if i < 32 && mask & (1 << i) != 0 {
                continue;
            }
            data = match id {
                1 => {
                    let mut out = Vec::with_capacity(expect);
                    let limit = expect as u64 + 64;
                    let dec = flate2::read::ZlibDecoder::new(data.as_slice());
                    std::io::Read::read_to_end(&mut std::io::Read::take(dec, limit), &mut out)
                        .map_err(|e| self.err(&format!("corrupt deflate chunk ({e})")))?;
                    out
                }
                2 => {
                    let w = vals.first().copied().unwrap_or(1).max(1) as usize;
                    let n = data.len() / w;
                    if n == 0 {
                        continue;
                    }
                    let mut out = data.clone();
                    for (k, plane) in data[..n * w].chunks(n).enumerate() {
                        for (j, &byte) in plane.iter().enumerate() {
                            out[j * w + k] = byte;
                        }
                    }
                    out
                }
                3 => {
                    let keep = data.len().saturating_sub(4);
                    data.truncate(keep);
                    data
                }
                other => {
                    return Err(
                        self.err(&format!("HDF5 filter {other} is not supported (deflate, shuffle, fletcher32 only)"))
                    );
                }
            };
        }
        Ok(data)
    }
}

/// Copies a chunk (row-major, chunk dims `cd`, starting at `offs`) into the full array `out` (dims `dims`),
/// clipping at the array's edges.
fn copy_chunk(data: &[u8], offs: &[u64], cd: &[u64], dims: &[u64], size: usize, out: &mut [u8]) {
    let nd = dims.len();
    if nd == 0 {
        let n = size.min(data.len()).min(out.len());
        out[..n].copy_from_slice(&data[..n]);
        return;
    }
    // Iterate over all rows (all indices but the last) of the chunk.
    let inner = cd[nd - 1] as usize;
    let mut idx = vec![0u64; nd - 1];
    loop {
        let mut inside = true;
        let mut src = 0usize;
        let mut dst = 0usize;
        for k in 0..nd - 1 {
            let g = offs[k] + idx[k];
            if g >= dims[k] {
                inside = false;
            }
            src = src * cd[k] as usize + idx[k] as usize;
            dst = dst * dims[k] as usize + g as usize;
        }
        if inside && offs[nd - 1] < dims[nd - 1] {
            let start = offs[nd - 1] as usize;
            let n = inner.min(dims[nd - 1] as usize - start);
            let s = src * inner * size;
            let d = (dst * dims[nd - 1] as usize + start) * size;
            if s + n * size <= data.len() && d + n * size <= out.len() {
                out[d..d + n * size].copy_from_slice(&data[s..s + n * size]);
            }
        }
        // Next row index.
        let mut k = nd - 1;
        loop {
            if k == 0 {
                return;
            }
            k -= 1;
            idx[k] += 1;
            if idx[k] < cd[k] {
                break;
            }
            idx[k] = 0;
        }
    }
}

fn decode(b: &[u8], class: u8, be: bool, signed: bool, size: usize) -> Vec<f64> {
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
    match (class, signed, size) {
        (1, _, 4) => conv!(f32, 4),
        (1, _, _) => conv!(f64, 8),
        (_, false, 1) => b.iter().map(|&v| f64::from(v)).collect(),
        (_, true, 1) => b.iter().map(|&v| f64::from(v as i8)).collect(),
        (_, false, 2) => conv!(u16, 2),
        (_, true, 2) => conv!(i16, 2),
        (_, false, 4) => conv!(u32, 4),
        (_, true, 4) => conv!(i32, 4),
        (_, false, _) => conv!(u64, 8),
        (_, true, _) => conv!(i64, 8),
    }
}

/// Reads dataset `name` (e.g. `train/data`) of the HDF5 file at `path`.
pub fn read_dataset(path: &Path, name: &str) -> Result<ArrayD<f64>> {
    H5File::open(path)?.dataset(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal writer of the "earliest" HDF5 format, for tests: a root group holding one group `g` with
    /// the given datasets. A dataset is (name, shape, element bytes, datatype message, chunk dims or None).
    struct W {
        b: Vec<u8>,
    }

    impl W {
        fn at(&self) -> u64 {
            self.b.len() as u64
        }
        fn u(&mut self, v: u64, n: usize) {
            self.b.extend_from_slice(&v.to_le_bytes()[..n]);
        }
        fn pad8(&mut self) {
            while !self.b.len().is_multiple_of(8) {
                self.b.push(0);
            }
        }
        fn set(&mut self, at: u64, v: u64) {
            self.b[at as usize..at as usize + 8].copy_from_slice(&v.to_le_bytes());
        }
        /// An object header with the given (type, body) messages; returns its address.
        fn header(&mut self, msgs: &[(u16, Vec<u8>)]) -> u64 {
            self.pad8();
            let a = self.at();
            let size: usize = msgs.iter().map(|(_, m)| 8 + m.len().div_ceil(8) * 8).sum();
            self.b.extend_from_slice(&[1, 0]);
            self.u(msgs.len() as u64, 2);
            self.u(1, 4);
            self.u(size as u64, 4);
            self.u(0, 4);
            for (ty, m) in msgs {
                let n = m.len().div_ceil(8) * 8;
                self.u(u64::from(*ty), 2);
                self.u(n as u64, 2);
                self.u(0, 4);
                self.b.extend_from_slice(m);
                self.b.resize(self.b.len() + n - m.len(), 0);
            }
            a
        }
        /// A group (local heap, B-tree, one symbol node) holding `entries` (name, object header address);
        /// returns the symbol table message body.
        fn group(&mut self, entries: &[(&str, u64)]) -> Vec<u8> {
            let mut heap = vec![0u8; 8]; // offset 0: the empty name
            let mut offs = Vec::new();
            for (n, _) in entries {
                offs.push(heap.len() as u64);
                heap.extend_from_slice(n.as_bytes());
                heap.push(0);
                heap.resize(heap.len().div_ceil(8) * 8, 0);
            }
            self.pad8();
            let snod = self.at();
            self.b.extend_from_slice(b"SNOD\x01\x00");
            self.u(entries.len() as u64, 2);
            for ((_, hdr), off) in entries.iter().zip(&offs) {
                self.u(*off, 8);
                self.u(*hdr, 8);
                self.b.extend_from_slice(&[0; 24]);
            }
            let tree = self.at();
            self.b.extend_from_slice(b"TREE\x00\x00");
            self.u(1, 2);
            self.u(UNDEF, 8);
            self.u(UNDEF, 8);
            self.u(0, 8);
            self.u(snod, 8);
            self.u(*offs.last().unwrap_or(&0), 8);
            let heap_at = self.at();
            self.b.extend_from_slice(b"HEAP\x00\x00\x00\x00");
            self.u(heap.len() as u64, 8);
            self.u(UNDEF, 8);
            self.u(heap_at + 32, 8);
            self.b.extend_from_slice(&heap);
            [tree.to_le_bytes(), heap_at.to_le_bytes()].concat()
        }
    }

    fn dataspace(shape: &[u64]) -> Vec<u8> {
        let mut m = vec![1, shape.len() as u8, 0, 0, 0, 0, 0, 0];
        shape.iter().for_each(|d| m.extend_from_slice(&d.to_le_bytes()));
        m
    }

    /// The bytes of a file with group `g` holding `x` (f64 [3, 2], contiguous) and `y` (big-endian i32
    /// [5, 3] in 2x2 chunks, shuffled and deflated).
    fn sample_file() -> Vec<u8> {
        let mut w = W { b: vec![0; 96] };
        // x: contiguous little-endian f64.
        let x: Vec<f64> = vec![0.5, 1.5, -2.0, 3.0, 4.25, 5.0];
        let xa = w.at();
        x.iter().for_each(|v| w.b.extend_from_slice(&v.to_le_bytes()));
        let mut layout = vec![3, 1];
        layout.extend_from_slice(&xa.to_le_bytes());
        layout.extend_from_slice(&48u64.to_le_bytes());
        let float = vec![0x11, 0x20, 0x3f, 0, 8, 0, 0, 0, 0, 0, 64, 0, 52, 11, 0, 52, 255, 3, 0, 0];
        let xh = w.header(&[(1, dataspace(&[3, 2])), (3, float), (8, layout)]);
        // y: chunked big-endian i32, values 10*r + c.
        let (dims, cd) = ([5u64, 3], [2u64, 2]);
        let mut keys = Vec::new();
        for r0 in (0..5i32).step_by(2) {
            for c0 in (0..3).step_by(2) {
                let mut raw = Vec::new();
                for r in r0..r0 + 2 {
                    for c in c0..c0 + 2 {
                        raw.extend_from_slice(&(10 * r + c).to_be_bytes());
                    }
                }
                let n = raw.len() / 4;
                let mut shuffled = vec![0u8; raw.len()];
                for j in 0..n {
                    for k in 0..4 {
                        shuffled[k * n + j] = raw[j * 4 + k];
                    }
                }
                let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
                std::io::Write::write_all(&mut enc, &shuffled).unwrap();
                let z = enc.finish().unwrap();
                let a = w.at();
                w.b.extend_from_slice(&z);
                keys.push((z.len() as u64, [r0 as u64, c0 as u64], a));
            }
        }
        w.pad8();
        let tree = w.at();
        w.b.extend_from_slice(b"TREE\x01\x00");
        w.u(keys.len() as u64, 2);
        w.u(UNDEF, 8);
        w.u(UNDEF, 8);
        for (size, offs, addr) in &keys {
            w.u(*size, 4);
            w.u(0, 4);
            offs.iter().for_each(|&o| w.u(o, 8));
            w.u(0, 8);
            w.u(*addr, 8);
        }
        w.u(0, 8);
        dims.iter().for_each(|&d| w.u(d, 8));
        w.u(0, 8);
        let mut layout = vec![3, 2, 3];
        layout.extend_from_slice(&tree.to_le_bytes());
        cd.iter().chain(&[4]).for_each(|&d| layout.extend_from_slice(&(d as u32).to_le_bytes()));
        let int = vec![0x10, 0x09, 0, 0, 4, 0, 0, 0, 0, 0, 32, 0]; // big endian, signed, 4 bytes
        let mut filters = vec![1, 2, 0, 0, 0, 0, 0, 0];
        filters.extend_from_slice(&[2, 0, 0, 0, 0, 0, 1, 0, 4, 0, 0, 0, 0, 0, 0, 0]); // shuffle(4)
        filters.extend_from_slice(&[1, 0, 0, 0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0, 0]); // deflate(6)
        let yh = w.header(&[(1, dataspace(&dims)), (3, int), (11, filters), (8, layout)]);
        let gst = w.group(&[("x", xh), ("y", yh)]);
        let gh = w.header(&[(0x11, gst)]);
        let rst = w.group(&[("g", gh)]);
        let root = w.header(&[(0x11, rst)]);
        // Superblock v0.
        w.b[..8].copy_from_slice(b"\x89HDF\r\n\x1a\n");
        w.b[8..16].copy_from_slice(&[0, 0, 0, 0, 0, 8, 8, 0]);
        w.b[16..24].copy_from_slice(&[4, 0, 16, 0, 0, 0, 0, 0]);
        w.set(24, 0);
        w.set(32, UNDEF);
        let end = w.at();
        w.set(40, end);
        w.set(48, UNDEF);
        w.set(56, 0);
        w.set(64, root);
        w.b
    }

    #[test]
    fn generated_file_groups_contiguous_and_chunked() {
        let p = Path::new("gen.h5");
        let f = H5File::from_bytes(p, sample_file()).unwrap();
        let x = f.dataset("g/x").unwrap();
        assert_eq!(x, ndarray::array![[0.5, 1.5], [-2.0, 3.0], [4.25, 5.0]].into_dyn());
        let y = f.dataset("/g/y").unwrap();
        assert_eq!(y, ndarray::Array2::from_shape_fn((5, 3), |(r, c)| (10 * r + c) as f64).into_dyn());
        let e = f.dataset("g/z").unwrap_err().to_string();
        assert_eq!(e, "gen.h5: g/z: no object `z` in the group (has: x, y)");
        let e = f.dataset("g").unwrap_err().to_string();
        assert!(e.contains("dataset `g`: no dataspace"), "{e}");
    }

    #[test]
    fn truncated_and_mutated_files_are_errors() {
        use rand::{Rng, SeedableRng};
        let good = sample_file();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for round in 0..400 {
            let mut b = good.clone();
            if round % 2 == 0 {
                b.truncate(rng.random_range(0..b.len()));
            } else {
                for _ in 0..rng.random_range(1..4) {
                    let i = rng.random_range(0..b.len());
                    b[i] = rng.random();
                }
            }
            // Errors or (for harmless flips) values; never a panic.
            if let Ok(f) = H5File::from_bytes(Path::new("m.h5"), b) {
                let _ = f.dataset("g/x");
                let _ = f.dataset("g/y");
            }
        }
        let e = H5File::from_bytes(Path::new("t.h5"), good[..good.len() - 40].to_vec())
            .and_then(|f| f.dataset("g/x"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("t.h5: "), "{e}");
    }
}
