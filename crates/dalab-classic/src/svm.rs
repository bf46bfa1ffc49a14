//! Multiclass SVM, as libsvm's C-SVC trains it: the classifier of the CORAL (AAAI'16) authors' code. CORAL's
//! own SVM is `svmtrain(y, [idx K], '-t 4 -c C')` on the precomputed linear kernel, with C taken from
//! {1e-3, 1e-2, …, 1e4} by 2-fold cross-validation on the source (`-v 2`, the first C of the best accuracy);
//! its no-adaptation helper calls `svmtrain(y, X, '-c C -v 2')` with no `-t`, i.e. libsvm's default RBF kernel
//! `exp(−γ‖x − x'‖²)`, γ = 1/d (`kernel: rbf`; see experiments/reproduce/coral-table3.yaml for the evidence).
//!
//! - Each binary problem is the hinge-loss soft-margin SVM with an unregularised bias,
//!   `min ½‖w‖² + C Σ ξ_i, y_i (w·φ(x_i) − ρ) ≥ 1 − ξ_i`, solved in the dual by SMO with second-order
//!   working-set selection, libsvm's algorithm, at libsvm's default tolerance 1e-3 (no shrinking). Linear (and
//!   bilinear): on the Gram matrix `X Xᵀ`, computed once per training set by one matrix product and shared by
//!   every cross-validation fold and C, solved by [`crate::smo`] (linfa-svm builds the linear kernel entry by
//!   entry: one 30,000-d mSDA trial, 51 fits, had not finished after 13 min; on the Gram matrix it took 94 s
//!   with the mSDA fit, 2 threads); `w = Σ α_i y_i x_i` is formed once, so
//!   prediction is one product. RBF: linfa-svm's solver (a port of libsvm's); the decision `Σ α_i y_i K(x_i,
//!   x) − ρ` over the support vectors, as matrix products.
//! - Multiclass: one-vs-one over every pair of classes present, prediction by votes; a tie goes to the lower
//!   class index (libsvm's rule, with classes sorted as scikit-learn's `SVC` orders them).
//! - Cross-validation folds are stratified and seeded (libsvm's `-v` draws them with C `rand()`).
//!
//! The dalab-metrics SVM of the proxy A-distance is a different model (squared hinge, regularised bias, as
//! liblinear's default); the CORAL protocol needs libsvm's, so this one is not shared with it.

use crate::{Error, Result, Validate, accuracy};
use linfa::DatasetBase;
use linfa::traits::Fit;
use linfa_svm::Svm;
use ndarray::{Array1, Array2, ArrayView2, Axis};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// The kernel of the SVM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SvmKernel {
    /// `K(x, x') = x·x'` (libsvm `-t 0`, or `-t 4` on a precomputed linear kernel).
    #[default]
    Linear,
    /// `K(x, x') = exp(−γ‖x − x'‖²)` (libsvm's default, `-t 2`); γ from `gamma`, default 1/d.
    Rbf,
}

/// The `svm:` options: the kernel, the C grid, the cross-validation and the solver tolerance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SvmSettings {
    /// `linear` (default) or `rbf`.
    pub kernel: SvmKernel,
    /// γ of the RBF kernel; default (null) 1/d, libsvm's. Only with `kernel: rbf`.
    pub gamma: Option<f64>,
    /// Values of C tried; the first with the highest cross-validation accuracy on the source wins. A single
    /// value fixes C (no cross-validation).
    pub c_grid: Vec<f64>,
    /// Folds of the stratified cross-validation on the source (the CORAL code: 2).
    pub folds: usize,
    /// Stopping tolerance of the SMO solver (libsvm's `-e`, default 1e-3).
    pub tolerance: f64,
}

impl Default for SvmSettings {
    fn default() -> Self {
        Self {
            kernel: SvmKernel::Linear,
            gamma: None,
            c_grid: vec![1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1e3, 1e4],
            folds: 2,
            tolerance: 1e-3,
        }
    }
}

impl Validate for SvmSettings {
    fn validate(&self) -> std::result::Result<(), String> {
        if self.c_grid.is_empty() {
            return Err("c_grid: needs at least one value".into());
        }
        if let Some((i, c)) = self.c_grid.iter().enumerate().find(|(_, c)| !(c.is_finite() && **c > 0.0)) {
            return Err(format!("c_grid[{i}]: must be a finite number > 0, got {c}"));
        }
        if self.folds < 2 {
            return Err(format!("folds: must be >= 2, got {}", self.folds));
        }
        if !(self.tolerance.is_finite() && self.tolerance > 0.0) {
            return Err(format!("tolerance: must be a finite number > 0, got {}", self.tolerance));
        }
        match (self.kernel, self.gamma) {
            (SvmKernel::Linear, Some(_)) => Err("gamma: only for `kernel: rbf`".into()),
            (SvmKernel::Rbf, Some(g)) if !(g.is_finite() && g > 0.0) => {
                Err(format!("gamma: must be a finite number > 0, got {g}"))
            }
            _ => Ok(()),
        }
    }
}

impl SvmSettings {
    /// The kernel with its γ resolved for `d` features.
    pub fn kernel_for(&self, d: usize) -> Kernel {
        match self.kernel {
            SvmKernel::Linear => Kernel::Linear,
            SvmKernel::Rbf => Kernel::Rbf { gamma: self.gamma.unwrap_or(1.0 / d.max(1) as f64) },
        }
    }
}

/// A kernel with its parameters resolved.
#[derive(Debug, Clone, PartialEq)]
pub enum Kernel {
    Linear,
    Rbf {
        gamma: f64,
    },
    /// The bilinear form `K(x, x') = (x M)·x'` with a d×d matrix `M`, given to libsvm as a precomputed matrix
    /// (`K = X M Xᵀ`, not symmetric unless `M` is): what the CORAL authors' code trains on with `M = A`
    /// (solved by [`crate::smo`], libsvm's algorithm reading rows). The decision `Σ coef_i (x_i M)·x − ρ` is
    /// linear in `x`.
    Bilinear(Array2<f64>),
}

/// One binary machine of the one-vs-one scheme: a decision `f(x) − ρ > 0` votes for `pos`, else for `neg`.
#[derive(Debug, Clone)]
struct Machine {
    pos: usize,
    neg: usize,
    f: Decision,
    rho: f64,
}

#[derive(Debug, Clone)]
enum Decision {
    /// `f(x) = w·x`.
    Linear(Array1<f64>),
    /// `f(x) = Σ_i coef_i exp(−γ‖sv_i − x‖²)` over the support vectors (`coef_i = α_i y_i`).
    Rbf { sv: Array2<f64>, sv_sq: Array1<f64>, coef: Array1<f64>, gamma: f64 },
}

impl Decision {
    fn eval(&self, x: ArrayView2<'_, f64>) -> Array1<f64> {
        match self {
            Decision::Linear(w) => x.dot(w),
            Decision::Rbf { sv, sv_sq, coef, gamma } => {
                let x_sq: Array1<f64> = x.rows().into_iter().map(|r| r.dot(&r)).collect();
                let mut k = x.dot(&sv.t()) * -2.0;
                for (mut row, xs) in k.rows_mut().into_iter().zip(&x_sq) {
                    for (v, s) in row.iter_mut().zip(sv_sq) {
                        *v = (-gamma * (*v + xs + s).max(0.0)).exp();
                    }
                }
                k.dot(coef)
            }
        }
    }
}

/// A fitted one-vs-one SVM (linear or RBF).
#[derive(Debug, Clone)]
pub struct SvmClassifier {
    /// The class labels present in training, ascending.
    classes: Vec<i64>,
    machines: Vec<Machine>,
    /// The C it was trained with.
    pub c: f64,
}

/// Cross-validation accuracy of one C.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CvPoint {
    pub c: f64,
    pub accuracy: f64,
}

fn check_inputs(x: ArrayView2<'_, f64>, y: &[i64]) -> Result<()> {
    if x.nrows() != y.len() {
        return Err(Error::Invalid(format!("{} labels for {} samples", y.len(), x.nrows())));
    }
    if x.nrows() == 0 {
        return Err(Error::Invalid("no training samples".into()));
    }
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        let (r, c) = (i / x.ncols().max(1), i % x.ncols().max(1));
        return Err(Error::Invalid(format!("non-finite feature value at row {r}, column {c}")));
    }
    Ok(())
}

/// The precomputed kernel of the linear forms over a whole training set: `K = (X M) Xᵀ` with `X M` kept for the
/// decision (`M = I` for the linear kernel). Computed once, by one matrix product, and shared by every
/// cross-validation fold and C: each fit reads its rows' block.
struct Gram<'a> {
    xm: ndarray::CowArray<'a, f64, ndarray::Ix2>,
    k: Array2<f64>,
}

impl<'a> Gram<'a> {
    /// The Gram matrix of `x` for a linear or bilinear kernel; None for the RBF kernel (solved by linfa-svm).
    fn new(x: ArrayView2<'a, f64>, kernel: &Kernel) -> Result<Option<Self>> {
        let xm = match kernel {
            Kernel::Linear => ndarray::CowArray::from(x),
            Kernel::Bilinear(m) => {
                if m.dim() != (x.ncols(), x.ncols()) {
                    return Err(Error::Invalid(format!(
                        "bilinear kernel: M is {:?} for {} features",
                        m.dim(),
                        x.ncols()
                    )));
                }
                ndarray::CowArray::from(x.dot(m))
            }
            Kernel::Rbf { .. } => return Ok(None),
        };
        let k = xm.dot(&x.t());
        Ok(Some(Gram { xm, k }))
    }
}

impl SvmClassifier {
    /// Trains one machine per pair of classes present in `y` with cost `c`.
    pub fn fit(x: ArrayView2<'_, f64>, y: &[i64], kernel: &Kernel, c: f64, tolerance: f64) -> Result<Self> {
        check_inputs(x, y)?;
        if let Some(g) = Gram::new(x, kernel)? {
            let all: Vec<usize> = (0..y.len()).collect();
            return Ok(Self::fit_gram(&g, y, &all, c, tolerance));
        }
        let Kernel::Rbf { gamma } = kernel else { unreachable!("the linear forms have a Gram matrix") };
        let (classes, pairs, rows) = Self::pairs(y);
        let machines = pairs
            .par_iter()
            .map(|&(a, b)| {
                let idx: Vec<usize> = rows[a].iter().chain(&rows[b]).copied().collect();
                let targets: Array1<bool> = idx.iter().map(|&i| y[i] == classes[a]).collect();
                let failed =
                    |e: String| Error::Invalid(format!("SVM for classes {} vs {}: {e}", classes[a], classes[b]));
                let data = DatasetBase::new(x.select(Axis(0), &idx), targets);
                let params = Svm::<f64, bool>::params().pos_neg_weights(c, c).eps(tolerance);
                let model = params.gaussian_kernel(1.0 / gamma).fit(&data).map_err(|e| failed(e.to_string()))?;
                // linfa keeps α_i·y_i.
                let coef = Array1::from(model.alpha.clone());
                let keep: Vec<usize> = (0..coef.len()).filter(|&i| coef[i] != 0.0).collect();
                let sv = data.records().select(Axis(0), &keep);
                let sv_sq = sv.rows().into_iter().map(|r| r.dot(&r)).collect();
                let f = Decision::Rbf { sv, sv_sq, coef: coef.select(Axis(0), &keep), gamma: *gamma };
                Ok(Machine { pos: a, neg: b, f, rho: model.rho })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { classes, machines, c })
    }

    /// The classes present in `y` (ascending), their pairs, and each class's rows.
    #[allow(clippy::type_complexity)]
    fn pairs(y: &[i64]) -> (Vec<i64>, Vec<(usize, usize)>, Vec<Vec<usize>>) {
        let mut classes: Vec<i64> = y.to_vec();
        classes.sort_unstable();
        classes.dedup();
        let rows: Vec<Vec<usize>> = classes.iter().map(|&k| (0..y.len()).filter(|&i| y[i] == k).collect()).collect();
        let pairs: Vec<(usize, usize)> =
            (0..classes.len()).flat_map(|a| (a + 1..classes.len()).map(move |b| (a, b))).collect();
        (classes, pairs, rows)
    }

    /// Trains on the rows `train` of the Gram matrix's training set (`y` its labels, all rows) with libsvm's
    /// algorithm ([`crate::smo`]); the decision is linear: `w = Σ coef_i (x_i M)`.
    fn fit_gram(g: &Gram<'_>, y: &[i64], train: &[usize], c: f64, tolerance: f64) -> Self {
        let ty: Vec<i64> = train.iter().map(|&i| y[i]).collect();
        let (classes, pairs, rows) = Self::pairs(&ty);
        let machines = pairs
            .par_iter()
            .map(|&(a, b)| {
                let idx: Vec<usize> = rows[a].iter().chain(&rows[b]).map(|&r| train[r]).collect();
                let pos: Vec<bool> = idx.iter().map(|&i| y[i] == classes[a]).collect();
                let sol = crate::smo::solve(idx.len(), &|i, j| g.k[[idx[i], idx[j]]], &pos, c, tolerance);
                let w = g.xm.select(Axis(0), &idx).t().dot(&Array1::from(sol.coef));
                Machine { pos: a, neg: b, f: Decision::Linear(w), rho: sol.rho }
            })
            .collect();
        Self { classes, machines, c }
    }

    /// `[n, pairs]` decision values `w·x − ρ`, pairs in the order (0,1), (0,2), …, (1,2), … of the classes
    /// present (scikit-learn's `decision_function_shape='ovo'`).
    pub fn decision_values(&self, x: ArrayView2<'_, f64>) -> Array2<f64> {
        let mut out = Array2::zeros((x.nrows(), self.machines.len()));
        for (k, m) in self.machines.iter().enumerate() {
            let mut col = out.column_mut(k);
            col.assign(&(m.f.eval(x) - m.rho));
        }
        out
    }

    /// Class labels by one-vs-one votes.
    pub fn predict(&self, x: ArrayView2<'_, f64>) -> Vec<i64> {
        if self.machines.is_empty() {
            return vec![self.classes[0]; x.nrows()];
        }
        let dec = self.decision_values(x);
        dec.outer_iter()
            .map(|row| {
                let mut votes = vec![0usize; self.classes.len()];
                for (m, &d) in self.machines.iter().zip(row) {
                    votes[if d > 0.0 { m.pos } else { m.neg }] += 1;
                }
                let best = (0..votes.len()).fold(0, |b, i| if votes[i] > votes[b] { i } else { b });
                self.classes[best]
            })
            .collect()
    }
}

impl crate::Classifier for SvmClassifier {
    fn predict(&self, x: ArrayView2<'_, f64>) -> Vec<i64> {
        SvmClassifier::predict(self, x)
    }
}

/// Stratified fold of every sample: within each class (ascending), the samples in a seeded random order are
/// dealt to folds 0, 1, …, k−1, 0, ….
pub fn stratified_folds(y: &[i64], folds: usize, seed: u64) -> Vec<usize> {
    let mut classes: Vec<i64> = y.to_vec();
    classes.sort_unstable();
    classes.dedup();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut fold = vec![0; y.len()];
    for k in classes {
        let mut idx: Vec<usize> = (0..y.len()).filter(|&i| y[i] == k).collect();
        idx.shuffle(&mut rng);
        for (j, i) in idx.into_iter().enumerate() {
            fold[i] = j % folds;
        }
    }
    fold
}

/// Cross-validation accuracy of each C for the given fold of every sample: each fold is predicted by the SVM
/// trained on the others; the accuracy is over all samples (libsvm's `-v`).
pub fn cross_validate(
    x: ArrayView2<'_, f64>,
    y: &[i64],
    fold: &[usize],
    kernel: &Kernel,
    c_grid: &[f64],
    tolerance: f64,
) -> Result<Vec<CvPoint>> {
    check_inputs(x, y)?;
    let k = fold.iter().max().map_or(0, |m| m + 1);
    let gram = Gram::new(x, kernel)?;
    c_grid
        .par_iter()
        .map(|&c| {
            let mut pred = vec![i64::MIN; y.len()];
            for f in 0..k {
                let (train, held): (Vec<usize>, Vec<usize>) = (0..y.len()).partition(|&i| fold[i] != f);
                if train.is_empty() || held.is_empty() {
                    continue;
                }
                let svm = match &gram {
                    Some(g) => SvmClassifier::fit_gram(g, y, &train, c, tolerance),
                    None => {
                        let ty: Vec<i64> = train.iter().map(|&i| y[i]).collect();
                        SvmClassifier::fit(x.select(Axis(0), &train).view(), &ty, kernel, c, tolerance)?
                    }
                };
                for (i, p) in held.iter().zip(svm.predict(x.select(Axis(0), &held).view())) {
                    pred[*i] = p;
                }
            }
            Ok(CvPoint { c, accuracy: accuracy(&pred, y) })
        })
        .collect()
}

/// The first point of the highest accuracy.
pub fn best(points: &[CvPoint]) -> CvPoint {
    points.iter().copied().fold(points[0], |b, p| if p.accuracy > b.accuracy { p } else { b })
}

/// Chooses C by stratified cross-validation on `(x, y)` (folds seeded by `seed`), then trains on all of it.
/// With a single C in the grid, trains with it directly. Returns the SVM and the cross-validation table.
pub fn fit_cv(
    x: ArrayView2<'_, f64>,
    y: &[i64],
    settings: &SvmSettings,
    seed: u64,
) -> Result<(SvmClassifier, Vec<CvPoint>)> {
    fit_cv_kernel(x, y, &settings.kernel_for(x.ncols()), settings, seed)
}

/// [`fit_cv`] with the kernel given (e.g. [`Kernel::Bilinear`]); `settings.kernel` is not read.
pub fn fit_cv_kernel(
    x: ArrayView2<'_, f64>,
    y: &[i64],
    kernel: &Kernel,
    settings: &SvmSettings,
    seed: u64,
) -> Result<(SvmClassifier, Vec<CvPoint>)> {
    settings.validate().map_err(Error::Invalid)?;
    check_inputs(x, y)?;
    if settings.c_grid.len() == 1 {
        return Ok((SvmClassifier::fit(x, y, kernel, settings.c_grid[0], settings.tolerance)?, Vec::new()));
    }
    let fold = stratified_folds(y, settings.folds, seed);
    let table = cross_validate(x, y, &fold, kernel, &settings.c_grid, settings.tolerance)?;
    let c = best(&table).c;
    Ok((SvmClassifier::fit(x, y, kernel, c, settings.tolerance)?, table))
}

/// A fitted SVM as a method's result, with the chosen C and its cross-validation accuracy as scalars.
pub fn fitted(svm: SvmClassifier, table: &[CvPoint]) -> crate::Fitted {
    let mut scalars = vec![("svm/c".to_string(), svm.c)];
    if !table.is_empty() {
        scalars.push(("svm/cv_accuracy".to_string(), best(table).accuracy));
    }
    crate::Fitted { classifier: Box::new(svm), scalars }
}

#[cfg(test)]
mod tests;
