//! Batch streams without libtorch: the seeded epoch order every stream draws its batches from, image files
//! decoded on demand, and a prefetcher that decodes the next batches on the rayon pool, off the training thread,
//! into a bounded queue.
//!
//! The trainer (dalab-train) turns the decoded buffers into tensors on the run's device. A domain decoded on
//! demand and the same domain decoded up front give the same batches, value for value: the order comes from
//! [`EpochOrder`] in both cases and decoding is deterministic.

use crate::formats::images::{self, Image, ImageOptions};
use crate::transforms::{self, Transforms};
use crate::{Error, Result};
use ndarray::Array4;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

/// An endless sequence of batches of indices `0..n`: each epoch visits every index once in a fresh seeded order
/// (ChaCha8, stable across platforms); a batch that would cross an epoch boundary is completed from the next epoch.
#[derive(Debug, Clone)]
pub struct EpochOrder {
    order: Vec<usize>,
    pos: usize,
    rng: ChaCha8Rng,
}

impl EpochOrder {
    /// The order over `0..n` drawn with `seed`. `n` must be at least 1.
    pub fn new(n: usize, seed: u64) -> Result<Self> {
        if n == 0 {
            return Err(Error::Invalid("a batch stream needs at least one sample".into()));
        }
        let mut s = Self { order: (0..n).collect(), pos: n, rng: ChaCha8Rng::seed_from_u64(seed) };
        s.reshuffle();
        Ok(s)
    }

    fn reshuffle(&mut self) {
        self.order.shuffle(&mut self.rng);
        self.pos = 0;
    }

    /// The next `b` indices.
    pub fn next_indices(&mut self, b: usize) -> Vec<usize> {
        let mut idx = Vec::with_capacity(b);
        while idx.len() < b {
            if self.pos == self.order.len() {
                self.reshuffle();
            }
            let take = (b - idx.len()).min(self.order.len() - self.pos);
            idx.extend_from_slice(&self.order[self.pos..self.pos + take]);
            self.pos += take;
        }
        idx
    }
}

/// Image files decoded on demand: each to `[channels, size[0], size[1]]`, normalised as `opts` says (the same
/// decoding as a domain loaded into memory). With `transforms`, evaluation passes get the evaluation steps and
/// training streams ([`Prefetcher::shuffled`]) the training steps, each drawn sample with its own random stream;
/// `cache` then holds every image after the steps both share (a domain loaded into memory), so that a cached and an
/// uncached domain give the same batches.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageFiles {
    pub paths: Vec<PathBuf>,
    pub opts: ImageOptions,
    /// Batches the trainer decodes ahead of the step that needs them (≥ 1).
    pub prefetch: usize,
    /// The dataset's `train_transform` / `eval_transform` (None: every image resized to `opts.size`).
    pub transforms: Option<Arc<Transforms>>,
    /// With transforms and `load: memory`: the images after the transforms' deterministic prefix, by path.
    pub cache: Option<Arc<ImageCache>>,
}

/// Decoded images by path (8-bit, after a transform's deterministic prefix).
#[derive(Clone, PartialEq, Default)]
pub struct ImageCache(pub HashMap<PathBuf, Image>);

impl std::fmt::Debug for ImageCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let bytes: usize = self.0.values().map(|i| i.data.len()).sum();
        write!(f, "ImageCache({} images, {bytes} bytes)", self.0.len())
    }
}

impl ImageFiles {
    /// Files decoded by `opts` alone (no transforms).
    pub fn new(paths: Vec<PathBuf>, opts: ImageOptions, prefetch: usize) -> Self {
        Self { paths, opts, prefetch, transforms: None, cache: None }
    }

    /// Decodes every image up to the end of the transforms' deterministic prefix and keeps them (`load: memory`).
    pub fn cached(mut self) -> Result<Self> {
        if self.transforms.is_none() {
            return Ok(self);
        }
        let images: Vec<Result<Image>> = self.paths.par_iter().map(|p| self.base_image(p)).collect();
        let mut map = HashMap::with_capacity(images.len());
        for (p, img) in self.paths.iter().zip(images) {
            map.insert(p.clone(), img?);
        }
        self.cache = Some(Arc::new(ImageCache(map)));
        Ok(self)
    }

    /// The image at `path` after the transforms' deterministic prefix (from the cache when it is there).
    fn base_image(&self, path: &std::path::Path) -> Result<Image> {
        if let Some(img) = self.cache.as_ref().and_then(|c| c.0.get(path)) {
            return Ok(img.clone());
        }
        let t = self.transforms.as_ref().expect("called with transforms");
        let img = images::decode_image_file(path)?;
        t.apply_prefix(img).map_err(|m| Error::format(path, m))
    }

    /// Decodes the images `idx` in parallel, each by `f(path, position)`, into one `[idx.len(), C, H, W]` buffer.
    fn decode_each(
        &self,
        idx: &[usize],
        f: impl Fn(&std::path::Path, usize) -> Result<Image> + Sync,
    ) -> Result<Vec<f32>> {
        let per = self.opts.channels * self.opts.size[0] * self.opts.size[1];
        let mut x = vec![0f32; idx.len() * per];
        let errors: Vec<Option<Error>> = x
            .par_chunks_mut(per.max(1))
            .zip(idx.par_iter().enumerate())
            .map(|(out, (pos, &i))| {
                let Some(p) = self.paths.get(i) else {
                    return Some(Error::Invalid(format!("image index {i} is outside 0..{}", self.paths.len())));
                };
                f(p, pos)
                    .and_then(|img| images::finish_into(&img, &self.opts, out).map_err(|m| Error::format(p, m)))
                    .err()
            })
            .collect();
        match errors.into_iter().flatten().next() {
            Some(e) => Err(e),
            None => Ok(x),
        }
    }

    /// Decodes the images `idx` for a training batch: the training transform, the sample at position `pos` of
    /// batch `batch` drawing from [`transforms::sample_rng`]`(seed, batch · 2^20 + pos)`. Without a training
    /// transform, the same as [`ImageFiles::decode`].
    pub fn decode_train(&self, idx: &[usize], seed: u64, batch: u64) -> Result<Vec<f32>> {
        match &self.transforms {
            Some(t) if t.train.is_some() => self.decode_each(idx, |p, pos| {
                let mut rng = transforms::sample_rng(seed, (batch << 20) | pos as u64);
                t.apply_train_rest(self.base_image(p)?, &mut rng).map_err(|m| Error::format(p, m))
            }),
            _ => self.decode(idx),
        }
    }
    pub fn len(&self) -> usize {
        self.paths.len()
    }

    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// `[C, H, W]` of one decoded image.
    pub fn sample_shape(&self) -> [usize; 3] {
        [self.opts.channels, self.opts.size[0], self.opts.size[1]]
    }

    /// Bytes of all images decoded as f32.
    pub fn decoded_bytes(&self) -> u64 {
        self.sample_shape().iter().map(|&d| d as u64).product::<u64>() * 4 * self.len() as u64
    }

    /// Decodes the images `idx` (in parallel) into one `[idx.len(), C, H, W]` buffer, with the evaluation
    /// transform when there is one. Errors name the file.
    pub fn decode(&self, idx: &[usize]) -> Result<Vec<f32>> {
        match &self.transforms {
            None => images::decode_files(&self.paths, idx, &self.opts),
            Some(t) => {
                self.decode_each(idx, |p, _| t.apply_eval_rest(self.base_image(p)?).map_err(|m| Error::format(p, m)))
            }
        }
    }

    /// Decodes every image (in parallel) into memory.
    pub fn decode_all(&self) -> Result<Array4<f32>> {
        let [h, w] = self.opts.size;
        let idx: Vec<usize> = (0..self.len()).collect();
        let x = self.decode(&idx)?;
        Array4::from_shape_vec((self.len(), self.opts.channels, h, w), x).map_err(|e| Error::Invalid(e.to_string()))
    }
}

/// One decoded batch: the domain indices it holds and `[indices.len(), C, H, W]` values, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct HostBatch {
    pub indices: Vec<usize>,
    pub x: Vec<f32>,
}

/// Decodes batches on a background thread (each batch's images in parallel on the rayon pool) and keeps at most
/// `depth` of them queued ahead of the consumer. `next_indices` says which images each batch holds, in order;
/// returning `None` ends the stream. Dropping the prefetcher stops the thread (after the batch it is decoding).
#[derive(Debug)]
pub struct Prefetcher {
    rx: Option<Receiver<Result<HostBatch>>>,
    worker: Option<JoinHandle<()>>,
}

impl Prefetcher {
    /// `train`: `Some((seed, first batch number))` decodes with the training transform ([`ImageFiles::decode_train`],
    /// the batches numbered from there), `None` with the evaluation one.
    pub fn spawn<F>(files: Arc<ImageFiles>, depth: usize, train: Option<(u64, u64)>, mut next_indices: F) -> Self
    where
        F: FnMut() -> Option<Vec<usize>> + Send + 'static,
    {
        // The channel holds `depth - 1` finished batches; the worker holds one more while it waits to send.
        let (tx, rx): (SyncSender<Result<HostBatch>>, _) = sync_channel(depth.max(1) - 1);
        let worker = std::thread::Builder::new()
            .name("dalab-prefetch".into())
            .spawn(move || {
                let mut number = train.map_or(0, |(_, first)| first);
                while let Some(indices) = next_indices() {
                    let x = match train {
                        Some((seed, _)) => files.decode_train(&indices, seed, number),
                        None => files.decode(&indices),
                    };
                    number += 1;
                    let batch = x.map(|x| HostBatch { indices, x });
                    let failed = batch.is_err();
                    // A closed channel means the consumer is gone: stop.
                    if tx.send(batch).is_err() || failed {
                        break;
                    }
                }
            })
            .ok();
        Self { rx: Some(rx), worker }
    }

    /// An endless stream of shuffled batches of `batch` images taken from `subset` (domain indices; all images
    /// when `None`) in the [`EpochOrder`] of `seed`, decoded with the training transform (if any).
    /// `skip` batches of the order are passed over first (a resumed run continues where its checkpoint was).
    pub fn shuffled(
        files: Arc<ImageFiles>,
        subset: Option<Vec<usize>>,
        batch: usize,
        seed: u64,
        skip: usize,
    ) -> Result<Self> {
        let n = subset.as_ref().map_or(files.len(), Vec::len);
        let mut order = EpochOrder::new(n, seed)?;
        for _ in 0..skip {
            order.next_indices(batch);
        }
        let depth = files.prefetch;
        Ok(Self::spawn(files, depth, Some((seed, skip as u64)), move || {
            let pos = order.next_indices(batch);
            Some(match &subset {
                Some(s) => pos.iter().map(|&p| s[p]).collect(),
                None => pos,
            })
        }))
    }

    /// One pass over `indices` in their order, in chunks of `batch` (the last one shorter).
    pub fn sequential(files: Arc<ImageFiles>, indices: Vec<usize>, batch: usize) -> Self {
        let depth = files.prefetch;
        let mut at = 0;
        let batch = batch.max(1);
        Self::spawn(files, depth, None, move || {
            if at >= indices.len() {
                return None;
            }
            let end = (at + batch).min(indices.len());
            let chunk = indices[at..end].to_vec();
            at = end;
            Some(chunk)
        })
    }
}

impl Iterator for Prefetcher {
    type Item = Result<HostBatch>;

    /// The next batch, waiting for it if it is not decoded yet; `None` once the stream has ended (or after an
    /// error was returned).
    fn next(&mut self) -> Option<Result<HostBatch>> {
        if self.worker.is_none() && self.rx.is_some() {
            self.rx = None;
            return Some(Err(Error::Invalid("cannot start the image prefetch thread".into())));
        }
        self.rx.as_ref()?.recv().ok()
    }
}

impl Drop for Prefetcher {
    fn drop(&mut self) {
        // Closing the receiver first makes a worker blocked in `send` return; then wait for it.
        self.rx = None;
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::images::{Image, encode_png};
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn each_epoch_is_a_permutation_and_seeds_are_reproducible() {
        let mut s = EpochOrder::new(10, 7).unwrap();
        // 3 batches of 4 = one epoch of 10 plus 2 from the next.
        let a: Vec<usize> = (0..3).flat_map(|_| s.next_indices(4)).collect();
        let mut first = a[..10].to_vec();
        first.sort();
        assert_eq!(first, (0..10).collect::<Vec<_>>());
        let mut t = EpochOrder::new(10, 7).unwrap();
        let b: Vec<usize> = (0..3).flat_map(|_| t.next_indices(4)).collect();
        assert_eq!(a, b);
        let mut u = EpochOrder::new(10, 8).unwrap();
        assert_ne!(a, (0..3).flat_map(|_| u.next_indices(4)).collect::<Vec<_>>());
        assert!(EpochOrder::new(0, 1).unwrap_err().to_string().contains("at least one sample"));
    }

    /// `n` 6×5 grey PNGs whose pixel values encode the image number, in a temp dir.
    fn image_files(n: usize, prefetch: usize) -> (tempfile::TempDir, ImageFiles) {
        let dir = tempfile::tempdir().unwrap();
        let paths: Vec<PathBuf> = (0..n)
            .map(|i| {
                let img = Image {
                    width: 6,
                    height: 5,
                    channels: 1,
                    data: (0..30).map(|p| ((i * 7 + p) % 251) as u8).collect(),
                };
                let p = dir.path().join(format!("{i:03}.png"));
                std::fs::write(&p, encode_png(&img)).unwrap();
                p
            })
            .collect();
        let opts = ImageOptions { size: [4, 3], channels: 3, mean: vec![0.1, 0.2, 0.3], std: vec![0.5, 1.0, 2.0] };
        (dir, ImageFiles::new(paths, opts, prefetch))
    }

    #[test]
    fn prefetched_batches_equal_rows_of_the_decoded_domain() {
        let (_dir, files) = image_files(13, 3);
        let all = files.decode_all().unwrap();
        let per = 3 * 4 * 3;
        let files = Arc::new(files);
        let subset: Vec<usize> = (0..13).filter(|i| i % 4 != 1).collect(); // 9 of 13, like a held-out split
        let mut p = Prefetcher::shuffled(files.clone(), Some(subset.clone()), 4, 11, 0).unwrap();
        let mut order = EpochOrder::new(subset.len(), 11).unwrap();
        for _ in 0..7 {
            let b = p.next().unwrap().unwrap();
            let want: Vec<usize> = order.next_indices(4).iter().map(|&k| subset[k]).collect();
            assert_eq!(b.indices, want);
            assert_eq!(b.x.len(), 4 * per);
            for (r, &i) in b.indices.iter().enumerate() {
                let row: Vec<f32> = all.index_axis(ndarray::Axis(0), i).iter().copied().collect();
                assert_eq!(&b.x[r * per..(r + 1) * per], &row[..], "image {i}");
            }
        }
        // One sequential pass in chunks of 5: 5, 5, 3, then the end.
        let mut s = Prefetcher::sequential(files, (0..13).collect(), 5);
        let sizes: Vec<usize> = std::iter::from_fn(|| s.next()).map(|b| b.unwrap().indices.len()).collect();
        assert_eq!(sizes, vec![5, 5, 3]);
        assert!(s.next().is_none());
    }

    #[test]
    fn transformed_batches_are_the_same_cached_or_not_and_resume_exactly() {
        use crate::transforms::TransformSpec;
        let (_dir, files) = image_files(9, 2);
        let parse = |y: &str| serde_saphyr::from_str::<TransformSpec>(y).unwrap();
        let train = parse(
            "[{resize: [8, 6]}, {random_resized_crop: {size: [4, 3], scale: [0.3, 1.0]}}, {horizontal_flip: 0.5}]",
        );
        let eval = parse("[{resize: [8, 6]}, {center_crop: [4, 3]}]");
        let t = Transforms::new(Some(&train), Some(&eval), [4, 3]).unwrap();
        assert_eq!(t.prefix, 1);
        let files = ImageFiles { transforms: Some(Arc::new(t)), ..files };
        let cached = files.clone().cached().unwrap();
        let cache = cached.cache.as_ref().unwrap();
        assert_eq!(cache.0.len(), 9);
        assert!(cache.0.values().all(|i| (i.height, i.width, i.channels) == (8, 6, 1)), "kept after the shared resize");
        let (files, cached) = (Arc::new(files), Arc::new(cached));
        let mut a = Prefetcher::shuffled(files.clone(), None, 4, 3, 0).unwrap();
        let mut b = Prefetcher::shuffled(cached.clone(), None, 4, 3, 0).unwrap();
        let batches: Vec<HostBatch> = (0..6).map(|_| a.next().unwrap().unwrap()).collect();
        for (k, want) in batches.iter().enumerate() {
            assert_eq!(&b.next().unwrap().unwrap(), want, "batch {k}: cached and streamed differ");
        }
        // Augmented: a training batch is not the evaluation decoding of the same images, and an image drawn in two
        // epochs gets two different crops.
        let per = 3 * 4 * 3;
        let ev = files.decode(&batches[0].indices).unwrap();
        assert_ne!(ev, batches[0].x);
        let first = batches[0].indices[0];
        let again = batches.iter().skip(3).find_map(|bt| bt.indices.iter().position(|&i| i == first).map(|p| (bt, p)));
        let (bt, p) = again.expect("9 images, 24 draws: drawn again in a later epoch");
        assert_ne!(&bt.x[p * per..(p + 1) * per], &batches[0].x[..per]);
        // A resumed stream (2 batches skipped) continues with the third batch, augmentation included.
        let mut r = Prefetcher::shuffled(cached.clone(), None, 4, 3, 2).unwrap();
        assert_eq!(r.next().unwrap().unwrap(), batches[2]);
        // Evaluation decoding: deterministic, the same cached or not.
        assert_eq!(cached.decode_all().unwrap(), files.decode_all().unwrap());
        assert_eq!(cached.decode_all().unwrap().shape(), &[9, 3, 4, 3]);
    }

    #[test]
    fn the_queue_is_bounded_and_dropping_stops_the_worker() {
        let (_dir, files) = image_files(4, 2);
        let asked = Arc::new(AtomicUsize::new(0));
        let a = asked.clone();
        let mut p = Prefetcher::spawn(Arc::new(files), 2, None, move || {
            a.fetch_add(1, Ordering::SeqCst);
            Some(vec![0, 1])
        });
        let _ = p.next().unwrap().unwrap();
        // Consumed 1; the worker fills the queue: 1 queued + 1 held while it waits to send = 3 asked in all (it
        // cannot have asked for a 4th before a slot frees). Wait until it got there, then check it stays there.
        let start = std::time::Instant::now();
        while asked.load(Ordering::SeqCst) < 3 && start.elapsed() < std::time::Duration::from_secs(10) {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
        let n = asked.load(Ordering::SeqCst);
        assert_eq!(n, 3, "asked {n} times with 1 consumed and a queue of depth 2");
        drop(p); // must return: the worker is unblocked by the closed channel
        let after = asked.load(Ordering::SeqCst);
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert_eq!(asked.load(Ordering::SeqCst), after, "the worker kept running after the drop");
    }

    #[test]
    fn a_bad_file_is_an_error_naming_it_and_ends_the_stream() {
        let (_dir, mut files) = image_files(5, 2);
        std::fs::write(&files.paths[3], b"\x89PNG broken").unwrap();
        files.paths[1] = files.paths[1].with_file_name("missing.png");
        let mut p = Prefetcher::sequential(Arc::new(files), vec![0, 2, 3, 4], 2);
        assert!(p.next().unwrap().is_ok());
        let e = p.next().unwrap().unwrap_err().to_string();
        assert!(e.contains("003.png") && e.contains("bad PNG"), "{e}");
        assert!(p.next().is_none());
        let (_dir2, mut files) = image_files(2, 1);
        files.paths[1] = files.paths[1].with_file_name("missing.png");
        let e = files.decode(&[0, 1]).unwrap_err().to_string();
        assert!(e.contains("missing.png"), "{e}");
    }
}
