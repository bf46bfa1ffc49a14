//! Representations learned on a task's unlabelled features before training: `dataset.representation:`.
//!
//! `msda`: marginalized stacked denoising autoencoders (Chen, Xu, Weinberger & Sha, ICML 2012), the features of
//! DANN JMLR 2016 Table 1's "mSDA" columns (5 layers, 50% corruption, the input and the 5 outputs concatenated:
//! 30,000-d on the 5000-d Amazon counts). Each layer is the closed-form denoising map of the paper: with the
//! current features `H` (`n × d`), `X̄ = [H, 1]`, the scatter `S = X̄ᵀX̄` and the survival vector `q` (`1 − p` for
//! every feature, 1 for the bias), the expected corrupted scatter is `Q_ij = S_ij q_i q_j` (`i ≠ j`), `Q_ii =
//! S_ii q_i`, the expected cross term `P_ij = S_ij q_j`; the map `W = P (Q + ηI)⁻¹` (η = 1e-5, not on the bias,
//! as the DANN authors' `mSDA.py`) and the next features `tanh(X̄ Wᵀ)`.
//!
//! The map is fitted on the task's source and target training features together, never on labels (the function
//! takes none) and never on the target test split, which it only transforms: the DANN authors learn one mSDA per
//! task (their representation files are named per pair, e.g. `books.dvd`). Written here rather than taken from
//! a crate because no Rust crate implements mSDA; the linear algebra is faer's (matrix products, Cholesky).

use crate::{Domain, Error, Result, TaskData};
use faer::prelude::*;
use faer::{Accum, Mat, Par, Side};
use ndarray::{Array2, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

/// The `dataset.representation:` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Representation {
    /// Marginalized stacked denoising autoencoders: `layers` closed-form denoising layers at corruption `noise`
    /// (the probability of zeroing a feature); the features become `[input, layer 1, …, layer L]`.
    Msda {
        layers: usize,
        noise: f64,
        /// The ridge η added to the diagonal (not the bias) before solving; the DANN authors' 1e-5.
        #[serde(default = "default_regularization")]
        regularization: f64,
    },
}

fn default_regularization() -> f64 {
    1e-5
}

/// The largest input dimension an mSDA layer accepts: each layer holds three `(d+1)²` f64 matrices (2.4 GB at
/// this size).
pub const MSDA_MAX_DIM: usize = 10_000;
/// The most layers (the papers use up to 5).
pub const MSDA_MAX_LAYERS: usize = 20;

impl Representation {
    /// Checks the options; the message starts with the key below `dataset.`.
    pub fn validate(&self) -> std::result::Result<(), String> {
        match *self {
            Representation::Msda { layers, noise, regularization } => {
                if layers == 0 || layers > MSDA_MAX_LAYERS {
                    return Err(format!("representation.layers: must be 1 to {MSDA_MAX_LAYERS}, got {layers}"));
                }
                if !(0.0..1.0).contains(&noise) {
                    return Err(format!("representation.noise: must be in [0, 1), got {noise}"));
                }
                if !(regularization.is_finite() && regularization >= 0.0) {
                    return Err(format!("representation.regularization: must be ≥ 0, got {regularization}"));
                }
                Ok(())
            }
        }
    }

    /// Fits the representation on the task's source and target training features (no labels) and maps every
    /// split of the task (sources, target, target test, source tests) into it.
    pub fn apply(&self, task: TaskData) -> Result<TaskData> {
        self.validate().map_err(|e| Error::Invalid(format!("dataset.{e}")))?;
        let Representation::Msda { layers, noise, regularization } = *self;
        let dense = |d: &Domain| -> Result<Array2<f32>> {
            let x = d.x.to_dense()?;
            let n = x.shape()[0];
            let dim = x.len().checked_div(n).unwrap_or(0);
            let x = x.to_shape((n, dim)).map_err(|e| Error::Invalid(format!("domain `{}`: {e}", d.name)))?.to_owned();
            Ok(x)
        };
        let (xs, xt) = (dense(&task.source)?, dense(&task.target)?);
        let fit_x = ndarray::concatenate(Axis(0), &[xs.view(), xt.view()])
            .map_err(|e| Error::Invalid(format!("domains `{}` and `{}`: {e}", task.source.name, task.target.name)))?;
        let (model, fitted) = Msda::fit(fit_x.view(), layers, noise, regularization)?;
        let n_s = xs.nrows();
        let map =
            |d: Domain, x: Array2<f32>| -> Result<Domain> { Domain::new(d.name, x.into_dyn(), d.y, d.class_names) };
        let source_x = fitted.slice(ndarray::s![..n_s, ..]).to_owned();
        let target_x = fitted.slice(ndarray::s![n_s.., ..]).to_owned();
        let mut out = task;
        out.source = map(out.source, source_x)?;
        out.target = map(out.target, target_x)?;
        let transform = |d: Option<Domain>| -> Result<Option<Domain>> {
            d.map(|d| {
                let x = model.transform(dense(&d)?.view())?;
                map(d, x)
            })
            .transpose()
        };
        out.target_test = transform(out.target_test.take())?;
        out.source_tests = out.source_tests.into_iter().map(transform).collect::<Result<_>>()?;
        Ok(out)
    }
}

/// A fitted mSDA: the transposed map `Wᵀ` (`(d+1) × d`) of every layer.
#[derive(Debug, Clone)]
pub struct Msda {
    maps: Vec<Mat<f64>>,
}

impl Msda {
    /// Fits `layers` layers on the rows of `x` (`n × d`, unlabelled) and returns the model with the fitted rows'
    /// stacked features `[x, h₁, …, h_L]` (`n × d(L+1)`), computed on the way.
    pub fn fit(x: ArrayView2<'_, f32>, layers: usize, noise: f64, regularization: f64) -> Result<(Msda, Array2<f32>)> {
        let (n, d) = x.dim();
        if d > MSDA_MAX_DIM {
            return Err(Error::Invalid(format!(
                "dataset.representation: mSDA on {d} features needs three {d}×{d} matrices per layer; at most \
                 {MSDA_MAX_DIM} features are accepted"
            )));
        }
        if n == 0 || d == 0 {
            return Err(Error::Invalid(format!(
                "dataset.representation: mSDA needs samples and features, got {n}×{d}"
            )));
        }
        check_finite(x, "fitting sample")?;
        let mut out = Array2::<f32>::zeros((n, d * (layers + 1)));
        out.slice_mut(ndarray::s![.., ..d]).assign(&x);
        let mut h = Mat::<f64>::from_fn(n, d + 1, |i, j| if j < d { f64::from(x[[i, j]]) } else { 1.0 });
        let mut maps = Vec::with_capacity(layers);
        for layer in 0..layers {
            let wt = denoising_map(h.as_ref(), noise, regularization)
                .map_err(|e| Error::Invalid(format!("dataset.representation: mSDA layer {}: {e}", layer + 1)))?;
            h = apply_map(h.as_ref(), wt.as_ref());
            write_layer(&mut out, layer, h.as_ref());
            maps.push(wt);
        }
        Ok((Msda { maps }, out))
    }

    /// The input dimension.
    pub fn dim(&self) -> usize {
        self.maps.first().map_or(0, |w| w.ncols())
    }

    /// Maps rows `x` (`m × d`) to `[x, h₁, …, h_L]`.
    pub fn transform(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        let (m, d) = x.dim();
        if d != self.dim() {
            return Err(Error::Invalid(format!(
                "dataset.representation: the mSDA was fitted on {} features, the split has {d}",
                self.dim()
            )));
        }
        check_finite(x, "sample")?;
        let mut out = Array2::<f32>::zeros((m, d * (self.maps.len() + 1)));
        out.slice_mut(ndarray::s![.., ..d]).assign(&x);
        let mut h = Mat::<f64>::from_fn(m, d + 1, |i, j| if j < d { f64::from(x[[i, j]]) } else { 1.0 });
        for (layer, wt) in self.maps.iter().enumerate() {
            h = apply_map(h.as_ref(), wt.as_ref());
            write_layer(&mut out, layer, h.as_ref());
        }
        Ok(out)
    }
}

/// An error naming the first non-finite feature of `x` (`what` names its rows).
fn check_finite(x: ArrayView2<'_, f32>, what: &str) -> Result<()> {
    match x.indexed_iter().find(|(_, v)| !v.is_finite()) {
        Some(((i, j), v)) => Err(Error::Invalid(format!(
            "dataset.representation: feature {j} of {what} {i} is {v}; mSDA needs finite features"
        ))),
        None => Ok(()),
    }
}

/// Copies layer `layer`'s features (the first `d` columns of `h`, without its bias column) into their block of
/// the stacked output `[x, h₁, …]`.
fn write_layer(out: &mut Array2<f32>, layer: usize, h: MatRef<'_, f64>) {
    let d = h.ncols() - 1;
    let mut block = out.slice_mut(ndarray::s![.., d * (layer + 1)..d * (layer + 2)]);
    for ((i, j), v) in block.indexed_iter_mut() {
        *v = h[(i, j)] as f32;
    }
}

/// The transposed denoising map `Wᵀ = (Q + ηI)⁻¹ Pᵀ` of one layer, from `x̄ = [h, 1]` (`n × (d+1)`, last
/// column the bias).
fn denoising_map(xb: MatRef<'_, f64>, noise: f64, eta: f64) -> std::result::Result<Mat<f64>, String> {
    let d1 = xb.ncols();
    let d = d1 - 1;
    let mut s = Mat::<f64>::zeros(d1, d1);
    faer::linalg::matmul::matmul(s.as_mut(), Accum::Replace, xb.transpose(), xb, 1.0, Par::rayon(0));
    let q = |i: usize| if i < d { 1.0 - noise } else { 1.0 };
    // Q + ηI (no ridge on the bias) and Pᵀ = diag(q) S[:, :d] (S is symmetric).
    let m = Mat::<f64>::from_fn(d1, d1, |i, j| {
        if i == j { s[(i, i)] * q(i) + if i < d { eta } else { 0.0 } } else { s[(i, j)] * q(i) * q(j) }
    });
    let mut wt = Mat::<f64>::from_fn(d1, d, |i, j| s[(i, j)] * q(i));
    drop(s);
    let llt = m.llt(Side::Lower).map_err(|e| {
        format!("the expected corrupted scatter matrix is not positive definite ({e:?}); give a regularization > 0")
    })?;
    llt.solve_in_place(wt.as_mut());
    Ok(wt)
}

/// `[tanh(x̄ Wᵀ), 1]`: the next layer's features with the bias column appended.
fn apply_map(xb: MatRef<'_, f64>, wt: MatRef<'_, f64>) -> Mat<f64> {
    let (n, d) = (xb.nrows(), wt.ncols());
    let mut z = Mat::<f64>::zeros(n, d + 1);
    faer::linalg::matmul::matmul(z.as_mut().subcols_mut(0, d), Accum::Replace, xb, wt, 1.0, Par::rayon(0));
    for j in 0..d {
        for v in z.col_mut(j).iter_mut() {
            *v = v.tanh();
        }
    }
    z.col_mut(d).fill(1.0);
    z
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, array};

    fn matrix(v: &serde_json::Value) -> Array2<f32> {
        let rows: Vec<Vec<f64>> = serde_json::from_value(v.clone()).unwrap();
        Array2::from_shape_fn((rows.len(), rows[0].len()), |(i, j)| rows[i][j] as f32)
    }

    /// Fitted and mapped features against NumPy (tests/reference/make_msda_reference.py), including a feature
    /// that never occurs.
    #[test]
    fn matches_the_numpy_reference() {
        let r: serde_json::Value =
            serde_json::from_str(include_str!("../tests/reference/msda_reference.json")).unwrap();
        let (fit_x, test_x) = (matrix(&r["fit_x"]), matrix(&r["test_x"]));
        for case in r["cases"].as_array().unwrap() {
            let layers = case["layers"].as_u64().unwrap() as usize;
            let (p, eta) = (case["noise"].as_f64().unwrap(), case["regularization"].as_f64().unwrap());
            let (model, fitted) = Msda::fit(fit_x.view(), layers, p, eta).unwrap();
            let test = model.transform(test_x.view()).unwrap();
            for (ours, want) in [(&fitted, matrix(&case["fitted"])), (&test, matrix(&case["test"]))] {
                assert_eq!(ours.dim(), (want.nrows(), 7 * (layers + 1)));
                let worst = ours.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
                assert!(worst < 1e-5, "layers {layers}, noise {p}: largest difference {worst}");
            }
            // The fitted rows map to the same features when transformed again.
            let again = model.transform(fit_x.view()).unwrap();
            assert!(again.iter().zip(&fitted).all(|(a, b)| (a - b).abs() < 1e-6));
        }
    }

    /// Without corruption or ridge the denoising map is the identity on full-rank data, so layer 1 is tanh(x).
    #[test]
    fn without_noise_the_first_layer_is_tanh_of_the_input() {
        let x =
            Array2::from_shape_fn((30, 4), |(i, j)| ((i * 7 + j * 3) % 11) as f32 / 5.0 - 1.0 + (i * j) as f32 * 0.01);
        let (_, h) = Msda::fit(x.view(), 1, 0.0, 0.0).unwrap();
        for i in 0..30 {
            for j in 0..4 {
                assert!((h[[i, 4 + j]] - x[[i, j]].tanh()).abs() < 1e-4, "{i},{j}: {} vs {}", h[[i, 4 + j]], x[[i, j]]);
            }
        }
    }

    fn domain(name: &str, x: Array2<f32>, y: Vec<i64>) -> Domain {
        Domain::new(name, x.into_dyn(), y, vec!["a".into(), "b".into()]).unwrap()
    }

    /// The map is fitted on source and target training features only: labels and the test split do not change
    /// it; every split is mapped, labels and names kept.
    #[test]
    fn fitted_on_unlabelled_training_features_only() {
        let xs = array![[1.0, 0.0, 2.0], [0.0, 1.0, 1.0], [3.0, 1.0, 0.0], [1.0, 1.0, 1.0], [0.0, 2.0, 0.0]];
        let xt = array![[2.0, 0.0, 1.0], [1.0, 3.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]];
        let test = array![[0.0, 1.0, 2.0], [4.0, 0.0, 0.0]];
        let rep = Representation::Msda { layers: 2, noise: 0.5, regularization: 1e-5 };
        let task = |ys: Vec<i64>, test: Array2<f32>| {
            TaskData::new(
                domain("s", xs.clone(), ys),
                domain("t", xt.clone(), vec![0, 1, 1, 0]),
                Some(domain("tt", test, vec![1, 0])),
            )
            .unwrap()
        };
        let a = rep.apply(task(vec![0, 1, 0, 1, 0], test.clone())).unwrap();
        let b = rep.apply(task(vec![1, 1, 1, 0, 0], test.mapv(|v| v * 10.0))).unwrap();
        assert_eq!(a.source.x.shape(), vec![5, 9]);
        assert_eq!(a.target_test.as_ref().unwrap().x.shape(), vec![2, 9]);
        assert_eq!(a.source.x, b.source.x, "labels and test features changed the fit");
        assert_eq!(a.target.x, b.target.x);
        assert_eq!((a.source.y.clone(), a.target_test.as_ref().unwrap().y.clone()), (vec![0, 1, 0, 1, 0], vec![1, 0]));
        // The test split goes through the same map as a training row would.
        let (model, _) =
            Msda::fit(ndarray::concatenate(Axis(0), &[xs.view(), xt.view()]).unwrap().view(), 2, 0.5, 1e-5).unwrap();
        assert_eq!(a.target_test.unwrap().x.dense().unwrap(), &model.transform(test.view()).unwrap().into_dyn());
    }

    #[test]
    fn options_and_inputs_are_checked() {
        let bad = |layers, noise, regularization| Representation::Msda { layers, noise, regularization }.validate();
        assert_eq!(bad(0, 0.5, 1e-5).unwrap_err(), "representation.layers: must be 1 to 20, got 0");
        assert_eq!(bad(5, 1.0, 1e-5).unwrap_err(), "representation.noise: must be in [0, 1), got 1");
        assert!(bad(5, 0.5, -1.0).unwrap_err().starts_with("representation.regularization:"));
        let nan = array![[1.0, f32::NAN], [0.0, 1.0]];
        let e = Msda::fit(nan.view(), 1, 0.5, 1e-5).unwrap_err().to_string();
        assert!(e.contains("feature 1 of fitting sample 0 is NaN"), "{e}");
        // (Domains are finite by construction, `Domain::new`; a raw array given to `transform` is checked too.)
        let (m, _) = Msda::fit(array![[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]].view(), 1, 0.5, 1e-5).unwrap();
        let e = m.transform(array![[1.0, 0.0], [f32::INFINITY, 1.0]].view()).unwrap_err().to_string();
        assert!(e.contains("feature 0 of sample 1 is inf"), "{e}");
        let (m, _) = Msda::fit(array![[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]].view(), 1, 0.5, 1e-5).unwrap();
        assert!(
            m.transform(array![[1.0, 2.0, 3.0]].view())
                .unwrap_err()
                .to_string()
                .contains("fitted on 2 features, the split has 3")
        );
        // A singular system without ridge: a feature that never occurs.
        let e = Msda::fit(array![[1.0, 0.0], [2.0, 0.0], [0.5, 0.0]].view(), 1, 0.5, 0.0).unwrap_err().to_string();
        assert!(e.contains("mSDA layer 1") && e.contains("regularization"), "{e}");
    }
}
