//! Seeded sample draws of the benchmark protocols (ChaCha8, stable across platforms and releases).

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// A generator for draw `stream` of a protocol seeded with `seed` (different streams are independent, so
/// source and target draws do not depend on each other).
pub fn rng(seed: u64, stream: &str) -> ChaCha8Rng {
    // FNV-1a of the stream name, mixed into the seed.
    let h = stream.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    ChaCha8Rng::seed_from_u64(seed ^ h.rotate_left(17))
}

/// `k` of the indices `0..n` drawn without replacement, returned in increasing order (all when `k >= n`).
pub fn draw(n: usize, k: usize, seed: u64, stream: &str) -> Vec<usize> {
    if k >= n {
        return (0..n).collect();
    }
    let mut idx: Vec<usize> = (0..n).collect();
    let mut r = rng(seed, stream);
    let (chosen, _) = idx.partial_shuffle(&mut r, k);
    let mut v = chosen.to_vec();
    v.sort_unstable();
    v
}

/// Up to `per_class` indices of each class (all of a class that has fewer), in increasing order.
pub fn draw_per_class(labels: &[i64], per_class: usize, seed: u64, stream: &str) -> Vec<usize> {
    let k = labels.iter().copied().max().map_or(0, |m| m + 1) as usize;
    let mut out = Vec::new();
    for c in 0..k {
        let members: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == c as i64).collect();
        let picked = draw(members.len(), per_class, seed, &format!("{stream}/class{c}"));
        out.extend(picked.into_iter().map(|j| members[j]));
    }
    out.sort_unstable();
    out
}

/// Keeps the rows `idx` of a domain.
pub fn subset(d: &crate::Domain, idx: &[usize]) -> crate::Domain {
    crate::Domain {
        name: d.name.clone(),
        x: match &d.x {
            crate::Features::Dense(x) => crate::Features::Dense(x.select(ndarray::Axis(0), idx)),
            crate::Features::Files(f) => crate::Features::Files(crate::ImageFiles {
                paths: idx.iter().map(|&i| f.paths[i].clone()).collect(),
                ..f.clone()
            }),
        },
        y: idx.iter().map(|&i| d.y[i]).collect(),
        class_names: d.class_names.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_are_seeded_sorted_and_distinct() {
        let a = draw(100, 10, 3, "s");
        assert_eq!(a, draw(100, 10, 3, "s"));
        assert_ne!(a, draw(100, 10, 4, "s"));
        assert_ne!(a, draw(100, 10, 3, "t"));
        assert!(a.windows(2).all(|w| w[0] < w[1]) && a.len() == 10);
        assert_eq!(draw(5, 10, 0, "s"), vec![0, 1, 2, 3, 4]);
        let labels = [0, 1, 1, 2, 2, 2, 0, 1];
        let p = draw_per_class(&labels, 2, 0, "x");
        let mut h = [0; 3];
        p.iter().for_each(|&i| h[labels[i] as usize] += 1);
        assert_eq!(h, [2, 2, 2]);
    }
}
