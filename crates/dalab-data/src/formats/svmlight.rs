//! svmlight / libsvm text: one sample per line, `label index:value index:value ... # comment`.
//!
//! Indices are 0-based or 1-based (the caller says which; the file cannot); `qid:` pairs are skipped.
//! Errors name the file and the 1-based line.

use crate::{Error, Result};
use ndarray::Array2;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// First feature index of an svmlight file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IndexBase {
    /// Indices start at 0 (e.g. the DANN Amazon files).
    #[default]
    Zero,
    /// Indices start at 1 (libsvm's convention).
    One,
}

/// A sparse sample set read from an svmlight file.
#[derive(Debug, Clone, PartialEq)]
pub struct Svmlight {
    pub labels: Vec<f64>,
    /// Per sample: (0-based feature index, value).
    pub rows: Vec<Vec<(u32, f32)>>,
    /// Number of features (the declared one, or 1 + the largest index seen).
    pub n_features: usize,
}

impl Svmlight {
    /// Dense `[n, n_features]` matrix, each stored value mapped by `f` (zeros stay zero, so `f(0)` should be 0).
    pub fn dense(&self, f: impl Fn(f32) -> f32) -> Array2<f32> {
        let mut x = Array2::<f32>::zeros((self.rows.len(), self.n_features));
        for (i, row) in self.rows.iter().enumerate() {
            for &(j, v) in row {
                x[[i, j as usize]] = f(v);
            }
        }
        x
    }
}

/// Reads an svmlight file (gzip-compressed or plain). With `n_features`, an index at or past it is an error.
pub fn read(path: &Path, base: IndexBase, n_features: Option<usize>) -> Result<Svmlight> {
    let bytes = super::read_maybe_gz(path)?;
    parse(path, &bytes, base, n_features)
}

/// The largest feature count inferred from a file's indices (2^24): a dense matrix of a few samples of that width
/// is already gigabytes; beyond it a corrupt index would ask for an allocation that cannot succeed.
pub const MAX_INFERRED_FEATURES: usize = 1 << 24;

/// Parses svmlight text read from `path` (named in errors).
pub fn parse(path: &Path, bytes: &[u8], base: IndexBase, n_features: Option<usize>) -> Result<Svmlight> {
    let text = std::str::from_utf8(bytes).map_err(|e| Error::format(path, format!("not UTF-8 text ({e})")))?;
    let mut labels = Vec::new();
    let mut rows = Vec::new();
    let mut max_index: Option<usize> = None;
    for (ln, line) in text.lines().enumerate() {
        let ln = ln + 1;
        let line = line.split('#').next().unwrap_or("");
        let mut toks = line.split_ascii_whitespace();
        let Some(lab) = toks.next() else { continue };
        let label: f64 = lab
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite())
            .ok_or_else(|| Error::at_line(path, ln, format!("bad label `{lab}`")))?;
        let mut row = Vec::new();
        for tok in toks {
            let (i, v) = tok
                .split_once(':')
                .ok_or_else(|| Error::at_line(path, ln, format!("bad pair `{tok}` (want index:value)")))?;
            if i == "qid" {
                continue;
            }
            let raw: usize =
                i.parse().map_err(|_| Error::at_line(path, ln, format!("bad feature index `{i}` in `{tok}`")))?;
            let idx = match base {
                IndexBase::Zero => raw,
                IndexBase::One => raw.checked_sub(1).ok_or_else(|| {
                    Error::at_line(path, ln, format!("feature index 0 in `{tok}`, but indices are 1-based"))
                })?,
            };
            if let Some(n) = n_features
                && idx >= n
            {
                return Err(Error::at_line(
                    path,
                    ln,
                    format!("feature index {raw} in `{tok}` is out of range for {n} features"),
                ));
            }
            if n_features.is_none() && idx >= MAX_INFERRED_FEATURES {
                return Err(Error::at_line(
                    path,
                    ln,
                    format!(
                        "feature index {raw} in `{tok}` implies more than {MAX_INFERRED_FEATURES} features (the limit \
                         for a file whose feature count is not given)"
                    ),
                ));
            }
            if idx > u32::MAX as usize {
                return Err(Error::at_line(path, ln, format!("feature index {raw} is too large")));
            }
            let val: f32 = v
                .parse()
                .ok()
                .filter(|v: &f32| v.is_finite())
                .ok_or_else(|| Error::at_line(path, ln, format!("bad value `{v}` in `{tok}`")))?;
            max_index = Some(max_index.map_or(idx, |m| m.max(idx)));
            row.push((idx as u32, val));
        }
        labels.push(label);
        rows.push(row);
    }
    let n_features = n_features.unwrap_or_else(|| max_index.map_or(0, |m| m + 1));
    Ok(Svmlight { labels, rows, n_features })
}

/// Writes samples as svmlight text with the given index base (for tests and exports). Zeros are not written.
pub fn write(path: &Path, x: &Array2<f64>, labels: &[f64], base: IndexBase) -> Result<()> {
    let mut s = String::new();
    let off = if base == IndexBase::One { 1 } else { 0 };
    for (row, l) in x.rows().into_iter().zip(labels) {
        s.push_str(&l.to_string());
        for (j, v) in row.iter().enumerate() {
            if *v != 0.0 {
                s.push_str(&format!(" {}:{v}", j + off));
            }
        }
        s.push('\n');
    }
    std::fs::write(path, s).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn zero_and_one_based() {
        let dir = tempfile::tempdir().unwrap();
        let x = array![[1.0, 0.0, 2.0], [0.0, 0.0, 3.5]];
        for base in [IndexBase::Zero, IndexBase::One] {
            let p = dir.path().join(format!("{base:?}.svm"));
            write(&p, &x, &[1.0, -1.0], base).unwrap();
            let s = read(&p, base, Some(3)).unwrap();
            assert_eq!(s.labels, vec![1.0, -1.0]);
            assert_eq!(s.dense(|v| v), x.mapv(|v| v as f32));
        }
        let s = parse(Path::new("m"), b"# header\n+1 qid:3 2:1 # c\n\n-1 0:4\n", IndexBase::Zero, None).unwrap();
        assert_eq!(s.n_features, 3);
        assert_eq!(s.rows, vec![vec![(2, 1.0)], vec![(0, 4.0)]]);
    }

    #[test]
    fn bad_lines_name_file_and_line() {
        let p = Path::new("data/x.svmlight");
        let cases: [(&[u8], IndexBase, &str); 5] = [
            (b"1 0:1\n1 a:2\n", IndexBase::Zero, "data/x.svmlight:2: bad feature index `a`"),
            (b"1 0:1\n-1 1:1\n1 0:2\n", IndexBase::One, "data/x.svmlight:1: feature index 0"),
            (
                b"1 0:1\n1 1:1 5:1\n",
                IndexBase::Zero,
                "data/x.svmlight:2: feature index 5 in `5:1` is out of range for 5",
            ),
            (b"1 0:x\n", IndexBase::Zero, "data/x.svmlight:1: bad value `x`"),
            (b"1 0:1\n\nfoo 0:1\n", IndexBase::Zero, "data/x.svmlight:3: bad label `foo`"),
        ];
        for (text, base, want) in cases {
            let e = parse(p, text, base, Some(5)).unwrap_err().to_string();
            assert!(e.starts_with(want), "{e} (want {want})");
        }
    }
}
