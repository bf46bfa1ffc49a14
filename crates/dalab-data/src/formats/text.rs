//! Delimited numeric text: CSV, TSV or whitespace-separated, optionally gzipped (by content). CSV and TSV are split
//! by the `csv` crate (quoted fields, CRLF, a quoted delimiter inside a field), whitespace-separated text by
//! `split_ascii_whitespace` (runs of spaces and tabs, which no CSV dialect expresses); the numbers are parsed here,
//! rows in parallel.
//!
//! Every data row must have the width of the first; a header row is skipped when asked for, or (by default)
//! when the first row has a field that is not a number. Blank lines are skipped. Errors name the file and the
//! 1-based line.

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
    // (1-based line, fields) of every non-blank row.
    let mut rows: Vec<(usize, csv::StringRecord)> = Vec::new();
    match delim {
        Delimiter::Char(c) => {
            let mut reader = csv::ReaderBuilder::new()
                .delimiter(c)
                .has_headers(false)
                .flexible(true)
                .trim(csv::Trim::All)
                .from_reader(text.as_bytes());
            for record in reader.records() {
                let record = record.map_err(|e| match e.position() {
                    Some(p) => Error::at_line(path, p.line() as usize, format!("not readable as CSV ({e})")),
                    None => Error::format(path, format!("not readable as CSV ({e})")),
                })?;
                if record.iter().all(str::is_empty) {
                    continue;
                }
                let line = record.position().map_or(rows.len() + 1, |p| p.line() as usize);
                rows.push((line, record));
            }
        }
        Delimiter::Whitespace => {
            for (i, l) in text.lines().enumerate() {
                let fields: Vec<&str> = l.split_ascii_whitespace().collect();
                if !fields.is_empty() {
                    rows.push((i + 1, csv::StringRecord::from(fields)));
                }
            }
        }
    }
    if let Some((_, first)) = rows.first() {
        let skip = header.unwrap_or_else(|| first.iter().any(|f| parse_num(f).is_none()));
        if skip {
            rows.remove(0);
        }
    }
    if rows.is_empty() {
        return Err(Error::format(path, "no data rows (an empty file, or a header alone)"));
    }
    let parsed: Vec<std::result::Result<Vec<f64>, Error>> = rows
        .par_iter()
        .map(|(ln, record)| {
            record
                .iter()
                .enumerate()
                .map(|(k, f)| {
                    parse_num(f)
                        .ok_or_else(|| Error::at_line(path, *ln, format!("field {} `{f}` is not a number", k + 1)))
                })
                .collect()
        })
        .collect();
    let mut width = None;
    let mut data = Vec::new();
    for ((ln, _), row) in rows.iter().zip(parsed) {
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
        // Quoted fields (as spreadsheets write them), CRLF line ends, blank lines.
        let a = parse(p, b"\"x\",\"y, z\"\r\n\"1.5\",\"2\"\r\n\r\n3,4\r\n", Delimiter::Char(b','), None).unwrap();
        assert_eq!(a, array![[1.5, 2.0], [3.0, 4.0]]);
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
