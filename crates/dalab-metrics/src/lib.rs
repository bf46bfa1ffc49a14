//! Divergence metrics for domain adaptation, as pure functions on `ndarray` (no libtorch):
//!
//! - [`mmd::mmd2`]: MMD² with biased, unbiased and linear-time estimators, Gaussian (multi-)kernels or the
//!   linear kernel, an explicit bandwidth policy and an optional seeded permutation test;
//! - [`adist::proxy_a_distance`]: proxy A-distance `2(1 − 2ε)` from a linear SVM domain classifier;
//! - [`coral::coral_distance`] and [`coral::CoralTransform`]: CORAL distance and alignment;
//! - [`report`]: all of them for every pair of named domains, rendered as a table, CSV and JSON.
//! - [`gemm`]: the matrix products of the Gram and covariance tiles (faer's) and the f32 `A · Bᵀ` product.
//!
//! Every function validates its input and returns [`MetricsError`] naming the problem; results carry the
//! settings that produced them. Formulas and defaults: `docs/metrics.md`.

pub mod adist;
mod centred;
pub mod coral;
pub mod error;
pub mod gemm;
mod linalg;
pub mod mmd;
pub mod options;
pub mod report;
pub mod validate;

pub use error::{MetricsError, Result};

#[cfg(test)]
mod prop_tests;
#[cfg(test)]
mod reference_tests;

/// Runs `f` on a rayon pool of `threads` threads (`None`: the global pool, sized by `RAYON_NUM_THREADS` or the
/// number of cores). Results do not depend on the thread count.
pub fn with_threads<R: Send>(threads: Option<usize>, f: impl FnOnce() -> R + Send) -> Result<R> {
    match threads {
        None => Ok(f()),
        Some(0) => Err(validate::invalid_setting("threads", "must be at least 1")),
        Some(n) => rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .map(|pool| pool.install(f))
            .map_err(|e| validate::invalid_setting("threads", e.to_string())),
    }
}
