//! f64 products of centred columns, `G = Σ_p s_p (X_p − 1μ_pᵀ)ᵀ (X_p − 1μ_pᵀ)` restricted to column tiles: the
//! covariances of CORAL (one sample, `s = 1/(n − 1)`) and the difference of two covariances (`s_S = 1/(n_S − 1)`,
//! `s_T = −1/(n_T − 1)`: one product over the `n_S + n_T` stacked samples gives a tile of `C_S − C_T` directly).
//!
//! The shared ("k") dimension is the samples; the operands are the columns of the centred data. On x86-64 CPUs with
//! AVX-512F (the detection and token of [`gemm`]) a packed kernel in the style of the f32 one is used:
//!
//! - each column tile is packed once, up front, in one pass over the rows of the samples that centres the values
//!   (and scales them by `s_p` for the broadcast side): into panels of [`MR`] = 14 columns (broadcast side) and of
//!   [`NR`] = 16 columns (vector side, two zmm of 8 f64), k-major and zero-padded, each panel 64-byte aligned;
//! - the 14 × 16 micro-kernel keeps its block of `G` in 28 zmm accumulators: per sample, two vector loads and 14
//!   broadcasts for 28 FMAs; `k` is blocked by [`KC`](crate::packed::KC) = 256 (the 32 KiB `B` slice stays in L1, the tiles in L2);
//! - only the pairs of tiles on or above the diagonal are computed, and on a diagonal tile only the micro-tiles
//!   that reach its upper triangle; the caller mirrors.
//!
//! Elsewhere, centred (and scaled) copies are multiplied by `ndarray::linalg::general_mat_mul` (matrixmultiply).
//! Each entry of a tile is summed in the same order whatever the thread count, so results are deterministic.

use crate::gemm::{self, Avx512, Path};
use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayView2, Axis, s};
use rayon::prelude::*;
use std::cell::Cell;
use std::ops::Range;
use std::sync::Mutex;
use std::thread::LocalKey;

use crate::packed::{Element, PackStore, Panels, TileBuffer, padded_stride, panels_len, product_packed};

/// Columns of the broadcast side per micro-tile.
pub(crate) const MR: usize = 14;
/// Columns of the vector side per micro-tile (two zmm of 8 f64).
pub(crate) const NR: usize = 16;

/// One sample of a product: `scale · (X − 1μᵀ)ᵀ(X − 1μᵀ)`, `μ` the column means of `X` (computed here).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Centred<'a> {
    pub(crate) x: ArrayView2<'a, f64>,
    pub(crate) scale: f64,
}

/// Column tiles of `0..d` for these products: 112 columns (a multiple of both [`MR`] and [`NR`], so no partial
/// panels inside) up to d = 448, else 224 (a 224 × 224 f64 tile and a `KC × 224` slice of panels stay in L2); the
/// last tile shorter.
pub(crate) fn column_tiles(d: usize) -> Vec<Range<usize>> {
    let edge = if d <= 448 { 112 } else { 224 };
    (0..d.div_ceil(edge)).map(|q| q * edge..((q + 1) * edge).min(d)).collect()
}

/// For each `(i, j)` in `pairs`, the tile `G[tiles[i], tiles[j]]` of `G = Σ_p s_p (X_p − 1μ_pᵀ)ᵀ(X_p − 1μ_pᵀ)` and
/// then `f(i, j, tile)`, in the order of `pairs`; tiles in parallel. On a diagonal tile (`i == j`) only the entries
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
    let k: usize = parts.iter().map(|p| p.x.nrows()).sum();
    let edge = tiles.iter().map(|r| r.len()).max().unwrap_or(0);
    match path {
        Path::Avx512(tok) => {
            let mut store = PackStore::<f64>::take();
            let seg = |t: &Range<usize>, w: usize| panels_len(t.len(), k, w).next_multiple_of(8);
            let total: usize = tiles.iter().map(|t| seg(t, MR) + seg(t, NR)).sum();
            let mut rest = store.slice_mut(total);
            let mut bufs: Vec<(&mut [f64], &mut [f64])> = Vec::with_capacity(tiles.len());
            for t in tiles {
                let (a, tail) = rest.split_at_mut(seg(t, MR));
                let (b, tail) = tail.split_at_mut(seg(t, NR));
                rest = tail;
                bufs.push((a, b));
            }
            bufs.par_iter_mut().zip(tiles.par_iter()).for_each(|((a, b), t)| {
                pack_tile_avx512(tok, parts, t.clone(), k, a, b);
            });
            let packed: Vec<(Panels<'_, f64>, Panels<'_, f64>)> = bufs
                .into_iter()
                .zip(tiles)
                .map(|((a, b), t)| {
                    let (a, b): (&[f64], &[f64]) = (a, b);
                    (Panels { lines: t.len(), k, width: MR, data: a }, Panels { lines: t.len(), k, width: NR, data: b })
                })
                .collect();
            let ld = padded_stride::<f64>(edge);
            pairs
                .par_iter()
                .map_init(
                    || TileBuffer::<f64>::take(edge, ld),
                    |buf, &(i, j)| {
                        let mut g = buf.0.slice_mut(s![..tiles[i].len(), ..tiles[j].len()]);
                        product_packed(tok, &packed[i].0, &packed[j].1, g.view_mut(), i == j);
                        f(i, j, g.view())
                    },
                )
                .collect()
        }
        Path::Portable => {
            // Centred copies, stacked over the parts: `left` scaled (as the packer does), `right` not.
            let mut left = Array2::<f64>::zeros((k, d));
            let mut right = Array2::<f64>::zeros((k, d));
            let mut at = 0;
            for p in parts {
                let n = p.x.nrows();
                let mut mean = vec![0.0; d];
                column_means_into(p.x, &mut mean);
                let mut r = right.slice_mut(s![at..at + n, ..]);
                r.assign(&p.x);
                r -= &ndarray::ArrayView1::from(&mean);
                left.slice_mut(s![at..at + n, ..]).zip_mut_with(&r, |l, &c| *l = c * p.scale);
                at += n;
            }
            pairs
                .par_iter()
                .map_init(
                    || Array2::<f64>::zeros((edge, edge)),
                    |buf, &(i, j)| {
                        let (ri, rj) = (tiles[i].clone(), tiles[j].clone());
                        let mut g = buf.slice_mut(s![..ri.len(), ..rj.len()]);
                        general_mat_mul(1.0, &left.slice(s![.., ri]).t(), &right.slice(s![.., rj]), 0.0, &mut g);
                        f(i, j, g.view())
                    },
                )
                .collect()
        }
    }
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

/// [`pack_tile`] compiled with AVX-512F.
#[cfg(target_arch = "x86_64")]
fn pack_tile_avx512(_tok: Avx512, parts: &[Centred<'_>], cols: Range<usize>, k: usize, a: &mut [f64], b: &mut [f64]) {
    #[target_feature(enable = "avx512f")]
    fn inner(parts: &[Centred<'_>], cols: Range<usize>, k: usize, a: &mut [f64], b: &mut [f64]) {
        pack_tile(parts, cols, k, a, b);
    }
    // SAFETY: the `Avx512` token exists only when `gemm::detect` found AVX-512F on this CPU.
    unsafe { inner(parts, cols, k, a, b) }
}

#[cfg(not(target_arch = "x86_64"))]
fn pack_tile_avx512(_tok: Avx512, parts: &[Centred<'_>], cols: Range<usize>, k: usize, a: &mut [f64], b: &mut [f64]) {
    pack_tile(parts, cols, k, a, b);
}

/// Packs columns `cols` of the stacked centred samples (`k` rows in all): into `a` as [`MR`]-wide panels of
/// `scale · (x − μ)`, into `b` as [`NR`]-wide panels of `x − μ`; every value of the first [`panels_len`] of each
/// written (padding columns as zeros). Per part, a first pass over its rows sums the tile's columns (rows in order,
/// as `mean_axis`), then a second one, which finds them in cache, centres and writes both layouts.
#[inline(always)]
fn pack_tile(parts: &[Centred<'_>], cols: Range<usize>, k: usize, a: &mut [f64], b: &mut [f64]) {
    let h = cols.len();
    let (a, b) = (&mut a[..panels_len(h, k, MR)], &mut b[..panels_len(h, k, NR)]);
    let mut mean = vec![0.0f64; h];
    let mut centred = vec![0.0f64; h];
    let mut scaled = vec![0.0f64; h];
    let mut kk = 0;
    for p in parts {
        let block = p.x.slice(s![.., cols.clone()]);
        column_means_into(block, &mut mean);
        for x in block.rows() {
            match x.as_slice() {
                Some(xs) => {
                    for ((c, &v), &m) in centred.iter_mut().zip(xs).zip(&mean) {
                        *c = v - m;
                    }
                }
                None => {
                    for ((c, &v), &m) in centred.iter_mut().zip(&x).zip(&mean) {
                        *c = v - m;
                    }
                }
            }
            for (o, &c) in scaled.iter_mut().zip(&centred) {
                *o = c * p.scale;
            }
            write_row::<MR>(&scaled, k, kk, a);
            write_row::<NR>(&centred, k, kk, b);
            kk += 1;
        }
    }
    debug_assert_eq!(kk, k);
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

/// Sample `kk` (values of all columns of the tile) into its place in each panel of `W` columns (fixed-size copies).
#[inline(always)]
fn write_row<const W: usize>(vals: &[f64], k: usize, kk: usize, out: &mut [f64]) {
    let chunks = vals.chunks_exact(W);
    let rem = chunks.remainder();
    let full = vals.len() / W;
    for (q, chunk) in chunks.enumerate() {
        let src: &[f64; W] = chunk.try_into().expect("chunks_exact");
        let dst: &mut [f64; W] = (&mut out[q * W * k + kk * W..][..W]).try_into().expect("W values");
        *dst = *src;
    }
    if !rem.is_empty() {
        let dst = &mut out[full * W * k + kk * W..][..W];
        dst[..rem.len()].copy_from_slice(rem);
        dst[rem.len()..].fill(0.0);
    }
}

/// The f64 packing buffer kept between calls ([`PackStore`]).
static SPARE: Mutex<Vec<f64>> = Mutex::new(Vec::new());

thread_local! {
    /// The f64 tile buffer of this thread, kept between calls (at most 224 × 224 f64, 392 KiB).
    static TILE_BUFFER: Cell<Option<Array2<f64>>> = const { Cell::new(None) };
}

impl Element for f64 {
    const ZERO: f64 = 0.0;
    const MR: usize = MR;
    const NR: usize = NR;
    const STRIDE_AVOID: usize = 512;

    fn spare() -> &'static Mutex<Vec<f64>> {
        &SPARE
    }

    fn tile_slot() -> &'static LocalKey<Cell<Option<Array2<f64>>>> {
        &TILE_BUFFER
    }

    #[allow(clippy::too_many_arguments)]
    unsafe fn kernel(
        kc: usize,
        a: *const f64,
        b: *const f64,
        a_next: *const f64,
        prefetch_b: bool,
        c: *mut f64,
        ldc: usize,
        mr: usize,
        nr: usize,
        accumulate: bool,
    ) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the caller upholds `kernel_14x16`'s contract, which is this method's.
        unsafe {
            kernel_14x16(kc, a, b, a_next, prefetch_b, c, ldc, mr, nr, accumulate)
        }
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("no Avx512 token is made on this architecture")
    }
}

/// k-steps ahead at which the kernel prefetches its own `B` slice.
const PREFETCH_B_STEPS: usize = 32;

/// k-steps per iteration of the kernel's main loop.
const UNROLL: usize = 4;

/// The AVX-512F f64 micro-kernel: a 14 × 16 block of `C` in 28 zmm accumulators; prefetches as in the f32 kernel
/// (the `C` rows, `a_next` two cache lines per step, and with `prefetch_b` the `B` slice ahead).
///
/// # Safety
/// The CPU must support AVX-512F; `a` must be valid for reads of `kc·MR` values and `b` of `kc·NR` values; for
/// `r < mr ≤ MR`, `col < nr ≤ NR`, `c + r·ldc + col` must be valid for reads and writes and not aliased. `a_next`
/// is only prefetched (any address).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn kernel_14x16(
    kc: usize,
    a: *const f64,
    b: *const f64,
    a_next: *const f64,
    prefetch_b: bool,
    c: *mut f64,
    ldc: usize,
    mr: usize,
    nr: usize,
    accumulate: bool,
) {
    use std::arch::x86_64::*;
    // Prefetches never fault, and `wrapping_add` keeps the address arithmetic defined outside the allocations.
    for r in 0..mr {
        let row = c.wrapping_add(r * ldc);
        _mm_prefetch::<_MM_HINT_ET0>(row.cast::<i8>());
        _mm_prefetch::<_MM_HINT_ET0>(row.wrapping_add(NR - 1).cast::<i8>());
    }
    let mut acc = [[_mm512_setzero_pd(); 2]; MR];
    macro_rules! step {
        ($kk:expr) => {{
            let kk = $kk;
            // SAFETY: kk < kc, so the reads stay within the first kc·NR values of b and kc·MR values of a.
            unsafe {
                let bp = b.add(kk * NR);
                let b0 = _mm512_loadu_pd(bp);
                let b1 = _mm512_loadu_pd(bp.add(8));
                let ap = a.add(kk * MR);
                for (r, row) in acc.iter_mut().enumerate() {
                    let ar = _mm512_set1_pd(*ap.add(r));
                    row[0] = _mm512_fmadd_pd(ar, b0, row[0]);
                    row[1] = _mm512_fmadd_pd(ar, b1, row[1]);
                }
            }
        }};
    }
    let main = kc - kc % UNROLL;
    if prefetch_b {
        for k4 in (0..main).step_by(UNROLL) {
            for u in 0..UNROLL {
                let ahead = b.wrapping_add((k4 + u + PREFETCH_B_STEPS) * NR);
                _mm_prefetch::<_MM_HINT_T0>(ahead.cast::<i8>());
                _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(8).cast::<i8>());
                let an = a_next.wrapping_add((k4 + u) * MR);
                _mm_prefetch::<_MM_HINT_T0>(an.cast::<i8>());
                _mm_prefetch::<_MM_HINT_T0>(an.wrapping_add(8).cast::<i8>());
                step!(k4 + u);
            }
        }
    } else {
        for k4 in (0..main).step_by(UNROLL) {
            for u in 0..UNROLL {
                let an = a_next.wrapping_add((k4 + u) * MR);
                _mm_prefetch::<_MM_HINT_T0>(an.cast::<i8>());
                _mm_prefetch::<_MM_HINT_T0>(an.wrapping_add(8).cast::<i8>());
                step!(k4 + u);
            }
        }
    }
    for kk in main..kc {
        step!(kk);
    }
    let lanes = |n: usize| -> __mmask8 { if n >= 8 { 0xff } else { ((1u32 << n) - 1) as __mmask8 } };
    let (m0, m1) = (lanes(nr), lanes(nr.saturating_sub(8)));
    for (r, row) in acc.iter().enumerate().take(mr) {
        // SAFETY: r < mr, and the masks enable only columns < nr: within the caller's valid block of C.
        unsafe {
            let cp = c.add(r * ldc);
            let (mut x0, mut x1) = (row[0], row[1]);
            if accumulate {
                x0 = _mm512_add_pd(x0, _mm512_maskz_loadu_pd(m0, cp));
                x1 = _mm512_add_pd(x1, _mm512_maskz_loadu_pd(m1, cp.add(8)));
            }
            _mm512_mask_storeu_pd(cp, m0, x0);
            _mm512_mask_storeu_pd(cp.add(8), m1, x1);
        }
    }
}

/// Which path the f64 products take on this CPU (the f32 module's detection).
pub(crate) fn detect() -> Path {
    gemm::detect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packed::KC;
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

    /// (k, d): partial panels of both widths, k below the unroll, k not a multiple of KC, tiny and empty.
    const SHAPES: [(usize, usize); 12] = [
        (1, 1),
        (0, 3),
        (3, 0),
        (2, 5),
        (5, MR),
        (7, NR + 1),
        (KC, 2 * MR - 1),
        (KC + 1, 31),
        (2 * KC + 7, 45),
        (100, 113),
        (3, 230),
        (KC - 1, 3 * NR),
    ];

    #[test]
    fn packed_product_matches_naive_including_upper_triangle() {
        let Path::Avx512(tok) = detect() else {
            return; // no AVX-512F on this CPU: the fallback is tested in coral
        };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for &(k, d) in &SHAPES {
            let x = random(&mut rng, k, d);
            let parts = [Centred { x: x.view(), scale: 0.5 }];
            let (want, mag) = naive(&parts);
            let (mut a, mut b) = (vec![f64::NAN; panels_len(d, k, MR)], vec![f64::NAN; panels_len(d, k, NR)]);
            pack_tile(&parts, 0..d, k, &mut a, &mut b);
            let (pa, pb) = (Panels { lines: d, k, width: MR, data: &a }, Panels { lines: d, k, width: NR, data: &b });
            // Inside a larger buffer with garbage around it: only the d×d block is written.
            let mut buf = Array2::<f64>::from_elem((d + 2, d + 11), f64::NAN);
            product_packed(tok, &pa, &pb, buf.slice_mut(s![1..d + 1, 2..d + 2]), false);
            check(buf.slice(s![1..d + 1, 2..d + 2]), &want, &mag, false, &format!("full {k}x{d}"));
            assert!(buf.row(0).iter().chain(buf.row(d + 1)).all(|v| v.is_nan()), "{k}x{d}: rows outside written");
            assert!(buf.column(1).iter().chain(buf.column(d + 2)).all(|v| v.is_nan()), "{k}x{d}: columns outside");
            let mut sym = Array2::<f64>::from_elem((d, d), f64::NAN);
            product_packed(tok, &pa, &pb, sym.view_mut(), true);
            check(sym.view(), &want, &mag, true, &format!("upper {k}x{d}"));
        }
    }

    #[test]
    fn centred_gram_matches_naive_on_both_paths() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        // Two parts of different lengths, opposite signs; d spanning several tiles of 112 with a short last one;
        // the second part a non-contiguous (transposed) view.
        for &(n1, n2, d) in &[(3, 2, 1), (40, 300, 37), (KC + 3, 17, 250), (9, 5, 0)] {
            let x1 = random(&mut rng, n1, d);
            let x2t = random(&mut rng, d, n2);
            let parts = [
                Centred { x: x1.view(), scale: 1.0 / (n1 as f64 - 1.0) },
                Centred { x: x2t.t(), scale: -1.0 / (n2 as f64 - 1.0) },
            ];
            let (want, mag) = naive(&parts);
            for path in [detect(), Path::Portable] {
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
