//! Property tests (proptest, few cases each to keep the suite fast).

use crate::adist::{ADistanceSettings, proxy_a_distance};
use crate::coral::coral_distance;
use crate::mmd::{BandwidthPolicy, Estimator, Kernel, MmdSettings, mmd2};
use crate::reference_tests::rand_distr_free::normal_matrix;
use ndarray::{Array1, Array2, Axis};
use proptest::prelude::*;
use rand::SeedableRng;

/// A matrix with `rows` in `2..=max_rows` rows, `d` columns, entries in [-5, 5].
fn matrix(max_rows: usize, d: usize) -> impl Strategy<Value = Array2<f64>> {
    (2..=max_rows).prop_flat_map(move |n| {
        prop::collection::vec(-5.0..5.0f64, n * d)
            .prop_map(move |v| Array2::from_shape_vec((n, d), v).unwrap_or_else(|_| Array2::zeros((n, d))))
    })
}

fn pair() -> impl Strategy<Value = (Array2<f64>, Array2<f64>)> {
    (1usize..=4).prop_flat_map(|d| (matrix(12, d), matrix(12, d)))
}

fn kernels() -> impl Strategy<Value = MmdSettings> {
    (0usize..3, 0usize..3, 0usize..2).prop_map(|(k, b, e)| MmdSettings {
        kernel: [Kernel::dan(), Kernel::gaussian(), Kernel::Linear][k].clone(),
        bandwidth: [
            BandwidthPolicy::MeanSquaredDistance,
            BandwidthPolicy::Median { max_points: 1000 },
            BandwidthPolicy::Fixed { sigma2: 3.0 },
        ][b]
            .clone(),
        estimator: [Estimator::Biased, Estimator::Unbiased][e],
        ..MmdSettings::default()
    })
}

/// Whether a bandwidth policy can resolve to 0 (all pooled points equal) — then an error is the right answer.
fn value(xs: &Array2<f64>, xt: &Array2<f64>, s: &MmdSettings) -> Option<f64> {
    mmd2(xs.view(), xt.view(), s).ok().map(|r| r.mmd2)
}

fn scale(xs: &Array2<f64>, xt: &Array2<f64>) -> f64 {
    1.0 + xs.iter().chain(xt.iter()).map(|v| v * v).fold(0.0, f64::max)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn biased_mmd_of_a_sample_with_itself_is_zero(x in matrix(12, 3), s in kernels()) {
        let s = MmdSettings { estimator: Estimator::Biased, ..s };
        if let Some(v) = value(&x, &x, &s) {
            prop_assert!(v.abs() <= 1e-12 * scale(&x, &x), "{v}");
        }
    }

    #[test]
    fn mmd_is_symmetric((xs, xt) in pair(), s in kernels()) {
        if let (Some(a), Some(b)) = (value(&xs, &xt, &s), value(&xt, &xs, &s)) {
            prop_assert!((a - b).abs() <= 1e-12 * scale(&xs, &xt), "{a} vs {b}");
        }
    }

    #[test]
    fn mmd_is_invariant_to_row_permutations((xs, xt) in pair(), s in kernels(), rot in 0usize..12) {
        let rot_s = rot % xs.nrows();
        let idx: Vec<usize> = (0..xs.nrows()).map(|i| (i + rot_s) % xs.nrows()).rev().collect();
        let ps = xs.select(Axis(0), &idx);
        let idx: Vec<usize> = (0..xt.nrows()).rev().collect();
        let pt = xt.select(Axis(0), &idx);
        if let (Some(a), Some(b)) = (value(&xs, &xt, &s), value(&ps, &pt, &s)) {
            prop_assert!((a - b).abs() <= 1e-12 * scale(&xs, &xt), "{a} vs {b}");
        }
    }

    #[test]
    fn mmd_is_invariant_to_a_common_translation((xs, xt) in pair(), s in kernels(), shift in -20.0..20.0f64) {
        let c = Array1::from_shape_fn(xs.ncols(), |j| shift * (1.0 + j as f64));
        let (ys, yt) = (&xs + &c, &xt + &c);
        if let (Some(a), Some(b)) = (value(&xs, &xt, &s), value(&ys, &yt, &s)) {
            let tol = 1e-10 * (scale(&xs, &xt) + scale(&ys, &yt));
            prop_assert!((a - b).abs() <= tol, "{a} vs {b}");
        }
    }

    #[test]
    fn coral_is_nonnegative_and_zero_for_equal_covariances((xs, xt) in pair(), shift in -20.0..20.0f64) {
        let r = coral_distance(xs.view(), xt.view()).unwrap();
        prop_assert!(r.coral >= 0.0);
        // A translated copy (reversed rows) has the same covariance.
        let idx: Vec<usize> = (0..xs.nrows()).rev().collect();
        let moved = xs.select(Axis(0), &idx) + shift;
        let z = coral_distance(xs.view(), moved.view()).unwrap();
        prop_assert!(z.coral <= 1e-24 * scale(&xs, &moved).powi(2), "{}", z.coral);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    #[test]
    fn a_distance_near_zero_for_one_distribution_and_near_two_when_separated(seed in 0u64..1000) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let xs = normal_matrix(&mut rng, 150, 3);
        let same = normal_matrix(&mut rng, 150, 3);
        let far = normal_matrix(&mut rng, 150, 3) + 8.0;
        let s = ADistanceSettings { seed, ..ADistanceSettings::default() };
        let near = proxy_a_distance(xs.view(), same.view(), &s).unwrap();
        prop_assert!(near.d_a.abs() < 0.6, "same distribution: {}", near.d_a);
        let sep = proxy_a_distance(xs.view(), far.view(), &s).unwrap();
        prop_assert!(sep.d_a >= 1.95, "separated: {}", sep.d_a);
    }
}
