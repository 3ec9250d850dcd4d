"""stats.py against independent truth: scipy/statsmodels on reference inputs, brute force,
hand-worked cases."""
from __future__ import annotations

import itertools
import math
import statistics

import numpy as np
import pytest
from scipy import stats as st
from sklearn.metrics import f1_score
from statsmodels.stats.multitest import multipletests

from lexilab import stats

A = np.array([0.812, 0.845, 0.829, 0.851, 0.836, 0.820, 0.843])
B = np.array([0.824, 0.851, 0.839, 0.850, 0.849, 0.835, 0.857])


def test_t_interval_equals_scipy():
    low, high = stats.t_interval(A, 0.95)
    ref = st.t.interval(0.95, len(A) - 1, loc=A.mean(), scale=st.sem(A))
    assert (low, high) == pytest.approx(ref, rel=1e-12)
    # batch axis: each row independently
    lows, highs = stats.t_interval(np.stack([A, B]))
    assert highs[1] == pytest.approx(st.t.interval(0.95, 6, loc=B.mean(), scale=st.sem(B))[1])


def test_t_interval_needs_two_values():
    low, high = stats.t_interval([0.5])
    assert math.isnan(low) and math.isnan(high)


@pytest.mark.parametrize("method", ["BCa", "percentile"])
def test_bootstrap_ci_equals_scipy(method):
    low, high, name = stats.bootstrap_ci(A, n_resamples=5000, seed=7, method=method)
    ref = st.bootstrap((A,), np.mean, method=method, n_resamples=5000, rng=np.random.default_rng(7))
    assert (float(low), float(high)) == pytest.approx(tuple(ref.confidence_interval), rel=1e-12)
    assert name == f"{method} bootstrap"


def test_bootstrap_rule_auto():
    assert stats.bootstrap_ci(A, n_resamples=2000)[2] == "BCa bootstrap"
    # n = 2 is too small for BCa's jackknife acceleration: percentile
    assert stats.bootstrap_ci(A[:2], n_resamples=2000)[2] == "percentile bootstrap"
    low, high, name = stats.bootstrap_ci([0.3, 0.3, 0.3, 0.3])
    assert (float(low), float(high), str(name)) == (0.3, 0.3, "degenerate (all values equal)")
    assert str(stats.bootstrap_ci([0.3])[2]) == "none (n<2)"
    # a batch mixes the rules row by row, and each row equals its own 1-D call
    low, high, names = stats.bootstrap_ci(np.stack([A[:3], [1.0, 1.0, 1.0]]), n_resamples=2000, seed=3)
    assert list(names) == ["BCa bootstrap", "degenerate (all values equal)"]
    assert low[0] == stats.bootstrap_ci(A[:3], n_resamples=2000, seed=3)[0]


def test_bootstrap_is_seeded():
    first = stats.bootstrap_ci(A, seed=1)
    assert stats.bootstrap_ci(A, seed=1)[0] == first[0]
    assert stats.bootstrap_ci(A, seed=2)[0] != first[0]


def test_describe_matches_statistics_module():
    out = stats.describe(A, n_resamples=2000)
    assert out["mean"] == pytest.approx(statistics.fmean(A))
    assert out["sd"] == pytest.approx(statistics.stdev(A))
    assert out["n"] == 7 and out["t_low"] < out["mean"] < out["t_high"]


def test_non_finite_input_is_refused():
    with pytest.raises(ValueError, match="NaN"):
        stats.describe([0.1, float("nan"), 0.3])


def test_paired_comparison_matches_scipy():
    out = stats.compare_paired(B, A, n_resamples=2000)
    d = B - A
    assert out["diff"] == pytest.approx(d.mean())
    assert out["p_t"] == pytest.approx(st.ttest_rel(B, A).pvalue, rel=1e-12)
    assert out["p_wilcoxon"] == pytest.approx(st.wilcoxon(B, A, method="exact").pvalue, rel=1e-12)
    assert out["wilcoxon_method"] == "exact"
    ci = st.ttest_rel(B, A).confidence_interval(0.95)
    assert (out["diff_t_low"], out["diff_t_high"]) == pytest.approx((ci.low, ci.high), rel=1e-10)
    assert out["effect_size"] == pytest.approx(statistics.fmean(d) / statistics.stdev(d))
    assert out["design"] == "paired"


def test_wilcoxon_with_ties_is_exact_over_mid_ranks():
    d = np.array([0.01, -0.01, 0.02, 0.02, 0.03, 0.0, 0.04, -0.005])
    p, method = stats.wilcoxon_test(d)
    assert method.startswith("exact (ties")
    # brute force: every sign assignment of the mid-ranks of the non-zero |d|
    nz = d[d != 0]
    ranks = st.rankdata(np.abs(nz))
    observed = ranks[nz > 0].sum() - ranks.sum() / 2
    null = [abs(np.dot(ranks, s) - ranks.sum() / 2) for s in itertools.product([0, 1], repeat=nz.size)]
    assert p == pytest.approx(np.mean(np.array(null) >= abs(observed) - 1e-9))
    # many tied differences: the normal approximation, as scipy computes it
    big = np.tile(d, 3)
    p, method = stats.wilcoxon_test(big)
    assert method == "normal approximation"
    assert p == pytest.approx(st.wilcoxon(big, method="approx").pvalue)
    assert stats.wilcoxon_test(np.zeros(4)) == (1.0, "none (all differences zero)")


def test_exact_permutation_equals_brute_force():
    d = B - A
    brute = [abs(np.mean(np.array(signs) * d)) for signs in itertools.product([1, -1], repeat=len(d))]
    expected = np.mean(np.array(brute) >= abs(d.mean()) - 1e-15)
    p, method = stats.permutation_test_paired(d)
    assert p == pytest.approx(expected) and method == "exact (128 sign flips)"
    # scipy's own permutation_test (samples pairing) enumerates the same 2^n relabelings
    ref = st.permutation_test((B, A), lambda x, y, axis: np.mean(x - y, axis=axis),
                              permutation_type="samples", n_resamples=np.inf, vectorized=True)
    assert p == pytest.approx(ref.pvalue)


def test_monte_carlo_permutation_close_to_exact():
    rng = np.random.default_rng(0)
    d = rng.normal(0.3, 1.0, size=14)
    exact, _ = stats.permutation_test_paired(d)
    mc, method = stats.permutation_test_paired(d, exact_max_n=10, n_resamples=20000, seed=1)
    assert method.startswith("Monte-Carlo") and mc == pytest.approx(exact, abs=0.01)


def test_unpaired_comparison_matches_scipy():
    x, y = A[:5], B
    out = stats.compare_unpaired(y, x, n_resamples=2000)
    welch = st.ttest_ind(y, x, equal_var=False)
    assert out["p_t"] == pytest.approx(welch.pvalue)
    assert out["diff_t_low"] == pytest.approx(welch.confidence_interval(0.95).low)
    assert out["p_wilcoxon"] == pytest.approx(st.mannwhitneyu(y, x).pvalue)
    assert out["design"].startswith("unpaired")
    assert (out["n_treatment"], out["n_baseline"]) == (7, 5)


def test_effect_sizes_hand_worked():
    x, y = np.array([2.0, 4.0, 6.0]), np.array([1.0, 2.0, 3.0])
    # pooled sd = sqrt((2*4 + 2*1)/4) = sqrt(2.5); d = 2/sqrt(2.5)
    assert stats.cohens_d(x, y) == pytest.approx(2 / math.sqrt(2.5))
    # Hedges' J(4) = Γ(2)/(√2·Γ(1.5)) = 1/(√2·√π/2) ≈ 0.797885; approx 1 - 3/(4·4-1) = 0.8
    j = math.gamma(2) / (math.sqrt(2) * math.gamma(1.5))
    assert stats.hedges_g(x, y) == pytest.approx(2 / math.sqrt(2.5) * j)
    assert abs(j - 0.8) < 0.003
    assert stats.cohens_dz([1.0, 2.0, 3.0]) == pytest.approx(2.0)


def test_probability_of_improvement():
    x, y = np.array([0.9, 0.8, 0.7]), np.array([0.8, 0.6, 0.5, 0.4])
    # pairs: 0.9 beats 4, 0.8 beats 3 and ties 1, 0.7 beats 3 → (4 + 3.5 + 3)/12
    assert stats.probability_of_improvement(x, y) == pytest.approx(10.5 / 12)
    u = st.mannwhitneyu(x, y).statistic
    assert stats.probability_of_improvement(x, y) == pytest.approx(u / 12)
    point, low, high = stats.probability_of_improvement_ci([x, x[::-1]], [y, y], n_resamples=3000)
    assert point == pytest.approx(10.5 / 12) and low <= point <= high <= 1.0


@pytest.mark.parametrize("method,name", [("holm", "holm"), ("bh", "fdr_bh"), ("bonferroni", "bonferroni")])
def test_adjust_pvalues_equals_statsmodels(method, name):
    p = np.array([0.01, 0.04, 0.03, 0.20, 0.002])
    assert stats.adjust_pvalues(p, method) == pytest.approx(multipletests(p, method=name)[1])


def test_holm_hand_worked_and_nan_outside_family():
    p = np.array([0.01, np.nan, 0.04, 0.03])
    # sorted 0.01, 0.03, 0.04 → ×3, ×2, ×1 with running max: 0.03, 0.06, 0.06
    out = stats.adjust_pvalues(p, "holm")
    assert out[[0, 2, 3]] == pytest.approx([0.03, 0.06, 0.06]) and np.isnan(out[1])
    with pytest.raises(ValueError, match="holm"):
        stats.adjust_pvalues(p, "sidak-ish")


def test_delta_m_hand_worked():
    mtl = {"sum/rougeL": 0.20, "topic/accuracy": 0.80, "topic/loss": 0.9}
    single = {"sum/rougeL": 0.25, "topic/accuracy": 0.75, "topic/loss": 1.0}
    lower = {"topic/loss": True}
    # (-0.2 + 0.0666… + 0.1)/3 × 100
    expected = 100 * (-0.05 / 0.25 + 0.05 / 0.75 + 0.1 / 1.0) / 3
    assert stats.delta_m(mtl, single, lower) == pytest.approx(expected)


def test_delta_m_ci_brackets_point_and_is_paired():
    mtl = {"a/f1": [0.50, 0.52, 0.51], "b/acc": [0.80, 0.82, 0.79]}
    single = {"a/f1": [0.48, 0.50, 0.50], "b/acc": [0.81, 0.80, 0.80]}
    out = stats.delta_m_ci(mtl, single, {}, paired=True)
    means = {k: np.mean(v) for k, v in mtl.items()}, {k: np.mean(v) for k, v in single.items()}
    assert out["delta_m"] == pytest.approx(stats.delta_m(*means, {}))
    assert out["low"] <= out["delta_m"] <= out["high"]
    unpaired = stats.delta_m_ci(mtl, {"a/f1": [0.48, 0.5], "b/acc": [0.8, 0.81]}, {}, paired=False)
    assert "unpaired" in unpaired["method"]
    with pytest.raises(ValueError):
        stats.delta_m_ci(mtl, {"a/f1": [0.48, 0.5], "b/acc": [0.8, 0.81]}, {}, paired=True)


# ---------------------------------------------------------------- item-level paired bootstrap

C = 4


def _macro_f1_stats(pred, true):
    oh_p, oh_t = np.eye(C)[pred], np.eye(C)[true]
    return np.concatenate([oh_p * oh_t, oh_p, np.broadcast_to(oh_t, oh_p.shape)], axis=-1)


def _macro_f1_finalize(s):
    tp, pp, tt = s[..., :C], s[..., C:2 * C], s[..., 2 * C:]
    den = pp + tt
    return np.where(den > 0, 2 * tp / np.where(den > 0, den, 1), 0.0).mean(axis=-1)


def _counting_macro_f1(records):
    # an independent, loop-based macro F1 over records (sklearn's definition, zero_division=0)
    scores = []
    for c in range(C):
        tp = sum(r["prediction"] == c and r["reference"] == c for r in records)
        fp = sum(r["prediction"] == c and r["reference"] != c for r in records)
        fn = sum(r["prediction"] != c and r["reference"] == c for r in records)
        scores.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return sum(scores) / C


def _toy(seed=0, n=60, arms=3, seeds=2):
    rng = np.random.default_rng(seed)
    true = rng.integers(0, C, n)
    pred = np.where(rng.random((arms, seeds, n)) < np.array([0.6, 0.7, 0.6])[:arms, None, None],
                    true, rng.integers(0, C, (arms, seeds, n)))
    return true, pred


def test_item_bootstrap_observed_metric_is_corpus_level():
    true, pred = _toy()
    out = stats.paired_bootstrap_items(_macro_f1_stats(pred, true), _macro_f1_finalize, n_resamples=200)
    for arm in range(3):
        per_seed = [f1_score(true, pred[arm, s], average="macro", labels=list(range(C)), zero_division=0)
                    for s in range(2)]
        assert out["metric"][arm] == pytest.approx(np.mean(per_seed))
    # macro F1 is not the mean of per-item values: guard the premise of the test
    per_item = [f1_score([t], [p], average="macro", labels=list(range(C)), zero_division=0)
                for t, p in zip(true, pred[0, 0])]
    assert abs(np.mean(per_item) - out["metric"][0]) > 0.05


def test_item_bootstrap_vectorised_equals_callable_loop():
    true, pred = _toy(n=40)
    vec = stats.paired_bootstrap_items(_macro_f1_stats(pred, true), _macro_f1_finalize,
                                       n_resamples=300, seed=5, dtype=np.float64)
    records = [[[{"prediction": int(p), "reference": int(t)} for p, t in zip(pred[a, s], true)]
                for s in range(2)] for a in range(3)]
    assert _counting_macro_f1(records[1][0]) == pytest.approx(
        f1_score(true, pred[1, 0], average="macro", labels=list(range(C)), zero_division=0))
    fns = [[(lambda idx, recs=recs: _counting_macro_f1([recs[i] for i in idx])) for recs in arm] for arm in records]
    loop = stats.paired_bootstrap_records(fns, 40, n_resamples=300, seed=5)
    for key in ("metric", "diff", "low", "high", "p"):
        np.testing.assert_allclose(vec[key], loop[key], rtol=1e-9, atol=1e-12)
    assert np.isnan(vec["p"][0]) and vec["diff"][0] == 0


def test_item_bootstrap_detects_a_real_difference():
    rng = np.random.default_rng(3)
    n = 2000
    true = rng.integers(0, C, n)
    pred = np.stack([np.where(rng.random(n) < q, true, (true + 1) % C) for q in (0.6, 0.7)])[:, None]
    out = stats.paired_bootstrap_items(_macro_f1_stats(pred, true), _macro_f1_finalize, n_resamples=2000)
    assert out["p"][1] < 0.001 and out["low"][1] > 0.05
