"""Reference values for dalab-classic's linear SVM, from scikit-learn's SVC (libsvm inside).

Run: python3 make_reference.py > svm_reference.json   (numpy, scikit-learn; values checked in
crates/dalab-classic/src/svm/tests.rs). The data are deterministic formulas, regenerated identically there.
"""
import json

import numpy as np
import sklearn
from sklearn.model_selection import PredefinedSplit, cross_val_predict
from sklearn.svm import SVC

K, PER, D = 3, 24, 6


def data(n, phase):
    """Class i % K; features sin(0.37 (i + 1 + phase) (j + 2)) + 1.5 [j == class] (overlapping classes)."""
    y = np.arange(n) % K
    i = np.arange(n)[:, None] + 1 + phase
    j = np.arange(D)[None, :]
    x = np.sin(0.37 * i * (j + 2)) + 1.5 * (j == y[:, None])
    return x, y


x, y = data(K * PER, 0.0)
xt, yt = data(30, 0.5)

# Folds: within each class, samples in index order dealt to folds 0, 1, 0, 1, ...
fold = np.zeros(len(y), dtype=int)
for k in range(K):
    idx = np.where(y == k)[0]
    fold[idx] = np.arange(len(idx)) % 2

out = {"sklearn": sklearn.__version__, "fits": [], "cv": []}
# RBF with gamma = 1/d: libsvm's default kernel ('scale' in scikit-learn is different; give it explicitly).
for kernel, c in [("linear", 0.01), ("linear", 1.0), ("linear", 100.0), ("rbf", 1.0), ("rbf", 100.0)]:
    m = SVC(kernel=kernel, C=c, gamma=1.0 / D, tol=1e-3, shrinking=False, decision_function_shape="ovo").fit(x, y)
    out["fits"].append({
        "kernel": kernel,
        "c": c,
        "decision": m.decision_function(xt).tolist(),
        "predict": m.predict(xt).tolist(),
        "train_accuracy": float((m.predict(x) == y).mean()),
    })
# Precomputed matrices as the CORAL authors pass them to libsvm: K = X M X^T (train), K(x_t, x_i) = (x_i M).x_t
# (test); with M = I it is the linear kernel, with the M below it is not symmetric.
M = 0.5 * np.eye(D) + 0.1 * np.sin(np.arange(D)[:, None] + 2.0 * np.arange(D)[None, :])
for name, m in [("identity-bilinear", np.eye(D)), ("bilinear", M)]:
    for c in [1.0, 100.0]:
        xm = x @ m
        svc = SVC(kernel="precomputed", C=c, tol=1e-3, shrinking=False, decision_function_shape="ovo")
        svc.fit(xm @ x.T, y)
        out["fits"].append({
            "kernel": name,
            "c": c,
            "decision": svc.decision_function(xt @ xm.T).tolist(),
            "predict": svc.predict(xt @ xm.T).tolist(),
            "train_accuracy": float((svc.predict(x @ xm.T) == y).mean()),
        })
grid = [1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1e3, 1e4]
for c in grid:
    pred = cross_val_predict(SVC(kernel="linear", C=c, tol=1e-3, shrinking=False), x, y, cv=PredefinedSplit(fold))
    out["cv"].append({"c": c, "accuracy": float((pred == y).mean())})
print(json.dumps(out, indent=1))
