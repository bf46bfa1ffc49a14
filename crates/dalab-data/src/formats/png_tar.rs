//! Images inside a tar(.gz) archive with a label list (the MNIST-M layout):
//! `<images_dir>/<file>.png` members and a `<labels_member>` text member of `file label` lines.
//!
//! The archive is read once into memory and the PNGs are decoded in parallel (rayon).

use super::images::{self, Image};
use crate::{Error, Result};
use ndarray::{Array4, Axis};
use rayon::prelude::*;
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

/// Labelled images read from an archive, in label-list order.
#[derive(Debug, Clone)]
pub struct LabelledImages {
    /// `[n, C, H, W]`, values in [0, 1].
    pub x: Array4<f32>,
    /// Labels as written in the list.
    pub labels: Vec<i64>,
    /// Member names (relative to the images directory), in order.
    pub names: Vec<String>,
}

/// Reads all regular members of a tar archive (gzip-compressed or not) into memory: name → bytes.
pub fn read_tar(path: &Path) -> Result<HashMap<String, Vec<u8>>> {
    let raw = super::read_bytes(path)?;
    let reader: Box<dyn Read> = if super::is_gzip(&raw) {
        Box::new(flate2::read::GzDecoder::new(raw.as_slice()))
    } else {
        Box::new(raw.as_slice())
    };
    let bad = |e: std::io::Error| Error::format(path, format!("truncated or corrupt tar archive ({e})"));
    let mut ar = tar::Archive::new(reader);
    let mut out = HashMap::new();
    for entry in ar.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = entry.path().map_err(bad)?.to_string_lossy().into_owned();
        let mut buf = Vec::with_capacity((entry.size() as usize).min(1 << 24));
        entry.read_to_end(&mut buf).map_err(bad)?;
        out.insert(name, buf);
    }
    // A gzip stream cut short can still hold whole members before the cut: read to the end of the stream so
    // that a truncated file is an error, not a silently shorter dataset.
    let mut rest = ar.into_inner();
    std::io::copy(&mut rest, &mut std::io::sink())
        .map_err(|e| Error::format(path, format!("truncated or corrupt gzip data ({e})")))?;
    Ok(out)
}

/// Reads the labelled images: `labels_member` lists `file label` lines, files are under `images_dir/`.
pub fn read(path: &Path, images_dir: &str, labels_member: &str) -> Result<LabelledImages> {
    let members = read_tar(path)?;
    let list = members.get(labels_member).ok_or_else(|| {
        Error::format(path, format!("no member `{labels_member}` in the archive ({} members)", members.len()))
    })?;
    let list = std::str::from_utf8(list)
        .map_err(|_| Error::format(path, format!("member `{labels_member}` is not UTF-8 text")))?;
    let mut names = Vec::new();
    let mut labels = Vec::new();
    for (ln, line) in list.lines().enumerate() {
        let mut t = line.split_ascii_whitespace();
        let (Some(name), Some(lab)) = (t.next(), t.next()) else {
            if line.trim().is_empty() {
                continue;
            }
            return Err(Error::format(path, format!("{labels_member}:{}: want `file label`, got `{line}`", ln + 1)));
        };
        let lab: i64 =
            lab.parse().map_err(|_| Error::format(path, format!("{labels_member}:{}: bad label `{lab}`", ln + 1)))?;
        names.push(name.to_string());
        labels.push(lab);
    }
    let dir = images_dir.trim_end_matches('/');
    let decoded: Vec<Result<Image>> = names
        .par_iter()
        .map(|n| {
            let key = format!("{dir}/{n}");
            let bytes = members.get(&key).ok_or_else(|| {
                Error::format(path, format!("`{labels_member}` lists `{n}` but there is no member `{key}`"))
            })?;
            images::decode(bytes).map_err(|m| Error::format(path, format!("member `{key}`: {m}")))
        })
        .collect();
    let mut imgs = Vec::with_capacity(decoded.len());
    for d in decoded {
        imgs.push(d?);
    }
    let (h, w, c) = imgs.first().map_or((0, 0, 3), |i| (i.height, i.width, i.channels.max(3)));
    let mut x = Array4::<f32>::zeros((imgs.len(), c, h, w));
    for (i, (img, mut out)) in imgs.iter().zip(x.axis_iter_mut(Axis(0))).enumerate() {
        if (img.height, img.width) != (h, w) {
            return Err(Error::format(
                path,
                format!("image `{}` is {}x{}, the first is {h}x{w}", names[i], img.width, img.height),
            ));
        }
        images::fill_chw(img, out.as_slice_mut().expect("standard layout"), c);
    }
    Ok(LabelledImages { x, labels, names })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes a tar.gz with `n` RGB 4×3 PNGs and a label list, like MNIST-M's.
    pub(crate) fn make_archive(p: &Path, n: usize, corrupt_list: bool) {
        let f = std::fs::File::create(p).unwrap();
        let gz = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
        let mut b = tar::Builder::new(gz);
        let mut list = String::new();
        for i in 0..n {
            let name = format!("{i:08}.png");
            let img = Image { width: 4, height: 3, channels: 3, data: (0..36).map(|k| (k * 7 + i) as u8).collect() };
            let png = images::encode_png(&img);
            let mut h = tar::Header::new_gnu();
            h.set_size(png.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, format!("set/imgs/{name}"), png.as_slice()).unwrap();
            list.push_str(&format!("{name} {}\n", i % 10));
        }
        if corrupt_list {
            list.push_str("99999999.png 3\n");
        }
        let mut h = tar::Header::new_gnu();
        h.set_size(list.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "set/labels.txt", list.as_bytes()).unwrap();
        b.into_inner().unwrap().finish().unwrap();
    }

    #[test]
    fn reads_generated_archive() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.tar.gz");
        make_archive(&p, 12, false);
        let r = read(&p, "set/imgs", "set/labels.txt").unwrap();
        assert_eq!(r.x.shape(), &[12, 3, 3, 4]);
        assert_eq!(r.labels[11], 1);
        // pixel (row 1, col 2) of image 5, channel 1: HWC index (1*4+2)*3+1 = 19 → (19*7+5)/255
        assert_eq!(r.x[[5, 1, 1, 2]], ((19 * 7 + 5) as u8) as f32 / 255.0);
        let q = dir.path().join("b.tar.gz");
        make_archive(&q, 3, true);
        let e = read(&q, "set/imgs", "set/labels.txt").unwrap_err().to_string();
        assert!(e.contains("b.tar.gz") && e.contains("no member `set/imgs/99999999.png`"), "{e}");
        // Truncated archive.
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&q, &bytes[..bytes.len() * 2 / 3]).unwrap();
        let e = read(&q, "set/imgs", "set/labels.txt").unwrap_err().to_string();
        assert!(e.starts_with(&q.display().to_string()), "{e}");
    }
}
