"""Calibration by simulation: coverage of the 95% intervals and type-I error of every test.

Tolerances follow the Monte-Carlo error: with S simulations the standard error of a rate near
0.05 is sqrt(0.05·0.95/S) (0.0049 for S = 2000, 0.0069 for S = 1000); the bands below are
about ±3 standard errors. The sample sizes are where the asymptotics of each method are known
to hold (bootstrap intervals need tens to hundreds of values on skewed data: Efron &
Tibshirani 1993, ch. 14) — the small-n behaviour is pinned separately below. Fixed seeds keep
every run identical.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from lexilab import stats

SIMS = 2000
COVERAGE_BAND = (0.93, 0.97)


def _draws(dist: str, n: int, sims: int, seed: int):
    rng = np.random.default_rng(seed)
    if dist == "normal":
        return rng.normal(10.0, 2.0, size=(sims, n)), 10.0
    if dist == "lognormal":  # skewness ≈ 1.75
        return rng.lognormal(0.0, 0.5, size=(sims, n)), float(np.exp(0.125))
    if dist == "exponential":  # skewness 2
        return rng.exponential(1.0, size=(sims, n)), 1.0
    raise ValueError(dist)


@pytest.mark.parametrize("dist,n", [("normal", 3), ("normal", 5), ("normal", 40), ("lognormal", 200)])
def test_t_interval_coverage(dist, n):
    x, mu = _draws(dist, n, 4000, seed=11)
    low, high = stats.t_interval(x)
    coverage = np.mean((low <= mu) & (mu <= high))
    assert COVERAGE_BAND[0] <= coverage <= COVERAGE_BAND[1], coverage


@pytest.mark.parametrize("dist,n,method", [
    ("normal", 100, "auto"), ("normal", 100, "percentile"),
    ("lognormal", 200, "auto"),
    pytest.param("exponential", 300, "auto", marks=pytest.mark.slow),
])
def test_bootstrap_coverage(dist, n, method):
    # bootstrap intervals run ~0.5-1 point below nominal even here: 4000 simulations keep the
    # Monte-Carlo error (0.0034) small against the distance to the band's edge
    x, mu = _draws(dist, n, 4000, seed=12)
    low, high, names = stats.bootstrap_ci(x, n_resamples=1000, seed=1, method=method)
    assert set(names) == ({"BCa bootstrap"} if method == "auto" else {"percentile bootstrap"})
    coverage = np.mean((low <= mu) & (mu <= high))
    assert COVERAGE_BAND[0] <= coverage <= COVERAGE_BAND[1], coverage


def test_bootstrap_undercovers_with_few_seeds():
    """Why reports default to the t-interval: with 3 seeds a bootstrap interval covers ~70%."""
    x, mu = _draws("normal", 3, SIMS, seed=13)
    low, high, _ = stats.bootstrap_ci(x, n_resamples=2000, seed=1)
    assert np.mean((low <= mu) & (mu <= high)) < 0.85


def _rate(pvalues) -> float:
    p = np.asarray(pvalues, dtype=float)
    assert np.all(np.isfinite(p))
    return float(np.mean(p <= 0.05))


def _assert_level(rate, sims, level=0.05):
    """|rate - level| within 3 Monte-Carlo standard errors; ``level`` is the attainable size
    of a discrete exact test (computed by enumeration), otherwise the nominal 0.05."""
    se = np.sqrt(level * (1 - level) / sims)
    assert abs(rate - level) <= 3 * se, (rate, level)


def _attainable_level(null_statistics, pvalue_of) -> float:
    """P(p <= 0.05) under the exact null distribution, by enumerating it."""
    return float(np.mean([pvalue_of(t) <= 0.05 for t in null_statistics]))


def test_paired_t_and_welch_type_one_error():
    rng = np.random.default_rng(21)
    shared = rng.normal(0.5, 0.05, size=(SIMS, 10))  # per-seed effect common to both arms
    x, y = shared + rng.normal(0, 0.02, (SIMS, 10)), shared + rng.normal(0, 0.02, (SIMS, 10))
    _assert_level(_rate([stats.paired_t_test(a, b) for a, b in zip(x, y)]), SIMS)
    u, v = rng.normal(0.5, 0.03, size=(SIMS, 8)), rng.normal(0.5, 0.05, size=(SIMS, 11))
    _assert_level(_rate([stats.welch_test(a, b)[0] for a, b in zip(u, v)]), SIMS)


def test_exact_paired_tests_type_one_error():
    """Sign-flip permutation and Wilcoxon at n = 10, against their attainable sizes."""
    rng = np.random.default_rng(22)
    d = rng.normal(0, 0.02, size=(SIMS, 10))
    flips = 1 - 2 * ((np.arange(1024)[:, None] >> np.arange(10)) & 1)
    # continuous data: the exact permutation p is (#|flip·d| >= |d|)/1024, symmetric in ± so the
    # attainable size is the largest even count <= 0.05·1024, over 1024
    _assert_level(_rate([stats.permutation_test_paired(row)[0] for row in d]), SIMS, level=50 / 1024)
    ranks = np.arange(1, 11)
    null_w = flips.clip(0) @ ranks  # W+ for every sign pattern
    level = _attainable_level(null_w, lambda w: np.mean(np.abs(null_w - 27.5) >= abs(w - 27.5)))
    assert 0.04 < level <= 0.05
    _assert_level(_rate([stats.wilcoxon_test(row)[0] for row in d]), SIMS, level=level)


def test_monte_carlo_permutation_type_one_error():
    rng = np.random.default_rng(23)
    d = (rng.exponential(1.0, size=(1000, 20)) - 1.0) * rng.choice([-1, 1], size=(1000, 20))
    p = [stats.permutation_test_paired(row, n_resamples=1000, seed=i)[0] for i, row in enumerate(d)]
    _assert_level(_rate(p), 1000)


def test_mann_whitney_type_one_error():
    rng = np.random.default_rng(24)
    u, v = rng.normal(size=(SIMS, 6)), rng.normal(size=(SIMS, 7))
    # exact null of the rank sum for 6 vs 7: every way to give 6 of the 13 ranks to one arm
    null = np.array([sum(c) for c in itertools.combinations(range(1, 14), 6)]) - 42
    level = _attainable_level(null, lambda w: np.mean(np.abs(null) >= abs(w)))
    assert 0.03 < level <= 0.05
    _assert_level(_rate([stats.mann_whitney_test(a, b) for a, b in zip(u, v)]), SIMS, level=level)


def test_item_bootstrap_type_one_error():
    """Two systems of equal quality on the same items (macro F1, 3 classes, 2 seeds)."""
    classes, n, sims = 3, 200, 1000
    rng = np.random.default_rng(25)

    def finalize(s):
        tp, pp, tt = s[..., :classes], s[..., classes:2 * classes], s[..., 2 * classes:]
        return (2 * tp / np.maximum(pp + tt, 1)).mean(axis=-1)

    p = []
    eye = np.eye(classes)
    for i in range(sims):
        true = rng.integers(0, classes, n)
        hit = rng.random((2, 2, n)) < 0.7
        pred = np.where(hit, true, (true + rng.integers(1, classes, (2, 2, n))) % classes)
        oh_p, oh_t = eye[pred], np.broadcast_to(eye[true], (2, 2, n, classes))
        s = np.concatenate([oh_p * oh_t, oh_p, oh_t], axis=-1)
        p.append(stats.paired_bootstrap_items(s, finalize, n_resamples=300, seed=i)["p"][1])
    _assert_level(_rate(p), sims)
