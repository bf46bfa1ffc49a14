//! `dalab._native`: dalab-metrics and dalab-validators on NumPy arrays (pyo3 + rust-numpy, abi3). Settings come in
//! and results go out as JSON text, the same serde structs the Rust API and `dalab divergence --json` use; the
//! Python package (`dalab/__init__.py`) turns keyword arguments and dicts into them.

use numpy::{IntoPyArray, PyArray2, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

fn err<E: std::fmt::Display>(e: E) -> PyErr {
    PyValueError::new_err(e.to_string())
}

fn settings<T: serde::de::DeserializeOwned>(json: &str, what: &str) -> PyResult<T> {
    serde_json::from_str(json).map_err(|e| PyValueError::new_err(format!("{what}: {e}")))
}

fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("results serialize")
}

/// MMD² of two samples (rows); `settings` is an `MmdSettings` as JSON. Returns the `MmdResult` as JSON.
#[pyfunction]
fn mmd2(
    py: Python<'_>,
    xs: PyReadonlyArray2<'_, f64>,
    xt: PyReadonlyArray2<'_, f64>,
    settings_json: &str,
) -> PyResult<String> {
    let s: dalab_metrics::mmd::MmdSettings = settings(settings_json, "mmd settings")?;
    let (a, b) = (xs.as_array(), xt.as_array());
    py.allow_threads(|| dalab_metrics::mmd::mmd2(a, b, &s)).map(|r| to_json(&r)).map_err(err)
}

/// The proxy A-distance; `settings` is an `ADistanceSettings` as JSON. Returns the `ADistanceResult` as JSON.
#[pyfunction]
fn proxy_a_distance(
    py: Python<'_>,
    xs: PyReadonlyArray2<'_, f64>,
    xt: PyReadonlyArray2<'_, f64>,
    settings_json: &str,
) -> PyResult<String> {
    let s: dalab_metrics::adist::ADistanceSettings = settings(settings_json, "proxy A-distance settings")?;
    let (a, b) = (xs.as_array(), xt.as_array());
    py.allow_threads(|| dalab_metrics::adist::proxy_a_distance(a, b, &s)).map(|r| to_json(&r)).map_err(err)
}

/// The CORAL distance `‖C_S − C_T‖²_F / (4 d²)`; returns the `CoralResult` as JSON.
#[pyfunction]
fn coral_distance(py: Python<'_>, xs: PyReadonlyArray2<'_, f64>, xt: PyReadonlyArray2<'_, f64>) -> PyResult<String> {
    let (a, b) = (xs.as_array(), xt.as_array());
    py.allow_threads(|| dalab_metrics::coral::coral_distance(a, b)).map(|r| to_json(&r)).map_err(err)
}

/// CORAL's alignment (Sun et al. 2016) fitted on `xs`, `xt` and applied to `x`; `settings` is a
/// `CoralTransformSettings` as JSON.
#[pyfunction]
fn coral_transform<'py>(
    py: Python<'py>,
    xs: PyReadonlyArray2<'py, f64>,
    xt: PyReadonlyArray2<'py, f64>,
    x: PyReadonlyArray2<'py, f64>,
    settings_json: &str,
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let s: dalab_metrics::coral::CoralTransformSettings = settings(settings_json, "CORAL settings")?;
    let (a, b, c) = (xs.as_array(), xt.as_array(), x.as_array());
    let out = py
        .allow_threads(|| dalab_metrics::coral::CoralTransform::fit(a, b, &s).and_then(|t| t.apply(c)))
        .map_err(err)?;
    Ok(out.into_pyarray(py))
}

/// One validator's score (higher is better; docs/model-selection.md) from whichever inputs it needs; never the
/// target labels, except `target_oracle`.
#[pyfunction]
#[pyo3(signature = (name, settings_json, source_logits=None, source_labels=None, target_logits=None,
    target_labels=None, source_features=None, target_features=None, source_train_features=None,
    reverse_source_logits=None))]
#[allow(clippy::too_many_arguments)]
fn validator(
    name: &str,
    settings_json: &str,
    source_logits: Option<PyReadonlyArray2<'_, f64>>,
    source_labels: Option<PyReadonlyArray1<'_, i64>>,
    target_logits: Option<PyReadonlyArray2<'_, f64>>,
    target_labels: Option<PyReadonlyArray1<'_, i64>>,
    source_features: Option<PyReadonlyArray2<'_, f64>>,
    target_features: Option<PyReadonlyArray2<'_, f64>>,
    source_train_features: Option<PyReadonlyArray2<'_, f64>>,
    reverse_source_logits: Option<PyReadonlyArray2<'_, f64>>,
) -> PyResult<f64> {
    let v: dalab_validators::Validator = name.parse().map_err(err)?;
    let s: dalab_validators::Settings = settings(settings_json, "validator settings")?;
    let labels = |a: &Option<PyReadonlyArray1<'_, i64>>| -> PyResult<Option<Vec<i64>>> {
        a.as_ref().map(|a| a.as_slice().map(<[i64]>::to_vec).map_err(err)).transpose()
    };
    let (sl, tl) = (labels(&source_labels)?, labels(&target_labels)?);
    let inputs = dalab_validators::Inputs {
        source_logits: source_logits.as_ref().map(|a| a.as_array()),
        source_labels: sl.as_deref(),
        target_logits: target_logits.as_ref().map(|a| a.as_array()),
        target_labels: tl.as_deref(),
        source_features: source_features.as_ref().map(|a| a.as_array()),
        target_features: target_features.as_ref().map(|a| a.as_array()),
        source_train_features: source_train_features.as_ref().map(|a| a.as_array()),
        reverse_source_logits: reverse_source_logits.as_ref().map(|a| a.as_array()),
    };
    let (_, score) = dalab_validators::score_all(&[v], &inputs, &s).pop().expect("one validator, one score");
    score.map_err(err)
}

/// The default settings of `mmd`, `proxy_a_distance`, `coral_transform` or `validators`, as JSON (what the Python
/// functions' keyword arguments override).
#[pyfunction]
fn defaults(name: &str) -> PyResult<String> {
    Ok(match name {
        "mmd" => to_json(&dalab_metrics::mmd::MmdSettings::default()),
        "proxy_a_distance" => to_json(&dalab_metrics::adist::ADistanceSettings::default()),
        "coral_transform" => to_json(&dalab_metrics::coral::CoralTransformSettings::default()),
        "validators" => to_json(&dalab_validators::Settings::default()),
        other => return Err(PyValueError::new_err(format!("no settings named `{other}`"))),
    })
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(mmd2, m)?)?;
    m.add_function(wrap_pyfunction!(proxy_a_distance, m)?)?;
    m.add_function(wrap_pyfunction!(coral_distance, m)?)?;
    m.add_function(wrap_pyfunction!(coral_transform, m)?)?;
    m.add_function(wrap_pyfunction!(validator, m)?)?;
    m.add_function(wrap_pyfunction!(defaults, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
