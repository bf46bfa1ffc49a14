#!/usr/bin/env python3
"""Reference values of dalab-validators, computed independently with NumPy / SciPy / scikit-learn.

Writes reference.json beside this file: for each case its inputs (seeded random data, rounded to 6 decimals so
that both sides read exactly the same numbers), the scikit-learn importance weights, and every validator's score.
`tests/validators.rs` recomputes them in Rust and asserts agreement within 1e-6.

    python3 -m venv /tmp/valenv && /tmp/valenv/bin/pip install numpy scipy scikit-learn
    /tmp/valenv/bin/python crates/dalab-validators/tests/reference/make_reference.py

Conventions (the crate's; docs/model-selection.md): every score is higher-is-better; entropies in nats.
"""

import json
import warnings
from pathlib import Path

import numpy as np
import scipy
import sklearn
from scipy.linalg import svdvals
from scipy.special import log_softmax, softmax
from scipy.stats import entropy as entropy_rows
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import normalize

SND_TEMPERATURE = 0.05
# DEV takes the weights as constant (eta = 0) when Var(W) <= this * mean(W^2).
DEV_CONSTANT_WEIGHTS = 1e-24


def accuracy(logits, labels):
    return float(np.mean(np.argmax(logits, axis=1) == labels))


def neg_entropy(logits):
    return float(-np.mean(entropy_rows(softmax(logits, axis=1), axis=1)))


def information_maximisation(logits):
    p = softmax(logits, axis=1)
    return float(entropy_rows(p.mean(axis=0)) - np.mean(entropy_rows(p, axis=1)))


def batch_nuclear_norm(logits):
    p = softmax(logits, axis=1)
    return float(svdvals(p).sum() / p.shape[0])


def soft_neighbourhood_density(logits, tau=SND_TEMPERATURE):
    f = normalize(softmax(logits, axis=1), norm="l2")
    n = f.shape[0]
    sims = (f @ f.T) / tau
    off_diagonal = sims[~np.eye(n, dtype=bool)].reshape(n, n - 1)
    return float(np.mean(entropy_rows(softmax(off_diagonal, axis=1), axis=1)))


def importance_weights(source, target, train_source, c):
    """p_t(x)/p_s(x) at the rows of `source`, by LogisticRegression(C=c) trained on train_source (label 0) vs
    target (label 1): exp(decision_function) * n_s / n_t."""
    train = source if train_source is None else train_source
    x = np.vstack([train, target])
    y = np.r_[np.zeros(len(train)), np.ones(len(target))]
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        clf = LogisticRegression(C=c, fit_intercept=True, solver="newton-cholesky", tol=1e-12, max_iter=1000)
        clf.fit(x, y)
    return np.exp(clf.decision_function(source)) * len(train) / len(target)


def reverse_scores(target_features, pseudo, k, source_features, c):
    """One-vs-rest LogisticRegression(C=c) of pseudo == j on the target features, decision values at the source
    rows; a class nobody is pseudo-labelled with scores float64 min, a single pseudo-class scores 0 (the others
    min)."""
    out = np.full((len(source_features), k), np.finfo(np.float64).min)
    counts = np.bincount(pseudo, minlength=k)
    if counts.max() == len(pseudo):
        out[:, int(np.argmax(counts))] = 0.0
        return out
    for j in range(k):
        if counts[j] == 0:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("error", ConvergenceWarning)
            clf = LogisticRegression(C=c, fit_intercept=True, solver="newton-cholesky", tol=1e-12, max_iter=1000)
            clf.fit(target_features, (pseudo == j).astype(float))
        out[:, j] = clf.decision_function(source_features)
    return out


def iwcv(logits, labels, w):
    return float(np.mean(w * (np.argmax(logits, axis=1) == labels)))


def dev(logits, labels, w):
    loss = -log_softmax(logits, axis=1)[np.arange(len(labels)), labels]
    wl = w * loss
    eta = 0.0
    if len(w) >= 2 and np.var(w, ddof=1) > DEV_CONSTANT_WEIGHTS * np.mean(w * w):
        eta = -np.cov(np.stack([wl, w]))[0, 1] / np.var(w, ddof=1)
    return float(-(np.mean(wl) + eta * np.mean(w) - eta))


def r6(a):
    return np.round(np.asarray(a, dtype=np.float64), 6)


def make_case(name, seed, n_v, n_t, k, d, c, shift, n_train=None, saturate=False):
    rng = np.random.default_rng(seed)
    source_logits = r6(2.0 * rng.standard_normal((n_v, k)))
    source_labels = np.argmax(source_logits + 1.5 * rng.standard_normal((n_v, k)), axis=1)
    target_logits = r6(2.5 * rng.standard_normal((n_t, k)))
    target_labels = np.argmax(target_logits + 2.0 * rng.standard_normal((n_t, k)), axis=1)
    reverse_logits = r6(rng.standard_normal((n_v, k)) + 1.5 * np.eye(k)[source_labels])
    source_features = r6(rng.standard_normal((n_v, d)))
    target_features = r6(shift + 1.2 * rng.standard_normal((n_t, d)))
    train_features = None if n_train is None else r6(rng.standard_normal((n_train, d)))
    if saturate:
        # Saturated rows (a class probability underflows to 0) and an all-equal row (argmax tie -> class 0).
        target_logits[0] = [700.0, -700.0] + [0.0] * (k - 2)
        target_logits[-1] = 0.0
        source_logits[0] = [-50.0, 50.0] + [0.0] * (k - 2)
        source_logits[-1] = 0.0
    w = importance_weights(source_features, target_features, train_features, c)
    pseudo = np.argmax(target_logits, axis=1)
    rev = reverse_scores(target_features, pseudo, k, source_features, c)
    expected = {
        "source_val": accuracy(source_logits, source_labels),
        "entropy": neg_entropy(target_logits),
        "im": information_maximisation(target_logits),
        "bnm": batch_nuclear_norm(target_logits),
        "snd": soft_neighbourhood_density(target_logits),
        "iwcv": iwcv(source_logits, source_labels, w),
        "dev": dev(source_logits, source_labels, w),
        "reverse": accuracy(reverse_logits, source_labels),
        "reverse_linear": accuracy(rev, source_labels),
        "target_oracle": accuracy(target_logits, target_labels),
    }
    return {
        "name": name,
        "c": c,
        "source_logits": source_logits.tolist(),
        "source_labels": source_labels.tolist(),
        "target_logits": target_logits.tolist(),
        "target_labels": target_labels.tolist(),
        "source_features": source_features.tolist(),
        "target_features": target_features.tolist(),
        "source_train_features": None if train_features is None else train_features.tolist(),
        "reverse_source_logits": reverse_logits.tolist(),
        "weights": w.tolist(),
        "reverse_scores": rev.tolist(),
        "expected": expected,
    }


def main():
    cases = [
        make_case("small", seed=1, n_v=30, n_t=40, k=3, d=4, c=1.0, shift=0.5),
        make_case("medium_train_split", seed=2, n_v=200, n_t=150, k=10, d=16, c=0.5, shift=0.3, n_train=300),
        make_case("strong_shift", seed=3, n_v=60, n_t=80, k=4, d=3, c=10.0, shift=1.5),
        make_case("snd_blocks", seed=4, n_v=50, n_t=1200, k=4, d=2, c=1.0, shift=0.2),
        make_case("edge_two_rows_saturated", seed=5, n_v=2, n_t=2, k=2, d=1, c=1.0, shift=0.5, saturate=True),
        make_case("edge_saturated", seed=6, n_v=8, n_t=9, k=3, d=2, c=1.0, shift=0.5, saturate=True),
    ]
    out = {
        "generator": f"make_reference.py (NumPy {np.__version__}, SciPy {scipy.__version__}, "
        f"scikit-learn {sklearn.__version__})",
        "snd_temperature": SND_TEMPERATURE,
        "cases": cases,
    }
    path = Path(__file__).with_name("reference.json")
    path.write_text(json.dumps(out) + "\n")
    for case in cases:
        print(case["name"], json.dumps(case["expected"]))


if __name__ == "__main__":
    main()
