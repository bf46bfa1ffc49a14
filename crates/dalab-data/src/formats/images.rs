//! Image decoding (PNG, JPEG), resizing and normalisation, and the two usual layouts of image datasets:
//!
//! - **image folder** (Office-31 `amazon/images/<class>/*.jpg`, Office-Home `Art/<class>/*.jpg`): one
//!   sub-folder per class; classes are the sub-folder names sorted by byte order, files sorted likewise.
//! - **image list** (`path label` lines, paths relative to a root): the lists shipped with many DA codes.
//!
//! Output is `[n, C, H, W]` f32: pixel/255, resized (bilinear, pixel centres aligned as PIL and
//! `torch.nn.functional.interpolate(align_corners=False)` do), then `(v - mean[c]) / std[c]`.

use crate::{Error, Result};
use ndarray::{Array4, Axis};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A decoded 8-bit image, rows of pixels with interleaved channels (1 = grey, 3 = RGB).
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    pub width: usize,
    pub height: usize,
    pub channels: usize,
    pub data: Vec<u8>,
}

/// Decodes a PNG or JPEG (by magic number) to grey or RGB; alpha is dropped, 16-bit is reduced to 8.
pub fn decode(bytes: &[u8]) -> std::result::Result<Image, String> {
    if bytes.starts_with(b"\x89PNG") {
        decode_png(bytes)
    } else if bytes.starts_with(&[0xff, 0xd8]) {
        decode_jpeg(bytes)
    } else {
        Err("not a PNG or JPEG image".into())
    }
}

/// The most bytes one decoded image may take (256 MiB).
const PIXEL_BYTES_LIMIT: usize = 1 << 28;

fn decode_png(bytes: &[u8]) -> std::result::Result<Image, String> {
    let mut dec = png::Decoder::new(std::io::Cursor::new(bytes));
    dec.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut r = dec.read_info().map_err(|e| format!("bad PNG ({e})"))?;
    // A corrupt header must not ask for gigabytes (the JPEG decoder's cap; found by `fuzz/`, target png_tar).
    let size = r.output_buffer_size().ok_or("PNG too large")?;
    if size > PIXEL_BYTES_LIMIT {
        let i = r.info();
        return Err(format!(
            "PNG of {}x{} pixels would decode to {size} bytes, above the 256 MiB limit",
            i.width, i.height
        ));
    }
    let mut buf = vec![0u8; size];
    let info = r.next_frame(&mut buf).map_err(|e| format!("bad PNG ({e})"))?;
    let (w, h) = (info.width as usize, info.height as usize);
    let src_c = info.color_type.samples();
    buf.truncate(info.line_size * h);
    let (channels, data) = match info.color_type {
        png::ColorType::Grayscale => (1, buf),
        png::ColorType::Rgb => (3, buf),
        png::ColorType::GrayscaleAlpha => (1, buf.chunks_exact(2).map(|p| p[0]).collect()),
        png::ColorType::Rgba => (3, buf.chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect()),
        png::ColorType::Indexed => return Err("indexed PNG was not expanded".into()),
    };
    debug_assert!(src_c >= channels);
    Ok(Image { width: w, height: h, channels, data })
}

fn decode_jpeg(bytes: &[u8]) -> std::result::Result<Image, String> {
    let mut d = jpeg_decoder::Decoder::new(bytes);
    d.set_max_decoding_buffer_size(PIXEL_BYTES_LIMIT); // a corrupt header must not ask for gigabytes
    let px = d.decode().map_err(|e| format!("bad JPEG ({e})"))?;
    let info = d.info().ok_or("bad JPEG (no header)")?;
    let (w, h) = (info.width as usize, info.height as usize);
    let (channels, data) = match info.pixel_format {
        jpeg_decoder::PixelFormat::L8 => (1, px),
        jpeg_decoder::PixelFormat::L16 => (1, px.chunks_exact(2).map(|p| p[0]).collect()),
        jpeg_decoder::PixelFormat::RGB24 => (3, px),
        jpeg_decoder::PixelFormat::CMYK32 => (
            3,
            px.chunks_exact(4)
                .flat_map(|p| {
                    let k = 255 - u32::from(p[3]);
                    [p[0], p[1], p[2]].map(|c| ((255 - u32::from(c)) * k / 255) as u8)
                })
                .collect(),
        ),
    };
    Ok(Image { width: w, height: h, channels, data })
}

/// Encodes an 8-bit grey or RGB image as PNG (for tests and fixtures).
pub fn encode_png(img: &Image) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut e = png::Encoder::new(&mut out, img.width as u32, img.height as u32);
        e.set_color(if img.channels == 1 { png::ColorType::Grayscale } else { png::ColorType::Rgb });
        e.set_depth(png::BitDepth::Eight);
        let mut w = e.write_header().expect("in-memory write");
        w.write_image_data(&img.data).expect("size matches");
    }
    out
}

/// Writes `img` as channel-major floats pixel/255 into `out` (`channels * h * w` values); grey is repeated to
/// fill 3 channels, RGB is averaged to fill 1.
pub fn fill_chw(img: &Image, out: &mut [f32], channels: usize) {
    let (h, w, c) = (img.height, img.width, img.channels);
    let plane = h * w;
    debug_assert_eq!(out.len(), channels * plane);
    for p in 0..plane {
        let px = &img.data[p * c..p * c + c];
        for k in 0..channels {
            let v = match (c, channels) {
                (1, _) => f32::from(px[0]),
                (3, 1) => (f32::from(px[0]) + f32::from(px[1]) + f32::from(px[2])) / 3.0,
                _ => f32::from(px[k]),
            };
            out[k * plane + p] = v / 255.0;
        }
    }
}

/// Where output pixel `o` of a resize samples its input (`s` in input pixel coordinates, `in/out` the scale).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResizeGrid {
    /// Pixel centres aligned, `s = (o + ½)·in/out − ½`: PIL, `torch.nn.functional.interpolate(align_corners=False)`,
    /// TensorFlow 2's `tf.image.resize`.
    #[default]
    Centres,
    /// `s = o·in/out`: TensorFlow 1.x's `tf.image.resize_images` (bilinear, `align_corners=False`, before
    /// `half_pixel_centers` existed): it samples ½·(1 − in/out) input pixels further right and down than
    /// `Centres` (a quarter of a pixel at 16 → 32), so the content moves up and left when enlarging.
    Tf1,
}

impl ResizeGrid {
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// The input coordinate output pixel `o` samples.
    fn source(self, o: usize, scale: f32) -> f32 {
        match self {
            Self::Centres => ((o as f32 + 0.5) * scale - 0.5).max(0.0),
            Self::Tf1 => o as f32 * scale,
        }
    }
}

/// Bilinear resize of one `[h, w]` plane to `[oh, ow]` (pixel centres aligned; edges clamped).
pub fn resize_plane(src: &[f32], h: usize, w: usize, oh: usize, ow: usize) -> Vec<f32> {
    resize_plane_on(src, h, w, oh, ow, ResizeGrid::Centres)
}

/// Bilinear resize of one `[h, w]` plane to `[oh, ow]` on `grid` (edges clamped).
pub fn resize_plane_on(src: &[f32], h: usize, w: usize, oh: usize, ow: usize, grid: ResizeGrid) -> Vec<f32> {
    if (h, w) == (oh, ow) {
        return src.to_vec();
    }
    let axis = |n_in: usize, n_out: usize| -> Vec<(usize, usize, f32)> {
        let scale = n_in as f32 / n_out as f32;
        (0..n_out)
            .map(|o| {
                let s = grid.source(o, scale);
                let i0 = (s.floor() as usize).min(n_in - 1);
                let i1 = (i0 + 1).min(n_in - 1);
                (i0, i1, s - i0 as f32)
            })
            .collect()
    };
    let ys = axis(h, oh);
    let xs = axis(w, ow);
    let mut out = Vec::with_capacity(oh * ow);
    for &(y0, y1, fy) in &ys {
        for &(x0, x1, fx) in &xs {
            let top = src[y0 * w + x0] * (1.0 - fx) + src[y0 * w + x1] * fx;
            let bot = src[y1 * w + x0] * (1.0 - fx) + src[y1 * w + x1] * fx;
            out.push(top * (1.0 - fy) + bot * fy);
        }
    }
    out
}

/// Resizes every image of `[n, C, H, W]` to `[n, C, oh, ow]` (in parallel over images; pixel centres aligned).
pub fn resize_batch(x: &Array4<f32>, oh: usize, ow: usize) -> Array4<f32> {
    resize_batch_on(x, oh, ow, ResizeGrid::Centres)
}

/// Resizes every image of `[n, C, H, W]` to `[n, C, oh, ow]` on `grid` (in parallel over images).
pub fn resize_batch_on(x: &Array4<f32>, oh: usize, ow: usize, grid: ResizeGrid) -> Array4<f32> {
    let (n, c, h, w) = x.dim();
    if (h, w) == (oh, ow) {
        return x.clone();
    }
    let mut out = Array4::<f32>::zeros((n, c, oh, ow));
    out.axis_iter_mut(Axis(0)).into_par_iter().zip(x.axis_iter(Axis(0))).for_each(|(mut o, i)| {
        for k in 0..c {
            let plane = i.index_axis(Axis(0), k);
            let src: Vec<f32> = plane.iter().copied().collect();
            let r = resize_plane_on(&src, h, w, oh, ow, grid);
            o.index_axis_mut(Axis(0), k).iter_mut().zip(r).for_each(|(d, v)| *d = v);
        }
    });
    out
}

/// Changes the channel count of `[n, C, H, W]`: 1 → 3 repeats the grey plane, 3 → 1 averages.
pub fn set_channels(x: Array4<f32>, channels: usize) -> Array4<f32> {
    let (n, c, h, w) = x.dim();
    match (c, channels) {
        (a, b) if a == b => x,
        (1, b) => {
            let mut out = Array4::<f32>::zeros((n, b, h, w));
            for k in 0..b {
                out.index_axis_mut(Axis(1), k).assign(&x.index_axis(Axis(1), 0));
            }
            out
        }
        (_, 1) => x.mean_axis(Axis(1)).expect("c >= 1").insert_axis(Axis(1)),
        (_, b) => {
            let mut out = Array4::<f32>::zeros((n, b, h, w));
            for k in 0..b.min(c) {
                out.index_axis_mut(Axis(1), k).assign(&x.index_axis(Axis(1), k));
            }
            out
        }
    }
}

/// Decoding settings of image datasets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImageOptions {
    /// Output size `[height, width]` (every image is resized to it).
    pub size: [usize; 2],
    /// Output channels (3 = RGB; grey images are repeated).
    pub channels: usize,
    /// Per-channel mean subtracted after scaling to [0, 1] (default: ImageNet's).
    pub mean: Vec<f32>,
    /// Per-channel standard deviation divided by (default: ImageNet's).
    pub std: Vec<f32>,
}

impl Default for ImageOptions {
    fn default() -> Self {
        Self { size: [224, 224], channels: 3, mean: vec![0.485, 0.456, 0.406], std: vec![0.229, 0.224, 0.225] }
    }
}

impl ImageOptions {
    /// Checks the settings; errors name the key.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.size.contains(&0) {
            return Err(format!("size: must be positive, got {:?}", self.size));
        }
        if self.channels != 1 && self.channels != 3 {
            return Err(format!("channels: must be 1 or 3, got {}", self.channels));
        }
        for (k, v) in [("mean", &self.mean), ("std", &self.std)] {
            if v.len() != self.channels {
                return Err(format!("{k}: needs {} values (one per channel), got {}", self.channels, v.len()));
            }
        }
        if self.std.iter().any(|&s| !(s > 0.0 && s.is_finite())) {
            return Err(format!("std: values must be > 0, got {:?}", self.std));
        }
        Ok(())
    }
}

/// A set of labelled images.
#[derive(Debug, Clone)]
pub struct ImageSet {
    /// `[n, C, H, W]`, normalised as the options say.
    pub x: Array4<f32>,
    pub labels: Vec<i64>,
    pub paths: Vec<PathBuf>,
}

/// Decodes one image file into `out` (`channels · h · w` values, channel-major): pixel/255, resized to
/// `opts.size`, normalised with `opts.mean`/`opts.std`. Errors name the file. `opts` must be valid.
pub fn decode_file_into(path: &Path, opts: &ImageOptions, out: &mut [f32]) -> Result<()> {
    let [oh, ow] = opts.size;
    let c = opts.channels;
    debug_assert_eq!(out.len(), c * oh * ow);
    let img = decode_image_file(path)?;
    let mut chw = vec![0f32; c * img.height * img.width];
    fill_chw(&img, &mut chw, c);
    let plane = img.height * img.width;
    for k in 0..c {
        let r = resize_plane(&chw[k * plane..(k + 1) * plane], img.height, img.width, oh, ow);
        let (m, s) = (opts.mean[k], opts.std[k]);
        out[k * oh * ow..(k + 1) * oh * ow].iter_mut().zip(r).for_each(|(d, v)| *d = (v - m) / s);
    }
    Ok(())
}

/// Reads and decodes one image file (not empty). Errors name the file.
pub fn decode_image_file(path: &Path) -> Result<Image> {
    let bytes = super::read_bytes(path)?;
    let img = decode(&bytes).map_err(|m| Error::format(path, m))?;
    if img.width == 0 || img.height == 0 {
        return Err(Error::format(path, "empty image"));
    }
    Ok(img)
}

/// Writes a transformed image (already `opts.size`) into `out` as `(pixel/255 − mean[c]) / std[c]`, channel-major.
pub fn finish_into(img: &Image, opts: &ImageOptions, out: &mut [f32]) -> std::result::Result<(), String> {
    let [h, w] = opts.size;
    if (img.height, img.width) != (h, w) {
        return Err(format!("transformed to {}×{}, not the {h}×{w} of `image.size`", img.height, img.width));
    }
    fill_chw(img, out, opts.channels);
    let plane = h * w;
    for k in 0..opts.channels {
        let (m, s) = (opts.mean[k], opts.std[k]);
        out[k * plane..(k + 1) * plane].iter_mut().for_each(|v| *v = (*v - m) / s);
    }
    Ok(())
}

/// Decodes `paths[idx[0]], paths[idx[1]], …` (in parallel on the rayon pool) into one `[idx.len(), C, H, W]`
/// buffer, row-major. Errors name the first failing file (in `idx` order).
pub fn decode_files(paths: &[PathBuf], idx: &[usize], opts: &ImageOptions) -> Result<Vec<f32>> {
    opts.validate().map_err(Error::Invalid)?;
    let per = opts.channels * opts.size[0] * opts.size[1];
    let mut x = vec![0f32; idx.len() * per];
    if per == 0 {
        return Ok(x);
    }
    let errors: Vec<Option<Error>> = x
        .par_chunks_mut(per)
        .zip(idx.par_iter())
        .map(|(out, &i)| match paths.get(i) {
            Some(p) => decode_file_into(p, opts, out).err(),
            None => Some(Error::Invalid(format!("image index {i} is outside 0..{}", paths.len()))),
        })
        .collect();
    match errors.into_iter().flatten().next() {
        Some(e) => Err(e),
        None => Ok(x),
    }
}

/// Decodes, resizes and normalises image files (in parallel). Errors name the file.
pub fn load_files(paths: &[PathBuf], opts: &ImageOptions) -> Result<Array4<f32>> {
    let [oh, ow] = opts.size;
    let idx: Vec<usize> = (0..paths.len()).collect();
    let x = decode_files(paths, &idx, opts)?;
    Array4::from_shape_vec((paths.len(), opts.channels, oh, ow), x).map_err(|e| Error::Invalid(e.to_string()))
}

/// True for the file names read as images.
pub fn is_image_name(p: &Path) -> bool {
    let n = super::lower_name(p);
    [".png", ".jpg", ".jpeg"].iter().any(|e| n.ends_with(e))
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .map(|e| e.map(|e| e.path()).map_err(|e| Error::io(dir, e)))
        .collect::<Result<_>>()?;
    v.sort();
    Ok(v)
}

/// The classes (sorted sub-folder names) and the image files of an image folder, without decoding.
pub fn scan_folder(dir: &Path) -> Result<(Vec<String>, Vec<PathBuf>, Vec<i64>)> {
    let mut classes = Vec::new();
    let mut files = Vec::new();
    let mut labels = Vec::new();
    for sub in sorted_entries(dir)?.into_iter().filter(|p| p.is_dir()) {
        let k = classes.len() as i64;
        classes.push(sub.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
        for f in sorted_entries(&sub)?.into_iter().filter(|p| p.is_file() && is_image_name(p)) {
            files.push(f);
            labels.push(k);
        }
    }
    if files.is_empty() {
        return Err(Error::format(dir, "no class sub-folders with .png/.jpg images"));
    }
    Ok((classes, files, labels))
}

/// Loads an image folder (one sub-folder per class). Returns the images and the sorted class names.
pub fn read_folder(dir: &Path, opts: &ImageOptions) -> Result<(ImageSet, Vec<String>)> {
    let (classes, paths, labels) = scan_folder(dir)?;
    let x = load_files(&paths, opts)?;
    Ok((ImageSet { x, labels, paths }, classes))
}

/// Parses an image list (`path label` lines; paths relative to `root`). Errors name the list and line.
pub fn scan_list(list: &Path, root: &Path) -> Result<(Vec<PathBuf>, Vec<i64>)> {
    let text = String::from_utf8(super::read_bytes(list)?).map_err(|_| Error::format(list, "not UTF-8 text"))?;
    let mut paths = Vec::new();
    let mut labels = Vec::new();
    for (ln, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        // The label is the last field; the path is everything before it (paths may contain spaces).
        let (p, l) = line
            .rsplit_once(char::is_whitespace)
            .ok_or_else(|| Error::at_line(list, ln + 1, format!("want `path label`, got `{line}`")))?;
        let l: i64 = l
            .parse()
            .ok()
            .filter(|&v| v >= 0)
            .ok_or_else(|| Error::at_line(list, ln + 1, format!("bad label `{l}` (want an integer >= 0)")))?;
        paths.push(root.join(p.trim()));
        labels.push(l);
    }
    if paths.is_empty() {
        return Err(Error::format(list, "empty image list"));
    }
    Ok((paths, labels))
}

/// Loads the images of an image list.
pub fn read_list(list: &Path, root: &Path, opts: &ImageOptions) -> Result<ImageSet> {
    let (paths, labels) = scan_list(list, root)?;
    let x = load_files(&paths, opts)?;
    Ok(ImageSet { x, labels, paths })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grey(w: usize, h: usize, f: impl Fn(usize, usize) -> u8) -> Image {
        Image {
            width: w,
            height: h,
            channels: 1,
            data: (0..h).flat_map(|y| (0..w).map(move |x| (y, x))).map(|(y, x)| f(y, x)).collect(),
        }
    }

    #[test]
    fn png_round_trip_grey_and_rgb() {
        let g = grey(5, 4, |y, x| (y * 10 + x) as u8);
        assert_eq!(decode(&encode_png(&g)).unwrap(), g);
        let c = Image { width: 2, height: 2, channels: 3, data: (0..12).collect() };
        assert_eq!(decode(&encode_png(&c)).unwrap(), c);
        assert!(decode(b"GIF89a").unwrap_err().contains("not a PNG or JPEG"));
    }

    /// A hand-made baseline JPEG: one 8x8 grey block whose only coefficient is DC = 0 (so every pixel is the
    /// level shift, 128), with one-symbol Huffman tables (DC category 0, AC end-of-block, both coded `0`).
    fn tiny_jpeg() -> Vec<u8> {
        let mut j = vec![0xff, 0xd8]; // SOI
        j.extend([0xff, 0xdb, 0x00, 0x43, 0x00]); // DQT, table 0, 8-bit
        j.extend([1u8; 64]);
        j.extend([0xff, 0xc0, 0x00, 0x0b, 8, 0, 8, 0, 8, 1, 1, 0x11, 0]); // SOF0 8x8, 1 component
        for class in [0x00u8, 0x10] {
            j.extend([0xff, 0xc4, 0x00, 0x14, class, 1]); // DHT: one code of length 1 ...
            j.extend([0u8; 15]);
            j.push(0x00); // ... for symbol 0 (DC: category 0; AC: end of block)
        }
        j.extend([0xff, 0xda, 0x00, 0x08, 1, 1, 0x00, 0, 63, 0]); // SOS
        j.push(0b0011_1111); // DC `0`, EOB `0`, padding ones
        j.extend([0xff, 0xd9]); // EOI
        j
    }

    #[test]
    fn jpeg_decoding() {
        let img = decode(&tiny_jpeg()).unwrap();
        assert_eq!((img.width, img.height, img.channels), (8, 8, 1));
        assert!(img.data.iter().all(|&v| v == 128), "{:?}", img.data);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.JPG");
        std::fs::write(&p, tiny_jpeg()).unwrap();
        let opts = ImageOptions { size: [4, 4], channels: 3, mean: vec![0.5; 3], std: vec![0.5; 3] };
        let x = load_files(std::slice::from_ref(&p), &opts).unwrap();
        assert_eq!(x.shape(), &[1, 3, 4, 4]);
        assert!(x.iter().all(|&v| (v - (128.0 / 255.0 - 0.5) / 0.5).abs() < 1e-6));
        std::fs::write(&p, &tiny_jpeg()[..40]).unwrap();
        let e = load_files(std::slice::from_ref(&p), &opts).unwrap_err().to_string();
        assert!(e.contains("x.JPG") && e.contains("bad JPEG"), "{e}");
    }

    #[test]
    fn resize_keeps_constants_and_halves_exactly() {
        let src = vec![0.25f32; 12];
        assert!(resize_plane(&src, 3, 4, 7, 5).iter().all(|&v| (v - 0.25).abs() < 1e-7));
        // 4x4 → 2x2 with centres aligned averages each 2x2 block.
        let src: Vec<f32> = (0..16).map(|v| v as f32).collect();
        assert_eq!(resize_plane(&src, 4, 4, 2, 2), vec![2.5, 4.5, 10.5, 12.5]);
    }

    #[test]
    fn tf1_grid_matches_tensorflow() {
        // tests/reference/make_resize_reference.py: TensorFlow's legacy bilinear grid on formula planes.
        let r: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/reference/resize_tf1_reference.json")).unwrap();
        let cases = r["cases"].as_array().unwrap();
        assert_eq!(cases.len(), 4);
        for c in cases {
            let n = |k: &str| c[k].as_u64().unwrap() as usize;
            let (h, w, oh, ow) = (n("h"), n("w"), n("oh"), n("ow"));
            let src: Vec<f32> = (0..h * w)
                .map(|i| {
                    let (y, x) = (i / w, i % w);
                    ((5 * x * x + 3 * y + (x * y) % 7) % 256) as f32 / 255.0
                })
                .collect();
            let want: Vec<f32> = c["values"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
            let got = resize_plane_on(&src, h, w, oh, ow, ResizeGrid::Tf1);
            assert_eq!(got.len(), want.len());
            let worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(worst < 1e-5, "{h}x{w} -> {oh}x{ow}: max |ours - tf| = {worst}");
            // The centred grid is a different image (a quarter of a USPS pixel apart), so the check can fail.
            let centred = resize_plane(&src, h, w, oh, ow);
            assert!(centred.iter().zip(&want).any(|(a, b)| (a - b).abs() > 1e-3), "{h}x{w}: grids agree");
        }
        // Upsampling 16 -> 32 on the TF 1 grid copies input pixel i to output 2i exactly.
        let src: Vec<f32> = (0..256).map(|v| v as f32).collect();
        let up = resize_plane_on(&src, 16, 16, 32, 32, ResizeGrid::Tf1);
        assert_eq!((up[0], up[2], up[2 * 32 + 4]), (0.0, 1.0, 18.0)); // (1, 2) = 1·16 + 2
    }

    #[test]
    fn folder_and_list_layouts() {
        let dir = tempfile::tempdir().unwrap();
        // Office-31 style: domain/images/<class>/*.png, classes deliberately created out of order.
        for (class, n) in [("mug", 2), ("back_pack", 3), ("Bike", 1)] {
            let d = dir.path().join("amazon/images").join(class);
            std::fs::create_dir_all(&d).unwrap();
            for i in 0..n {
                let img = grey(6, 4, |y, x| (y * 6 + x + i) as u8);
                std::fs::write(d.join(format!("frame_{i:04}.png")), encode_png(&img)).unwrap();
            }
        }
        std::fs::write(dir.path().join("amazon/images/notes.txt"), "not a class").unwrap();
        let opts = ImageOptions { size: [2, 3], channels: 3, mean: vec![0.0; 3], std: vec![1.0; 3] };
        let (set, classes) = read_folder(&dir.path().join("amazon/images"), &opts).unwrap();
        assert_eq!(classes, vec!["Bike", "back_pack", "mug"]); // byte order: upper case first
        assert_eq!(set.labels, vec![0, 1, 1, 1, 2, 2]);
        assert_eq!(set.x.shape(), &[6, 3, 2, 3]);
        // Grey repeated to RGB; 6x4 → 3x2 averages 2x2 blocks: first block of image 0 = (0+1+6+7)/4.
        assert!((set.x[[0, 2, 0, 0]] - 3.5 / 255.0).abs() < 1e-6);
        // An image list over the same files, with a comment and a path containing a space.
        let sp = dir.path().join("with space.png");
        std::fs::write(&sp, encode_png(&grey(2, 2, |_, _| 255))).unwrap();
        let list = dir.path().join("amazon_list.txt");
        std::fs::write(&list, "# comment\namazon/images/mug/frame_0000.png 2\nwith space.png 0\n").unwrap();
        let set = read_list(&list, dir.path(), &opts).unwrap();
        assert_eq!(set.labels, vec![2, 0]);
        assert_eq!(set.x[[1, 0, 1, 1]], 1.0);
        std::fs::write(&list, "a.png 1\nb.png x\n").unwrap();
        let e = scan_list(&list, dir.path()).unwrap_err().to_string();
        assert!(e.ends_with("amazon_list.txt:2: bad label `x` (want an integer >= 0)"), "{e}");
        std::fs::write(&list, "missing.png 1\n").unwrap();
        let e = read_list(&list, dir.path(), &opts).unwrap_err().to_string();
        assert!(e.contains("missing.png"), "{e}");
    }
}
