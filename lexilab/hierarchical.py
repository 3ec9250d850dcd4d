"""Comparisons that account for both sources of variance in a benchmark result: the training
seed and the sample of test items (Bouthillier et al. 2021, "Accounting for Variance in Machine
Learning Benchmarks", MLSys).

Setting: every arm is trained with the same seeds and every run is evaluated on the same test
items. The quantity of interest is the expected corpus-metric difference between two arms over
retraining (seeds) *and* over test sets drawn from the same population (items). With D_s the
difference of the corpus metrics of seed s (computed on the whole test set),

    D̄ = mean_s D_s,   Var(D̄) = σ²_seed/n + σ²_shared

where σ²_seed is the spread of D_s between seeds (it includes each seed's own item noise) and
σ²_shared is the item-sampling error common to every seed (the test set is the same for all of
them, so it does not average out over seeds). Both components are estimated, and neither alone
is enough: a seed-level t-test misses σ²_shared, the fixed-model item bootstrap
(:func:`lexilab.stats.paired_bootstrap_items`) misses σ²_seed — with realistic seed variance its
95% interval covers ~75% of the time. A plain two-level percentile bootstrap (resample seeds, then
items) shrinks σ²_seed by (n-1)/n and uses a normal reference, which under-covers at 3-5 seeds.

The estimator (a crossed random-effects variance; Searle, Casella & McCulloch 1992, ch. 4):

- σ²_seed/n: the sample variance of the per-seed differences D_s over n, with n-1 df;
- σ²_shared: from item resamples — one draw of items shared by every arm and seed, the corpus
  metric recomputed within each seed — the covariance *between* seeds of the resampled
  differences: Var*(mean_s D*_s) - mean_b var_s(D*_s - D_s)/n (≥ 0; clipped at 0);
- the interval D̄ ± t_ν·√Var and the test t = D̄/√Var use ν = (n-1)·Var/(σ²_seed/n): between
  the seed-level t's n-1 (no item component) and the normal (item component dominant). It is
  Satterthwaite's (1946) df with the item component's df taken as infinite, but with the ratio
  to the first power instead of the square: Satterthwaite's df, estimated from 2-4 df, is
  liberal (simulated coverage 92.3% at 3 seeds), the linear form stays within 94.1-96.3% over
  the whole range of variance ratios at 3, 5 and 10 seeds (``benchmarks/stats_calibration.py``)
  — a choice calibrated by simulation, not a theorem.

Simulated calibration (README, "Statistics"; ``python benchmarks/stats_calibration.py``):
coverage 94-96% and a false-positive rate at α = 0.05 of 4-6% at 3, 5 and 10 seeds.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from scipy import stats as st

from lexilab.stats import CONFIDENCE, N_RESAMPLES, bootstrap_counts

METHOD = "two-level t-test over seeds × test items"


def combine(per_seed: np.ndarray, draws: np.ndarray, *, baseline: int = 0,
            confidence: float = CONFIDENCE) -> dict:
    """The two-level comparison from per-seed corpus metrics.

    ``per_seed``: (..., arms, seeds) observed metrics (seed j is the same seed in every arm;
    leading axes are a batch of independent comparisons); ``draws``: (B, ..., arms, seeds) the
    same metrics on B item resamples, one item draw per resample shared by every arm and seed.
    Returns arrays over (..., arms), NaN p at ``baseline``."""
    m = np.asarray(per_seed, dtype=float)
    n = m.shape[-1]
    d = m - m[..., [baseline], :]                          # (..., arms, seeds)
    diff = d.mean(axis=-1)
    star = draws - draws[..., [baseline], :]               # (B, ..., arms, seeds)
    pert = star - d                                        # item-sampling perturbation of each seed
    within = pert.var(axis=-1, ddof=1).mean(axis=0) if n > 1 else np.zeros_like(diff)
    shared = np.maximum(0.0, pert.mean(axis=-1).var(axis=0, ddof=1) - within / n)
    var_seed = d.var(axis=-1, ddof=1) / n if n > 1 else np.full_like(diff, np.nan)
    var = var_seed + shared
    with np.errstate(divide="ignore", invalid="ignore"):
        df = np.where(var_seed > 0, (n - 1) * var / var_seed, np.inf)
        se = np.sqrt(var)
        t = np.where(se > 0, diff / se, np.nan)
        p = np.where(se > 0, 2 * st.t.sf(np.abs(t), df), np.nan)
        half = st.t.ppf(0.5 + confidence / 2, df) * se
    p[..., baseline] = np.nan
    return {"metric": m.mean(axis=-1), "diff": diff, "low": diff - half, "high": diff + half, "p": p,
            "se": se, "df": df, "var_seed": var_seed, "var_shared": shared, "n_seeds": n}


def two_level_items(stats, finalize: Callable[[np.ndarray], np.ndarray], *, baseline: int = 0,
                    confidence: float = CONFIDENCE, n_resamples: int = N_RESAMPLES, seed: int = 0,
                    chunk: int | None = None, dtype=np.float32) -> dict:
    """Two-level comparison of a corpus metric with per-item sufficient statistics.

    ``stats``: (..., arms, seeds, items, k), items aligned across arms and seeds, seeds paired
    across arms, leading axes a batch (e.g. simulations) that shares the item draws;
    ``finalize`` maps summed statistics (..., k) to the metric (...) as in
    :func:`lexilab.stats.paired_bootstrap_items` (same resample draws for the same ``seed``).
    Needs at least 2 seeds: with one, seed variance cannot be estimated. Besides the arrays of
    :func:`combine`, returns ``draws`` (B, ..., arms, seeds): the per-seed metric of every
    item resample."""
    s = np.asarray(stats, dtype=float)
    if s.ndim < 4:
        raise ValueError("stats must have shape (..., arms, seeds, items, k)")
    lead, (seeds, n, k) = s.shape[:-3], s.shape[-3:]
    if seeds < 2:
        raise ValueError("a two-level comparison needs at least 2 shared seeds")
    width = int(np.prod(lead)) * seeds * k
    flat = np.ascontiguousarray(np.moveaxis(s, -2, 0).reshape(n, width), dtype=dtype)
    chunk = chunk or max(1, min(n_resamples, 4_000_000 // max(n, width)))
    draws = np.empty((n_resamples, *lead, seeds))
    row = 0
    for counts in bootstrap_counts(n, n_resamples, seed, chunk, dtype):
        sums = (counts @ flat).astype(np.float64).reshape(len(counts), *lead, seeds, k)
        draws[row:row + len(counts)] = finalize(sums)
        row += len(counts)
    out = combine(finalize(s.sum(axis=-2)), draws, baseline=baseline, confidence=confidence)
    return {**out, "method": f"{METHOD}; {n_resamples} item resamples", "n_items": n, "draws": draws}


def two_level_records(metric_fns: Sequence[Sequence[Callable[[np.ndarray], float]]], n_items: int, *,
                      baseline: int = 0, confidence: float = CONFIDENCE, n_resamples: int = N_RESAMPLES,
                      seed: int = 0) -> dict:
    """:func:`two_level_items` for a corpus metric without sufficient statistics (ROC-AUC, mAP):
    ``metric_fns[arm][seed](indices) -> float`` on the items at ``indices``. Slow (one call per
    arm, seed and resample); the same resample draws as the vectorised path."""
    arms, seeds = len(metric_fns), len(metric_fns[0])
    if seeds < 2:
        raise ValueError("a two-level comparison needs at least 2 shared seeds")

    def per_seed(idx):
        return np.array([[metric_fns[a][s](idx) for s in range(seeds)] for a in range(arms)])

    draws = np.empty((n_resamples, arms, seeds))
    row = 0
    for counts in bootstrap_counts(n_items, n_resamples, seed, max(1, 1_000_000 // n_items)):
        for c in counts:
            draws[row] = per_seed(np.repeat(np.arange(n_items), c.astype(int)))
            row += 1
    out = combine(per_seed(np.arange(n_items)), draws, baseline=baseline, confidence=confidence)
    return {**out, "method": f"{METHOD}; {n_resamples} item resamples", "n_items": n_items}
