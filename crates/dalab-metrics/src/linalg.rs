//! Block-wise products: every quadratic quantity is built from tiles of `Z_I · Z_Jᵀ`, so no n×n
//! matrix is ever allocated. Tiles run in parallel on the rayon pool; per-tile results come back in a
//! fixed order and are summed sequentially, so results do not depend on the thread count.

use crate::gemm;
use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayView2, LinalgScalar, s};
use rayon::prelude::*;
use std::ops::Range;

/// A float type the Gram products can run in (`f32` for speed, `f64` for reference accuracy).
pub(crate) trait GemmScalar: LinalgScalar + faer::traits::ComplexField + Send + Sync + Into<f64> {
    fn from_f64(v: f64) -> Self;
}

impl GemmScalar for f32 {
    fn from_f64(v: f64) -> Self {
        v as f32
    }
}

impl GemmScalar for f64 {
    fn from_f64(v: f64) -> Self {
        v
    }
}

/// Largest tile edge (rows of one block). 512×512 f64 tiles are 2 MiB per thread.
pub(crate) const MAX_TILE: usize = 512;

/// Tile edge for `n` rows: about an eighth of the rows (so 2 threads have work to share), between 32 and
/// [`MAX_TILE`].
pub(crate) fn tile_size(n: usize) -> usize {
    n.div_ceil(8).clamp(32, MAX_TILE)
}

/// Splits `start..end` into consecutive ranges of at most `b` rows, of near-equal length.
pub(crate) fn split_rows(start: usize, end: usize, b: usize) -> Vec<Range<usize>> {
    let n = end.saturating_sub(start);
    if n == 0 {
        return Vec::new();
    }
    let count = n.div_ceil(b.max(1));
    let base = n / count;
    let extra = n % count;
    let mut out = Vec::with_capacity(count);
    let mut at = start;
    for i in 0..count {
        let len = base + usize::from(i < extra);
        out.push(at..at + len);
        at += len;
    }
    out
}

/// Squared Euclidean norm of every row, accumulated in f64 (rows in parallel).
pub(crate) fn row_sq_norms<T: GemmScalar>(z: ArrayView2<'_, T>) -> Vec<f64> {
    (0..z.nrows()).into_par_iter().with_min_len(64).map(|r| row_sq_norm(z.row(r))).collect()
}

/// `Σ v²` in f64 (8 independent accumulators, so that it vectorises).
#[inline]
fn row_sq_norm<T: GemmScalar>(row: ndarray::ArrayView1<'_, T>) -> f64 {
    let sq = |v: T| {
        let v: f64 = v.into();
        v * v
    };
    match row.as_slice() {
        Some(x) => {
            let mut acc = [0.0f64; 8];
            let chunks = x.chunks_exact(8);
            let rest: f64 = chunks.remainder().iter().map(|&v| sq(v)).sum();
            for c in chunks {
                for k in 0..8 {
                    acc[k] += sq(c[k]);
                }
            }
            ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + rest
        }
        None => row.iter().map(|&v| sq(v)).sum(),
    }
}

/// The rows of several f64 matrices with the same number of columns, stacked (no copy).
#[derive(Clone, Debug)]
pub(crate) struct Pooled<'a> {
    parts: Vec<ArrayView2<'a, f64>>,
    /// First pooled row of each part, then the total.
    starts: Vec<usize>,
    ncols: usize,
}

impl<'a> Pooled<'a> {
    pub(crate) fn new(parts: &[ArrayView2<'a, f64>]) -> Self {
        let ncols = parts.first().map_or(0, |p| p.ncols());
        assert!(parts.iter().all(|p| p.ncols() == ncols), "Pooled: parts with different numbers of columns");
        let mut starts = vec![0];
        for p in parts {
            starts.push(starts[starts.len() - 1] + p.nrows());
        }
        Self { parts: parts.to_vec(), starts, ncols }
    }

    pub(crate) fn nrows(&self) -> usize {
        self.starts[self.starts.len() - 1]
    }

    #[cfg(test)]
    pub(crate) fn ncols(&self) -> usize {
        self.ncols
    }

    /// Pooled row `r` (panics when out of range).
    pub(crate) fn row(&self, r: usize) -> ndarray::ArrayView1<'a, f64> {
        let part = self.starts.partition_point(|&s| s <= r) - 1;
        assert!(part < self.parts.len(), "Pooled: row {r} of {}", self.nrows());
        self.parts[part].index_axis_move(ndarray::Axis(0), r - self.starts[part])
    }

    /// The pooled rows as one matrix of `T`; rows converted in parallel.
    pub(crate) fn to_matrix<T: GemmScalar>(&self) -> Array2<T> {
        let mut z = Array2::<T>::zeros((self.nrows(), self.ncols));
        z.axis_iter_mut(ndarray::Axis(0)).into_par_iter().enumerate().with_min_len(64).for_each(|(r, mut out)| {
            out.zip_mut_with(&self.row(r), |o, &v| *o = T::from_f64(v));
        });
        z
    }
}

/// [`map_gram_tiles`] over the pooled rows of `pooled` rounded to `T` (copied into one `T` matrix first), with
/// `f(i, j, G, norms_i, norms_j)` also given the squared norms (f64) of the rounded rows of tiles `i` and `j`.
pub(crate) fn map_pooled_gram_tiles<T, R, F>(
    pooled: &Pooled<'_>,
    tiles: &[Range<usize>],
    pairs: &[(usize, usize)],
    diagonal: Diagonal,
    f: F,
) -> Vec<R>
where
    T: GemmScalar,
    R: Send,
    F: Fn(usize, usize, ArrayView2<'_, T>, &[f64], &[f64]) -> R + Sync,
{
    map_pooled_gram_tiles_on(gemm::detect(), pooled, tiles, pairs, diagonal, f)
}

/// [`map_pooled_gram_tiles`] on a given path.
pub(crate) fn map_pooled_gram_tiles_on<T, R, F>(
    path: gemm::Path,
    pooled: &Pooled<'_>,
    tiles: &[Range<usize>],
    pairs: &[(usize, usize)],
    diagonal: Diagonal,
    f: F,
) -> Vec<R>
where
    T: GemmScalar,
    R: Send,
    F: Fn(usize, usize, ArrayView2<'_, T>, &[f64], &[f64]) -> R + Sync,
{
    let z = pooled.to_matrix::<T>();
    let norms = row_sq_norms(z.view());
    map_gram_tiles_on(path, z.view(), tiles, pairs, diagonal, |i, j, g| {
        f(i, j, g, &norms[tiles[i].clone()], &norms[tiles[j].clone()])
    })
}

/// Which entries of a diagonal tile (`i == j`, a symmetric block) [`map_gram_tiles`] must compute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Diagonal {
    /// All of them.
    Full,
    /// Those on and above the diagonal; the ones below are unspecified (computed or not, stale values possible).
    Upper,
}

/// For each `(i, j)` in `pairs`, computes the tile `G = Z[tiles[i]] · Z[tiles[j]]ᵀ` and returns
/// `f(i, j, G)`, in the order of `pairs`. Strips of tiles run in parallel ([`map_strips`]), by the kernel of
/// [`gemm::detect`]. Each entry of `G` is computed the same way whatever the thread count, so results are
/// deterministic.
pub(crate) fn map_gram_tiles<T, R, F>(
    z: ArrayView2<'_, T>,
    tiles: &[Range<usize>],
    pairs: &[(usize, usize)],
    diagonal: Diagonal,
    f: F,
) -> Vec<R>
where
    T: GemmScalar,
    R: Send,
    F: Fn(usize, usize, ArrayView2<'_, T>) -> R + Sync,
{
    map_gram_tiles_on(gemm::detect(), z, tiles, pairs, diagonal, f)
}

/// [`map_gram_tiles`] on a given path ([`gemm::Path::Faer`] forces faer, [`gemm::Path::Portable`]
/// `general_mat_mul`).
pub(crate) fn map_gram_tiles_on<T, R, F>(
    path: gemm::Path,
    z: ArrayView2<'_, T>,
    tiles: &[Range<usize>],
    pairs: &[(usize, usize)],
    diagonal: Diagonal,
    f: F,
) -> Vec<R>
where
    T: GemmScalar,
    R: Send,
    F: Fn(usize, usize, ArrayView2<'_, T>) -> R + Sync,
{
    let product = |rows: Range<usize>, cols: Range<usize>, upper: bool, out: ndarray::ArrayViewMut2<'_, T>| {
        product_into(path, T::one(), z.slice(s![rows, ..]), z.slice(s![cols, ..]).t(), false, upper, out);
    };
    map_strips(tiles, pairs, diagonal == Diagonal::Upper, &product, &f)
}

/// `out = alpha · a · b` (`a`: h × k, `b`: k × w, any strides), or `out += alpha · a · b` when `accumulate`, by the
/// kernel of `path`, on the calling thread: faer's sequential product or `general_mat_mul`. With `upper` (a square
/// `out`) only the entries on and above its diagonal need be computed: faer then computes just those (its triangular
/// product), `general_mat_mul` all.
pub(crate) fn product_into<T: GemmScalar>(
    path: gemm::Path,
    alpha: T,
    a: ArrayView2<'_, T>,
    b: ArrayView2<'_, T>,
    accumulate: bool,
    upper: bool,
    mut out: ndarray::ArrayViewMut2<'_, T>,
) {
    assert_eq!((a.nrows(), b.ncols()), out.dim(), "product_into: output shape");
    assert_eq!(a.ncols(), b.nrows(), "product_into: inner dimensions");
    if out.is_empty() {
        return;
    }
    if path == gemm::Path::Portable {
        general_mat_mul(alpha, &a, &b, if accumulate { T::one() } else { T::zero() }, &mut out);
        return;
    }
    let (sa, sb) = (a.strides(), b.strides());
    let (so, (h, w)) = ([out.strides()[0], out.strides()[1]], out.dim());
    // SAFETY: each view is described by its own pointer, shape and strides (in elements), which is what faer's
    // views take; `out` is borrowed mutably for the call and does not alias `a` or `b` (they are shared borrows).
    let (fa, fb, fo) = unsafe {
        (
            faer::MatRef::<T>::from_raw_parts(a.as_ptr(), a.nrows(), a.ncols(), sa[0], sa[1]),
            faer::MatRef::<T>::from_raw_parts(b.as_ptr(), b.nrows(), b.ncols(), sb[0], sb[1]),
            faer::MatMut::<T>::from_raw_parts_mut(out.as_mut_ptr(), h, w, so[0], so[1]),
        )
    };
    let accum = if accumulate { faer::Accum::Add } else { faer::Accum::Replace };
    if upper && h == w {
        use faer::linalg::matmul::triangular::{BlockStructure, matmul};
        let rect = BlockStructure::Rectangular;
        matmul(fo, BlockStructure::TriangularUpper, accum, fa, rect, fb, rect, alpha, faer::Par::Seq);
    } else {
        faer::linalg::matmul::matmul(fo, accum, fa, fb, alpha, faer::Par::Seq);
    }
}

/// Row tiles per strip of [`map_strips`] at most (bounds a strip's buffer to `STRIP_TILES` tiles).
const STRIP_TILES: usize = 4;

/// The tile maps for the faer and `general_mat_mul` paths: the pairs are grouped by row tile `i` into strips of at
/// most [`STRIP_TILES`] column tiles, each strip `G[tiles[i], lo..hi]` (the span of its column tiles; callers give
/// contiguous ones) comes out of `product(rows, cols, upper, out)` calls that write blocks of `G` (`upper`: a
/// diagonal block of which only the upper triangle is needed, with `upper_diagonal`), so that a kernel packs each
/// operand once per strip instead of once per pair; then `f(i, j, tile)` per pair, returned in the order of `pairs`.
/// Strips in parallel, one rayon job each; a strip's entries do not depend on the thread count.
pub(crate) fn map_strips<T, R, P, F>(
    tiles: &[Range<usize>],
    pairs: &[(usize, usize)],
    upper_diagonal: bool,
    product: &P,
    f: &F,
) -> Vec<R>
where
    T: GemmScalar,
    R: Send,
    P: Fn(Range<usize>, Range<usize>, bool, ndarray::ArrayViewMut2<'_, T>) + Sync,
    F: Fn(usize, usize, ArrayView2<'_, T>) -> R + Sync,
{
    let mut strips: Vec<(usize, Vec<usize>)> = Vec::new();
    for (q, &(i, _)) in pairs.iter().enumerate() {
        match strips.iter_mut().rev().find(|(r, qs)| *r == i && qs.len() < STRIP_TILES) {
            Some((_, qs)) => qs.push(q),
            None => strips.push((i, vec![q])),
        }
    }
    // Each thread keeps its strip buffer (a fresh one per strip would fault in its pages every time); the products
    // overwrite it (`upper` blocks leave stale values below their diagonal, which callers do not read).
    let per_strip: Vec<Vec<(usize, R)>> = strips
        .par_iter()
        .with_max_len(1)
        .map_init(Vec::<T>::new, |buf, (i, qs)| {
            let ri = tiles[*i].clone();
            let lo = qs.iter().map(|&q| tiles[pairs[q].1].start).min().unwrap_or(0);
            let hi = qs.iter().map(|&q| tiles[pairs[q].1].end).max().unwrap_or(0);
            buf.resize(ri.len() * (hi - lo), T::zero());
            let mut strip = ndarray::ArrayViewMut2::from_shape((ri.len(), hi - lo), &mut buf[..])
                .expect("the buffer holds the strip");
            let diagonal = upper_diagonal && qs.iter().any(|&q| pairs[q].1 == *i) && lo <= ri.start && ri.end <= hi;
            if diagonal {
                // Left of the diagonal block, the block (upper triangle), right of it.
                for (cols, upper) in [(lo..ri.start, false), (ri.clone(), true), (ri.end..hi, false)] {
                    if !cols.is_empty() {
                        let at = cols.start - lo..cols.end - lo;
                        product(ri.clone(), cols, upper, strip.slice_mut(s![.., at]));
                    }
                }
            } else {
                product(ri.clone(), lo..hi, false, strip.view_mut());
            }
            qs.iter()
                .map(|&q| {
                    let (i, j) = pairs[q];
                    (q, f(i, j, strip.slice(s![.., tiles[j].start - lo..tiles[j].end - lo])))
                })
                .collect()
        })
        .collect();
    let mut out: Vec<(usize, R)> = per_strip.into_iter().flatten().collect();
    out.sort_by_key(|(q, _)| *q);
    out.into_iter().map(|(_, r)| r).collect()
}

/// All pairs `(i, j)` with `i <= j` over `count` tiles (upper triangle, diagonal included).
pub(crate) fn upper_pairs(count: usize) -> Vec<(usize, usize)> {
    let mut v = Vec::with_capacity(count * (count + 1) / 2);
    for i in 0..count {
        for j in i..count {
            v.push((i, j));
        }
    }
    v
}

/// Sum of squared distances over all ordered pairs `i != j` of the rows of all `parts` taken together, by the
/// closed form `Σ_{i,j} ‖z_i − z_j‖² = 2N Σ‖z_i − s‖² − 2‖Σ (z_i − s)‖²`, true for any shift `s` (O(N d), one pass
/// over the rows). `s` is the mean of the first 256 rows, close to the mean of all of them, so that the two terms
/// hardly cancel: relative to `Σ‖z_i − z̄‖²` the second is `N‖z̄ − s‖²`, about `d·σ²·N/256` against `d·σ²·N`.
pub(crate) fn sum_pairwise_sq_dists(parts: &[ArrayView2<'_, f64>]) -> f64 {
    let n: usize = parts.iter().map(|p| p.nrows()).sum();
    let Some(d) = parts.first().map(|p| p.ncols()) else {
        return 0.0;
    };
    if n == 0 {
        return 0.0;
    }
    let rows: Vec<ndarray::ArrayView1<'_, f64>> = parts.iter().flat_map(|p| p.outer_iter()).collect();
    let head = &rows[..n.min(256)];
    let mut mean = vec![0.0; d];
    for r in head {
        mean.iter_mut().zip(r.iter()).for_each(|(a, &v)| *a += v);
    }
    mean.iter_mut().for_each(|m| *m /= head.len() as f64);
    // Per row: Σ_j (z_ij − s_j)² with lane-wise accumulators, and the column sums of z − s; rows in parallel,
    // partial results combined in a fixed order.
    let partials: Vec<(f64, Vec<f64>)> = rows
        .par_chunks(256)
        .map(|chunk| {
            let mut ss = 0.0;
            let mut sum = vec![0.0; d];
            let mut c = vec![0.0; d];
            for r in chunk {
                match r.as_slice() {
                    Some(x) => c.iter_mut().zip(x).zip(&mean).for_each(|((ci, &v), &m)| *ci = v - m),
                    None => c.iter_mut().zip(r.iter()).zip(&mean).for_each(|((ci, &v), &m)| *ci = v - m),
                }
                ss += sq_norm(&c);
                for (a, &ci) in sum.iter_mut().zip(&c) {
                    *a += ci;
                }
            }
            (ss, sum)
        })
        .collect();
    let mut ss = 0.0;
    let mut sum = vec![0.0; d];
    for (pss, psum) in partials {
        ss += pss;
        for (a, v) in sum.iter_mut().zip(psum) {
            *a += v;
        }
    }
    let s2 = sq_norm(&sum);
    let nf = n as f64;
    (2.0 * nf * ss - 2.0 * s2).max(0.0)
}

/// `Σ a_i b_i` with 8 independent accumulators (so that it vectorises).
#[inline]
pub(crate) fn dot_slices(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0f64; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// `‖a‖²`, vectorised.
#[inline]
pub(crate) fn sq_norm(a: &[f64]) -> f64 {
    dot_slices(a, a)
}

/// `‖a − b‖²` with 8 independent accumulators.
#[inline]
pub(crate) fn sq_dist(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0f64; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            let t = x[k] - y[k];
            acc[k] += t * t;
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (x, y) in ra.iter().zip(rb) {
        s += (x - y) * (x - y);
    }
    s
}

/// `exp(x)` for `x ≤ 0`, branch-free so that loops over slices vectorise: `x = k ln2 + r`, `|r| ≤ ln2/2`, a
/// degree-13 Taylor polynomial for `e^r` (truncation error < 1e-17 relative) and `2^k` built in the exponent bits.
/// Relative error a few ulps (tested against `f64::exp` to 4e-16); inputs below −708 give `exp(−708)` (≈ 3e-308)
/// instead of a smaller number, and inputs above 0 are treated as 0.
#[inline(always)]
pub(crate) fn exp_nonpositive(x: f64) -> f64 {
    const LOG2E: f64 = std::f64::consts::LOG2_E;
    const LN2_HI: f64 = 0.693_147_180_369_123_8;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    // 1.5 · 2^52: adding it rounds to an integer held in the low mantissa bits.
    const MAGIC: f64 = 6_755_399_441_055_744.0;
    let x = x.clamp(-708.0, 0.0);
    let t = x * LOG2E + MAGIC;
    let k = t - MAGIC;
    let r = (x - k * LN2_HI) - k * LN2_LO;
    // Horner, 1/13! … 1/1!
    let mut p = 1.0 / 6_227_020_800.0;
    p = p * r + 1.0 / 479_001_600.0;
    p = p * r + 1.0 / 39_916_800.0;
    p = p * r + 1.0 / 3_628_800.0;
    p = p * r + 1.0 / 362_880.0;
    p = p * r + 1.0 / 40_320.0;
    p = p * r + 1.0 / 5_040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    // bits(t) = bits(MAGIC) + k; shifting (bits + 1023) left by 52 leaves the biased exponent k + 1023 in 1..=1023.
    let scale = f64::from_bits(t.to_bits().wrapping_add(1023) << 52);
    p * scale
}

/// Symmetric eigendecomposition by faer (`self_adjoint_eigen`): returns `(eigenvalues, V)` with
/// `A = V diag(λ) Vᵀ`, eigenvectors in the columns of `V`, eigenvalues ascending. `a` must be symmetric (its
/// lower triangle is read). A hand-written Jacobi solver was here before: a CORAL + SVM trial on Office-Caltech
/// SURF (two 800×800 decompositions) took 26–31 s with it and 0.3–4 s with faer, most of it the SVM.
pub(crate) fn sym_eigen(a: ArrayView2<'_, f64>) -> (Vec<f64>, Array2<f64>) {
    let d = a.nrows();
    let m = faer::Mat::<f64>::from_fn(d, d, |i, j| a[[i, j]]);
    match m.self_adjoint_eigen(faer::Side::Lower) {
        Ok(evd) => {
            let (u, sv) = (evd.U(), evd.S().column_vector());
            ((0..d).map(|i| sv[i]).collect(), Array2::from_shape_fn((d, d), |(i, j)| u[(i, j)]))
        }
        // Only for non-finite input (callers check finiteness first): NaN eigenvalues, caught by `check_pd`.
        Err(_) => (vec![f64::NAN; d], Array2::eye(d)),
    }
}

/// `V diag(f(λ)) Vᵀ` for a symmetric eigendecomposition.
pub(crate) fn sym_apply(vals: &[f64], v: ArrayView2<'_, f64>, f: impl Fn(f64) -> f64) -> Array2<f64> {
    let mut scaled = v.to_owned();
    for (mut col, &l) in scaled.columns_mut().into_iter().zip(vals) {
        col.mapv_inplace(|x| x * f(l));
    }
    scaled.dot(&v.t())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn fast_exp_is_accurate() {
        let mut worst = 0.0f64;
        let mut x = -700.0;
        while x <= 0.0 {
            let (got, want) = (exp_nonpositive(x), x.exp());
            worst = worst.max(((got - want) / want).abs());
            x += 0.000_731;
        }
        assert!(worst < 4e-16, "worst relative error {worst:e}");
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert!(exp_nonpositive(-1e6) < 1e-307);
        assert_eq!(exp_nonpositive(2.0), 1.0);
    }

    #[test]
    fn gram_tiles_agree_on_both_paths_and_with_f64() {
        // Uneven tiles, every (i, j) pair: rows of 5 pairs, more than one strip's 4 tiles, with the diagonal tile
        // inside a strip.
        let z64 = Array2::from_shape_fn((203, 300), |(i, j)| ((i * 31 + j * 17) % 97) as f64 / 48.5 - 1.0);
        let z32 = z64.mapv(|v| v as f32);
        let tiles = split_rows(0, 203, 45);
        let pairs: Vec<(usize, usize)> = (0..tiles.len()).flat_map(|i| (0..tiles.len()).map(move |j| (i, j))).collect();
        let exact = z64.dot(&z64.t());
        for diagonal in [Diagonal::Full, Diagonal::Upper] {
            for path in gemm::all_paths() {
                let got = map_gram_tiles_on(path, z32.view(), &tiles, &pairs, diagonal, |_, _, g| g.to_owned());
                for (&(i, j), g) in pairs.iter().zip(&got) {
                    assert_eq!(g.dim(), (tiles[i].len(), tiles[j].len()));
                    for ((a, b), &v) in g.indexed_iter() {
                        if i == j && a > b && diagonal == Diagonal::Upper {
                            continue;
                        }
                        let want = exact[[tiles[i].start + a, tiles[j].start + b]];
                        // |z| ≤ 1, k = 300: f32 rounding well below 1e-5 · k.
                        assert!((f64::from(v) - want).abs() < 3e-3, "{path:?} {diagonal:?} ({i},{j}) [{a},{b}]");
                    }
                }
            }
        }
    }

    #[test]
    fn pooled_tiles_and_norms_agree_on_both_paths() {
        // Two parts, a tile across their boundary, f64 input rounded to f32 by `to_matrix`.
        let a = Array2::from_shape_fn((70, 45), |(i, j)| ((i * 7 + j * 3) % 23) as f64 / 7.3 - 1.1);
        let b = Array2::from_shape_fn((51, 45), |(i, j)| ((i * 5 + j * 11) % 19) as f64 / 5.1 - 0.3);
        let pooled = Pooled::new(&[a.view(), b.view()]);
        assert_eq!((pooled.nrows(), pooled.ncols()), (121, 45));
        assert_eq!(pooled.row(70), b.row(0));
        assert_eq!(pooled.row(69), a.row(69));
        let z = pooled.to_matrix::<f32>();
        assert_eq!(z[[100, 3]], b[[30, 3]] as f32);
        let tiles = vec![0..30, 30..90, 90..121];
        let pairs = upper_pairs(tiles.len());
        let z64 = z.mapv(f64::from);
        let exact = z64.dot(&z64.t());
        for path in gemm::all_paths() {
            let got = map_pooled_gram_tiles_on::<f32, _, _>(
                path,
                &pooled,
                &tiles,
                &pairs,
                Diagonal::Upper,
                |_, _, g, na, nb| (g.to_owned(), na.to_vec(), nb.to_vec()),
            );
            for (&(i, j), (g, na, nb)) in pairs.iter().zip(&got) {
                for (r, &v) in tiles[i].clone().zip(na) {
                    assert!((v - exact[[r, r]]).abs() < 1e-12 * exact[[r, r]], "{path:?} norm {r}");
                }
                for (r, &v) in tiles[j].clone().zip(nb) {
                    assert!((v - exact[[r, r]]).abs() < 1e-12 * exact[[r, r]], "{path:?} norm {r}");
                }
                for ((p, q), &v) in g.indexed_iter() {
                    if i == j && p > q {
                        continue;
                    }
                    let want = exact[[tiles[i].start + p, tiles[j].start + q]];
                    assert!((f64::from(v) - want).abs() < 1e-4, "{path:?} ({i},{j}) [{p},{q}]");
                }
            }
        }
    }

    #[test]
    fn pairwise_closed_form_keeps_its_accuracy_far_from_the_origin() {
        // 300 rows (more than the 256 that set the shift), offset 1e4 with unit spread: the direct sum as reference.
        let z = Array2::from_shape_fn((300, 3), |(i, j)| 1e4 + ((i * 37 + j * 11) % 101) as f64 / 50.0);
        let mut direct = 0.0;
        for a in z.outer_iter() {
            for b in z.outer_iter() {
                direct += (&a - &b).mapv(|v| v * v).sum();
            }
        }
        let (top, bottom) = z.view().split_at(ndarray::Axis(0), 120);
        assert!((sum_pairwise_sq_dists(&[top, bottom]) - direct).abs() < 1e-12 * direct);
    }

    #[test]
    fn split_rows_covers_range() {
        let r = split_rows(3, 20, 5);
        assert_eq!(r, vec![3..8, 8..12, 12..16, 16..20]);
        assert!(split_rows(4, 4, 5).is_empty());
    }

    #[test]
    fn pairwise_closed_form_matches_direct() {
        let z = array![[1.0, 2.0], [3.0, -1.0], [0.5, 0.25], [10.0, 3.0]];
        let mut direct = 0.0;
        for a in z.outer_iter() {
            for b in z.outer_iter() {
                direct += (&a - &b).mapv(|v| v * v).sum();
            }
        }
        assert!((sum_pairwise_sq_dists(&[z.view()]) - direct).abs() < 1e-12 * direct);
        let (top, bottom) = z.view().split_at(ndarray::Axis(0), 1);
        assert!((sum_pairwise_sq_dists(&[top, bottom]) - direct).abs() < 1e-12 * direct);
    }

    #[test]
    fn eigendecomposition_reconstructs() {
        let a = array![[4.0, 1.0, 0.5], [1.0, 3.0, -0.25], [0.5, -0.25, 2.0]];
        let (vals, v) = sym_eigen(a.view());
        let back = sym_apply(&vals, v.view(), |l| l);
        for (x, y) in back.iter().zip(a.iter()) {
            assert!((x - y).abs() < 1e-14);
        }
        let vtv = v.t().dot(&v);
        for ((i, j), x) in vtv.indexed_iter() {
            assert!((x - f64::from(u8::from(i == j))).abs() < 1e-14);
        }
        // trace and determinant
        assert!((vals.iter().sum::<f64>() - 9.0).abs() < 1e-13);
    }
}
