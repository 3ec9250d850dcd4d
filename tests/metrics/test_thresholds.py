"""Threshold tuning against brute force with scikit-learn's F1."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from lexilab.metrics.thresholds import THRESHOLD_GRID, apply_thresholds, f1_value, tune_global, tune_per_class


def _case(seed=0, n=80, c=4):
    rng = np.random.default_rng(seed)
    gold = (rng.random((n, c)) < 0.35).astype(int)
    gold[:, -1] = 0  # no positive in calibration
    scores = np.clip(0.25 * gold + rng.random((n, c)) * 0.75, 0, 1)
    return gold, scores


def _brute_best(values, default):
    values = np.asarray(values)
    best = [i for i, v in enumerate(values) if v >= values.max() - 1e-12]
    return min(best, key=lambda i: (abs(THRESHOLD_GRID[i] - default), THRESHOLD_GRID[i]))


def test_grid_and_apply_uses_greater_or_equal():
    assert THRESHOLD_GRID[0] == 0.01 and THRESHOLD_GRID[-1] == 0.99 and len(THRESHOLD_GRID) == 99
    assert apply_thresholds(np.array([[0.5, 0.49]]), [0.5, 0.5]).tolist() == [[1, 0]]


@pytest.mark.parametrize("metric", ["f1_micro", "f1_macro", "f1_samples"])
def test_global_matches_brute_force(metric):
    gold, scores = _case()
    average = metric.split("_")[1]
    values = [f1_score(gold, (scores >= t).astype(int), average=average, zero_division=0) for t in THRESHOLD_GRID]
    best = _brute_best(values, 0.5)
    threshold, value = tune_global(gold, scores, metric)
    assert threshold == pytest.approx(THRESHOLD_GRID[best]) and value == pytest.approx(values[best])
    assert f1_value(metric, gold, scores >= threshold) == pytest.approx(values[best])


def test_per_class_matches_brute_force_and_keeps_default_for_uncalibratable_class():
    gold, scores = _case(seed=2)
    thresholds, values = tune_per_class(gold, scores, default=0.4)
    for c in range(gold.shape[1]):
        column = [f1_score(gold[:, c], (scores[:, c] >= t).astype(int), zero_division=0) for t in THRESHOLD_GRID]
        best = _brute_best(column, 0.4)
        assert thresholds[c] == pytest.approx(THRESHOLD_GRID[best]) and values[c] == pytest.approx(column[best])
    assert thresholds[-1] == 0.4 and values[-1] == 0.0


def test_hand_worked_per_class_threshold():
    gold = np.array([[1], [1], [0], [0]])
    scores = np.array([[0.9], [0.3], [0.2], [0.1]])
    # any t in (0.2, 0.3] separates perfectly; ties resolve to the one closest to 0.5: 0.30
    assert tune_per_class(gold, scores)[0] == [0.3]
