//! Delimited numeric text: CSV, TSV or whitespace-separated, optionally gzipped (by content).
//!
//! Every data row must have the width of the first; a header row is skipped when asked for, or (by default)
//! when the first row has a field that is not a number. Errors name the file and the 1-based line.

use crate::{Error, Result};
use ndarray::Array2;
use rayon::prelude::*;
use std::path::Path;

/// How to split a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delimiter {
    Char(u8),
    Whitespace,
}

impl Delimiter {
    /// By file name: `.csv` → comma, `.tsv` → tab, anything else → whitespace (`.gz` is looked through).
    pub fn for_path(path: &Path) -> Self {
        let n = super::lower_name(path);
        let n = n.strip_suffix(".gz").unwrap_or(&n);
        if n.ends_with(".csv") {
            Delimiter::Char(b',')
        } else if n.ends_with(".tsv") {
            Delimiter::Char(b'\t')
        } else {
            Delimiter::Whitespace
        }
    }
}

/// Reads a numeric table. `header`: `Some(true)` skip the first row, `Some(false)` never, `None` detect.
pub fn read(path: &Path, delimiter: Option<Delimiter>, header: Option<bool>) -> Result<Array2<f64>> {
    let bytes = super::read_maybe_gz(path)?;
    parse(path, &bytes, delimiter.unwrap_or_else(|| Delimiter::for_path(path)), header)
}

/// Parses numeric text read from `path` (named in errors).
pub fn parse(path: &Path, bytes: &[u8], delim: Delimiter, header: Option<bool>) -> Result<Array2<f64>> {
    let text = std::str::from_utf8(bytes).map_err(|e| Error::format(path, format!("not UTF-8 text ({e})")))?;
    let mut lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
        .filter(|(_, l)| !l.trim().is_empty())
        .collect();
    let split = |l: &str| -> Vec<String> {
        match delim {
            Delimiter::Char(c) => l.split(c as char).map(|s| s.trim().to_string()).collect(),
            Delimiter::Whitespace => l.split_ascii_whitespace().map(str::to_string).collect(),
        }
    };
    if let Some(&(_, first)) = lines.first() {
        let skip = header.unwrap_or_else(|| split(first).iter().any(|f| parse_num(f).is_none()));
        if skip {
            lines.remove(0);
        }
    }
    if lines.is_empty() {
        return Err(Error::format(path, "no data rows (an empty file, or a header alone)"));
    }
    let parsed: Vec<std::result::Result<Vec<f64>, Error>> = lines
        .par_iter()
        .map(|&(ln, l)| {
            let mut row = Vec::new();
            if let Delimiter::Char(c) = delim
                && parse_int_row(l.as_bytes(), c, &mut row)
            {
                return Ok(row);
            }
            row.clear();
            let mut push = |f: &str| -> Result<()> {
                let f = f.trim();
                let v = parse_num(f).ok_or_else(|| {
                    Error::at_line(path, ln, format!("field {} `{f}` is not a number", row.len() + 1))
                })?;
                row.push(v);
                Ok(())
            };
            match delim {
                Delimiter::Char(c) => l.split(c as char).try_for_each(&mut push)?,
                Delimiter::Whitespace => l.split_ascii_whitespace().try_for_each(&mut push)?,
            }
            Ok(row)
        })
        .collect();
    let mut width = None;
    let mut data = Vec::new();
    for ((ln, _), row) in lines.iter().zip(parsed) {
        let row = row?;
        let w = *width.get_or_insert(row.len());
        if row.len() != w {
            return Err(Error::at_line(
                path,
                *ln,
                format!("row has {} fields, expected {w} (as on the first data row)", row.len()),
            ));
        }
        data.extend(row);
    }
    let w = width.unwrap_or(0);
    let n = data.len().checked_div(w).unwrap_or(0);
    Ok(Array2::from_shape_vec((n, w), data).expect("widths checked"))
}

/// Fast path for rows of plain integers (e.g. pixel values): false, with `out` partly filled, on anything
/// else (the general parser then takes over and produces the error message if there is one).
fn parse_int_row(line: &[u8], delim: u8, out: &mut Vec<f64>) -> bool {
    let (mut v, mut digits, mut neg) = (0u64, 0usize, false);
    let mut i = 0;
    while i < line.len() {
        let b = line[i];
        if b.is_ascii_digit() {
            v = v * 10 + u64::from(b - b'0');
            digits += 1;
            if digits > 15 {
                return false;
            }
        } else if b == delim {
            if digits == 0 {
                return false;
            }
            out.push(if neg { -(v as f64) } else { v as f64 });
            (v, digits, neg) = (0, 0, false);
        } else if b == b'-' && digits == 0 && !neg {
            neg = true;
        } else {
            return false;
        }
        i += 1;
    }
    if digits == 0 {
        return false;
    }
    out.push(if neg { -(v as f64) } else { v as f64 });
    true
}

/// A number: a fast path for plain integers, else Rust's float syntax (also `nan`/`inf`, rejected later).
fn parse_num(f: &str) -> Option<f64> {
    let b = f.as_bytes();
    let (neg, digits) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        _ => (false, b),
    };
    if !digits.is_empty() && digits.len() < 16 && digits.iter().all(u8::is_ascii_digit) {
        let v = digits.iter().fold(0u64, |a, &d| a * 10 + u64::from(d - b'0')) as f64;
        return Some(if neg { -v } else { v });
    }
    f.parse::<f64>().ok().filter(|v| v.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn csv_tsv_whitespace_header_detection() {
        let p = Path::new("t.csv");
        let a = parse(p, b"a,b,c\n1,2,3\n-4.5, 5e1 ,6\n", Delimiter::Char(b','), None).unwrap();
        assert_eq!(a, array![[1.0, 2.0, 3.0], [-4.5, 50.0, 6.0]]);
        let a = parse(p, b"-1,20,3\n4,5,-0\n", Delimiter::Char(b','), None).unwrap();
        assert_eq!(a, array![[-1.0, 20.0, 3.0], [4.0, 5.0, 0.0]]);
        let a = parse(p, b"1 2\n\n3   4\r\n", Delimiter::Whitespace, None).unwrap();
        assert_eq!(a, array![[1.0, 2.0], [3.0, 4.0]]);
        let a = parse(p, b"1\t2\n3\t4\n", Delimiter::Char(b'\t'), Some(true)).unwrap();
        assert_eq!(a, array![[3.0, 4.0]]);
        assert_eq!(Delimiter::for_path(Path::new("x.TSV.gz")), Delimiter::Char(b'\t'));
    }

    #[test]
    fn wrong_width_and_bad_number_name_file_and_line() {
        let p = Path::new("dir/f.csv");
        let e = parse(p, b"h1,h2\n1,2\n3,4\n5\n", Delimiter::Char(b','), None).unwrap_err().to_string();
        assert_eq!(e, "dir/f.csv:4: row has 1 fields, expected 2 (as on the first data row)");
        let e = parse(p, b"1,2\n3,x\n", Delimiter::Char(b','), None).unwrap_err().to_string();
        assert_eq!(e, "dir/f.csv:2: field 2 `x` is not a number");
    }
}
