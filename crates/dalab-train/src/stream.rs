//! Batch streams on the run's device: endless, shuffled, seeded passes over a domain, either held in memory as one
//! tensor or decoded from image files on the rayon pool ahead of the training step (dalab-data's [`Prefetcher`]).
//! Both draw their batches from the same [`EpochOrder`], so a domain gives the same batches either way.

use dalab_data::stream::{EpochOrder, HostBatch, Prefetcher};
use dalab_data::{Features, ImageFiles};
use std::sync::Arc;
use tch::{Device, Kind, Tensor};

/// Turns in-memory features into a float tensor `[n, ...]` on `device`.
pub fn features_tensor(x: &ndarray::ArrayD<f32>, device: Device) -> Tensor {
    let shape: Vec<i64> = x.shape().iter().map(|&d| d as i64).collect();
    let data: Vec<f32> = x.iter().copied().collect();
    Tensor::from_slice(&data).reshape(&shape).to_device(device)
}

/// Labels as an int64 tensor on `device`.
pub fn labels_tensor(y: &[i64], device: Device) -> Tensor {
    Tensor::from_slice(y).to_device(device)
}

/// A decoded batch of images as a `[b, C, H, W]` tensor on `device`.
fn host_tensor(b: &HostBatch, shape: [usize; 3], device: Device) -> Tensor {
    let dims = [b.indices.len() as i64, shape[0] as i64, shape[1] as i64, shape[2] as i64];
    Tensor::from_slice(&b.x).reshape(dims).to_device(device)
}

/// One domain's inputs on the trainer side: a tensor on the device, or image files decoded batch by batch.
#[derive(Debug)]
pub enum DomainInputs {
    Dense(Tensor),
    Files(Arc<ImageFiles>),
}

impl DomainInputs {
    pub fn new(x: &Features, device: Device) -> Self {
        match x {
            Features::Dense(a) => DomainInputs::Dense(features_tensor(a, device)),
            Features::Files(f) => DomainInputs::Files(Arc::new(f.clone())),
        }
    }

    /// Another handle on the same inputs (no copy).
    pub fn share(&self) -> Self {
        match self {
            DomainInputs::Dense(x) => DomainInputs::Dense(x.shallow_clone()),
            DomainInputs::Files(f) => DomainInputs::Files(f.clone()),
        }
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        match self {
            DomainInputs::Dense(x) => x.size()[0] as usize,
            DomainInputs::Files(f) => f.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The samples `idx`, in that order.
    pub fn subset(&self, idx: &[usize]) -> Self {
        match self {
            DomainInputs::Dense(x) => {
                let i: Vec<i64> = idx.iter().map(|&k| k as i64).collect();
                DomainInputs::Dense(x.index_select(0, &Tensor::from_slice(&i).to_device(x.device())))
            }
            DomainInputs::Files(f) => DomainInputs::Files(Arc::new(ImageFiles {
                paths: idx.iter().map(|&k| f.paths[k].clone()).collect(),
                ..(**f).clone()
            })),
        }
    }

    /// Runs `f(start, x)` on consecutive batches of at most `batch` samples, in order (`x` on `device`; files are
    /// decoded ahead on the rayon pool). Stops at the first error of `f` or of decoding.
    pub fn for_each_batch<E: From<dalab_data::Error>>(
        &self,
        batch: usize,
        device: Device,
        mut f: impl FnMut(i64, &Tensor) -> Result<(), E>,
    ) -> Result<(), E> {
        let batch = batch.max(1);
        match self {
            DomainInputs::Dense(x) => {
                let n = x.size()[0];
                let mut start = 0;
                while start < n {
                    let len = (batch as i64).min(n - start);
                    f(start, &x.narrow(0, start, len))?;
                    start += len;
                }
            }
            DomainInputs::Files(files) => {
                let shape = files.sample_shape();
                let pre = Prefetcher::sequential(files.clone(), (0..files.len()).collect(), batch);
                let mut start = 0;
                for b in pre {
                    let b = b?;
                    f(start, &host_tensor(&b, shape, device))?;
                    start += b.indices.len() as i64;
                }
            }
        }
        Ok(())
    }
}

enum Source {
    Dense { x: Tensor, order: Box<EpochOrder> },
    Files { pre: Prefetcher, shape: [usize; 3], device: Device },
}

/// An endless stream of mini-batches of `batch` samples: each epoch visits every sample once in a fresh seeded
/// order; a batch that would cross an epoch boundary is completed from the next epoch.
pub struct BatchStream {
    source: Source,
    y: Option<Tensor>,
    batch: usize,
    /// Batches handed out so far (what a checkpoint records to resume the stream).
    drawn: usize,
}

impl std::fmt::Debug for BatchStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.source {
            Source::Dense { .. } => "in memory",
            Source::Files { .. } => "decoded from files",
        };
        write!(f, "BatchStream({kind}, batch {})", self.batch)
    }
}

impl BatchStream {
    /// `y` is `None` for target streams: the training loop never hands target labels to a method. `device` is
    /// where batches decoded from files are put (in-memory inputs are already on theirs).
    pub fn new(
        x: DomainInputs,
        y: Option<Tensor>,
        batch: usize,
        seed: u64,
        device: Device,
    ) -> dalab_data::Result<Self> {
        Self::resume(x, y, batch, seed, device, 0)
    }

    /// The stream of [`BatchStream::new`] after `drawn` batches: it continues with the batch an uninterrupted
    /// stream would give next (the order is replayed without touching the data).
    pub fn resume(
        x: DomainInputs,
        y: Option<Tensor>,
        batch: usize,
        seed: u64,
        device: Device,
        drawn: usize,
    ) -> dalab_data::Result<Self> {
        let source = match x {
            DomainInputs::Dense(x) => {
                let mut order = Box::new(EpochOrder::new(x.size()[0] as usize, seed)?);
                for _ in 0..drawn {
                    order.next_indices(batch);
                }
                Source::Dense { x, order }
            }
            DomainInputs::Files(files) => {
                let shape = files.sample_shape();
                Source::Files { pre: Prefetcher::shuffled(files, None, batch, seed, drawn)?, shape, device }
            }
        };
        Ok(Self { source, y, batch, drawn })
    }

    /// Batches handed out so far.
    pub fn drawn(&self) -> usize {
        self.drawn
    }

    /// The next batch `(x, y)`.
    pub fn next_batch(&mut self) -> dalab_data::Result<(Tensor, Option<Tensor>)> {
        self.drawn += 1;
        let (x, idx) = match &mut self.source {
            Source::Dense { x, order } => {
                let idx: Vec<i64> = order.next_indices(self.batch).into_iter().map(|i| i as i64).collect();
                let idx = Tensor::from_slice(&idx).to_device(x.device());
                (x.index_select(0, &idx), idx)
            }
            Source::Files { pre, shape, device } => {
                let b = pre
                    .next()
                    .unwrap_or_else(|| Err(dalab_data::Error::Invalid("the image prefetch thread stopped".into())))?;
                let idx: Vec<i64> = b.indices.iter().map(|&i| i as i64).collect();
                (host_tensor(&b, *shape, *device), Tensor::from_slice(&idx).to_device(*device))
            }
        };
        let y = self.y.as_ref().map(|y| y.index_select(0, &idx.to_device(y.device())).to_kind(Kind::Int64));
        Ok((x, y))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dalab_data::formats::images::{Image, ImageOptions, encode_png};

    #[test]
    fn a_domain_streamed_from_files_gives_the_batches_of_the_same_domain_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let paths: Vec<std::path::PathBuf> = (0..11)
            .map(|i| {
                let img =
                    Image { width: 3, height: 2, channels: 3, data: (0..18).map(|p| (i * 19 + p) as u8).collect() };
                let p = dir.path().join(format!("{i}.png"));
                std::fs::write(&p, encode_png(&img)).unwrap();
                p
            })
            .collect();
        let opts = ImageOptions { size: [2, 3], channels: 3, mean: vec![0.5; 3], std: vec![0.25; 3] };
        let files = ImageFiles::new(paths, opts, 2);
        let dense = Features::Dense(files.decode_all().unwrap().into_dyn());
        let y: Vec<i64> = (0..11).map(|i| i % 3).collect();
        // A held-out split first (as `selection: source_val` makes), then the stream over the rest.
        let keep: Vec<usize> = vec![10, 0, 3, 4, 7, 8, 9, 1];
        let stream = |x: &Features| {
            let inputs = DomainInputs::new(x, Device::Cpu).subset(&keep);
            let yk: Vec<i64> = keep.iter().map(|&k| y[k]).collect();
            BatchStream::new(inputs, Some(labels_tensor(&yk, Device::Cpu)), 3, 5, Device::Cpu).unwrap()
        };
        let (mut a, mut b) = (stream(&dense), stream(&Features::Files(files.clone())));
        for _ in 0..6 {
            let ((xa, ya), (xb, yb)) = (a.next_batch().unwrap(), b.next_batch().unwrap());
            assert_eq!(xa.size(), vec![3, 3, 2, 3]);
            assert!(xa.equal(&xb), "x differs");
            assert!(ya.unwrap().equal(&yb.unwrap()), "y differs");
        }
        // Evaluation passes visit every sample once, in order, in both representations.
        for x in [&dense, &Features::Files(files)] {
            let mut starts = Vec::new();
            let mut sum = 0.0;
            DomainInputs::new(x, Device::Cpu)
                .for_each_batch::<dalab_data::Error>(4, Device::Cpu, |s, t| {
                    starts.push(s);
                    sum += t.sum(Kind::Double).double_value(&[]);
                    Ok(())
                })
                .unwrap();
            assert_eq!(starts, vec![0, 4, 8]);
            let want = dense.dense().unwrap().iter().map(|&v| f64::from(v)).sum::<f64>();
            assert!((sum - want).abs() < 1e-3, "{sum} vs {want}");
        }
    }
}
