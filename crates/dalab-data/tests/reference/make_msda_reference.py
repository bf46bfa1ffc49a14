#!/usr/bin/env python3
"""Reference values for dalab_data::representation (mSDA), computed with NumPy independently of the Rust code.

Run: python3 make_msda_reference.py > msda_reference.json   (NumPy; checked in beside this script)

The formulas are those of Chen, Xu, Weinberger & Sha (ICML 2012), eq. (10)-(11), written out here on a small
count-like matrix: x_bar = [h, 1]; S = x_bar' x_bar; q = (1 - p) for features, 1 for the bias;
E[Q]_ij = S_ij q_i q_j (i != j), E[Q]_ii = S_ii q_i; E[P]_ij = S_ij q_j; W = E[P] (E[Q] + eta I)^-1 with no eta
on the bias; next h = tanh(x_bar W'). The stacked output is [x, h_1, ..., h_L]. The fit uses `fit_x`; `test_x`
is only mapped.
"""
import json

import numpy as np


def layer(h, p, eta):
    n, d = h.shape
    xb = np.hstack([h, np.ones((n, 1))])
    s = xb.T @ xb
    q = np.full(d + 1, 1.0 - p)
    q[d] = 1.0
    big_q = s * np.outer(q, q)
    big_q[np.arange(d + 1), np.arange(d + 1)] = q * np.diag(s)
    big_p = (s * q[np.newaxis, :])[:d, :]
    ridge = eta * np.eye(d + 1)
    ridge[d, d] = 0.0
    # W (d x (d+1)) solves W (Q + ridge) = P.
    w = np.linalg.solve((big_q + ridge).T, big_p.T).T
    return w


def forward(x, ws):
    out, h = [x], x
    for w in ws:
        xb = np.hstack([h, np.ones((h.shape[0], 1))])
        h = np.tanh(xb @ w.T)
        out.append(h)
    return np.hstack(out)


def main():
    rng = np.random.default_rng(20121)
    # Sparse non-negative counts, as the Amazon features, with one feature that never occurs (a zero column:
    # only the ridge keeps the system definite).
    fit_x = rng.poisson(0.6, size=(40, 7)).astype(np.float64)
    fit_x[:, 3] = 0.0
    test_x = rng.poisson(0.6, size=(9, 7)).astype(np.float64)
    cases = []
    for layers, p, eta in [(3, 0.5, 1e-5), (2, 0.1, 1e-2)]:
        ws, h = [], fit_x
        for _ in range(layers):
            w = layer(h, p, eta)
            ws.append(w)
            h = np.tanh(np.hstack([h, np.ones((h.shape[0], 1))]) @ w.T)
        cases.append({
            "layers": layers, "noise": p, "regularization": eta,
            "fitted": forward(fit_x, ws).tolist(), "test": forward(test_x, ws).tolist(),
        })
    json.dump({"fit_x": fit_x.tolist(), "test_x": test_x.tolist(), "cases": cases}, __import__("sys").stdout)


if __name__ == "__main__":
    main()
