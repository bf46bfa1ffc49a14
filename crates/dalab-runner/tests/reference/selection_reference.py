#!/usr/bin/env python3
"""Reference values of dalab-runner's report statistics, computed with SciPy; the unit tests of
src/selection.rs (Spearman's rho) and src/report.rs (the one-sided paired t-test of the negative-transfer flag)
hard-code what this prints.

    python3 -m venv /tmp/valenv && /tmp/valenv/bin/pip install numpy scipy
    /tmp/valenv/bin/python crates/dalab-runner/tests/reference/selection_reference.py
"""

import scipy
from scipy.stats import spearmanr, ttest_rel

print(f"SciPy {scipy.__version__}")
# Spearman's rho, with ties (average ranks).
cases = [
    ([0.1, 0.4, 0.35, 0.8, 0.8], [0.70, 0.72, 0.71, 0.69, 0.75]),
    ([-1.0, -0.5, -0.2, -0.1], [0.9, 0.8, 0.85, 0.6]),
    ([3.0, 1.0, 2.0], [0.5, 0.7, 0.6]),
]
for x, y in cases:
    print("spearman", x, y, repr(float(spearmanr(x, y).statistic)))
# One-sided paired t-test, H1: row < baseline.
pairs = [
    ([0.70, 0.72, 0.69], [0.75, 0.76, 0.74]),
    ([0.80, 0.70, 0.78], [0.79, 0.74, 0.77]),
    ([0.60, 0.61], [0.62, 0.66]),
]
for row, base in pairs:
    print("ttest_rel less", row, base, repr(float(ttest_rel(row, base, alternative="less").pvalue)))
