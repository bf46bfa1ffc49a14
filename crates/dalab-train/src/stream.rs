//! Batch streams: infinite, shuffled, seeded passes over in-memory data held as tensors on the run's device.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use tch::{Device, Kind, Tensor};

/// Turns a domain's features into a float tensor `[n, ...]` on `device`.
pub fn features_tensor(x: &ndarray::ArrayD<f32>, device: Device) -> Tensor {
    let shape: Vec<i64> = x.shape().iter().map(|&d| d as i64).collect();
    let data: Vec<f32> = x.iter().copied().collect();
    Tensor::from_slice(&data).reshape(&shape).to_device(device)
}

/// Labels as an int64 tensor on `device`.
pub fn labels_tensor(y: &[i64], device: Device) -> Tensor {
    Tensor::from_slice(y).to_device(device)
}

/// An endless stream of mini-batches: each epoch visits every sample once in a fresh seeded order; a batch that
/// would cross an epoch boundary is completed from the next epoch.
#[derive(Debug)]
pub struct BatchStream {
    x: Tensor,
    y: Option<Tensor>,
    order: Vec<i64>,
    pos: usize,
    rng: ChaCha8Rng,
}

impl BatchStream {
    /// `y` is `None` for target streams: the training loop never hands target labels to a method.
    pub fn new(x: Tensor, y: Option<Tensor>, seed: u64) -> Self {
        let n = x.size()[0] as usize;
        let mut s = Self { x, y, order: (0..n as i64).collect(), pos: n, rng: ChaCha8Rng::seed_from_u64(seed) };
        s.reshuffle();
        s
    }

    fn reshuffle(&mut self) {
        self.order.shuffle(&mut self.rng);
        self.pos = 0;
    }

    /// The next `b` indices.
    pub fn next_indices(&mut self, b: usize) -> Vec<i64> {
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

    /// The next batch `(x, y)`.
    pub fn next_batch(&mut self, b: usize) -> (Tensor, Option<Tensor>) {
        let idx = Tensor::from_slice(&self.next_indices(b)).to_device(self.x.device());
        let x = self.x.index_select(0, &idx);
        let y = self.y.as_ref().map(|y| y.index_select(0, &idx).to_kind(Kind::Int64));
        (x, y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_epoch_is_a_permutation_and_seeds_are_reproducible() {
        let x = Tensor::arange(10, (Kind::Float, Device::Cpu)).reshape([10, 1]);
        let mut s = BatchStream::new(x.shallow_clone(), None, 7);
        // 3 batches of 4 = one epoch of 10 plus 2 from the next.
        let a: Vec<i64> = (0..3).flat_map(|_| s.next_indices(4)).collect();
        let mut first: Vec<i64> = a[..10].to_vec();
        first.sort();
        assert_eq!(first, (0..10).collect::<Vec<_>>());
        let mut t = BatchStream::new(x.shallow_clone(), None, 7);
        let b: Vec<i64> = (0..3).flat_map(|_| t.next_indices(4)).collect();
        assert_eq!(a, b);
        let mut u = BatchStream::new(x, None, 8);
        let c: Vec<i64> = (0..3).flat_map(|_| u.next_indices(4)).collect();
        assert_ne!(a, c);
    }
}
