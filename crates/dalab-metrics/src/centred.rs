//! f64 products of centred columns, `G = Σ_p s_p (X_p − 1μ_pᵀ)ᵀ (X_p − 1μ_pᵀ)` restricted to column tiles: the
//! covariances of CORAL (one sample, `s = 1/(n − 1)`) and the difference of two covariances (`s_S = 1/(n_S − 1)`,
//! `s_T = −1/(n_T − 1)`: the tiles of `C_S − C_T` directly, without either covariance).
//!
//! The shared ("k") dimension is the samples; the operands are the columns of the centred data. Each part is centred
//! once (one copy, rows in parallel), then every strip of tiles `G[I, J₁ ∪ … ∪ J₄]` comes out of one faer product per
//! part (`linalg::map_strips`; the diagonal block by faer's triangular product, its upper half only), strips in
//! parallel. Only the tiles on or above the diagonal are asked for; the caller mirrors. Each entry is summed in the
//! same order whatever the thread count, so results are deterministic.

use crate::gemm::{self, Path};
use ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis, s};
use rayon::prelude::*;
use std::ops::Range;

/// One sample of a product: `scale · (X − 1μᵀ)ᵀ(X − 1μᵀ)`, `μ` the column means of `X` (computed here).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Centred<'a> {
    pub(crate) x: ArrayView2<'a, f64>,
    pub(crate) scale: f64,
}

/// Column tiles of `0..d` for these products: 112 columns up to d = 448, else 224; the last tile shorter.
pub(crate) fn column_tiles(d: usize) -> Vec<Range<usize>> {
    let edge = if d <= 448 { 112 } else { 224 };
    (0..d.div_ceil(edge)).map(|q| q * edge..((q + 1) * edge).min(d)).collect()
}

/// For each `(i, j)` in `pairs`, the tile `G[tiles[i], tiles[j]]` of `G = Σ_p s_p (X_p − 1μ_pᵀ)ᵀ(X_p − 1μ_pᵀ)` and
/// then `f(i, j, tile)`, in the order of `pairs`; strips of tiles in parallel. On a diagonal tile (`i == j`) only the entries
/// on and above its diagonal are specified.
///
/// # Panics
/// If the parts have different numbers of columns.
pub(crate) fn map_centred_gram_tiles<R, F>(
    path: Path,
    parts: &[Centred<'_>],
    tiles: &[Range<usize>],
    pairs: &[(usize, usize)],
    f: &F,
) -> Vec<R>
where
    R: Send,
    F: Fn(usize, usize, ArrayView2<'_, f64>) -> R + Sync,
{
    let d = parts.first().map_or(0, |p| p.x.ncols());
    assert!(parts.iter().all(|p| p.x.ncols() == d), "centred products: column counts differ");
    // One centred copy of each part; a tile is `Σ_p s_p X̃_p[:, I]ᵀ X̃_p[:, J]`, one product per part.
    let centred: Vec<Array2<f64>> = parts
        .iter()
        .map(|p| {
            let mut mean = vec![0.0; d];
            column_means_into(p.x, &mut mean);
            let mut c = Array2::<f64>::zeros(p.x.dim());
            c.axis_chunks_iter_mut(Axis(0), 64).into_par_iter().enumerate().for_each(|(q, mut block)| {
                block.assign(&p.x.slice(s![q * 64..q * 64 + block.nrows(), ..]));
                block -= &ndarray::ArrayView1::from(&mean);
            });
            c
        })
        .collect();
    let product = |rows: Range<usize>, cols: Range<usize>, upper: bool, mut out: ArrayViewMut2<'_, f64>| {
        for (q, (p, c)) in parts.iter().zip(&centred).enumerate() {
            let (a, b) = (c.slice(s![.., rows.clone()]), c.slice(s![.., cols.clone()]));
            crate::linalg::product_into(path, p.scale, a.t(), b, q > 0, upper, out.view_mut());
        }
    };
    crate::linalg::map_strips(tiles, pairs, true, &product, f)
}

/// The full symmetric `d × d` matrix `G` of [`map_centred_gram_tiles`] (upper tiles computed, then mirrored).
pub(crate) fn centred_gram(path: Path, parts: &[Centred<'_>]) -> Array2<f64> {
    let d = parts.first().map_or(0, |p| p.x.ncols());
    let tiles = column_tiles(d);
    let pairs = crate::linalg::upper_pairs(tiles.len());
    let blocks = map_centred_gram_tiles(path, parts, &tiles, &pairs, &|_, _, g| g.to_owned());
    let mut out = Array2::<f64>::zeros((d, d));
    for (&(i, j), g) in pairs.iter().zip(blocks) {
        let (ri, rj) = (tiles[i].clone(), tiles[j].clone());
        if i == j {
            for r in 0..g.nrows() {
                for c in r..g.ncols() {
                    out[[ri.start + r, rj.start + c]] = g[[r, c]];
                    out[[rj.start + c, ri.start + r]] = g[[r, c]];
                }
            }
        } else {
            out.slice_mut(s![ri.clone(), rj.clone()]).assign(&g);
            out.slice_mut(s![rj, ri]).assign(&g.t());
        }
    }
    out
}

/// `Σ v²` over the entries of a tile of a symmetric matrix that stand for the whole matrix: on a diagonal tile
/// (`diagonal`) the upper triangle with the off-diagonal entries counted twice (the lower one is not read), else
/// every entry counted twice (for the mirrored tile). 8 accumulators per row, rows in order: deterministic.
pub(crate) fn symmetric_tile_sq(g: ArrayView2<'_, f64>, diagonal: bool) -> f64 {
    let mut total = 0.0;
    for (r, row) in g.axis_iter(Axis(0)).enumerate() {
        if diagonal {
            let rest = row.slice(s![r + 1..]);
            total += row[r] * row[r] + 2.0 * sum_sq(rest);
        } else {
            total += 2.0 * sum_sq(row);
        }
    }
    total
}

/// `Σ v²` with 8 independent accumulators (vectorises).
fn sum_sq(v: ndarray::ArrayView1<'_, f64>) -> f64 {
    match v.as_slice() {
        Some(x) => {
            let mut acc = [0.0f64; 8];
            let chunks = x.chunks_exact(8);
            let rest: f64 = chunks.remainder().iter().map(|&v| v * v).sum();
            for c in chunks {
                for l in 0..8 {
                    acc[l] += c[l] * c[l];
                }
            }
            ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + rest
        }
        None => v.iter().map(|&v| v * v).sum(),
    }
}

/// The mean of each column of `x` (rows summed in order, then divided by their count; zeros without rows).
pub(crate) fn column_means_into(x: ArrayView2<'_, f64>, mean: &mut [f64]) {
    mean.fill(0.0);
    for row in x.rows() {
        match row.as_slice() {
            Some(r) => mean.iter_mut().zip(r).for_each(|(m, &v)| *m += v),
            None => mean.iter_mut().zip(&row).for_each(|(m, &v)| *m += v),
        }
    }
    if x.nrows() > 0 {
        let n = x.nrows() as f64;
        mean.iter_mut().for_each(|m| *m /= n);
    }
}

/// Which path the f64 products take (the f32 products' choice).
pub(crate) fn detect() -> Path {
    gemm::detect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn random(rng: &mut impl Rng, rows: usize, cols: usize) -> Array2<f64> {
        Array2::from_shape_simple_fn((rows, cols), || rng.random::<f64>() * 2.0 - 1.0 + 3.0)
    }

    fn mean(x: ArrayView2<'_, f64>) -> Vec<f64> {
        x.mean_axis(Axis(0)).map_or_else(|| vec![0.0; x.ncols()], |m| m.to_vec())
    }

    /// Naive `Σ_p s_p (x_p − μ_p)ᵀ(x_p − μ_p)` and `Σ_p |s_p| |x − μ|ᵀ|x − μ|` (the error scale).
    fn naive(parts: &[Centred<'_>]) -> (Array2<f64>, Array2<f64>) {
        let d = parts[0].x.ncols();
        let (mut g, mut mag) = (Array2::<f64>::zeros((d, d)), Array2::<f64>::zeros((d, d)));
        for p in parts {
            let mu = mean(p.x);
            for row in p.x.rows() {
                for i in 0..d {
                    let xi = row[i] - mu[i];
                    for j in 0..d {
                        let xj = row[j] - mu[j];
                        g[[i, j]] += p.scale * xi * xj;
                        mag[[i, j]] += (p.scale * xi * xj).abs();
                    }
                }
            }
        }
        (g, mag)
    }

    fn check(got: ArrayView2<'_, f64>, want: &Array2<f64>, mag: &Array2<f64>, upper: bool, what: &str) {
        assert_eq!(got.dim(), want.dim(), "{what}");
        for ((i, j), &w) in want.indexed_iter() {
            if upper && i > j {
                continue;
            }
            let v = got[[i, j]];
            assert!((v - w).abs() <= 1e-12 * mag[[i, j]] + 1e-300, "{what}: ({i}, {j}) got {v}, want {w}");
        }
    }

    #[test]
    fn centred_gram_matches_naive_on_both_paths() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        // Two parts of different lengths, opposite signs; d spanning several tiles of 112 with a short last one;
        // the second part a non-contiguous (transposed) view.
        for &(n1, n2, d) in &[(3, 2, 1), (40, 300, 37), (259, 17, 250), (9, 5, 0)] {
            let x1 = random(&mut rng, n1, d);
            let x2t = random(&mut rng, d, n2);
            let parts = [
                Centred { x: x1.view(), scale: 1.0 / (n1 as f64 - 1.0) },
                Centred { x: x2t.t(), scale: -1.0 / (n2 as f64 - 1.0) },
            ];
            let (want, mag) = naive(&parts);
            for path in gemm::all_paths() {
                let g = centred_gram(path, &parts);
                check(g.view(), &want, &mag, false, &format!("{path:?} {n1}+{n2}x{d}"));
                assert!(g.iter().all(|v| v.is_finite()));
                assert_eq!(g, g.t(), "{path:?}: not symmetric");
                // The Frobenius sum from the tiles equals the one of the full matrix.
                let tiles = column_tiles(d);
                let pairs = crate::linalg::upper_pairs(tiles.len());
                let parts_sq: f64 =
                    map_centred_gram_tiles(path, &parts, &tiles, &pairs, &|i, j, g| symmetric_tile_sq(g, i == j))
                        .iter()
                        .sum();
                let full: f64 = g.iter().map(|v| v * v).sum();
                assert!((parts_sq - full).abs() <= 1e-12 * full.max(1e-300), "{path:?}: {parts_sq} vs {full}");
            }
        }
    }

    #[test]
    fn column_tiles_cover_the_columns() {
        assert!(column_tiles(0).is_empty());
        assert_eq!(column_tiles(256), vec![0..112, 112..224, 224..256]);
        assert_eq!(column_tiles(2048).len(), 10);
    }
}
