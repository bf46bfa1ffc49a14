//! What the packed AVX-512F products of [`gemm`](crate::gemm) (f32, the MMD's Gram tiles) and `gemm64` (f64, the
//! CORAL covariances) share: the panel layout, the buffers kept between calls, and the blocked loop over micro-tiles
//! around each element type's register kernel ([`Element::kernel`]).
//!
//! Layout: `lines` rows (f32: rows of `Z`; f64: columns of the centred samples) packed into zero-padded panels of
//! `width` lines; panel `q` holds lines `q·width ..` as `k` consecutive groups of `width` values (line `r`, step `kk`
//! at `kk·width + r`). The product `C = Ã B̃ᵀ` of an [`Element::MR`]-wide and an [`Element::NR`]-wide packing runs
//! `k` in blocks of [`KC`]; every entry of `C` is summed in the same order whatever the tiling or thread count.

use crate::gemm::Avx512;
use ndarray::{Array2, ArrayViewMut2};
use std::cell::Cell;
use std::sync::{Mutex, PoisonError};
use std::thread::LocalKey;

/// Block of the shared dimension `k` (the `KC × NR` slice of a vector-side panel, 32 KiB, stays in L1).
pub(crate) const KC: usize = 256;

/// Largest packing buffer kept between calls, per element type (bytes).
const SPARE_MAX_BYTES: usize = 256 << 20;

/// Largest tile buffer a thread keeps between calls (bytes).
const TILE_KEEP_BYTES: usize = 4 << 20;

/// An element type with a packed AVX-512F micro-kernel.
pub(crate) trait Element: Copy + Send + Sync + 'static {
    const ZERO: Self;
    /// Lines of the broadcast side per micro-tile.
    const MR: usize;
    /// Lines of the vector side per micro-tile (two zmm).
    const NR: usize;
    /// Tile-buffer row strides avoid multiples of this many values (so that the rows of a micro-tile do not all map
    /// to the same L1 sets).
    const STRIDE_AVOID: usize;
    /// The packing buffer of this type kept between calls.
    fn spare() -> &'static Mutex<Vec<Self>>;
    /// This thread's tile buffer, kept between calls.
    fn tile_slot() -> &'static LocalKey<Cell<Option<Array2<Self>>>>;
    /// `C[..mr, ..nr] (+)= Ã · B̃ᵀ` over `kc` steps, with prefetches of `a_next` (and of `b` ahead when `prefetch_b`).
    ///
    /// # Safety
    /// The CPU must support AVX-512F; `a` must be valid for reads of `kc·MR` values and `b` of `kc·NR` values; for
    /// `r < mr ≤ MR`, `col < nr ≤ NR`, `c + r·ldc + col` must be valid for reads and writes and not aliased. `a_next`
    /// is only prefetched (any address).
    #[allow(clippy::too_many_arguments)]
    unsafe fn kernel(
        kc: usize,
        a: *const Self,
        b: *const Self,
        a_next: *const Self,
        prefetch_b: bool,
        c: *mut Self,
        ldc: usize,
        mr: usize,
        nr: usize,
        accumulate: bool,
    );
}

/// Values of `T` in 64 bytes.
const fn lanes<T>() -> usize {
    64 / std::mem::size_of::<T>()
}

/// Values taken by `lines` lines over `k` steps packed in panels of `width`.
pub(crate) fn panels_len(lines: usize, k: usize, width: usize) -> usize {
    lines.div_ceil(width) * width * k
}

/// Row stride of a tile buffer with `edge` columns: a multiple of 64 bytes that is not a multiple of
/// [`Element::STRIDE_AVOID`] values.
pub(crate) fn padded_stride<T: Element>(edge: usize) -> usize {
    let l = lanes::<T>();
    let ld = edge.next_multiple_of(l).max(l);
    if ld.is_multiple_of(T::STRIDE_AVOID) { ld + l } else { ld }
}

/// Lines packed in panels of `width` (see the module documentation), borrowed from a [`PackStore`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Panels<'p, T> {
    pub(crate) lines: usize,
    pub(crate) k: usize,
    pub(crate) width: usize,
    pub(crate) data: &'p [T],
}

impl<'p, T> Panels<'p, T> {
    /// Panel `q` from step `k0` on (`(k − k0) × width` values).
    pub(crate) fn panel_from(&self, q: usize, k0: usize) -> &'p [T] {
        let panel = self.width * self.k;
        &self.data[q * panel + k0 * self.width..(q + 1) * panel]
    }

    pub(crate) fn count(&self) -> usize {
        self.lines.div_ceil(self.width)
    }
}

/// Frees the packing buffer of `T` kept between calls.
pub(crate) fn release<T: Element>() {
    drop(std::mem::take(&mut *T::spare().lock().unwrap_or_else(PoisonError::into_inner)));
}

/// A 64-byte aligned buffer taken from [`Element::spare`] and given back when dropped: as BLAS libraries keep
/// theirs, since fresh memory costs a page fault per 4 KiB on first touch (about 25 ms per 64 MiB on a virtual
/// machine), more than packing itself.
pub(crate) struct PackStore<T: Element> {
    pub(crate) buf: Vec<T>,
}

impl<T: Element> PackStore<T> {
    pub(crate) fn take() -> Self {
        Self { buf: std::mem::take(&mut *T::spare().lock().unwrap_or_else(PoisonError::into_inner)) }
    }

    /// `len` values starting on a 64-byte boundary (contents unspecified: the packers overwrite all of them).
    pub(crate) fn slice_mut(&mut self, len: usize) -> &mut [T] {
        let l = lanes::<T>();
        let need = len + l;
        if self.buf.len() < need {
            // Fresh zeroed memory (calloc: untouched pages cost nothing until written).
            self.buf = Vec::new();
            self.buf = vec![T::ZERO; need];
        }
        // Elements to skip to reach a 64-byte boundary (`align_offset` may give up: no skip then).
        let off = match self.buf.as_ptr().align_offset(64) {
            o if o < l => o,
            _ => 0,
        };
        &mut self.buf[off..off + len]
    }
}

impl<T: Element> Drop for PackStore<T> {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        if buf.len() * std::mem::size_of::<T>() <= SPARE_MAX_BYTES {
            let mut spare = T::spare().lock().unwrap_or_else(PoisonError::into_inner);
            if buf.len() > spare.len() {
                *spare = buf;
            }
        }
    }
}

/// A thread's tile buffer, given back to its thread-local slot when dropped.
pub(crate) struct TileBuffer<T: Element>(pub(crate) Array2<T>);

impl<T: Element> TileBuffer<T> {
    /// A buffer of at least `rows × cols` (reused when the cached one is large enough).
    pub(crate) fn take(rows: usize, cols: usize) -> Self {
        match T::tile_slot().with(Cell::take) {
            Some(b) if b.nrows() >= rows && b.ncols() >= cols => Self(b),
            _ => Self(Array2::from_elem((rows, cols), T::ZERO)),
        }
    }
}

impl<T: Element> Drop for TileBuffer<T> {
    fn drop(&mut self) {
        let b = std::mem::replace(&mut self.0, Array2::from_elem((0, 0), T::ZERO));
        // Keep the larger of the two, and nothing above TILE_KEEP_BYTES.
        if b.len() * std::mem::size_of::<T>() <= TILE_KEEP_BYTES {
            T::tile_slot().with(|slot| match slot.take() {
                Some(old) if old.len() > b.len() => slot.set(Some(old)),
                _ => slot.set(Some(b)),
            });
        }
    }
}

/// `C = Ã · B̃ᵀ` for `a` packed in [`Element::MR`]-wide panels and `b` in [`Element::NR`]-wide panels of the same
/// `k`; `c` is `a.lines × b.lines` with unit column stride. With `upper`, `a` and `b` are the same lines and
/// micro-tiles wholly below the diagonal are skipped (those entries of `c` are left as they were).
pub(crate) fn product_packed<T: Element>(
    tok: Avx512,
    a: &Panels<'_, T>,
    b: &Panels<'_, T>,
    mut c: ArrayViewMut2<'_, T>,
    upper: bool,
) {
    let (mr_max, nr_max) = (T::MR, T::NR);
    assert!(a.width == mr_max && b.width == nr_max && a.k == b.k, "product_packed: panels do not match");
    assert_eq!(c.dim(), (a.lines, b.lines), "product_packed: output shape");
    let k = a.k;
    let mut k0 = 0;
    // At least one pass, so that k = 0 writes zeros.
    loop {
        let kc = KC.min(k - k0);
        for jp in 0..b.count() {
            let (c0, nr) = (jp * nr_max, nr_max.min(b.lines - jp * nr_max));
            let bp = &b.panel_from(jp, k0)[..kc * nr_max];
            // Micro-tiles wholly below the diagonal (every row after every column) are skipped when `upper`.
            let rows = if upper { a.count().min((c0 + nr).div_ceil(mr_max)) } else { a.count() };
            for ip in 0..rows {
                let (r0, mr) = (ip * mr_max, mr_max.min(a.lines - ip * mr_max));
                let ap = &a.panel_from(ip, k0)[..kc * mr_max];
                // The next A slice of this pass, prefetched while this one is computed.
                let next = if ip + 1 < rows { &a.panel_from(ip + 1, k0)[..kc * mr_max] } else { ap };
                micro_tile(tok, kc, ap, bp, next, &mut c, (r0, c0, mr, nr), k0 > 0);
            }
        }
        k0 += kc;
        if k0 >= k {
            break;
        }
    }
}

/// One micro-tile: `c[r0.., c0..] (+)= Ã · B̃ᵀ`, `mr × nr` (at most `MR × NR`), with `Ã` = `kc × MR` packed values,
/// `B̃` = `kc × NR`; `c` has unit column stride.
#[allow(clippy::too_many_arguments)]
fn micro_tile<T: Element>(
    _tok: Avx512,
    kc: usize,
    a: &[T],
    b: &[T],
    a_next: &[T],
    c: &mut ArrayViewMut2<'_, T>,
    (r0, c0, mr, nr): (usize, usize, usize, usize),
    accumulate: bool,
) {
    assert!(a.len() >= kc * T::MR && b.len() >= kc * T::NR, "micro_tile: packed operands too short");
    assert!(mr <= T::MR && nr <= T::NR && r0 + mr <= c.nrows() && c0 + nr <= c.ncols(), "micro_tile: block outside C");
    assert!((c.strides()[1] == 1 || nr <= 1) && c.strides()[0] >= 0, "micro_tile: C needs unit column stride");
    if mr == 0 || nr == 0 {
        return;
    }
    let ldc = c.strides()[0] as usize;
    // SAFETY: the `Avx512` token exists only when `gemm::detect` found AVX-512F on this CPU. `a` and `b` hold at
    // least `kc·MR` and `kc·NR` values (checked above). `c` is a live mutable view with row stride `ldc` and column
    // stride 1 (checked; for `nr = 1` the column stride is never used), and the block `r0 .. r0 + mr`,
    // `c0 .. c0 + nr` lies inside it (checked), so element `(r0 + r, c0 + col)` for `r < mr`, `col < nr` is at
    // `c.as_mut_ptr() + (r0 + r)·ldc + c0 + col` and is valid for reads and writes; the kernel touches only those
    // (masked loads and stores for the columns, a row loop bounded by `mr`). `a_next` is only prefetched.
    unsafe {
        let corner = c.as_mut_ptr().add(r0 * ldc + c0);
        T::kernel(kc, a.as_ptr(), b.as_ptr(), a_next.as_ptr(), r0 == 0, corner, ldc, mr, nr, accumulate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_strides_are_64_byte_multiples_that_avoid_the_set_period() {
        assert_eq!(padded_stride::<f32>(0), 16);
        assert_eq!(padded_stride::<f32>(500), 512 + 16);
        assert_eq!(padded_stride::<f32>(250), 256 + 16);
        assert_eq!(padded_stride::<f32>(300), 304);
        assert_eq!(padded_stride::<f64>(224), 224);
        assert_eq!(padded_stride::<f64>(512), 520);
        assert_eq!(padded_stride::<f64>(0), 8);
    }

    #[test]
    fn panels_index_their_layout() {
        let data: Vec<f64> = (0..24).map(f64::from).collect();
        // 5 lines, k = 3, width 4: two panels of 4 × 3.
        assert_eq!(panels_len(5, 3, 4), 24);
        let p = Panels { lines: 5, k: 3, width: 4, data: &data };
        assert_eq!(p.count(), 2);
        assert_eq!(p.panel_from(1, 2), &[20.0, 21.0, 22.0, 23.0]);
        assert_eq!(p.panel_from(0, 1).len(), 8);
    }
}
