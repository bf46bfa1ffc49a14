"""dalab from Python: the divergences (MMD², proxy A-distance, CORAL), the unsupervised model-selection validators
and a reader of dalab's runs directories, on NumPy arrays. The numerics are dalab's Rust crates (dalab-metrics,
dalab-validators) through a compiled extension; no libtorch is needed.

    import numpy as np, dalab
    xs, xt = np.random.randn(200, 16), np.random.randn(200, 16) + 0.5
    dalab.mmd2(xs, xt)["mmd2"]                      # DAN's five Gaussian kernels, biased estimator
    dalab.mmd2(xs, xt, permutations=99)["permutation_test"]["p_value"]
    dalab.proxy_a_distance(xs, xt)["d_a"]
"""

import json
import math
from pathlib import Path

import numpy as np

from . import _native

__version__ = _native.__version__
__all__ = [
    "mmd2",
    "proxy_a_distance",
    "coral_distance",
    "coral_transform",
    "validator",
    "VALIDATORS",
    "read_runs",
]

#: The validators `validator()` knows (docs/model-selection.md); `target_oracle` reads target labels.
VALIDATORS = ("source_val", "entropy", "im", "bnm", "snd", "iwcv", "dev", "reverse", "target_oracle")


def _rows(x, name):
    a = np.ascontiguousarray(x, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"{name}: needs a 2-d array (samples × features), got shape {a.shape}")
    return a


def _settings(name, overrides):
    s = json.loads(_native.defaults(name))
    for k, v in overrides.items():
        if k not in s:
            raise TypeError(f"{name}: unknown setting `{k}` (settings: {', '.join(s)})")
        s[k] = v
    return json.dumps(s)


def _kernel(kernel):
    if isinstance(kernel, dict):
        return kernel
    if kernel == "dan":  # DAN's 5 kernels: 2^-2 … 2^2 × the base bandwidth, equal weights
        return {"type": "gaussian", "multipliers": [0.25, 0.5, 1.0, 2.0, 4.0], "weights": [1.0] * 5}
    if kernel == "gaussian":
        return {"type": "gaussian", "multipliers": [1.0], "weights": [1.0]}
    if kernel == "linear":
        return {"type": "linear"}
    raise ValueError(f"kernel: `{kernel}` is not one of dan, gaussian, linear (or a dict)")


def _bandwidth(bandwidth):
    if isinstance(bandwidth, dict):
        return bandwidth
    if isinstance(bandwidth, (int, float)) and not isinstance(bandwidth, bool):
        return {"type": "fixed", "sigma2": float(bandwidth)}
    if bandwidth == "mean_squared_distance":
        return {"type": "mean_squared_distance"}
    if bandwidth == "median":
        return {"type": "median", "max_points": 2000}
    raise ValueError(f"bandwidth: `{bandwidth}` is not mean_squared_distance, median or a number (σ²)")


def mmd2(xs, xt, *, kernel="dan", bandwidth="mean_squared_distance", estimator="biased", precision="f64",
         permutations=0, seed=0):
    """MMD² between the rows of `xs` and `xt`.

    kernel: "dan" (default: 5 Gaussians at 2^-2…2^2 × the base σ²), "gaussian", "linear", or a dict
    {"type": "gaussian", "multipliers": [...], "weights": [...]}. bandwidth: "mean_squared_distance" (default),
    "median", a number (the base σ²) or a dict. estimator: "biased", "unbiased" or "linear" (linear time).
    permutations > 0 adds a permutation test (`result["permutation_test"]["p_value"]`). Returns dalab's MmdResult
    as a dict.
    """
    s = _settings("mmd", {
        "kernel": _kernel(kernel),
        "bandwidth": _bandwidth(bandwidth),
        "estimator": estimator,
        "precision": precision,
        "permutations": int(permutations),
        "seed": int(seed),
    })
    return json.loads(_native.mmd2(_rows(xs, "xs"), _rows(xt, "xt"), s))


def proxy_a_distance(xs, xt, **settings):
    """The proxy A-distance 2(1 − 2ε) of a linear SVM told apart the two samples (Ben-David et al.); settings:
    c_grid, split, solver, tol, max_iter, seed. Returns dalab's ADistanceResult as a dict (`"d_a"`)."""
    s = _settings("proxy_a_distance", settings)
    return json.loads(_native.proxy_a_distance(_rows(xs, "xs"), _rows(xt, "xt"), s))


def coral_distance(xs, xt):
    """‖C_S − C_T‖²_F / (4 d²) of the two samples' covariances (Sun & Saenko 2016); a dict (`"coral"`)."""
    return json.loads(_native.coral_distance(_rows(xs, "xs"), _rows(xt, "xt")))


def coral_transform(xs, xt, x=None, *, lam=1.0):
    """CORAL's alignment fitted on `xs`, `xt` (λ = `lam` added to both covariances), applied to `x` (default
    `xs`): the re-coloured rows."""
    s = _settings("coral_transform", {"lambda": float(lam)})
    xs = _rows(xs, "xs")
    return _native.coral_transform(xs, _rows(xt, "xt"), xs if x is None else _rows(x, "x"), s)


def validator(name, *, settings=None, **inputs):
    """One validator's score, higher is better (docs/model-selection.md). Inputs (NumPy arrays) as the validator
    needs them: source_logits, source_labels, target_logits, source_features, target_features,
    source_train_features, reverse_source_logits; target_labels only for `target_oracle`."""
    if name not in VALIDATORS:
        raise ValueError(f"validator: `{name}` is not one of {', '.join(VALIDATORS)}")
    args = {}
    for k, v in inputs.items():
        if v is None:
            continue
        if k.endswith("labels"):
            args[k] = np.ascontiguousarray(v, dtype=np.int64).reshape(-1)
        else:
            args[k] = _rows(v, k)
    return _native.validator(name, _settings("validators", settings or {}), **args)


def _row(result, trial_dir):
    sel = result.get("selected", {})
    acc = sel.get("target_test", sel.get("target"))
    row = {k: result.get(k) for k in ("experiment", "trial", "method", "source", "target", "seed", "selection",
                                     "oracle", "steps", "seconds", "device")}
    row["sweep"] = result.get("sweep", {})
    for k, v in row["sweep"].items():
        row[k] = v
    row["accuracy"] = acc
    row["split"] = "target_test" if "target_test" in sel else "target"
    row["selected"] = sel
    row["last"] = result.get("last", {})
    row["dir"] = str(trial_dir)
    return row


def read_runs(path, *, as_frame=None):
    """Every finished trial (a result.json) under `path` (a runs directory, an experiment folder or a trial) as a
    list of dicts: experiment, trial, method, source, target, seed, the swept keys, selection, `accuracy` (the
    selected model's target test accuracy where the dataset has a test split, else its target accuracy; `split`
    says which), the `selected` and `last` evaluations, steps, seconds, device, `dir`. A pandas DataFrame instead
    when pandas is installed (or `as_frame=True`; `as_frame=False` keeps the list)."""
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"{root}: no such runs directory")
    rows = []
    for f in sorted(root.rglob("result.json")):
        try:
            result = json.loads(f.read_text())
        except (OSError, ValueError) as e:
            raise ValueError(f"{f}: not a dalab result ({e})") from None
        if not isinstance(result, dict) or "selected" not in result:
            continue
        rows.append(_row(result, f.parent))
    if as_frame is False:
        return rows
    try:
        import pandas
    except ImportError:
        if as_frame:
            raise
        return rows
    return pandas.DataFrame(rows)


