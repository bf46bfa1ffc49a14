//! Image decoding and augmentation throughput of the data layer (`dalab_data::stream::ImageFiles`), the part of a
//! training step that runs on the CPU ahead of the GPU: can it feed one?
//!
//!     cargo bench -p dalab-benches --bench images [-- --images 256 --reps 5]
//!
//! Writes `--images` Office-31-sized JPEGs (300×300, quality 75: the encoder's default; a gradient plus noise, so
//! they compress like photos) to a temporary folder, then times, per batch of all of them, median of `--reps`:
//! - `decode`: the JPEG decoding alone;
//! - `office31/stream`: decode + the `office31` training transform (256×256 bicubic → random resized crop 224 →
//!   flip → ImageNet normalisation), what `load: stream` does per drawn image;
//! - `office31/memory`: the same from images kept after the shared 256×256 resize (`load: memory`);
//! - `office31/eval`: the evaluation transform (centre crop) from memory;
//!
//! each with 1 thread and with all of rayon's threads (`RAYON_NUM_THREADS`), printing images per second.

use dalab_data::formats::images::ImageOptions;
use dalab_data::stream::ImageFiles;
use dalab_data::transforms::{TransformSpec, Transforms};
use std::sync::Arc;
use std::time::Instant;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// One timed case: its name and what it runs (given the repeat's number).
type Case<'a> = (&'a str, Box<dyn Fn(u64) + Sync + 'a>);

fn main() {
    let (n, reps) = (arg("--images", 256), arg("--reps", 5));
    let dir = tempfile::tempdir().expect("temp dir");
    let mut state = 1u32;
    let paths: Vec<std::path::PathBuf> = (0..n)
        .map(|i| {
            let mut px = Vec::with_capacity(300 * 300 * 3);
            for y in 0..300u32 {
                for x in 0..300u32 {
                    state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    let noise = (state >> 24) as i32 % 24;
                    for c in 0..3u32 {
                        let v = (x * (c + 1) / 3 + y / 2 + i as u32 * 7) as i32 % 230 + noise;
                        px.push(v.clamp(0, 255) as u8);
                    }
                }
            }
            let p = dir.path().join(format!("{i:04}.jpg"));
            let img = image::RgbImage::from_raw(300, 300, px).expect("300×300×3");
            img.save_with_format(&p, image::ImageFormat::Jpeg).expect("write JPEG");
            p
        })
        .collect();
    let preset = TransformSpec::Preset("office31".into());
    let t = Arc::new(Transforms::new(Some(&preset), Some(&preset), [224, 224]).expect("office31"));
    let stream =
        ImageFiles { transforms: Some(t.clone()), ..ImageFiles::new(paths.clone(), ImageOptions::default(), 4) };
    let memory = stream.clone().cached().expect("decode up front");
    let idx: Vec<usize> = (0..n).collect();
    let all = rayon::current_num_threads();
    println!("# {n} JPEGs 300×300, {reps} repeats, median images/s; rayon threads: 1 and {all}");
    let cases: [Case; 4] = [
        (
            "decode",
            Box::new(|_| {
                use rayon::prelude::*;
                paths.par_iter().for_each(|p| {
                    std::hint::black_box(dalab_data::formats::images::decode_image_file(p).expect("decode"));
                })
            }),
        ),
        ("office31/stream", Box::new(|b| drop(std::hint::black_box(stream.decode_train(&idx, 7, b).expect("train"))))),
        ("office31/memory", Box::new(|b| drop(std::hint::black_box(memory.decode_train(&idx, 7, b).expect("train"))))),
        ("office31/eval", Box::new(|_| drop(std::hint::black_box(memory.decode(&idx).expect("eval"))))),
    ];
    for threads in [1, all] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool");
        for (name, f) in &cases {
            let mut secs: Vec<f64> = (0..reps)
                .map(|r| {
                    let t0 = Instant::now();
                    pool.install(|| f(r as u64));
                    t0.elapsed().as_secs_f64()
                })
                .collect();
            secs.sort_by(f64::total_cmp);
            let median = secs[secs.len() / 2];
            println!("case={name} threads={threads} images_per_s={:.0} seconds={median:.3}", n as f64 / median);
        }
    }
}
