"""lexilab.power against statsmodels' TTestPower and by simulation of paired t-tests."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as st
from statsmodels.stats.power import TTestPower

from lexilab import power


@pytest.mark.parametrize("n", [2, 3, 5, 10, 40])
@pytest.mark.parametrize("alpha", [0.05, 0.05 / 6])
def test_power_equals_statsmodels(n, alpha):
    for effect in (0.3, 1.0, 2.5):
        expected = TTestPower().power(effect_size=effect, nobs=n, alpha=alpha)
        got = power.paired_t_power(effect * 0.02, 0.02, n, alpha)
        if np.isnan(expected):  # scipy's noncentral t tail gives NaN far out (statsmodels inherits it)
            assert effect * math.sqrt(n) > 10 and got > 1 - 1e-9
        else:
            assert got == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("n", [3, 5, 10])
@pytest.mark.parametrize("alpha", [0.05, 0.0125])
def test_minimum_detectable_difference(n, alpha):
    sd = 0.017
    mdd = power.minimum_detectable_difference(sd, n, alpha, 0.8)
    assert TTestPower().power(effect_size=mdd / sd, nobs=n, alpha=alpha) == pytest.approx(0.8, abs=1e-8)
    if alpha == 0.05:  # where statsmodels' own solver converges
        assert mdd == pytest.approx(TTestPower().solve_power(nobs=n, alpha=alpha, power=0.8) * sd, rel=1e-6)


@pytest.mark.parametrize("delta,sd,alpha", [(0.01, 0.02, 0.05), (0.01, 0.02, 0.05 / 6), (0.03, 0.01, 0.05)])
def test_seeds_needed_is_the_smallest_enough(delta, sd, alpha):
    n = power.seeds_needed(delta, sd, alpha)
    assert TTestPower().power(effect_size=delta / sd, nobs=n, alpha=alpha) >= 0.8
    if n > 2:
        assert TTestPower().power(effect_size=delta / sd, nobs=n - 1, alpha=alpha) < 0.8
    assert n == max(2, math.ceil(TTestPower().solve_power(effect_size=delta / sd, alpha=alpha, power=0.8)))


def test_simulated_power_at_the_planned_seeds():
    """Paired differences ~ N(δ, σ²): at the planned n the t-test rejects ~80% of the time (within
    3 Monte-Carlo standard errors), at n - 1 clearly less often."""
    delta, sd, alpha, sims = 0.012, 0.02, 0.05 / 4, 4000
    n = power.seeds_needed(delta, sd, alpha)
    rng = np.random.default_rng(7)
    rates = {}
    for size in (n, n - 1):
        d = rng.normal(delta, sd, (sims, size))
        rates[size] = np.mean(st.ttest_1samp(d, 0.0, axis=1).pvalue <= alpha)
    se = math.sqrt(0.8 * 0.2 / sims)
    assert rates[n] >= 0.8 - 3 * se and abs(rates[n] - power.paired_t_power(delta, sd, n, alpha)) <= 3 * se
    assert rates[n - 1] < rates[n]
    mdd = power.minimum_detectable_difference(sd, 6, alpha)
    d = rng.normal(mdd, sd, (sims, 6))
    assert abs(np.mean(st.ttest_1samp(d, 0.0, axis=1).pvalue <= alpha) - 0.8) <= 3 * se


def test_comparison_alpha_and_undefined_inputs():
    assert power.comparison_alpha(0.05, "holm", 4) == 0.0125
    assert power.comparison_alpha(0.05, "bh", 4) == 0.0125
    assert power.comparison_alpha(0.05, "none", 4) == 0.05
    assert math.isnan(power.minimum_detectable_difference(0.0, 5, 0.05))
    assert math.isnan(power.minimum_detectable_difference(0.02, 1, 0.05))
    assert power.seeds_needed(0.01, 0.0, 0.05) is None
