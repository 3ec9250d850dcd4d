"""Δm's interval: calibrated at 3-10 seeds (simulation with a known Δm) and equal to textbook
intervals where it reduces to one."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as st

from lexilab import stats

_spec = importlib.util.spec_from_file_location("calibration_models", Path(__file__).with_name("simulation.py"))
sim = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sim)

MTL, SINGLE = [0.62, 0.40], [0.60, 0.42]
TRUTH = 100 * np.mean([(m - s) / s for m, s in zip(MTL, SINGLE)])
KEYS = ["a/accuracy", "b/accuracy"]


def _coverage(n, paired, sims=1000, seed=0):
    mtl, single = sim.seed_metrics(np.random.default_rng(seed), sims, n, MTL, SINGLE)
    if not paired:  # the single-task arms trained with other seeds: independent of the MTL arm
        single = sim.seed_metrics(np.random.default_rng(seed + 1), sims, n, MTL, SINGLE)[1]
    hits = []
    for m, s in zip(mtl, single):
        out = stats.delta_m_ci(dict(zip(KEYS, m)), dict(zip(KEYS, s)), {}, paired=paired,
                               groups={"a/accuracy": "a_only", "b/accuracy": "b_only"})
        hits.append(out["low"] <= TRUTH <= out["high"])
    return float(np.mean(hits))


@pytest.mark.parametrize("n", [3, 5, 10])
def test_paired_coverage(n):
    assert 0.93 <= _coverage(n, paired=True, seed=n) <= 0.97


@pytest.mark.parametrize("n", [3, 5])
def test_unpaired_coverage(n):
    assert 0.93 <= _coverage(n, paired=False, seed=10 + n) <= 0.97


def test_reduces_to_t_interval_of_per_seed_change():
    """One metric, a single-task arm with the same value every seed: Δm_s = 100·(m_s/B - 1) is
    linear, so the interval is the Student-t interval of the per-seed relative change."""
    m = np.array([0.61, 0.64, 0.60, 0.63])
    out = stats.delta_m_ci({"a/f1": m}, {"a/f1": np.full(4, 0.6)}, {}, paired=True)
    change = 100 * (m / 0.6 - 1)
    assert (out["low"], out["high"]) == pytest.approx(st.t.interval(0.95, 3, loc=change.mean(), scale=st.sem(change)))
    # lower-is-better flips the sign of the change
    loss = stats.delta_m_ci({"a/loss": m}, {"a/loss": np.full(4, 0.6)}, {"a/loss": True}, paired=True)
    assert (loss["low"], loss["high"]) == pytest.approx((-out["high"], -out["low"]))


def test_unpaired_welch_when_one_metric():
    """One metric, unpaired: the delta-method variance is Welch's for M/B with B's spread
    scaled by M/B², and the df are Welch-Satterthwaite's."""
    m, b = np.array([0.61, 0.64, 0.60]), np.array([0.58, 0.57, 0.60, 0.59])
    out = stats.delta_m_ci({"a/f1": m}, {"a/f1": b}, {}, paired=False)
    big_m, big_b = m.mean(), b.mean()
    v1, v2 = (100 * m / big_b).var(ddof=1) / 3, (100 * big_m * b / big_b ** 2).var(ddof=1) / 4
    df = (v1 + v2) ** 2 / (v1 ** 2 / 2 + v2 ** 2 / 3)
    half = st.t.ppf(0.975, df) * np.sqrt(v1 + v2)
    assert (out["low"], out["high"]) == pytest.approx((out["delta_m"] - half, out["delta_m"] + half))
    assert "unpaired" in out["method"]
