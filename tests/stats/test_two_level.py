"""The two-level (seeds × test items) comparison: calibration by simulation against a model with
a known population difference, and agreement between its vectorised and generic paths."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from lexilab import hierarchical, stats

_spec = importlib.util.spec_from_file_location("calibration_models", Path(__file__).with_name("simulation.py"))
sim = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sim)

SIMS, ITEMS, RESAMPLES = 1500, 300, 200


def _run(n_seeds, delta_logit, seed):
    data, truth = sim.accuracy_items(np.random.default_rng(seed), SIMS, n_seeds, ITEMS, delta_logit)
    out = hierarchical.two_level_items(data, sim.accuracy, n_resamples=RESAMPLES, seed=seed)
    return data, truth, out


@pytest.mark.parametrize("n_seeds", [3, 5, 10])
def test_coverage_and_false_positive_rate(n_seeds):
    """Seed and item variance both present: 95% coverage in [93%, 97%] of a true non-zero
    difference, and at most 6% rejections at α = 0.05 when the arms are equal."""
    _, truth, out = _run(n_seeds, 0.3, seed=100 + n_seeds)
    assert truth > 0.03
    coverage = np.mean((out["low"][:, 1] <= truth) & (truth <= out["high"][:, 1]))
    assert 0.93 <= coverage <= 0.97, coverage
    _, truth0, null = _run(n_seeds, 0.0, seed=200 + n_seeds)
    assert truth0 == 0.0
    assert np.mean(null["p"][:, 1] <= 0.05) <= 0.06
    assert np.all(np.isnan(null["p"][:, 0]))  # the baseline against itself


def test_fixed_model_item_bootstrap_fails_the_same_check():
    """The bootstrap over items of these trained models ignores retraining: same data, far
    below the band (why it is no longer what `--test items` means)."""
    data, truth, _ = _run(5, 0.3, seed=105)
    hits = []
    for i in range(200):
        res = stats.paired_bootstrap_items(data[i], sim.accuracy, n_resamples=RESAMPLES, seed=i)
        hits.append(res["low"][1] <= truth <= res["high"][1])
    assert np.mean(hits) < 0.91


def test_components_match_a_linear_model_by_hand():
    """Linear metric (accuracy), one arm pair: the seed part is var(D_s)/n; the shared part is
    the item variance of the seed-mean difference minus its within-seed share (ANOVA of a
    seeds × items table: (MS_items - MS_residual)/(n·N)), up to bootstrap noise."""
    rng = np.random.default_rng(3)
    n, items = 4, 500
    data, _ = sim.accuracy_items(rng, 1, n, items, 0.2)
    out = hierarchical.two_level_items(data[0], sim.accuracy, n_resamples=20_000, seed=1)
    d = data[0, 1, :, :, 0] - data[0, 0, :, :, 0]           # (seeds, items) per-item differences
    per_seed = d.mean(axis=1)
    assert out["diff"][1] == pytest.approx(per_seed.mean())
    assert out["var_seed"][1] == pytest.approx(per_seed.var(ddof=1) / n)
    item_means, grand = d.mean(axis=0), d.mean()
    ms_items = n * np.sum((item_means - grand) ** 2) / (items - 1)
    resid = d - per_seed[:, None] - item_means[None, :] + grand
    ms_resid = np.sum(resid ** 2) / ((n - 1) * (items - 1))
    assert out["var_shared"][1] == pytest.approx((ms_items - ms_resid) / (n * items), rel=0.08)


def test_generic_path_equals_vectorised():
    rng = np.random.default_rng(4)
    data, _ = sim.accuracy_items(rng, 1, 3, 40, 0.2)
    data = data[0].astype(float)
    fast = hierarchical.two_level_items(data, sim.accuracy, n_resamples=300, seed=5, dtype=np.float64)
    fns = [[(lambda idx, c=data[a, s, :, 0]: float(c[idx].mean())) for s in range(3)] for a in range(2)]
    slow = hierarchical.two_level_records(fns, 40, n_resamples=300, seed=5)
    for key in ("diff", "low", "high", "p"):
        assert slow[key][1] == pytest.approx(fast[key][1], rel=1e-9)


def test_needs_two_seeds():
    with pytest.raises(ValueError, match="at least 2 shared seeds"):
        hierarchical.two_level_items(np.ones((2, 1, 5, 2)), sim.accuracy, n_resamples=10)
