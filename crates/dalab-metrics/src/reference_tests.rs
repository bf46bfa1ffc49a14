//! Reference values and invariants.
//!
//! The constants below were printed by `tests/reference/make_reference.py` (NumPy 2.4 / SciPy 1.17 /
//! scikit-learn 1.9, float64, full kernel matrices computed the direct way) and pasted here unchanged.
//! The data are deterministic formulas, regenerated identically here (`src_data`, `tgt_data`).

use crate::adist::{ADistanceSettings, DualCd, LinearSvm, PrimalNewton, Solver, Split, proxy_a_distance};
use crate::coral::{CoralTransform, CoralTransformSettings, coral_distance, covariance};
use crate::mmd::{BandwidthPolicy, Estimator, Kernel, MmdSettings, Precision, mmd2};
use ndarray::{Array2, ArrayView2, Axis};

const B_MEAN_SQ_BASE: f64 = 8.200551680246079;
const B_BIASED_DAN_MEANSQ: f64 = 0.46650714210974353;
const B_UNBIASED_DAN_MEANSQ: f64 = 0.3538128117444961;
const A_UNBIASED_SINGLE_FIXED2: f64 = -0.0268983399586864;
const A_BIASED_SINGLE_FIXED2: f64 = 0.13150059059720332;
const B_LINEAR_TIME_DAN_FIXED3: f64 = 3.7917583934271812;
const A_MEDIAN_BASE: f64 = 2.596592941168919;
const A_BIASED_SINGLE_MEDIAN: f64 = 0.11989031767575908;
const B_BIASED_PAPER33_MEANSQ: f64 = 2.9782563264510387;
const B_UNBIASED_WEIGHTED_FIXED: f64 = 0.09292516103851411;
const B_LINEAR_KERNEL_BIASED: f64 = 0.8506402644161389;
const B_LINEAR_KERNEL_UNBIASED: f64 = 0.6029046476305311;
const B_CORAL: f64 = 0.02848450023894688;
const B_CORAL_MATRIX_LAMBDA1: [f64; 36] = [
    1.0813633162404008,
    0.09205101219042948,
    0.05240790102566112,
    -0.05025481612973715,
    -0.1554077692068482,
    -0.156354185122273,
    0.023396008087262343,
    1.053035410859584,
    0.08530832958033326,
    0.07249034304920612,
    -0.020294659509392774,
    -0.13996738000769607,
    -0.003441911561349956,
    0.050973445462449966,
    1.0862818530159504,
    0.09731411362515201,
    0.05244549818155027,
    -0.057035386642310136,
    -0.054728495120662746,
    0.054506002651091956,
    0.09738367466312264,
    1.0843078282156207,
    0.04863494511373096,
    -0.00420713804894829,
    -0.13797533109051383,
    -0.020229402068999928,
    0.0705794234829275,
    0.08305258651426499,
    1.052309964641619,
    0.02471707977972579,
    -0.15631942120088854,
    -0.1574090726326768,
    -0.052592432692931984,
    0.05167105190334543,
    0.09343978106199509,
    1.0836289518112483,
];
const B_SVM_C05_W: [f64; 7] = [
    1.2492616721051093,
    0.315621420071035,
    1.0791792692484083,
    1.1160089119685221,
    0.36361624889427746,
    1.1420413157423073,
    -1.5484052200484153,
];
// primal gradient norm of the scikit-learn solution: 1.708e-10

fn src_data(n: usize, d: usize) -> Array2<f64> {
    Array2::from_shape_fn((n, d), |(i, j)| (0.7 * i as f64 + 1.1 * j as f64 + 0.3).sin() + 0.05 * j as f64)
}

fn tgt_data(n: usize, d: usize) -> Array2<f64> {
    Array2::from_shape_fn((n, d), |(i, j)| 1.3 * (0.5 * i as f64 + 0.9 * j as f64).cos() + 0.4 + 0.05 * j as f64)
}

fn a() -> (Array2<f64>, Array2<f64>) {
    (src_data(7, 3), tgt_data(5, 3))
}

fn b() -> (Array2<f64>, Array2<f64>) {
    (src_data(40, 6), tgt_data(30, 6))
}

fn settings(kernel: Kernel, bandwidth: BandwidthPolicy, estimator: Estimator) -> MmdSettings {
    MmdSettings { kernel, bandwidth, estimator, ..MmdSettings::default() }
}

fn close(got: f64, want: f64, tol: f64) {
    assert!((got - want).abs() <= tol, "got {got:.17e}, want {want:.17e}, diff {:e}", got - want);
}

fn run(x: &(Array2<f64>, Array2<f64>), s: &MmdSettings) -> crate::mmd::MmdResult {
    mmd2(x.0.view(), x.1.view(), s).unwrap()
}

#[test]
fn mmd_matches_numpy_reference() {
    let (da, db) = (a(), b());
    let msd = BandwidthPolicy::MeanSquaredDistance;
    let fixed = |s| BandwidthPolicy::Fixed { sigma2: s };
    let r = run(&db, &settings(Kernel::dan(), msd.clone(), Estimator::Biased));
    close(r.base_sigma2.unwrap(), B_MEAN_SQ_BASE, 1e-12);
    close(r.mmd2, B_BIASED_DAN_MEANSQ, 1e-10);
    assert_eq!(r.sigma2.len(), 5);
    close(r.sigma2[0], 0.25 * B_MEAN_SQ_BASE, 1e-12);
    let r = run(&db, &settings(Kernel::dan(), msd.clone(), Estimator::Unbiased));
    close(r.mmd2, B_UNBIASED_DAN_MEANSQ, 1e-10);
    let r = run(&da, &settings(Kernel::gaussian(), fixed(2.0), Estimator::Unbiased));
    close(r.mmd2, A_UNBIASED_SINGLE_FIXED2, 1e-10);
    let r = run(&da, &settings(Kernel::gaussian(), fixed(2.0), Estimator::Biased));
    close(r.mmd2, A_BIASED_SINGLE_FIXED2, 1e-10);
    let r = run(&db, &settings(Kernel::dan(), fixed(3.0), Estimator::Linear));
    close(r.mmd2, B_LINEAR_TIME_DAN_FIXED3, 1e-10);
    assert_eq!(r.quad_tuples, Some(15));
    let med = BandwidthPolicy::Median { max_points: 1000 };
    let r = run(&da, &settings(Kernel::gaussian(), med, Estimator::Biased));
    close(r.base_sigma2.unwrap(), A_MEDIAN_BASE, 1e-12);
    close(r.mmd2, A_BIASED_SINGLE_MEDIAN, 1e-10);
    let paper = Kernel::gaussian_geometric(2f64.sqrt(), -16, 16);
    let r = run(&db, &settings(paper, msd, Estimator::Biased));
    close(r.mmd2, B_BIASED_PAPER33_MEANSQ, 1e-10);
    let weighted = Kernel::Gaussian { multipliers: vec![0.5, 1.0, 3.0], weights: vec![0.2, 0.5, 0.3] };
    let r = run(&db, &settings(weighted, fixed(4.0), Estimator::Unbiased));
    close(r.mmd2, B_UNBIASED_WEIGHTED_FIXED, 1e-10);
    let r = run(&db, &settings(Kernel::Linear, fixed(1.0), Estimator::Biased));
    close(r.mmd2, B_LINEAR_KERNEL_BIASED, 1e-10);
    assert_eq!(r.base_sigma2, None);
    let r = run(&db, &settings(Kernel::Linear, fixed(1.0), Estimator::Unbiased));
    close(r.mmd2, B_LINEAR_KERNEL_UNBIASED, 1e-10);
}

#[test]
fn f32_precision_is_close() {
    let db = b();
    let s = MmdSettings { precision: Precision::F32, ..MmdSettings::default() };
    let r = run(&db, &s);
    close(r.mmd2, B_BIASED_DAN_MEANSQ, 1e-5 * B_BIASED_DAN_MEANSQ);
}

#[test]
fn linear_kernel_biased_is_mean_difference() {
    // Hand-derived closed form: MMD²_b with k(a,b) = a·b equals ‖mean_s − mean_t‖².
    let (xs, xt) = (src_data(13, 4), tgt_data(9, 4));
    let diff = xs.mean_axis(Axis(0)).unwrap() - xt.mean_axis(Axis(0)).unwrap();
    let want = diff.dot(&diff);
    let s = settings(Kernel::Linear, BandwidthPolicy::MeanSquaredDistance, Estimator::Biased);
    close(mmd2(xs.view(), xt.view(), &s).unwrap().mmd2, want, 1e-12);
}

#[test]
fn large_blocked_sample_matches_direct_sum() {
    // More rows than one tile, unequal sizes: the tiled sums against a direct double loop.
    let (xs, xt) = (src_data(300, 5), tgt_data(170, 5));
    let s2 = 1.7;
    let k = |a: ndarray::ArrayView1<'_, f64>, b: ndarray::ArrayView1<'_, f64>| {
        let d: f64 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
        (-d / (2.0 * s2)).exp()
    };
    let mean_k = |p: ArrayView2<'_, f64>, q: ArrayView2<'_, f64>| {
        let mut t = 0.0;
        for r in p.outer_iter() {
            for c in q.outer_iter() {
                t += k(r, c);
            }
        }
        t / (p.nrows() * q.nrows()) as f64
    };
    let want = mean_k(xs.view(), xs.view()) + mean_k(xt.view(), xt.view()) - 2.0 * mean_k(xs.view(), xt.view());
    let s = settings(Kernel::gaussian(), BandwidthPolicy::Fixed { sigma2: s2 }, Estimator::Biased);
    close(mmd2(xs.view(), xt.view(), &s).unwrap().mmd2, want, 1e-12);
    // The f32 Gram products (the packed AVX-512 kernel where the CPU has it; diagonal tiles upper triangle only),
    // biased and unbiased, against the f64 path.
    let s32 = MmdSettings { precision: Precision::F32, ..s.clone() };
    close(mmd2(xs.view(), xt.view(), &s32).unwrap().mmd2, want, 1e-5 * want.abs());
    let (su, su32) = (
        MmdSettings { estimator: Estimator::Unbiased, ..s.clone() },
        MmdSettings { estimator: Estimator::Unbiased, ..s32.clone() },
    );
    let want_u = mmd2(xs.view(), xt.view(), &su).unwrap().mmd2;
    close(mmd2(xs.view(), xt.view(), &su32).unwrap().mmd2, want_u, 1e-5 * want.abs());
}

#[test]
fn unbiased_on_identical_distributions_averages_to_zero() {
    // Many independent pairs of samples of one distribution: the U-statistic has mean 0, so the average over
    // 200 replicates is within a few standard errors of 0 (the biased one is not: it is ≥ 0).
    use rand::SeedableRng;
    use rand_distr_free::normal_matrix;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let s = settings(Kernel::gaussian(), BandwidthPolicy::Fixed { sigma2: 2.0 }, Estimator::Unbiased);
    let mut sb = s.clone();
    sb.estimator = Estimator::Biased;
    let (mut vals, mut biased) = (Vec::new(), 0.0);
    for _ in 0..200 {
        let xs = normal_matrix(&mut rng, 20, 2);
        let xt = normal_matrix(&mut rng, 20, 2);
        vals.push(mmd2(xs.view(), xt.view(), &s).unwrap().mmd2);
        biased += mmd2(xs.view(), xt.view(), &sb).unwrap().mmd2;
    }
    let n = vals.len() as f64;
    let mean = vals.iter().sum::<f64>() / n;
    let sd = (vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    assert!(mean.abs() < 4.0 * sd / n.sqrt(), "mean {mean}, se {}", sd / n.sqrt());
    assert!(biased / n > 4.0 * sd / n.sqrt(), "biased mean {}", biased / n);
}

/// Standard normal matrices from the Box–Muller transform (no extra dependency).
pub(crate) mod rand_distr_free {
    use ndarray::Array2;
    use rand::Rng;

    pub(crate) fn normal_matrix(rng: &mut impl Rng, n: usize, d: usize) -> Array2<f64> {
        Array2::from_shape_simple_fn((n, d), || {
            let u1: f64 = 1.0 - rng.random::<f64>();
            let u2: f64 = rng.random::<f64>();
            (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
        })
    }
}

#[test]
fn permutation_test_separates() {
    use rand::SeedableRng;
    // p-values under the null were checked to be spread over (0, 1] for 40 data seeds; this seed is one
    // whose null p-value is not small by chance.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let xs = rand_distr_free::normal_matrix(&mut rng, 40, 3);
    let same = rand_distr_free::normal_matrix(&mut rng, 40, 3);
    let shifted = rand_distr_free::normal_matrix(&mut rng, 40, 3) + 2.0;
    let mut s = MmdSettings { permutations: 99, seed: 11, ..MmdSettings::default() };
    let far = mmd2(xs.view(), shifted.view(), &s).unwrap();
    let pt = far.permutation_test.clone().unwrap();
    close(pt.p_value, 0.01, 1e-12); // nothing exceeds the observed value
    let near = mmd2(xs.view(), same.view(), &s).unwrap();
    let pn = near.permutation_test.as_ref().unwrap();
    assert!(pn.p_value > 0.05, "{near:?}");
    // Seeded: the same p-value again, and the cached and recomputed paths agree for the linear-time one.
    assert_eq!(mmd2(xs.view(), same.view(), &s).unwrap(), near);
    s.estimator = Estimator::Linear;
    let lin = mmd2(xs.view(), shifted.view(), &s).unwrap();
    assert!(lin.permutation_test.unwrap().p_value < 0.05);
}

#[test]
fn coral_matches_numpy_reference() {
    let (xs, xt) = b();
    let r = coral_distance(xs.view(), xt.view()).unwrap();
    close(r.coral, B_CORAL, 1e-12);
    // Block-wise path with several column tiles against the d×d matrices.
    let (ys, yt) = (src_data(50, 70), tgt_data(45, 70));
    let diff = covariance(ys.view()).unwrap() - covariance(yt.view()).unwrap();
    let want = diff.iter().map(|v| v * v).sum::<f64>() / (4.0 * 70.0 * 70.0);
    close(coral_distance(ys.view(), yt.view()).unwrap().coral, want, 1e-14);
}

#[test]
fn coral_transform_matches_scipy_and_is_exact() {
    let (xs, xt) = b();
    let t = CoralTransform::fit(xs.view(), xt.view(), &CoralTransformSettings::default()).unwrap();
    for (got, want) in t.matrix.iter().zip(B_CORAL_MATRIX_LAMBDA1) {
        close(*got, want, 1e-12);
    }
    // With λ = 0 the transformed source has exactly the target covariance (up to rounding); full-rank data.
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
    let xs = rand_distr_free::normal_matrix(&mut rng, 60, 8);
    let mix = rand_distr_free::normal_matrix(&mut rng, 8, 8);
    let xt = rand_distr_free::normal_matrix(&mut rng, 50, 8).dot(&mix) + 2.0;
    let t0 = CoralTransform::fit(xs.view(), xt.view(), &CoralTransformSettings { lambda: 0.0 }).unwrap();
    let moved = t0.apply(xs.view()).unwrap();
    let (cm, ct) = (covariance(moved.view()).unwrap(), covariance(xt.view()).unwrap());
    for (x, y) in cm.iter().zip(ct.iter()) {
        close(*x, *y, 1e-8);
    }
    close(coral_distance(moved.view(), xt.view()).unwrap().coral, 0.0, 1e-16);
}

#[test]
fn coral_transform_rank_deficient_is_an_error() {
    let (xs, xt) = (src_data(4, 6), tgt_data(30, 6));
    let e = CoralTransform::fit(xs.view(), xt.view(), &CoralTransformSettings { lambda: 0.0 }).unwrap_err();
    assert!(e.to_string().starts_with("source covariance + λI is not positive definite"), "{e}");
}

#[test]
fn svm_solver_matches_scikit_learn_optimum() {
    let (xs, xt) = b();
    let x = ndarray::concatenate(Axis(0), &[xs.view(), xt.view()]).unwrap();
    let idx: Vec<usize> = (0..x.nrows()).collect();
    let (xa, y) = crate::adist::gather(&idx, 6, |i| (x.row(i), if i < 40 { -1.0 } else { 1.0 }));
    let mut dual = DualCd::new(xa.clone(), y.clone(), 0, 0);
    let (_, converged) = dual.solve(0.5, 1e-12, 1_000_000);
    assert!(converged);
    let mut primal = PrimalNewton::new(xa, y);
    let (_, converged) = primal.solve(0.5, 1e-12, 1000);
    assert!(converged);
    for ((d, p), want) in dual.w.iter().zip(&primal.w).zip(B_SVM_C05_W) {
        close(*d, want, 1e-8);
        close(*p, want, 1e-8);
    }
}

#[test]
fn a_distance_extremes_and_reporting() {
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let xs = rand_distr_free::normal_matrix(&mut rng, 200, 5);
    let same = rand_distr_free::normal_matrix(&mut rng, 200, 5);
    let far = rand_distr_free::normal_matrix(&mut rng, 200, 5) + 6.0;
    let s = ADistanceSettings::default();
    let r = proxy_a_distance(xs.view(), same.view(), &s).unwrap();
    assert!(r.d_a.abs() < 0.4, "same distribution: d_A = {}", r.d_a);
    close(r.d_a, 2.0 * (1.0 - 2.0 * r.epsilon), 1e-15);
    let r = proxy_a_distance(xs.view(), far.view(), &s).unwrap();
    assert!(r.d_a > 1.95, "separated: d_A = {}", r.d_a);
    assert_eq!(r.grid.len(), 5);
    let k = ADistanceSettings { split: Split::KFold { k: 4 }, ..ADistanceSettings::default() };
    let rk = proxy_a_distance(xs.view(), far.view(), &k).unwrap();
    assert!(rk.d_a > 1.95);
    // deterministic
    assert_eq!(proxy_a_distance(xs.view(), far.view(), &k).unwrap(), rk);
    // 300 training rows > 6 features: Auto picks the primal solver; the dual one gives the same errors here.
    assert_eq!(rk.solver, Solver::Primal);
    let dual = ADistanceSettings { solver: Solver::Dual, ..k.clone() };
    let rd = proxy_a_distance(xs.view(), far.view(), &dual).unwrap();
    assert_eq!(rd.solver, Solver::Dual);
    assert!((rd.epsilon - rk.epsilon).abs() <= 0.01, "{} vs {}", rd.epsilon, rk.epsilon);
}
