"""Power analysis for paired comparisons over seeds: how many seeds a study needs, or the
smallest difference it can detect, from the seed-to-seed spread of a pilot study.

The test is the two-sided paired t-test over seeds (the report's default). With n seeds, paired
differences of standard deviation σ and a true difference δ, its statistic follows a noncentral
t with n-1 df and noncentrality δ√n/σ (Cohen 1988, ch. 2; the same computation as
``statsmodels.stats.power.TTestPower``). The per-comparison level is the family's α divided by
the number of comparisons m for Holm, Bonferroni and Benjamini-Hochberg: the level each test
faces when it is the family's only true effect (Holm's first step, BH's smallest rank), so the
power is guaranteed whatever the other comparisons do — conservative when several effects are
real. σ is the pilot's estimate, taken as the truth (standard practice: a pilot of 3 seeds
estimates σ loosely, so treat the answers as rough).
"""
from __future__ import annotations

import math

import numpy as np
from scipy import optimize, stats as st

POWER = 0.8
MAX_SEEDS = 100_000


def comparison_alpha(alpha: float, correction: str, comparisons: int) -> float:
    """Level of one comparison in a family of ``comparisons`` under ``correction``."""
    if correction == "none" or comparisons <= 1:
        return alpha
    return alpha / comparisons


def paired_t_power(delta: float, sd: float, n: int, alpha: float) -> float:
    """Power of the two-sided paired t-test at level ``alpha`` with ``n`` seeds."""
    if n < 2 or not (sd > 0):
        return math.nan
    df, nc = n - 1, abs(delta) * math.sqrt(n) / sd
    crit = st.t.ppf(1 - alpha / 2, df)
    # scipy's far lower tail of the noncentral t can come back NaN where it is ~0 (scipy 1.17)
    lower = float(np.nan_to_num(st.nct.cdf(-crit, df, nc), nan=0.0))
    return float(st.nct.sf(crit, df, nc)) + lower


def seeds_needed(delta: float, sd: float, alpha: float, power: float = POWER) -> int | None:
    """Smallest number of seeds (≥ 2) whose paired t-test detects ``delta`` with ``power``;
    None when not even ``MAX_SEEDS`` do (or the inputs are undefined)."""
    if not (sd > 0) or not np.isfinite(sd) or delta == 0:
        return None
    if paired_t_power(delta, sd, MAX_SEEDS, alpha) < power:
        return None
    low, high = 1, 2
    while paired_t_power(delta, sd, high, alpha) < power:  # power rises with n: bracket, then bisect
        low, high = high, high * 2
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if paired_t_power(delta, sd, mid, alpha) < power else (low, mid)
    return max(2, high)


def minimum_detectable_difference(sd: float, n: int, alpha: float, power: float = POWER) -> float:
    """Smallest |δ| the paired t-test over ``n`` seeds detects with ``power`` at ``alpha``,
    in the metric's units (NaN for n < 2 or an undefined sd)."""
    if n is None or n < 2 or not np.isfinite(sd) or sd <= 0:
        return math.nan
    high = 1.0
    while paired_t_power(high, 1.0, int(n), alpha) < power:  # bracket in units of sd
        high *= 2
    effect = optimize.brentq(lambda d: paired_t_power(d, 1.0, int(n), alpha) - power, 1e-9, high, xtol=1e-12)
    return float(effect * sd)
