//! The SVM against scikit-learn's `SVC(kernel='linear')` (libsvm), values printed by
//! `tests/reference/make_reference.py` into `tests/reference/svm_reference.json`, and invariants.

use super::*;
use ndarray::Array2;
use serde_json::Value;

const K: usize = 3;
const D: usize = 6;

/// The script's `data(n, phase)`.
fn data(n: usize, phase: f64) -> (Array2<f64>, Vec<i64>) {
    let y: Vec<i64> = (0..n).map(|i| (i % K) as i64).collect();
    let x = Array2::from_shape_fn((n, D), |(i, j)| {
        let t = (i as f64 + 1.0 + phase) * (j as f64 + 2.0);
        (0.37 * t).sin() + if j as i64 == y[i] { 1.5 } else { 0.0 }
    });
    (x, y)
}

/// The script's non-symmetric `M`: 0.5 on the diagonal plus 0.1·sin(i + 2j).
fn bilinear_m() -> Array2<f64> {
    Array2::from_shape_fn((D, D), |(i, j)| if i == j { 0.5 } else { 0.0 } + 0.1 * (i as f64 + 2.0 * j as f64).sin())
}

fn reference() -> Value {
    serde_json::from_str(include_str!("../../tests/reference/svm_reference.json")).unwrap()
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

#[test]
fn decision_values_and_predictions_equal_libsvm() {
    let (x, y) = data(K * 24, 0.0);
    let (xt, _) = data(30, 0.5);
    for fit in reference()["fits"].as_array().unwrap() {
        let c = fit["c"].as_f64().unwrap();
        let kernel = match fit["kernel"].as_str().unwrap() {
            "linear" => Kernel::Linear,
            "rbf" => Kernel::Rbf { gamma: 1.0 / D as f64 },
            // Our SMO on the matrix X Xᵀ (symmetric) and on X M Xᵀ (not), against libsvm's precomputed kernel.
            "identity-bilinear" => Kernel::Bilinear(Array2::eye(D)),
            _ => Kernel::Bilinear(bilinear_m()),
        };
        let svm = SvmClassifier::fit(x.view(), &y, &kernel, c, 1e-3).unwrap();
        let dec = svm.decision_values(xt.view());
        let want: Vec<Vec<f64>> = fit["decision"].as_array().unwrap().iter().map(f64s).collect();
        let mut worst = 0.0f64;
        for (row, w) in dec.outer_iter().zip(&want) {
            for (a, b) in row.iter().zip(w) {
                worst = worst.max((a - b).abs() / (1.0 + b.abs()));
            }
        }
        // Both solvers stop at a KKT violation of 1e-3; the decision values agree to that order.
        assert!(worst < 5e-3, "{kernel:?} C = {c}: decision values differ from libsvm's by {worst}");
        let pred: Vec<i64> = fit["predict"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
        assert_eq!(svm.predict(xt.view()), pred, "{kernel:?} C = {c}: predictions");
        let train_acc = accuracy(&svm.predict(x.view()), &y);
        assert_eq!(train_acc, fit["train_accuracy"].as_f64().unwrap(), "{kernel:?} C = {c}: training accuracy");
    }
}

#[test]
fn cross_validation_equals_libsvm_on_the_same_folds() {
    let (x, y) = data(K * 24, 0.0);
    // The script's folds: within each class, index order dealt to 0, 1, 0, 1, ...
    let fold: Vec<usize> = (0..y.len()).map(|i| (i / K) % 2).collect();
    let want = reference()["cv"].as_array().unwrap().clone();
    let grid: Vec<f64> = want.iter().map(|p| p["c"].as_f64().unwrap()).collect();
    let got = cross_validate(x.view(), &y, &fold, &Kernel::Linear, &grid, 1e-3).unwrap();
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g.accuracy, w["accuracy"].as_f64().unwrap(), "C = {}", g.c);
    }
    // The reference's best is C = 1e-3 (tied with 1e-2): the first of the highest wins.
    assert_eq!(best(&got).c, 1e-3);
}

#[test]
fn folds_are_stratified_balanced_and_seeded() {
    let y: Vec<i64> = (0..50)
        .map(|i| {
            if i < 20 {
                0
            } else if i < 45 {
                1
            } else {
                2
            }
        })
        .collect();
    let f = stratified_folds(&y, 2, 7);
    assert_eq!(f, stratified_folds(&y, 2, 7));
    assert_ne!(f, stratified_folds(&y, 2, 8));
    for (k, n) in [(0i64, 20usize), (1, 25), (2, 5)] {
        let in0 = (0..50).filter(|&i| y[i] == k && f[i] == 0).count();
        assert_eq!(in0, n.div_ceil(2), "class {k}");
    }
}

#[test]
fn fit_cv_picks_the_best_c_and_refits_on_everything() {
    let (x, y) = data(K * 24, 0.0);
    let settings = SvmSettings::default();
    let (svm, table) = fit_cv(x.view(), &y, &settings, 3).unwrap();
    assert_eq!(table.len(), settings.c_grid.len());
    assert_eq!(svm.c, best(&table).c);
    let direct = SvmClassifier::fit(x.view(), &y, &Kernel::Linear, svm.c, 1e-3).unwrap();
    assert_eq!(svm.predict(x.view()), direct.predict(x.view()));
    // One C: no cross-validation.
    let one = SvmSettings { c_grid: vec![10.0], ..Default::default() };
    let (svm, table) = fit_cv(x.view(), &y, &one, 3).unwrap();
    assert!(table.is_empty() && svm.c == 10.0);
}

#[test]
fn one_class_predicts_it_and_bad_inputs_are_errors() {
    let x = Array2::from_shape_fn((4, 2), |(i, j)| (i + j) as f64);
    let svm = SvmClassifier::fit(x.view(), &[5, 5, 5, 5], &Kernel::Linear, 1.0, 1e-3).unwrap();
    assert_eq!(svm.predict(x.view()), vec![5; 4]);
    let e = SvmClassifier::fit(x.view(), &[0, 1], &Kernel::Linear, 1.0, 1e-3).unwrap_err().to_string();
    assert_eq!(e, "2 labels for 4 samples");
    let mut bad = x.clone();
    bad[[2, 1]] = f64::NAN;
    let e = SvmClassifier::fit(bad.view(), &[0, 1, 0, 1], &Kernel::Linear, 1.0, 1e-3).unwrap_err().to_string();
    assert_eq!(e, "non-finite feature value at row 2, column 1");
}

#[test]
fn validation_names_the_key() {
    let bad = SvmSettings { c_grid: vec![1.0, -2.0], ..Default::default() };
    assert_eq!(bad.validate().unwrap_err(), "c_grid[1]: must be a finite number > 0, got -2");
    let bad = SvmSettings { folds: 1, ..Default::default() };
    assert_eq!(bad.validate().unwrap_err(), "folds: must be >= 2, got 1");
    let bad = SvmSettings { c_grid: vec![], ..Default::default() };
    assert_eq!(bad.validate().unwrap_err(), "c_grid: needs at least one value");
    let bad = SvmSettings { gamma: Some(0.5), ..Default::default() };
    assert_eq!(bad.validate().unwrap_err(), "gamma: only for `kernel: rbf`");
    let bad = SvmSettings { kernel: SvmKernel::Rbf, gamma: Some(-1.0), ..Default::default() };
    assert_eq!(bad.validate().unwrap_err(), "gamma: must be a finite number > 0, got -1");
    // libsvm's default γ = 1/d.
    let rbf = SvmSettings { kernel: SvmKernel::Rbf, ..Default::default() };
    assert_eq!(rbf.kernel_for(800), Kernel::Rbf { gamma: 1.0 / 800.0 });
}
