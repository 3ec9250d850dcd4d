"""Decision thresholds for multilabel tasks, tuned on the calibration split and then frozen.

A label is predicted when its sigmoid score is >= its threshold. Tuning searches the grid
0.01, 0.02, ..., 0.99:
- ``global``: one threshold for every class, maximising the chosen F1 (``f1_micro`` by
  default; ``f1_macro`` or ``f1_samples`` selectable) over the calibration rows;
- ``per_class``: each class's threshold maximises THAT class's F1 on its own column.
Ties (including a class with no positive in the calibration split, whose F1 is 0 at every
threshold) resolve to the grid value closest to the default threshold, then the lower one —
so a class that cannot be calibrated keeps the default.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from lexilab.metrics.classification import example_f1

THRESHOLD_GRID = np.round(np.arange(1, 100) / 100.0, 2)
TUNING_METRICS = ("f1_micro", "f1_macro", "f1_samples")


def apply_thresholds(scores: np.ndarray, thresholds: Sequence[float] | float) -> np.ndarray:
    """0/1 predictions: score >= threshold (a scalar or one threshold per column)."""
    scores = np.asarray(scores, dtype=float)
    return (scores >= np.asarray(thresholds, dtype=float)).astype(int)


def _per_class_f1(gold: np.ndarray, pred: np.ndarray) -> np.ndarray:
    tp = (gold & pred).sum(axis=0)
    wrong = (gold ^ pred).sum(axis=0)  # false positives + false negatives
    denominator = 2 * tp + wrong
    return np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0)


def f1_value(metric: str, gold: np.ndarray, pred: np.ndarray) -> float:
    """F1 with the conventions of lexilab.metrics.classification (zero_division=0)."""
    gold, pred = np.asarray(gold, dtype=bool), np.asarray(pred, dtype=bool)
    if metric == "f1_micro":
        tp = (gold & pred).sum()
        denominator = 2 * tp + (gold ^ pred).sum()
        return float(2 * tp / denominator) if denominator else 0.0
    if metric == "f1_macro":
        return float(_per_class_f1(gold, pred).mean())
    if metric == "f1_samples":
        return float(example_f1(gold, pred).mean())
    raise ValueError(f"threshold metric {metric!r} not in {TUNING_METRICS}")


def _best(values: np.ndarray, grid: np.ndarray, default: float) -> int:
    top = values.max()
    tied = np.flatnonzero(np.isclose(values, top, rtol=0.0, atol=1e-12))
    # closest to the default, then the lower threshold (tied is sorted ascending)
    return int(tied[np.argmin(np.abs(grid[tied] - default))])


def tune_global(
    gold: np.ndarray, scores: np.ndarray, metric: str = "f1_micro", default: float = 0.5,
    grid: np.ndarray = THRESHOLD_GRID,
) -> tuple[float, float]:
    """(threshold, metric value at it) for one threshold shared by every class."""
    if metric not in TUNING_METRICS:
        raise ValueError(f"threshold metric {metric!r} not in {TUNING_METRICS}")
    gold, scores = np.asarray(gold, dtype=bool), np.asarray(scores, dtype=float)
    values = np.array([f1_value(metric, gold, scores >= t) for t in grid])
    best = _best(values, grid, default)
    return float(grid[best]), float(values[best])


def tune_per_class(
    gold: np.ndarray, scores: np.ndarray, default: float = 0.5, grid: np.ndarray = THRESHOLD_GRID,
) -> tuple[list[float], list[float]]:
    """(thresholds, per-class F1 at them): each class maximises its own F1."""
    gold, scores = np.asarray(gold, dtype=bool), np.asarray(scores, dtype=float)
    table = np.stack([_per_class_f1(gold, scores >= t) for t in grid])  # (G, C)
    chosen = [_best(table[:, c], grid, default) for c in range(gold.shape[1])]
    return [float(grid[g]) for g in chosen], [float(table[g, c]) for c, g in enumerate(chosen)]
