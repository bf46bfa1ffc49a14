#!/usr/bin/env python3
"""Independent reference values for dalab-metrics' unit tests (src/reference_tests.rs).

Run: python3 crates/dalab-metrics/tests/reference/make_reference.py  (needs numpy, scipy, scikit-learn)
It prints Rust constants that are pasted into src/reference_tests.rs. Everything here is computed the
direct way in float64 (full kernel matrices, np.cov, scipy.linalg.eigh, scikit-learn LinearSVC), none of it
with dalab's block-wise or closed-form tricks. The data are deterministic formulas (math.sin/math.cos),
regenerated identically in Rust.
"""
import math

import numpy as np
import scipy.linalg
from sklearn.svm import LinearSVC


def src(n, d):
    return np.array([[math.sin(0.7 * i + 1.1 * j + 0.3) + 0.05 * j for j in range(d)] for i in range(n)])


def tgt(n, d):
    return np.array([[1.3 * math.cos(0.5 * i + 0.9 * j) + 0.4 + 0.05 * j for j in range(d)] for i in range(n)])


def sqd(a, b):
    return ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)


def kern(a, b, s2s, ws):
    d = sqd(a, b)
    return sum(w * np.exp(-d / (2.0 * s2)) for s2, w in zip(s2s, ws))


def mmd_biased(xs, xt, s2s, ws):
    return kern(xs, xs, s2s, ws).mean() + kern(xt, xt, s2s, ws).mean() - 2 * kern(xs, xt, s2s, ws).mean()


def mmd_unbiased(xs, xt, s2s, ws):
    m, n = len(xs), len(xt)
    kss, ktt, kst = kern(xs, xs, s2s, ws), kern(xt, xt, s2s, ws), kern(xs, xt, s2s, ws)
    return ((kss.sum() - np.trace(kss)) / (m * (m - 1)) + (ktt.sum() - np.trace(ktt)) / (n * (n - 1))
            - 2 * kst.mean())


def mmd_linear_time(xs, xt, s2s, ws):
    p = min(len(xs), len(xt)) // 2
    tot = 0.0
    for i in range(p):
        x1, x2, y1, y2 = xs[2 * i:2 * i + 1], xs[2 * i + 1:2 * i + 2], xt[2 * i:2 * i + 1], xt[2 * i + 1:2 * i + 2]
        tot += (kern(x1, x2, s2s, ws) + kern(y1, y2, s2s, ws) - kern(x1, y2, s2s, ws) - kern(x2, y1, s2s, ws))[0, 0]
    return tot / p


def mean_sq(z):
    d = sqd(z, z)
    return d.sum() / (len(z) * (len(z) - 1))


def median_sq(z):
    d = sqd(z, z)
    iu = np.triu_indices(len(z), 1)
    return float(np.median(d[iu]))


def p(name, v):
    print(f"const {name}: f64 = {float(v)!r};")


xa_s, xa_t = src(7, 3), tgt(5, 3)
xb_s, xb_t = src(40, 6), tgt(30, 6)
dan = [0.25, 0.5, 1.0, 2.0, 4.0]
ones5 = [1.0] * 5

base_b = mean_sq(np.concatenate([xb_s, xb_t]))
p("B_MEAN_SQ_BASE", base_b)
p("B_BIASED_DAN_MEANSQ", mmd_biased(xb_s, xb_t, [m * base_b for m in dan], ones5))
p("B_UNBIASED_DAN_MEANSQ", mmd_unbiased(xb_s, xb_t, [m * base_b for m in dan], ones5))
p("A_UNBIASED_SINGLE_FIXED2", mmd_unbiased(xa_s, xa_t, [2.0], [1.0]))
p("A_BIASED_SINGLE_FIXED2", mmd_biased(xa_s, xa_t, [2.0], [1.0]))
p("B_LINEAR_TIME_DAN_FIXED3", mmd_linear_time(xb_s, xb_t, [3.0 * m for m in dan], ones5))
med_a = median_sq(np.concatenate([xa_s, xa_t]))
p("A_MEDIAN_BASE", med_a)
p("A_BIASED_SINGLE_MEDIAN", mmd_biased(xa_s, xa_t, [med_a], [1.0]))
paper = [math.sqrt(2.0) ** k for k in range(-16, 17)]
p("B_BIASED_PAPER33_MEANSQ", mmd_biased(xb_s, xb_t, [m * base_b for m in paper], [1.0] * 33))
p("B_UNBIASED_WEIGHTED_FIXED", mmd_unbiased(xb_s, xb_t, [0.5 * 4.0, 1.0 * 4.0, 3.0 * 4.0], [0.2, 0.5, 0.3]))
# linear kernel: biased = ||mean_s - mean_t||^2 (closed form), unbiased from the full Gram matrices
p("B_LINEAR_KERNEL_BIASED", float(((xb_s.mean(0) - xb_t.mean(0)) ** 2).sum()))
m, n = len(xb_s), len(xb_t)
gss, gtt, gst = xb_s @ xb_s.T, xb_t @ xb_t.T, xb_s @ xb_t.T
p("B_LINEAR_KERNEL_UNBIASED", float((gss.sum() - np.trace(gss)) / (m * (m - 1))
                                    + (gtt.sum() - np.trace(gtt)) / (n * (n - 1)) - 2 * gst.mean()))
# CORAL distance with np.cov (unbiased)
cs, ct = np.cov(xb_s, rowvar=False), np.cov(xb_t, rowvar=False)
p("B_CORAL", float(((cs - ct) ** 2).sum() / (4 * 6 * 6)))
# CORAL transform, lambda = 1, with scipy eigh
def mpow(c, e):
    w, v = scipy.linalg.eigh(c)
    return (v * w ** e) @ v.T
a_mat = mpow(cs + np.eye(6), -0.5) @ mpow(ct + np.eye(6), 0.5)
print("const B_CORAL_MATRIX_LAMBDA1: [f64; 36] = [" + ", ".join(repr(float(v)) for v in a_mat.ravel()) + "];")
# Linear SVM (squared hinge, regularised bias via a constant feature, as liblinear) on the pooled sample B.
# liblinear's own random order makes these weights vary by ~1e-11 between runs; the test compares to 1e-8.
x = np.concatenate([xb_s, xb_t])
y = np.concatenate([-np.ones(len(xb_s)), np.ones(len(xb_t))])
clf = LinearSVC(C=0.5, loss="squared_hinge", dual=True, tol=1e-10, max_iter=1_000_000, intercept_scaling=1.0)
clf.fit(x, y)
print("const B_SVM_C05_W: [f64; 7] = [" + ", ".join(repr(float(v)) for v in list(clf.coef_[0]) + [clf.intercept_[0]]) + "];")
xa = np.hstack([x, np.ones((len(x), 1))])
wfull = np.array(list(clf.coef_[0]) + [clf.intercept_[0]])
marg = 1 - y * (xa @ wfull)
viol = marg > 0
grad = wfull - 2 * 0.5 * ((y * marg)[viol, None] * xa[viol]).sum(0)
print(f"// primal gradient norm of the scikit-learn solution: {np.linalg.norm(grad):.3e}")
