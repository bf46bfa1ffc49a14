//! Reference values (`tests/reference/make_reference.py`: NumPy / SciPy / scikit-learn, written to
//! `tests/reference/reference.json`), invariants, names and error messages.

use dalab_validators::{
    DomainClassifier, Error, Input, Inputs, Settings, Validator, bnm, dev, entropy, im, importance_weights, iwcv,
    pseudo_labels, reverse_classifier_scores, reverse_validation, score_all, snd, source_val_accuracy, target_oracle,
};
use ndarray::{Array1, Array2, Axis, array};
use serde_json::Value;

/// Agreement asked of every score against the reference.
const SCORE_TOL: f64 = 1e-6;

fn reference() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/reference/reference.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("reference.json is readable")).expect("valid JSON")
}

fn matrix(v: &Value) -> Array2<f64> {
    let rows = v.as_array().expect("a matrix is an array of rows");
    let cols = rows[0].as_array().expect("a row is an array").len();
    let flat: Vec<f64> = rows.iter().flat_map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap())).collect();
    Array2::from_shape_vec((rows.len(), cols), flat).expect("rectangular")
}

fn vector(v: &Value) -> Array1<f64> {
    v.as_array().expect("an array").iter().map(|x| x.as_f64().unwrap()).collect()
}

fn labels(v: &Value) -> Vec<i64> {
    v.as_array().expect("an array").iter().map(|x| x.as_i64().unwrap()).collect()
}

#[test]
fn every_validator_matches_the_numpy_scipy_sklearn_reference() {
    let r = reference();
    let tau = r["snd_temperature"].as_f64().unwrap();
    let mut worst_score: f64 = 0.0;
    let mut worst_weight: f64 = 0.0;
    for case in r["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let (sl, tl, rl) =
            (matrix(&case["source_logits"]), matrix(&case["target_logits"]), matrix(&case["reverse_source_logits"]));
        let (sf, tf) = (matrix(&case["source_features"]), matrix(&case["target_features"]));
        let train = case["source_train_features"].as_array().map(|_| matrix(&case["source_train_features"]));
        let (sy, ty) = (labels(&case["source_labels"]), labels(&case["target_labels"]));
        let inputs = Inputs {
            source_logits: Some(sl.view()),
            source_labels: Some(&sy),
            target_logits: Some(tl.view()),
            target_labels: Some(&ty),
            source_features: Some(sf.view()),
            target_features: Some(tf.view()),
            source_train_features: train.as_ref().map(|t| t.view()),
            reverse_source_logits: Some(rl.view()),
        };
        let settings = Settings {
            snd_temperature: tau,
            domain_classifier: DomainClassifier { c: case["c"].as_f64().unwrap(), ..DomainClassifier::default() },
            reverse_classifier: DomainClassifier { c: case["c"].as_f64().unwrap(), ..DomainClassifier::default() },
        };
        for (v, all) in score_all(&Validator::ALL, &inputs, &settings) {
            let want = case["expected"][v.name()].as_f64().unwrap();
            let got = v.score_with(&inputs, &settings).unwrap_or_else(|e| panic!("{name}/{v}: {e}"));
            assert!((got - want).abs() <= SCORE_TOL, "{name}/{v}: {got} vs reference {want}");
            assert_eq!(all, Ok(got), "{name}/{v}: score_all");
            worst_score = worst_score.max((got - want).abs());
        }
        // The weights themselves against scikit-learn's, and the weighted scores on scikit-learn's weights.
        let want_w = vector(&case["weights"]);
        let w = importance_weights(sf.view(), tf.view(), train.as_ref().map(|t| t.view()), &settings.domain_classifier)
            .unwrap();
        for (a, b) in w.weights.iter().zip(&want_w) {
            let rel = (a - b).abs() / b.abs().max(1e-300);
            assert!(rel <= 1e-6, "{name}: weight {a} vs scikit-learn {b}");
            worst_weight = worst_weight.max(rel);
        }
        let iw = iwcv(sl.view(), &sy, want_w.view()).unwrap();
        assert!((iw - case["expected"]["iwcv"].as_f64().unwrap()).abs() <= 1e-12, "{name}: iwcv on sklearn weights");
        let dv = dev(sl.view(), &sy, want_w.view()).unwrap();
        assert!((dv - case["expected"]["dev"].as_f64().unwrap()).abs() <= 1e-9, "{name}: dev on sklearn weights");
        // The one-vs-rest reverse classifier against scikit-learn's, and its reverse-validation accuracy.
        let pseudo = pseudo_labels(tl.view()).unwrap();
        let rev = reverse_classifier_scores(tf.view(), &pseudo, tl.ncols(), sf.view(), &settings.reverse_classifier)
            .unwrap_or_else(|e| panic!("{name}: reverse classifier: {e}"));
        let want_rev = matrix(&case["reverse_scores"]);
        for (a, b) in rev.iter().zip(&want_rev) {
            let diff = (a - b).abs() / b.abs().max(1.0);
            assert!(diff <= 1e-6, "{name}: reverse score {a} vs scikit-learn {b}");
        }
        let acc = reverse_validation(rev.view(), &sy).unwrap();
        let want_acc = case["expected"]["reverse_linear"].as_f64().unwrap();
        assert!((acc - want_acc).abs() <= 1e-12, "{name}: reverse_linear {acc} vs {want_acc}");
    }
    eprintln!("worst score difference {worst_score:e}, worst relative weight difference {worst_weight:e}");
}

fn logits_and_labels() -> (Array2<f64>, Vec<i64>) {
    let z = Array2::from_shape_fn((40, 4), |(i, j)| (((i * 7 + j * 13) % 17) as f64 - 8.0) / 3.0);
    let y = (0..40).map(|i| ((i * 5) % 4) as i64).collect();
    (z, y)
}

/// The inputs of IWCV and DEV.
fn weighted_inputs<'a>(z: &'a Array2<f64>, y: &'a [i64], xs: &'a Array2<f64>, xt: &'a Array2<f64>) -> Inputs<'a> {
    Inputs {
        source_logits: Some(z.view()),
        source_labels: Some(y),
        source_features: Some(xs.view()),
        target_features: Some(xt.view()),
        ..Inputs::default()
    }
}

#[test]
fn iwcv_with_identical_source_and_target_is_source_val_accuracy() {
    let (z, y) = logits_and_labels();
    let x = Array2::from_shape_fn((40, 3), |(i, j)| ((i * 3 + j * 11) % 13) as f64 / 4.0 - 1.5);
    let acc = source_val_accuracy(z.view(), &y).unwrap();
    let settings = DomainClassifier::default();
    // The same matrix: the origin is the optimum (to rounding), the weights are exactly n_s/n_t = 1.
    let w = importance_weights(x.view(), x.view(), None, &settings).unwrap();
    assert!(w.weights.iter().all(|&v| v == 1.0), "{:?}", w.weights);
    assert_eq!(iwcv(z.view(), &y, w.weights.view()).unwrap(), acc);
    // The same rows twice over, in another order (n_t = 2 n_s, C = 10): the optimum is β = 0, b = ln 2, which the
    // solver must find (b = 0 is not it), and then w = e^b · n_s/n_t = 1. What the tolerance guarantees: relative
    // gradient ≤ 1e-10, i.e. ‖∇f‖ ≤ 1e-10 · S ≈ 1.1e-8 here (S = ½ Σ ‖x̃_i‖ ≈ 112), so ‖θ − θ*‖ ≤ ‖∇f‖ / λ_min ≤
    // 1.1e-7 (λ_min ≥ α = 0.1) and |w − 1| ≲ ‖θ − θ*‖ · max ‖x̃_i‖ ≈ 2.7e-7: asserted as 1e-6 (observed ~5e-12,
    // Newton's last step overshooting the tolerance).
    let mut reordered = x.clone();
    reordered.invert_axis(Axis(0));
    let twice = ndarray::concatenate(Axis(0), &[reordered.view(), x.view()]).unwrap();
    let shifted = DomainClassifier { c: 10.0, ..settings };
    let w = importance_weights(x.view(), twice.view(), None, &shifted).unwrap();
    assert!(w.iterations > 0 && (w.intercept - 2f64.ln()).abs() < 1e-6, "{w:?}");
    assert!(w.weights.iter().all(|v| (v - 1.0).abs() <= 1e-6), "{:?}", w.weights);
    let worst = w.weights.iter().map(|v| (v - 1.0).abs()).fold(0.0, f64::max);
    eprintln!(
        "duplicated target: {} Newton iterations, relative gradient {:e}, max |w − 1| {worst:e}",
        w.iterations, w.relative_gradient
    );
    assert!((iwcv(z.view(), &y, w.weights.view()).unwrap() - acc).abs() <= 1e-6);
    let inputs = weighted_inputs(&z, &y, &x, &twice);
    assert!((Validator::Iwcv.score(&inputs).unwrap() - acc).abs() <= 1e-6);
}

#[test]
fn domain_classifier_converges_on_nearly_separable_features() {
    // 600 + 500 rows, d = 64, target shifted by 1.5 per coordinate (‖shift‖ = 12: nearly separable), C = 1 and 100.
    let noise = |i: usize, j: usize| (((i * 7919 + j * 104_729) % 1009) as f64 / 1009.0 - 0.5) * 3.4;
    let xs = Array2::from_shape_fn((600, 64), |(i, j)| noise(i, j));
    let xt = Array2::from_shape_fn((500, 64), |(i, j)| 1.5 + noise(i + 600, j));
    for c in [1.0, 100.0] {
        let settings = DomainClassifier { c, ..DomainClassifier::default() };
        let w = importance_weights(xs.view(), xt.view(), None, &settings).unwrap();
        assert!(w.relative_gradient <= settings.tolerance);
        assert!(w.weights.iter().all(|v| v.is_finite() && *v >= 0.0));
        eprintln!("C = {c}: {} Newton iterations, relative gradient {:e}", w.iterations, w.relative_gradient);
    }
    // Too few iterations: an error naming the solver, not a silent approximation.
    let one = DomainClassifier { max_iterations: 1, ..DomainClassifier::default() };
    let e = importance_weights(xs.view(), xt.view(), None, &one).unwrap_err().to_string();
    assert!(e.starts_with("domain classifier (logistic regression): not converged in 1 Newton iterations"), "{e}");
}

#[test]
fn entropy_of_one_hot_predictions_is_zero() {
    let z = array![[1000.0, 0.0, 0.0], [0.0, -800.0, 900.0], [5.0, 800.0, -5.0]];
    assert_eq!(entropy(z.view()).unwrap(), 0.0);
    assert!(entropy(array![[0.0, 0.0], [1.0, 1.0]].view()).unwrap() + 2f64.ln() < 1e-15);
}

#[test]
fn im_of_uniform_predictions_is_zero_and_at_most_ln_k() {
    let uniform = Array2::<f64>::from_elem((7, 5), 3.25);
    assert!(im(uniform.view()).unwrap().abs() < 1e-14);
    // One-hot and balanced over the classes: IM = ln K.
    let z = Array2::from_shape_fn((8, 4), |(i, j)| if i % 4 == j { 900.0 } else { 0.0 });
    assert!((im(z.view()).unwrap() - 4f64.ln()).abs() < 1e-14);
}

#[test]
fn snd_is_invariant_to_permuting_samples() {
    let z = Array2::from_shape_fn((37, 5), |(i, j)| (((i * 11 + j * 7) % 23) as f64 - 11.0) / 4.0);
    let base = snd(z.view(), 0.05).unwrap();
    let mut perm: Vec<usize> = (0..37).map(|i| (i * 10) % 37).collect();
    perm.rotate_left(5);
    let permuted = z.select(Axis(0), &perm);
    assert!((snd(permuted.view(), 0.05).unwrap() - base).abs() < 1e-12);
    // Two samples: one neighbour each, entropy 0.
    assert_eq!(snd(z.slice(ndarray::s![..2, ..]).view(), 0.05).unwrap(), 0.0);
}

#[test]
fn dev_with_constant_weights_is_minus_the_mean_loss() {
    let (z, y) = logits_and_labels();
    let log_p = z.mapv(f64::exp);
    let mean_loss = z
        .outer_iter()
        .zip(log_p.outer_iter())
        .zip(&y)
        .map(|((row, e), &c)| e.sum().ln() - row[c as usize])
        .sum::<f64>()
        / 40.0;
    let ones = Array1::<f64>::ones(40);
    assert!((dev(z.view(), &y, ones.view()).unwrap() + mean_loss).abs() < 1e-12);
    // w ≡ c: no control variate (η = 0), −c · mean loss; 0.1 is not exact in binary, its variance is rounding.
    let tenth = Array1::<f64>::from_elem(40, 0.1);
    assert!((dev(z.view(), &y, tenth.view()).unwrap() + 0.1 * mean_loss).abs() < 1e-12);
    // One row: η = 0.
    assert!((dev(z.slice(ndarray::s![..1, ..]), &y[..1], ones.slice(ndarray::s![..1])).unwrap()).is_finite());
}

#[test]
fn oracle_and_reverse_are_accuracies() {
    let (z, y) = logits_and_labels();
    let hand = z.outer_iter().zip(&y).filter(|(r, c)| r[**c as usize] >= r.fold(f64::MIN, |a, &b| a.max(b))).count();
    let acc = hand as f64 / 40.0;
    assert_eq!(target_oracle(z.view(), &y).unwrap(), acc);
    assert_eq!(source_val_accuracy(z.view(), &y).unwrap(), acc);
    assert_eq!(reverse_validation(z.view(), &y).unwrap(), acc);
    let pseudo = pseudo_labels(z.view()).unwrap();
    assert_eq!(target_oracle(z.view(), &pseudo).unwrap(), 1.0);
    // Ties go to the first class, as numpy.argmax.
    assert_eq!(pseudo_labels(array![[0.0, 0.0, -1.0], [2.0, 3.0, 3.0]].view()).unwrap(), vec![0, 1]);
}

#[test]
fn bnm_of_one_hot_predictions_is_the_sum_of_root_class_counts() {
    // Counts 3, 1, 0 over 3 classes: A's columns are orthogonal with norms √3, 1, 0.
    let z = array![[800.0, 0.0, 0.0], [800.0, 0.0, 0.0], [800.0, 0.0, 0.0], [0.0, 800.0, 0.0]];
    assert!((bnm(z.view()).unwrap() - (3f64.sqrt() + 1.0) / 4.0).abs() < 1e-14);
}

#[test]
fn names_parse_and_needs() {
    let names = ["source_val", "entropy", "im", "bnm", "snd", "iwcv", "dev", "reverse", "target_oracle"];
    assert_eq!(Validator::ALL.map(Validator::name), names);
    for v in Validator::ALL {
        assert_eq!(v.name().parse::<Validator>().unwrap(), v);
        assert_eq!(serde_json::to_string(&v).unwrap(), format!("\"{v}\""));
        assert_eq!(v.is_oracle(), v == Validator::TargetOracle);
        assert!(!v.needs().is_empty());
        assert_eq!(v.needs().contains(&Input::TargetLabels), v.is_oracle());
    }
    assert!(Validator::TargetOracle.name().contains("oracle"));
    assert_eq!(
        "snd2".parse::<Validator>().unwrap_err().to_string(),
        "unknown validator `snd2`; known validators: source_val, entropy, im, bnm, snd, iwcv, dev, reverse, target_oracle"
    );
    assert_eq!(
        Validator::Dev.needs(),
        [Input::SourceLogits, Input::SourceLabels, Input::SourceFeatures, Input::TargetFeatures]
    );
    let s: Settings = serde_json::from_str(r#"{"domain_classifier": {"c": 0.5}}"#).unwrap();
    assert_eq!((s.snd_temperature, s.domain_classifier.c, s.domain_classifier.max_iterations), (0.05, 0.5, 100));
}

#[test]
fn errors_name_the_input_and_never_panic() {
    let (z, y) = logits_and_labels();
    let msg = |e: Error| e.to_string();
    assert_eq!(
        msg(Validator::Iwcv
            .score(&Inputs { source_logits: Some(z.view()), source_labels: Some(&y), ..Inputs::default() })
            .unwrap_err()),
        "validator `iwcv` needs `source_features`, which was not given"
    );
    let partial = Inputs { source_logits: Some(z.view()), source_labels: Some(&y), ..Inputs::default() };
    let all = score_all(&[Validator::Iwcv, Validator::SourceVal, Validator::Dev], &partial, &Settings::default());
    assert_eq!(msg(all[0].1.clone().unwrap_err()), "validator `iwcv` needs `source_features`, which was not given");
    assert_eq!(all[1].1, source_val_accuracy(z.view(), &y));
    assert_eq!(msg(all[2].1.clone().unwrap_err()), "validator `dev` needs `source_features`, which was not given");
    assert_eq!(
        msg(source_val_accuracy(z.view(), &y[..39]).unwrap_err()),
        "`source_labels` has 39 entries, but `source_logits` has 40"
    );
    let mut bad = y.clone();
    bad[3] = 4;
    assert_eq!(
        msg(source_val_accuracy(z.view(), &bad).unwrap_err()),
        "`source_labels`[3] = 4 is not a class index in 0..4"
    );
    bad[3] = -1;
    assert!(msg(target_oracle(z.view(), &bad).unwrap_err()).starts_with("`target_labels`[3] = -1"));
    let mut nan = z.clone();
    nan[[2, 1]] = f64::NAN;
    assert_eq!(
        msg(entropy(nan.view()).unwrap_err()),
        "target_logits contains a non-finite value (NaN) at row 2, column 1"
    );
    let empty = Array2::<f64>::zeros((0, 3));
    assert_eq!(
        msg(bnm(empty.view()).unwrap_err()),
        "target_logits has 0 samples; 1 at least are needed for the BNM validator"
    );
    assert!(msg(snd(z.slice(ndarray::s![..1, ..]), 0.05).unwrap_err()).contains("2 at least are needed for SND"));
    assert!(msg(snd(z.view(), 0.0).unwrap_err()).starts_with("invalid setting `snd_temperature`"));
    let no_classes = Array2::<f64>::zeros((3, 0));
    assert_eq!(msg(im(no_classes.view()).unwrap_err()), "target_logits has no feature columns");
    let mut w = Array1::<f64>::ones(40);
    w[5] = -0.5;
    assert_eq!(
        msg(iwcv(z.view(), &y, w.view()).unwrap_err()),
        "`importance_weights`[5] = -0.5 is not a finite non-negative weight"
    );
    assert!(msg(dev(z.view(), &y, w.slice(ndarray::s![..10])).unwrap_err()).contains("has 10 entries"));
    let (a, b) = (Array2::<f64>::zeros((4, 2)), Array2::<f64>::zeros((4, 3)));
    assert_eq!(
        msg(importance_weights(a.view(), b.view(), None, &DomainClassifier::default()).unwrap_err()),
        "`target_features` has 3 columns, but `source_features` has 2"
    );
    let bad_c = DomainClassifier { c: -1.0, ..DomainClassifier::default() };
    assert!(msg(importance_weights(a.view(), a.view(), None, &bad_c).unwrap_err()).contains("domain_classifier.c"));
    let features = Array2::<f64>::zeros((39, 2));
    let inputs = weighted_inputs(&z, &y, &features, &features);
    assert_eq!(
        msg(Validator::Dev.score(&inputs).unwrap_err()),
        "`source_features` has 39 rows, but `source_logits` has 40"
    );
}

/// A class no target sample is pseudo-labelled with is never predicted back; a single pseudo-class is predicted
/// everywhere; separable pseudo-labels learnt back give the source labels where the source has the same clusters.
#[test]
fn reverse_classifier_edge_cases() {
    let xt = array![[-2.0, 0.1], [-1.5, -0.2], [2.0, 0.3], [1.7, -0.1]];
    let xs = array![[-1.8, 0.0], [1.9, 0.2]];
    let s = DomainClassifier::default();
    let rev = reverse_classifier_scores(xt.view(), &[0, 0, 2, 2], 3, xs.view(), &s).unwrap();
    assert!(rev.column(1).iter().all(|&v| v == f64::MIN));
    assert_eq!(reverse_validation(rev.view(), &[0, 2]).unwrap(), 1.0);
    let one = reverse_classifier_scores(xt.view(), &[1, 1, 1, 1], 3, xs.view(), &s).unwrap();
    assert_eq!(reverse_validation(one.view(), &[1, 1]).unwrap(), 1.0);
    let e = reverse_classifier_scores(xt.view(), &[0, 3, 0, 0], 3, xs.view(), &s).unwrap_err().to_string();
    assert_eq!(e, "`pseudo_labels`[1] = 3 is not a class index in 0..3");
    let e = reverse_classifier_scores(xt.view(), &[0, 1], 3, xs.view(), &s).unwrap_err().to_string();
    assert_eq!(e, "`pseudo_labels` has 2 entries, but `target_features rows` has 4");
}
