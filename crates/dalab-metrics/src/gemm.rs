//! The matrix products behind the Gram tiles of the MMD (f32 and f64), the covariance products of CORAL and
//! [`matmul_nt`]: faer's matrix product (`faer::linalg::matmul`, its own gemm kernels chosen at run time: AVX-512,
//! AVX2 + FMA, NEON, scalar), one sequential product per strip of tiles on the rayon pool (`linalg::map_strips`), so
//! that results do not depend on the thread count. matrixmultiply (ndarray's `general_mat_mul`) stays selectable as
//! a reference (`DALAB_GEMM=matrixmultiply`).
//!
//! Until December 2026 the crate had its own packed AVX-512F kernels for f32 and f64 (~1,300 lines of intrinsics)
//! and used matrixmultiply on every other CPU. Measured side by side with `cargo xtask bench-metrics --kernels …`
//! (benches/README.md, "GEMM kernels"), faer was within 2% (1 thread) and 7% (2 threads) of the own kernel on the
//! headline biased MMD (n = 2,000, d = 2,048) and 1.13–1.21× faster than matrixmultiply; the own kernels were removed.

use ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis, s};
use rayon::prelude::*;
use std::sync::OnceLock;

/// Which implementation computes the products.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Path {
    /// faer's matrix product (`faer::linalg::matmul`), sequential per strip or block.
    Faer,
    /// `ndarray::linalg::general_mat_mul` (matrixmultiply).
    Portable,
}

/// Whether this CPU has AVX-512F (detected once): the MMD's kernel sums are compiled for it too.
pub(crate) fn has_avx512f() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f") {
            return true;
        }
        false
    })
}

/// The environment variable that chooses the product kernel (for benchmarks and comparisons): `faer` or
/// `matrixmultiply`; unset, `auto` or anything else: [`Kernel::auto`].
pub const KERNEL_VAR: &str = "DALAB_GEMM";

/// The product kernels, as [`KERNEL_VAR`] names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// faer's matrix product.
    Faer,
    /// matrixmultiply through `ndarray::linalg::general_mat_mul`.
    Matrixmultiply,
}

impl Kernel {
    /// Every kernel, in the order the benchmark reports them.
    pub const ALL: [Kernel; 2] = [Kernel::Faer, Kernel::Matrixmultiply];

    /// The name [`KERNEL_VAR`] takes.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Faer => "faer",
            Kernel::Matrixmultiply => "matrixmultiply",
        }
    }

    /// The kernel of a [`KERNEL_VAR`] value (`auto` or empty: [`Kernel::auto`]); an error names the valid values.
    pub fn parse(value: &str) -> Result<Kernel, String> {
        match value.trim() {
            "" | "auto" => Ok(Kernel::auto()),
            v => Kernel::ALL
                .into_iter()
                .find(|k| k.name() == v)
                .ok_or_else(|| format!("{KERNEL_VAR}={v}: unknown kernel (expected auto, faer or matrixmultiply)")),
        }
    }

    /// The default: faer, on every CPU.
    pub fn auto() -> Kernel {
        Kernel::Faer
    }

    pub(crate) fn path(self) -> Path {
        match self {
            Kernel::Faer => Path::Faer,
            Kernel::Matrixmultiply => Path::Portable,
        }
    }
}

/// The kernel in use: [`KERNEL_VAR`] when it names one, else [`Kernel::auto`] (read once).
pub fn kernel() -> Kernel {
    static KERNEL: OnceLock<Kernel> = OnceLock::new();
    *KERNEL.get_or_init(|| {
        std::env::var(KERNEL_VAR).ok().and_then(|v| Kernel::parse(&v).ok()).unwrap_or_else(Kernel::auto)
    })
}

/// Every path (for tests that compare them).
#[cfg(test)]
pub(crate) fn all_paths() -> Vec<Path> {
    Kernel::ALL.into_iter().map(Kernel::path).collect()
}

/// The path of [`kernel`].
pub(crate) fn detect() -> Path {
    kernel().path()
}

/// Name of the product kernel in use, for benchmark reports.
pub fn kernel_name() -> &'static str {
    match detect() {
        Path::Faer => "faer (faer::linalg::matmul)",
        Path::Portable => "matrixmultiply (ndarray general_mat_mul)",
    }
}

/// `A · Bᵀ` in f32 (`A`: m × k, `B`: n × k; result m × n), on the rayon pool, by the kernel in use. Blocks of rows of
/// the result run in parallel, each one sequential product, so the result does not depend on the thread count.
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
    assert_eq!(out.dim(), (a.nrows(), b.nrows()), "matmul_nt: output shape");
    if out.is_empty() {
        return;
    }
    out.axis_chunks_iter_mut(Axis(0), MATMUL_BLOCK).into_par_iter().enumerate().for_each(|(q, mut strip)| {
        let rows = q * MATMUL_BLOCK..q * MATMUL_BLOCK + strip.nrows();
        crate::linalg::product_into(path, 1.0, a.slice(s![rows, ..]), b.t(), false, false, strip.view_mut());
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn random(rng: &mut impl Rng, rows: usize, cols: usize) -> Array2<f32> {
        Array2::from_shape_simple_fn((rows, cols), || rng.random::<f32>() * 2.0 - 1.0)
    }

    /// Checks `c ≈ A·Bᵀ` against an f64 triple loop, to `1e-5 Σ_k |a_ik||b_jk|` per element (f32 rounding of a
    /// length-k dot product is ≲ k·2⁻²⁴ of that sum).
    fn check(a: ArrayView2<'_, f32>, b: ArrayView2<'_, f32>, c: ArrayView2<'_, f32>, what: &str) {
        assert_eq!(c.dim(), (a.nrows(), b.nrows()), "{what}");
        for i in 0..a.nrows() {
            for j in 0..b.nrows() {
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

    /// Shapes with k below 16, odd edges, more than one block of rows, 1×1 and empty.
    const SHAPES: [(usize, usize, usize); 10] = [
        (1, 1, 1),
        (1, 1, 0),
        (0, 5, 3),
        (4, 0, 3),
        (3, 2, 5),
        (15, 33, 257),
        (29, 65, 519),
        (100, 7, 9),
        (5, 100, 1000),
        (MATMUL_BLOCK + 37, 70, 300),
    ];

    #[test]
    fn matmul_nt_matches_naive_on_both_paths() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for &(m, n, k) in &SHAPES {
            let (a, b) = (random(&mut rng, m, k), random(&mut rng, n, k));
            for path in all_paths() {
                let mut c = Array2::<f32>::from_elem((m, n), f32::NAN);
                matmul_nt_on(path, a.view(), b.view(), c.view_mut());
                check(a.view(), b.view(), c.view(), &format!("{path:?} {m}x{n}x{k}"));
            }
        }
        // A transposed (non-contiguous) operand, and a transposed (column-major) output.
        let (a, bt) = (random(&mut rng, MATMUL_BLOCK + 37, 70), random(&mut rng, 70, 300));
        for path in all_paths() {
            let mut c = Array2::<f32>::from_elem((a.nrows(), 300), f32::NAN);
            matmul_nt_on(path, a.view(), bt.t(), c.view_mut());
            check(a.view(), bt.t(), c.view(), &format!("{path:?} transposed operand"));
            let mut ct = Array2::<f32>::from_elem((300, a.nrows()), f32::NAN);
            matmul_nt_on(path, a.view(), bt.t(), ct.view_mut().reversed_axes());
            check(a.view(), bt.t(), ct.t(), &format!("{path:?} transposed output"));
        }
        assert_eq!(matmul_nt(a.view(), bt.t()).dim(), (a.nrows(), 300));
    }

    #[test]
    fn the_kernel_variable_names_a_kernel_or_falls_back() {
        assert_eq!(Kernel::parse("faer"), Ok(Kernel::Faer));
        assert_eq!(Kernel::parse(" matrixmultiply "), Ok(Kernel::Matrixmultiply));
        assert_eq!(Kernel::parse("auto"), Ok(Kernel::auto()));
        assert_eq!(Kernel::parse(""), Ok(Kernel::auto()));
        let e = Kernel::parse("dalab-avx512").unwrap_err();
        assert!(e.contains("DALAB_GEMM=dalab-avx512") && e.contains("faer or matrixmultiply"), "{e}");
        for k in Kernel::ALL {
            assert_eq!(Kernel::parse(k.name()), Ok(k));
        }
    }
}
