"""pytest suite of the dalab Python package: the reference values of dalab-metrics' Rust tests
(crates/dalab-metrics/tests/reference/make_reference.py, NumPy/SciPy float64, pasted into
src/reference_tests.rs), the validators against direct NumPy formulas, and the runs reader.

Run: cargo xtask test (builds the wheel with maturin, installs it into a venv, runs this file).
"""
import json
import math

import numpy as np
import pytest

import dalab


def src(n, d):  # the Rust tests' `src_data`
    return np.array([[math.sin(0.7 * i + 1.1 * j + 0.3) + 0.05 * j for j in range(d)] for i in range(n)])


def tgt(n, d):  # the Rust tests' `tgt_data`
    return np.array([[1.3 * math.cos(0.5 * i + 0.9 * j) + 0.4 + 0.05 * j for j in range(d)] for i in range(n)])


A = (src(7, 3), tgt(5, 3))
B = (src(40, 6), tgt(30, 6))


def test_mmd_matches_the_numpy_reference():
    r = dalab.mmd2(*B)
    assert r["base_sigma2"] == pytest.approx(8.200551680246079, abs=1e-12)
    assert r["mmd2"] == pytest.approx(0.46650714210974353, abs=1e-10)
    assert len(r["sigma2"]) == 5
    assert dalab.mmd2(*B, estimator="unbiased")["mmd2"] == pytest.approx(0.3538128117444961, abs=1e-10)
    assert dalab.mmd2(*A, kernel="gaussian", bandwidth=2.0)["mmd2"] == pytest.approx(0.13150059059720332, abs=1e-10)
    assert dalab.mmd2(*A, kernel="gaussian", bandwidth=2.0, estimator="unbiased")["mmd2"] == pytest.approx(
        -0.0268983399586864, abs=1e-10)
    lin = dalab.mmd2(*B, bandwidth=3.0, estimator="linear")
    assert lin["mmd2"] == pytest.approx(3.7917583934271812, abs=1e-10) and lin["quad_tuples"] == 15


def test_mmd_permutation_test_and_errors():
    rng = np.random.default_rng(0)
    x, far = rng.normal(size=(60, 4)), rng.normal(size=(60, 4)) + 3.0
    r = dalab.mmd2(x, far, permutations=99, seed=1)
    assert r["permutation_test"]["permutations"] == 99 and r["permutation_test"]["p_value"] <= 0.02
    same = dalab.mmd2(x, rng.normal(size=(60, 4)), permutations=99, seed=1)
    assert same["permutation_test"]["p_value"] > 0.05
    with pytest.raises(ValueError, match="2-d"):
        dalab.mmd2(np.zeros(3), far)
    with pytest.raises(ValueError, match="kernel"):
        dalab.mmd2(x, far, kernel="laplace")
    with pytest.raises(ValueError):
        dalab.mmd2(x, np.zeros((5, 3)))  # feature counts differ: dalab-metrics' error


def test_coral_distance_and_transform():
    assert dalab.coral_distance(*B)["coral"] == pytest.approx(0.02848450023894688, abs=1e-12)
    xs, xt = B
    lam = 1.0

    def power(c, p):
        w, v = np.linalg.eigh(c)
        return (v * w ** p) @ v.T

    cs, ct = np.cov(xs, rowvar=False) + lam * np.eye(6), np.cov(xt, rowvar=False) + lam * np.eye(6)
    want = xs @ power(cs, -0.5) @ power(ct, 0.5)
    np.testing.assert_allclose(dalab.coral_transform(xs, xt, lam=lam), want, rtol=0, atol=1e-10)


def test_proxy_a_distance_extremes():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(200, 5))
    same = dalab.proxy_a_distance(x, rng.normal(size=(200, 5)))
    assert abs(same["d_a"]) < 0.4
    assert same["d_a"] == pytest.approx(2 * (1 - 2 * same["epsilon"]), abs=1e-15)
    assert dalab.proxy_a_distance(x, rng.normal(size=(200, 5)) + 6.0)["d_a"] > 1.95
    with pytest.raises(TypeError, match="unknown setting `cgrid`"):
        dalab.proxy_a_distance(x, x, cgrid=[1.0])


def softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_validators_against_numpy():
    rng = np.random.default_rng(3)
    z = rng.normal(size=(50, 4)) * 2.0
    p = softmax(z)
    h = -(p * np.log(p)).sum(1)
    assert dalab.validator("entropy", target_logits=z) == pytest.approx(-h.mean(), abs=1e-12)
    pbar = p.mean(0)
    assert dalab.validator("im", target_logits=z) == pytest.approx(-(pbar * np.log(pbar)).sum() - h.mean(), abs=1e-12)
    assert dalab.validator("bnm", target_logits=z) == pytest.approx(np.linalg.svd(p, compute_uv=False).sum() / 50,
                                                                    abs=1e-12)
    y = rng.integers(0, 4, size=50)
    assert dalab.validator("source_val", source_logits=z, source_labels=y) == pytest.approx((z.argmax(1) == y).mean())
    with pytest.raises(ValueError):
        dalab.validator("entropy")  # no target logits
    with pytest.raises(ValueError, match="not one of"):
        dalab.validator("accuracy", target_logits=z)


def test_read_runs(tmp_path):
    rec = {"step": 10, "source": 0.9, "target": 0.7, "target_test": 0.75}
    for seed, acc in [(0, 0.75), (1, 0.8)]:
        d = tmp_path / "exp" / f"dann_a-b_s{seed}_0000000{seed}"
        d.mkdir(parents=True)
        r = {"trial": d.name, "experiment": "exp", "method": "dann", "source": "a", "target": "b", "seed": seed,
             "sweep": {"methods.dann.trade_off": 0.1}, "selection": "last", "oracle": False,
             "selected": dict(rec, target_test=acc), "last": rec, "steps": 10, "seconds": 1.0, "device": "cpu"}
        (d / "result.json").write_text(json.dumps(r))
    (tmp_path / "exp" / "unfinished").mkdir()
    rows = dalab.read_runs(tmp_path, as_frame=False)
    assert [r["seed"] for r in rows] == [0, 1]
    assert [r["accuracy"] for r in rows] == [0.75, 0.8] and rows[0]["split"] == "target_test"
    assert rows[0]["methods.dann.trade_off"] == 0.1 and rows[1]["method"] == "dann"
    with pytest.raises(FileNotFoundError):
        dalab.read_runs(tmp_path / "nope")
