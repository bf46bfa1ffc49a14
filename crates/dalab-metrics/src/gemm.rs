//! f32 "NT" matrix products `C = A · Bᵀ` (A, B row-major with the shared dimension `k` contiguous): the Gram
//! products `Z_I · Z_Jᵀ` of the MMD with `Precision::F32`, and [`matmul_nt`].
//!
//! On x86-64 CPUs with AVX-512F (detected at run time, once) a hand-written kernel is used; elsewhere
//! `ndarray::linalg::general_mat_mul` (the matrixmultiply crate). The AVX-512 kernel has the classic Goto/BLIS
//! structure:
//!
//! - the rows of both operands are packed into zero-padded *panels*: `A` into panels of `MR` = 14 rows, `B` into
//!   panels of `NR` = 32 rows, each panel stored k-major (`k × width` floats, the `B` panels 64-byte aligned), so
//!   that the micro-kernel reads both operands sequentially. For the Gram tiles every row tile is packed once, up
//!   front, in both layouts, in one pass over its rows (converting f64 input to f32 and computing the squared norms
//!   on the way), and every tile product reuses the packed panels: no packing in the inner loops;
//! - the micro-kernel keeps a 14 × 32 block of `C` in 28 zmm registers; per step of `k` it loads two zmm of the `B`
//!   panel and broadcasts 14 values of the `A` panel: 28 FMAs for 16 loads. It prefetches the next `A` micro-panel,
//!   the rows of its `C` block and, for the first `A` micro-panel of a pass, its `B` slice;
//! - `k` is blocked by `KC` = 256: the `KC × 32` slice of a `B` panel (32 KiB) is reused from L1 by all `A`
//!   panels of a tile, the `KC × h` slice of the `A` panels and the `h × w` block of `C` stay in L2;
//! - partial panels at the edges are zero-padded in the packed buffers; only the valid rows and columns of `C` are
//!   written (masked stores);
//! - for a diagonal tile of a symmetric product only the micro-tiles that reach the upper triangle are computed;
//! - the packing buffer is kept between calls (as BLAS libraries keep theirs; at most 256 MiB, freed by
//!   [`release_buffers`]) and each rayon thread keeps its tile buffer: on a virtual machine faulting in fresh pages
//!   costs about 25 ms per 64 MiB, more than the packing itself.
//!
//! Accumulation is in f32: each entry of `C` is the sum over the `KC`-blocks of `k` (ascending) of an FMA chain over
//! the block, the same whatever the thread count or the tiling of the rows, so results are deterministic.

use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayView1, ArrayView2, ArrayViewMut2, Axis, s};
use rayon::prelude::*;
use std::borrow::Cow;
use std::cell::Cell;
use std::ops::Range;
use std::sync::{Mutex, OnceLock};
use std::thread::LocalKey;

use crate::packed::{self, Element, PackStore, Panels, TileBuffer, padded_stride, panels_len, product_packed};

/// Rows of `A` per micro-tile (broadcast side).
pub(crate) const MR: usize = 14;
/// Rows of `B` per micro-tile (vector side: two zmm of 16 f32).
pub(crate) const NR: usize = 32;

/// Proof that the running CPU has AVX-512F; only [`detect`] makes one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Avx512 {
    _private: (),
}

/// Which implementation computes the f32 products.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Path {
    /// The packed AVX-512F kernel of this module.
    Avx512(Avx512),
    /// `ndarray::linalg::general_mat_mul` (matrixmultiply).
    Portable,
}

/// The best path for this CPU (detected once, then cached).
pub(crate) fn detect() -> Path {
    static PATH: OnceLock<Path> = OnceLock::new();
    *PATH.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f") {
            return Path::Avx512(Avx512 { _private: () });
        }
        Path::Portable
    })
}

/// Name of the f32 product kernel used on this CPU, for benchmark reports.
pub fn kernel_name() -> &'static str {
    match detect() {
        Path::Avx512(_) => "dalab AVX-512F 14x32 packed kernel",
        Path::Portable => "matrixmultiply (ndarray general_mat_mul)",
    }
}

/// `A · Bᵀ` in f32 (`A`: m × k, `B`: n × k; result m × n), on the rayon pool: the AVX-512F kernel where the CPU
/// has it (packing included), else matrixmultiply. Blocks of rows of the result run in parallel; each output element
/// is summed in the same order whatever the thread count, so the result does not depend on it.
///
/// # Panics
/// If `A` and `B` have different numbers of columns.
pub fn matmul_nt(a: ArrayView2<'_, f32>, b: ArrayView2<'_, f32>) -> Array2<f32> {
    let mut out = Array2::<f32>::zeros((a.nrows(), b.nrows()));
    matmul_nt_on(detect(), a, b, out.view_mut());
    out
}

/// [`matmul_nt`] into an existing `m × n` array (any strides), overwriting it.
///
/// # Panics
/// If `A` and `B` have different numbers of columns or `out` is not `m × n`.
pub fn matmul_nt_into(a: ArrayView2<'_, f32>, b: ArrayView2<'_, f32>, out: ArrayViewMut2<'_, f32>) {
    matmul_nt_on(detect(), a, b, out);
}

/// Row block edge of [`matmul_nt`].
const MATMUL_BLOCK: usize = 256;

pub(crate) fn matmul_nt_on(
    path: Path,
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    mut out: ArrayViewMut2<'_, f32>,
) {
    assert_eq!(a.ncols(), b.ncols(), "matmul_nt: A is {:?} but B is {:?}", a.dim(), b.dim());
    let (m, n) = (a.nrows(), b.nrows());
    assert_eq!(out.dim(), (m, n), "matmul_nt: output shape");
    if m == 0 || n == 0 {
        return;
    }
    let mb = MATMUL_BLOCK;
    let a_blocks = blocks(m, mb);
    match path {
        // The packed kernel writes through a unit column stride and a non-negative row stride; other layouts go the
        // portable way.
        Path::Avx512(tok) if (out.strides()[1] == 1 || n == 1) && out.strides()[0] >= 0 => {
            let b_blocks = blocks(n, mb);
            let (ra, rb) = (|r: usize| a.row(r), |r: usize| b.row(r));
            let (sa, sb) = (RowSource::f32(&ra, a.ncols()), RowSource::f32(&rb, b.ncols()));
            let mut store = PackStore::<f32>::take();
            let (pa, pb) = {
                let jobs: Vec<PackJob<'_, '_, '_, _, _>> = a_blocks
                    .iter()
                    .map(|r| (&sa, r.clone(), MR))
                    .chain(b_blocks.iter().map(|r| (&sb, r.clone(), NR)))
                    .map(|(src, rows, width)| PackJob { src, rows, widths: vec![width], norms: false })
                    .collect();
                let packed = pack_all(tok, &mut store, &jobs);
                let mut it = packed.into_iter().map(|t| t.panels[0]);
                let pa: Vec<Panels<'_, f32>> = it.by_ref().take(a_blocks.len()).collect();
                (pa, it.collect::<Vec<_>>())
            };
            out.axis_chunks_iter_mut(Axis(0), mb).into_par_iter().zip(pa.par_iter()).for_each(|(mut strip, pa)| {
                for (rj, pb) in b_blocks.iter().zip(&pb) {
                    product_packed(tok, pa, pb, strip.slice_mut(s![.., rj.clone()]), false);
                }
            });
        }
        _ => {
            out.axis_chunks_iter_mut(Axis(0), mb).into_par_iter().zip(a_blocks.par_iter()).for_each(
                |(mut strip, ra)| {
                    general_mat_mul(1.0, &a.slice(s![ra.clone(), ..]), &b.t(), 0.0, &mut strip);
                },
            );
        }
    }
}

/// `0..n` cut into consecutive blocks of `b` rows (the last one shorter).
fn blocks(n: usize, b: usize) -> Vec<Range<usize>> {
    (0..n.div_ceil(b)).map(|q| q * b..((q + 1) * b).min(n)).collect()
}

/// Rows of a matrix given one at a time (`rows(r)`, `k` values each), converted to f32 by `convert` while packing.
pub(crate) struct RowSource<'s, 'a, S, C> {
    pub(crate) rows: &'s (dyn Fn(usize) -> ArrayView1<'a, S> + Sync),
    pub(crate) k: usize,
    pub(crate) convert: C,
}

impl<'s, 'a> RowSource<'s, 'a, f32, fn(f32) -> f32> {
    /// Rows that already are f32.
    pub(crate) fn f32(rows: &'s (dyn Fn(usize) -> ArrayView1<'a, f32> + Sync), k: usize) -> Self {
        fn same(v: f32) -> f32 {
            v
        }
        Self { rows, k, convert: same }
    }
}

/// For each `(i, j)` in `pairs`, the tile `G = Z[tiles[i]] · Z[tiles[j]]ᵀ` by the AVX-512F kernel, then
/// `f(i, j, G, norms_i, norms_j)` with the squared norms (in f64) of the f32 rows of tiles `i` and `j`, in the order
/// of `pairs`; tiles in parallel. Every row tile is packed once, in both layouts, in one pass over its rows that
/// also yields the norms. With `upper_diagonal`, a diagonal tile (`i == j`) has only the entries on and above its
/// diagonal computed, the others are unspecified.
pub(crate) fn map_gram_tiles_packed<S, C, R, F>(
    tok: Avx512,
    z: &RowSource<'_, '_, S, C>,
    tiles: &[Range<usize>],
    pairs: &[(usize, usize)],
    upper_diagonal: bool,
    f: &F,
) -> Vec<R>
where
    S: Copy + Sync,
    C: Fn(S) -> f32 + Sync,
    R: Send,
    F: Fn(usize, usize, ArrayView2<'_, f32>, &[f64], &[f64]) -> R + Sync,
{
    let mut store = PackStore::<f32>::take();
    let jobs: Vec<PackJob<'_, '_, '_, S, C>> =
        tiles.iter().map(|r| PackJob { src: z, rows: r.clone(), widths: vec![MR, NR], norms: true }).collect();
    let packed = pack_all(tok, &mut store, &jobs);
    let edge = tiles.iter().map(|r| r.len()).max().unwrap_or(0);
    let ld = padded_stride::<f32>(edge);
    pairs
        .par_iter()
        .map_init(
            || TileBuffer::<f32>::take(edge, ld),
            |buf, &(i, j)| {
                let (h, w) = (tiles[i].len(), tiles[j].len());
                let mut g = buf.0.slice_mut(s![..h, ..w]);
                let (a, b) = (&packed[i], &packed[j]);
                product_packed(tok, &a.panels[0], &b.panels[1], g.view_mut(), upper_diagonal && i == j);
                f(i, j, g.view(), &a.norms, &b.norms)
            },
        )
        .collect()
}

thread_local! {
    /// The tile buffer of this thread, kept between calls so that its pages are not faulted in again each time
    /// (at most `MAX_TILE × (MAX_TILE + 16)` f32, about 1 MiB, per thread).
    static TILE_BUFFER: Cell<Option<Array2<f32>>> = const { Cell::new(None) };
}

/// One block of rows to pack: `rows` of `src`, once per panel width in `widths`, with their squared norms if `norms`.
struct PackJob<'j, 's, 'a, S, C> {
    src: &'j RowSource<'s, 'a, S, C>,
    rows: Range<usize>,
    widths: Vec<usize>,
    norms: bool,
}

/// A packed block of rows: one [`Panels`] per width of its job, and the squared norms (f64) of its f32 rows (empty
/// unless asked for).
struct PackedRows<'p> {
    panels: Vec<Panels<'p, f32>>,
    norms: Vec<f64>,
}

/// Packs every job into `store` (resized as needed), jobs in parallel; returns them in order. Every panel starts on a
/// 64-byte boundary of the store.
fn pack_all<'p, S, C>(
    tok: Avx512,
    store: &'p mut PackStore<f32>,
    jobs: &[PackJob<'_, '_, '_, S, C>],
) -> Vec<PackedRows<'p>>
where
    S: Copy + Sync,
    C: Fn(S) -> f32 + Sync,
{
    // Segment lengths rounded up to 16 floats, so that each one starts 64-byte aligned.
    let seg = |job: &PackJob<'_, '_, '_, S, C>, w: usize| panels_len(job.rows.len(), job.src.k, w).next_multiple_of(16);
    let total: usize = jobs.iter().map(|j| j.widths.iter().map(|&w| seg(j, w)).sum::<usize>()).sum();
    let mut rest = store.slice_mut(total);
    let mut outs: Vec<Vec<&'p mut [f32]>> = Vec::with_capacity(jobs.len());
    for job in jobs {
        let mut mine = Vec::with_capacity(job.widths.len());
        for &w in &job.widths {
            let (head, tail) = rest.split_at_mut(seg(job, w));
            mine.push(head);
            rest = tail;
        }
        outs.push(mine);
    }
    jobs.par_iter()
        .zip(outs)
        .map(|(job, mut bufs)| {
            let mut norms = vec![0.0; if job.norms { job.rows.len() } else { 0 }];
            let mut targets: Vec<(usize, &mut [f32])> =
                job.widths.iter().copied().zip(bufs.iter_mut().map(|b| &mut **b)).collect();
            pack_rows_avx512(tok, job.src, job.rows.clone(), &mut targets, &mut norms);
            let k = job.src.k;
            let panels = job
                .widths
                .iter()
                .zip(bufs)
                .map(|(&width, data)| Panels { lines: job.rows.len(), k, width, data })
                .collect();
            PackedRows { panels, norms }
        })
        .collect()
}

/// [`pack_rows`] compiled with AVX-512F (wide conversions and copies).
#[cfg(target_arch = "x86_64")]
fn pack_rows_avx512<S: Copy, C: Fn(S) -> f32>(
    _tok: Avx512,
    src: &RowSource<'_, '_, S, C>,
    range: Range<usize>,
    targets: &mut [(usize, &mut [f32])],
    norms: &mut [f64],
) {
    #[target_feature(enable = "avx512f")]
    fn inner<S: Copy, C: Fn(S) -> f32>(
        src: &RowSource<'_, '_, S, C>,
        range: Range<usize>,
        targets: &mut [(usize, &mut [f32])],
        norms: &mut [f64],
    ) {
        pack_rows(src, range, targets, norms);
    }
    // SAFETY: the `Avx512` token exists only when `detect` found AVX-512F on this CPU.
    unsafe { inner(src, range, targets, norms) }
}

#[cfg(not(target_arch = "x86_64"))]
fn pack_rows_avx512<S: Copy, C: Fn(S) -> f32>(
    _tok: Avx512,
    src: &RowSource<'_, '_, S, C>,
    range: Range<usize>,
    targets: &mut [(usize, &mut [f32])],
    norms: &mut [f64],
) {
    pack_rows(src, range, targets, norms);
}

/// Columns of the source converted per block while packing (the `rows × PACK_K` block stays in L1/L2).
const PACK_K: usize = 256;

/// Packs rows `range` of `src` into each `(width, buffer)` of `targets` (every float of the first
/// [`Panels::len`] written, padding rows as zeros), in one pass over the rows: a block of [`PACK_K`] columns of
/// all rows is converted to f32 into a k-major scratch (the transposition happens there, once), from which every
/// layout takes contiguous runs. When `norms` is not empty it receives `Σ v²` (f64) of each converted row.
#[inline(always)]
fn pack_rows<S: Copy, C: Fn(S) -> f32>(
    src: &RowSource<'_, '_, S, C>,
    range: Range<usize>,
    targets: &mut [(usize, &mut [f32])],
    norms: &mut [f64],
) {
    let (h, k) = (range.len(), src.k);
    let src_rows: Vec<Cow<'_, [S]>> = range
        .map(|r| {
            let row = (src.rows)(r);
            assert_eq!(row.len(), k, "pack: row {r} has {} values, not {k}", row.len());
            match row.to_slice() {
                Some(sl) => Cow::Borrowed(sl),
                None => Cow::Owned(row.to_vec()),
            }
        })
        .collect();
    // Column t of the block at t·hp; hp padded so that the lines of consecutive t do not alias in L1.
    let hp = padded_stride::<f32>(h);
    let mut scratch = vec![0.0f32; PACK_K * hp];
    let mut converted = [0.0f32; PACK_K];
    let mut k0 = 0;
    while k0 < k {
        let kb = PACK_K.min(k - k0);
        for (r, row) in src_rows.iter().enumerate() {
            let conv = &mut converted[..kb];
            for (c, &v) in conv.iter_mut().zip(&row[k0..k0 + kb]) {
                *c = (src.convert)(v);
            }
            for (line, &c) in scratch.chunks_exact_mut(hp).zip(conv.iter()) {
                line[r] = c;
            }
            if let Some(n) = norms.get_mut(r) {
                *n += sum_sq_f64(conv);
            }
        }
        for (width, out) in targets.iter_mut() {
            match *width {
                MR => copy_block::<MR>(&scratch, hp, h, k, k0, kb, out),
                NR => copy_block::<NR>(&scratch, hp, h, k, k0, kb, out),
                w => copy_block_any(&scratch, hp, h, k, k0, kb, w, out),
            }
        }
        k0 += kb;
    }
}

/// Columns `k0 .. k0 + kb` of the k-major `scratch` (column `t` of the `h` rows at `t·hp`) into the panels of `W`
/// rows of `out`, zero padding rows. `W` a constant, so that the copies are a few vector moves.
#[inline(always)]
fn copy_block<const W: usize>(scratch: &[f32], hp: usize, h: usize, k: usize, k0: usize, kb: usize, out: &mut [f32]) {
    for (q, panel) in out[..panels_len(h, k, W)].chunks_exact_mut(W * k).enumerate() {
        let valid = W.min(h - q * W);
        let dst = &mut panel[k0 * W..(k0 + kb) * W];
        for (col, line) in dst.chunks_exact_mut(W).zip(scratch.chunks_exact(hp)) {
            if valid == W {
                col.copy_from_slice(&line[q * W..q * W + W]);
            } else {
                col[..valid].copy_from_slice(&line[q * W..q * W + valid]);
                col[valid..].fill(0.0);
            }
        }
    }
}

/// [`copy_block`] for any width.
#[allow(clippy::too_many_arguments)]
fn copy_block_any(scratch: &[f32], hp: usize, h: usize, k: usize, k0: usize, kb: usize, w: usize, out: &mut [f32]) {
    for (q, panel) in out[..panels_len(h, k, w)].chunks_exact_mut(w * k).enumerate() {
        let valid = w.min(h - q * w);
        let dst = &mut panel[k0 * w..(k0 + kb) * w];
        for (col, line) in dst.chunks_exact_mut(w).zip(scratch.chunks_exact(hp)) {
            col[..valid].copy_from_slice(&line[q * w..q * w + valid]);
            col[valid..].fill(0.0);
        }
    }
}

/// `Σ v²` in f64 with 8 independent accumulators (vectorises).
#[inline(always)]
fn sum_sq_f64(x: &[f32]) -> f64 {
    let mut acc = [0.0f64; 8];
    let chunks = x.chunks_exact(8);
    let rest: f64 = chunks.remainder().iter().map(|&v| f64::from(v) * f64::from(v)).sum();
    for c in chunks {
        for l in 0..8 {
            acc[l] += f64::from(c[l]) * f64::from(c[l]);
        }
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + rest
}

/// The f32 packing buffer kept between calls ([`PackStore`]).
static SPARE: Mutex<Vec<f32>> = Mutex::new(Vec::new());

/// Frees the packing buffers that the f32 kernel and the f64 covariance kernel keep between calls (at most 256 MiB
/// each; the f32 one 2 × 4 bytes per pooled value of the last large MMD, e.g. 64 MiB for 4,000 × 2,048, the f64 one
/// 2 × 8 bytes per value of the last CORAL's two samples, e.g. 125 MiB for 2 × 2,000 × 2,048).
pub fn release_buffers() {
    packed::release::<f32>();
    packed::release::<f64>();
}

impl Element for f32 {
    const ZERO: f32 = 0.0;
    const MR: usize = MR;
    const NR: usize = NR;
    const STRIDE_AVOID: usize = 256;

    fn spare() -> &'static Mutex<Vec<f32>> {
        &SPARE
    }

    fn tile_slot() -> &'static LocalKey<Cell<Option<Array2<f32>>>> {
        &TILE_BUFFER
    }

    #[allow(clippy::too_many_arguments)]
    unsafe fn kernel(
        kc: usize,
        a: *const f32,
        b: *const f32,
        a_next: *const f32,
        prefetch_b: bool,
        c: *mut f32,
        ldc: usize,
        mr: usize,
        nr: usize,
        accumulate: bool,
    ) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the caller upholds `kernel_14x32`'s contract, which is this method's.
        unsafe {
            kernel_14x32(kc, a, b, a_next, prefetch_b, c, ldc, mr, nr, accumulate)
        }
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("no Avx512 token is made on this architecture")
    }
}

/// k-steps ahead at which the kernel prefetches its own `B` slice (the first `A` panel of a pass finds it in L3).
const PREFETCH_B_STEPS: usize = 32;

/// k-steps per iteration of the kernel's main loop (fewer loop-control µops competing with the FMAs for ports).
const UNROLL: usize = 4;

/// The AVX-512F micro-kernel: a 14 × 32 block of `C` in 28 zmm accumulators. Software prefetches: the rows of
/// the `C` block at the start (for writing), `a_next` (the next micro-panel of `A`) one cache line per step and,
/// with `prefetch_b` (the first micro-panel of `A` against this `B` slice, which finds it in L3), the `B` slice
/// [`PREFETCH_B_STEPS`] steps ahead.
///
/// # Safety
/// The CPU must support AVX-512F; `a` must be valid for reads of `kc·MR` floats and `b` of `kc·NR` floats; for
/// `r < mr ≤ MR`, `col < nr ≤ NR`, `c + r·ldc + col` must be valid for reads and writes and not aliased. `a_next`
/// is only prefetched (any address).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn kernel_14x32(
    kc: usize,
    a: *const f32,
    b: *const f32,
    a_next: *const f32,
    prefetch_b: bool,
    c: *mut f32,
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
    let mut acc = [[_mm512_setzero_ps(); 2]; MR];
    // One step of k: two vectors of B, 14 broadcasts of A, 28 FMAs.
    macro_rules! step {
        ($kk:expr) => {{
            let kk = $kk;
            // SAFETY: kk < kc, so the reads stay within the first kc·NR floats of b and kc·MR floats of a.
            unsafe {
                let bp = b.add(kk * NR);
                let b0 = _mm512_loadu_ps(bp);
                let b1 = _mm512_loadu_ps(bp.add(16));
                let ap = a.add(kk * MR);
                for (r, row) in acc.iter_mut().enumerate() {
                    let ar = _mm512_set1_ps(*ap.add(r));
                    row[0] = _mm512_fmadd_ps(ar, b0, row[0]);
                    row[1] = _mm512_fmadd_ps(ar, b1, row[1]);
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
                _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(16).cast::<i8>());
                _mm_prefetch::<_MM_HINT_T0>(a_next.wrapping_add((k4 + u) * 16).cast::<i8>());
                step!(k4 + u);
            }
        }
    } else {
        for k4 in (0..main).step_by(UNROLL) {
            for u in 0..UNROLL {
                _mm_prefetch::<_MM_HINT_T0>(a_next.wrapping_add((k4 + u) * 16).cast::<i8>());
                step!(k4 + u);
            }
        }
    }
    for kk in main..kc {
        step!(kk);
    }
    let lanes = |n: usize| -> __mmask16 { if n >= 16 { 0xffff } else { ((1u32 << n) - 1) as __mmask16 } };
    let (m0, m1) = (lanes(nr), lanes(nr.saturating_sub(16)));
    for (r, row) in acc.iter().enumerate().take(mr) {
        // SAFETY: r < mr, and the masks enable only columns < nr: within the caller's valid block of C.
        unsafe {
            let cp = c.add(r * ldc);
            let (mut x0, mut x1) = (row[0], row[1]);
            if accumulate {
                x0 = _mm512_add_ps(x0, _mm512_maskz_loadu_ps(m0, cp));
                x1 = _mm512_add_ps(x1, _mm512_maskz_loadu_ps(m1, cp.add(16)));
            }
            _mm512_mask_storeu_ps(cp, m0, x0);
            _mm512_mask_storeu_ps(cp.add(16), m1, x1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packed::KC;
    use rand::{Rng, SeedableRng};

    fn random(rng: &mut impl Rng, rows: usize, cols: usize) -> Array2<f32> {
        Array2::from_shape_simple_fn((rows, cols), || rng.random::<f32>() * 2.0 - 1.0)
    }

    /// Checks `c ≈ A·Bᵀ` against an f64 triple loop, to `1e-5 Σ_k |a_ik||b_jk|` per element (f32 rounding of a
    /// length-k dot product is ≲ k·2⁻²⁴ of that sum); only `i ≤ j` when `upper`.
    fn check(a: ArrayView2<'_, f32>, b: ArrayView2<'_, f32>, c: ArrayView2<'_, f32>, upper: bool, what: &str) {
        assert_eq!(c.dim(), (a.nrows(), b.nrows()), "{what}");
        for i in 0..a.nrows() {
            for j in 0..b.nrows() {
                if upper && i > j {
                    continue;
                }
                let (mut exact, mut mag) = (0.0f64, 0.0f64);
                for (&x, &y) in a.row(i).iter().zip(b.row(j)) {
                    exact += f64::from(x) * f64::from(y);
                    mag += (f64::from(x) * f64::from(y)).abs();
                }
                let got = f64::from(c[[i, j]]);
                assert!((got - exact).abs() <= 1e-5 * mag + 1e-30, "{what}: ({i}, {j}) got {got}, want {exact}");
            }
        }
    }

    /// Shapes covering partial MR/NR panels, k below 16, k not a multiple of KC, 1×1 and empty.
    const SHAPES: [(usize, usize, usize); 14] = [
        (1, 1, 1),
        (1, 1, 0),
        (0, 5, 3),
        (4, 0, 3),
        (3, 2, 5),
        (MR, NR, 16),
        (MR + 1, NR + 1, 15),
        (2 * MR - 1, 3 * NR - 5, KC),
        (13, 31, KC + 1),
        (29, 65, 2 * KC + 7),
        (57, 33, 100),
        (100, 7, 9),
        (5, 100, 1000),
        (MR * 3, NR * 2, 3 * KC),
    ];

    #[test]
    fn matmul_nt_matches_naive_on_both_paths() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for &(m, n, k) in &SHAPES {
            let (a, b) = (random(&mut rng, m, k), random(&mut rng, n, k));
            for path in [detect(), Path::Portable] {
                let mut c = Array2::<f32>::from_elem((m, n), f32::NAN);
                matmul_nt_on(path, a.view(), b.view(), c.view_mut());
                check(a.view(), b.view(), c.view(), false, &format!("{path:?} {m}x{n}x{k}"));
            }
        }
        // More rows than one block of the result, and a transposed (non-contiguous) operand.
        let (a, bt) = (random(&mut rng, MATMUL_BLOCK + 37, 70), random(&mut rng, 70, 300));
        for path in [detect(), Path::Portable] {
            let mut c = Array2::<f32>::from_elem((a.nrows(), 300), f32::NAN);
            matmul_nt_on(path, a.view(), bt.t(), c.view_mut());
            check(a.view(), bt.t(), c.view(), false, &format!("{path:?} blocks"));
            // A transposed output (column-major): written correctly too.
            let mut ct = Array2::<f32>::from_elem((300, a.nrows()), f32::NAN);
            matmul_nt_on(path, a.view(), bt.t(), ct.view_mut().reversed_axes());
            check(a.view(), bt.t(), ct.t(), false, &format!("{path:?} transposed output"));
        }
        assert_eq!(matmul_nt(a.view(), bt.t()).dim(), (a.nrows(), 300));
    }

    /// `a` packed in panels of `width` (through the production packer), as an owned buffer.
    fn pack_owned(a: ArrayView2<'_, f32>, width: usize) -> Vec<f32> {
        let rows = |r: usize| a.row(r);
        let src = RowSource::f32(&rows, a.ncols());
        let mut buf = vec![f32::NAN; panels_len(a.nrows(), a.ncols(), width)];
        pack_rows(&src, 0..a.nrows(), &mut [(width, &mut buf[..])], &mut []);
        buf
    }

    fn panels<'d>(a: ArrayView2<'_, f32>, width: usize, data: &'d [f32]) -> Panels<'d, f32> {
        Panels { lines: a.nrows(), k: a.ncols(), width, data }
    }

    #[test]
    fn packed_product_matches_naive_including_upper_triangle() {
        let Path::Avx512(tok) = detect() else {
            return; // no AVX-512F on this CPU: the fallback is tested in linalg
        };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        for &(m, n, k) in &SHAPES {
            let (a, b) = (random(&mut rng, m, k), random(&mut rng, n, k));
            // Inside a larger buffer with a padded row stride, garbage around it: only the h×w block is written.
            let mut buf = Array2::<f32>::from_elem((m + 2, n + 19), f32::NAN);
            let (pa, pb, pa_nr) = (pack_owned(a.view(), MR), pack_owned(b.view(), NR), pack_owned(a.view(), NR));
            product_packed(
                tok,
                &panels(a.view(), MR, &pa),
                &panels(b.view(), NR, &pb),
                buf.slice_mut(s![1..m + 1, 2..n + 2]),
                false,
            );
            check(a.view(), b.view(), buf.slice(s![1..m + 1, 2..n + 2]), false, &format!("{m}x{n}x{k}"));
            assert!(buf.row(0).iter().chain(buf.row(m + 1)).all(|v| v.is_nan()), "{m}x{n}x{k}: rows outside written");
            assert!(buf.column(1).iter().chain(buf.column(n + 2)).all(|v| v.is_nan()), "{m}x{n}x{k}: columns outside");
            // Symmetric diagonal tile: the upper triangle only.
            let mut sym = Array2::<f32>::from_elem((m, m), f32::NAN);
            product_packed(tok, &panels(a.view(), MR, &pa), &panels(a.view(), NR, &pa_nr), sym.view_mut(), true);
            check(a.view(), a.view(), sym.view(), true, &format!("upper {m}x{k}"));
        }
    }

    #[test]
    fn panels_are_aligned_zero_padded_and_normed() {
        let Path::Avx512(tok) = detect() else {
            return; // no AVX-512F on this CPU: nothing packs
        };
        let z = Array2::from_shape_fn((5, 3), |(i, j)| (10 * i + j) as f64);
        let rows = |r: usize| z.row(r);
        let src = RowSource { rows: &rows, k: 3, convert: |v: f64| v as f32 };
        let mut store = PackStore::<f32> { buf: Vec::new() };
        // Stale data in a reused store must not leak into the padding.
        store.slice_mut(200).fill(f32::NAN);
        let jobs = [
            PackJob { src: &src, rows: 0..5, widths: vec![4, 2], norms: true },
            PackJob { src: &src, rows: 2..5, widths: vec![3], norms: false },
        ];
        let packed = pack_all(tok, &mut store, &jobs);
        let (p, p2, q) = (packed[0].panels[0], packed[0].panels[1], packed[1].panels[0]);
        for x in [p, p2, q] {
            assert_eq!(x.panel_from(0, 0).as_ptr().align_offset(64), 0);
        }
        assert_eq!((p.count(), p2.count(), q.count()), (2, 3, 1));
        assert_eq!(p.panel_from(0, 0), &[0.0, 10.0, 20.0, 30.0, 1.0, 11.0, 21.0, 31.0, 2.0, 12.0, 22.0, 32.0]);
        assert_eq!(p.panel_from(1, 1), &[41.0, 0.0, 0.0, 0.0, 42.0, 0.0, 0.0, 0.0]);
        assert_eq!(p2.panel_from(2, 0), &[40.0, 0.0, 41.0, 0.0, 42.0, 0.0]);
        assert_eq!(q.panel_from(0, 2), &[22.0, 32.0, 42.0]);
        let want: Vec<f64> = (0..5).map(|i| (0..3).map(|j| ((10 * i + j) as f64).powi(2)).sum()).collect();
        assert_eq!(packed[0].norms, want);
        assert!(packed[1].norms.is_empty());
    }
}
