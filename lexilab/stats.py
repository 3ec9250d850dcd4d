"""Statistics for comparing the arms of an experiment: small pure functions over arrays.

Seed level (one value per run): mean, sd, the t-interval and bootstrap intervals; paired tests
between arms that share seeds (t-test, Wilcoxon signed-rank, sign-flip permutation); unpaired
fallbacks (Welch, Mann-Whitney); effect sizes; probability of improvement; multiple-comparison
correction; Δm for multi-task vs single-task baselines.
Item level (one record per test example): a paired bootstrap over test items that recomputes a
corpus-level metric from per-item sufficient statistics, vectorised as one matrix product per
chunk of resamples. It holds the trained models fixed (`--test these-models`); the comparison
that also accounts for retraining is the two-level one in :mod:`lexilab.hierarchical`.

Conventions: a difference is always ``treatment - baseline``; p-values are two-sided; every
interval comes with the name of the method that produced it. Randomness comes only from the
``seed`` argument (``numpy.random.default_rng(seed)``), so results are reproducible.
"""
from __future__ import annotations

import warnings
from typing import Callable, Iterator, Mapping, Sequence

import numpy as np
from scipy import special, stats as st

CONFIDENCE = 0.95
N_RESAMPLES = 10_000
# 2**15 = 32,768 sign vectors: exact enumeration stays cheap up to here (Good 2005, ch. 3).
EXACT_PERMUTATION_MAX_N = 15
# scipy's exact Wilcoxon distribution is used up to this many non-zero differences.
WILCOXON_EXACT_MAX_N = 50
CORRECTIONS = {"holm": "holm", "bh": "fdr_bh", "bonferroni": "bonferroni", "none": None}


def _finite(values, name: str = "values") -> np.ndarray:
    x = np.asarray(values, dtype=float)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name}: contains NaN or inf")
    return x


# --------------------------------------------------------------------------- intervals


def t_interval(values, confidence: float = CONFIDENCE) -> tuple[np.ndarray, np.ndarray]:
    """Student-t interval for the mean over the last axis: mean ± t_{(1+c)/2, n-1}·s/√n.

    Exact under normality for any n ≥ 2 (Student 1908); NaN for n < 2.
    """
    x = _finite(values)
    n = x.shape[-1]
    mean = x.mean(axis=-1)
    if n < 2:
        nan = np.full_like(mean, np.nan)
        return nan, nan.copy()
    half = st.t.ppf(0.5 + confidence / 2, n - 1) * x.std(axis=-1, ddof=1) / np.sqrt(n)
    return mean - half, mean + half


def bootstrap_ci(values, *, confidence: float = CONFIDENCE, n_resamples: int = N_RESAMPLES,
                 seed: int = 0, method: str = "auto") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bootstrap interval for the mean over the last axis (leading axes are a batch).

    Rule (``method="auto"``): BCa (Efron 1987, via ``scipy.stats.bootstrap``) when n ≥ 3, the
    values are not all equal and BCa returns a finite interval; otherwise the percentile
    interval (Efron & Tibshirani 1993, ch. 13); all-equal values give the point itself
    ("degenerate"); n < 2 gives NaN ("none"). Returns ``(low, high, method)`` arrays.
    Note: with 3–5 seeds every bootstrap interval under-covers badly (see the README's coverage
    table); the t-interval is the honest interval there.
    """
    if method not in ("auto", "BCa", "percentile"):
        raise ValueError(f"bootstrap method must be auto, BCa or percentile, not {method!r}")
    x = _finite(values)
    batch, n = x.shape[:-1], x.shape[-1]
    flat = x.reshape(-1, n)
    low = np.full(len(flat), np.nan)
    high = np.full(len(flat), np.nan)
    names = np.full(len(flat), "none (n<2)", dtype=object)
    if n >= 2:
        constant = np.ptp(flat, axis=1) == 0
        low[constant] = high[constant] = flat[constant, 0]
        names[constant] = "degenerate (all values equal)"
        todo = ~constant
        if method != "percentile" and n >= 3 and todo.any():
            lo, hi = _scipy_bootstrap(flat[todo], "BCa", confidence, n_resamples, seed)
            ok = np.isfinite(lo) & np.isfinite(hi)
            rows = np.flatnonzero(todo)[ok]
            low[rows], high[rows], names[rows] = lo[ok], hi[ok], "BCa bootstrap"
            todo[rows] = False
        if todo.any():
            lo, hi = _scipy_bootstrap(flat[todo], "percentile", confidence, n_resamples, seed)
            low[todo], high[todo], names[todo] = lo, hi, "percentile bootstrap"
    return low.reshape(batch), high.reshape(batch), names.reshape(batch)


def _scipy_bootstrap(rows: np.ndarray, method: str, confidence: float, n_resamples: int, seed: int):
    with warnings.catch_warnings():
        # BCa on near-degenerate samples warns and returns NaN; the caller falls back.
        warnings.simplefilter("ignore")
        res = st.bootstrap((rows,), np.mean, axis=-1, vectorized=True, method=method,
                           confidence_level=confidence, n_resamples=n_resamples,
                           rng=np.random.default_rng(seed), batch=max(1, 2_000_000 // rows.size))
    return np.atleast_1d(res.confidence_interval.low), np.atleast_1d(res.confidence_interval.high)


def describe(values, *, confidence: float = CONFIDENCE, n_resamples: int = N_RESAMPLES,
             seed: int = 0) -> dict:
    """Mean, sample sd (ddof=1), t-interval and bootstrap interval (with its method) of 1-D values."""
    x = _finite(values).ravel()
    t_lo, t_hi = t_interval(x, confidence)
    b_lo, b_hi, b_method = bootstrap_ci(x, confidence=confidence, n_resamples=n_resamples, seed=seed)
    return {
        "n": int(x.size), "mean": float(x.mean()) if x.size else np.nan,
        "sd": float(x.std(ddof=1)) if x.size > 1 else np.nan,
        "t_low": float(t_lo), "t_high": float(t_hi),
        "boot_low": float(b_lo), "boot_high": float(b_hi), "boot_method": str(b_method),
    }


# --------------------------------------------------------------------------- effect sizes


def cohens_dz(differences) -> float:
    """Standardised mean of paired differences, d_z = mean(d)/sd(d) (Cohen 1988; Lakens 2013)."""
    d = _finite(differences).ravel()
    sd = d.std(ddof=1) if d.size > 1 else np.nan
    return float(d.mean() / sd) if sd and np.isfinite(sd) else np.nan


def cohens_d(treatment, baseline) -> float:
    """Difference of means over the pooled sd with n-1 weights (Cohen 1988, eq. 2.5.2)."""
    x, y = _finite(treatment).ravel(), _finite(baseline).ravel()
    df = x.size + y.size - 2
    if df <= 0:
        return np.nan
    pooled = np.sqrt(((x.size - 1) * x.var(ddof=1) + (y.size - 1) * y.var(ddof=1)) / df)
    return float((x.mean() - y.mean()) / pooled) if pooled > 0 else np.nan


def hedges_g(treatment, baseline) -> float:
    """Cohen's d times Hedges' exact small-sample factor J(df) = Γ(df/2)/(√(df/2)·Γ((df-1)/2))
    with df = n1 + n2 - 2 (Hedges 1981, eq. 6e)."""
    df = np.size(treatment) + np.size(baseline) - 2
    d = cohens_d(treatment, baseline)
    if df < 2 or not np.isfinite(d):
        return np.nan
    j = np.exp(special.gammaln(df / 2) - special.gammaln((df - 1) / 2)) / np.sqrt(df / 2)
    return float(d * j)


def probability_of_improvement(treatment, baseline) -> float:
    """P(X > Y) + ½P(X = Y) over all run pairs — the Mann-Whitney U statistic over n·m, as in
    rliable's probability of improvement (Agarwal et al. 2021, NeurIPS)."""
    x, y = _finite(treatment).ravel(), _finite(baseline).ravel()
    if x.size == 0 or y.size == 0:
        return np.nan
    diff = x[:, None] - y[None, :]
    return float(((diff > 0) + 0.5 * (diff == 0)).mean())


def probability_of_improvement_ci(treatments: Sequence, baselines: Sequence, *,
                                  confidence: float = CONFIDENCE, n_resamples: int = N_RESAMPLES,
                                  seed: int = 0) -> tuple[float, float, float]:
    """Average probability of improvement over metrics (one array of runs per metric in each
    list) with a percentile CI from the stratified bootstrap over runs (Agarwal et al. 2021):
    each arm's runs are resampled independently, the same run indices for every metric."""
    xs = np.stack([_finite(v).ravel() for v in treatments])  # (metrics, n)
    ys = np.stack([_finite(v).ravel() for v in baselines])   # (metrics, m)
    point = float(np.mean([probability_of_improvement(a, b) for a, b in zip(xs, ys)]))
    rng = np.random.default_rng(seed)
    n, m = xs.shape[1], ys.shape[1]
    out = np.empty(n_resamples)
    step = max(1, 4_000_000 // max(1, xs.shape[0] * n * m))
    for start in range(0, n_resamples, step):
        b = min(step, n_resamples - start)
        xb = xs[:, rng.integers(0, n, size=(b, n))]  # (metrics, b, n)
        yb = ys[:, rng.integers(0, m, size=(b, m))]
        diff = xb[..., :, None] - yb[..., None, :]
        out[start:start + b] = ((diff > 0) + 0.5 * (diff == 0)).mean(axis=(-1, -2)).mean(axis=0)
    alpha = (1 - confidence) / 2
    return point, float(np.quantile(out, alpha)), float(np.quantile(out, 1 - alpha))


# --------------------------------------------------------------------------- tests


def permutation_test_paired(differences, *, n_resamples: int = N_RESAMPLES, seed: int = 0,
                            exact_max_n: int = EXACT_PERMUTATION_MAX_N) -> tuple[float, str]:
    """Two-sided sign-flip permutation test of mean(d) = 0 for paired differences.

    Exact over all 2^n sign vectors when n ≤ ``exact_max_n`` (Fisher 1935; Good 2005);
    otherwise Monte-Carlo with p = (1 + #extreme)/(1 + B) (Phipson & Smyth 2010).
    Returns ``(p, method)``.
    """
    d = _finite(differences).ravel()
    n = d.size
    if n == 0:
        return np.nan, "none (n=0)"
    observed = abs(d.mean())
    # Ties in |mean| count as extreme; the tolerance absorbs float summation order.
    threshold = observed - 1e-12 * max(1.0, observed)
    if n <= exact_max_n:
        signs = 1 - 2 * ((np.arange(2 ** n)[:, None] >> np.arange(n)) & 1)
        return float(np.mean(np.abs(signs @ d) / n >= threshold)), f"exact ({2 ** n} sign flips)"
    rng = np.random.default_rng(seed)
    extreme = 0
    step = max(1, 2_000_000 // n)
    for start in range(0, n_resamples, step):
        b = min(step, n_resamples - start)
        signs = 1 - 2 * rng.integers(0, 2, size=(b, n))
        extreme += int(np.sum(np.abs(signs @ d) / n >= threshold))
    return (1 + extreme) / (1 + n_resamples), f"Monte-Carlo ({n_resamples} sign flips)"


def wilcoxon_test(differences) -> tuple[float, str]:
    """Wilcoxon signed-rank test (Wilcoxon 1945) via ``scipy.stats.wilcoxon``, zeros dropped
    (Wilcoxon's convention). Null distribution: exact when there are no ties and at most
    ``WILCOXON_EXACT_MAX_N`` non-zero differences; with tied |d| (common: accuracies are k/n)
    the exact permutation distribution of the mid-ranks when at most
    ``EXACT_PERMUTATION_MAX_N`` remain; the normal approximation otherwise."""
    d = _finite(differences).ravel()
    nonzero = d[d != 0]
    if nonzero.size == 0:
        return 1.0, "none (all differences zero)"
    ties = np.unique(np.abs(nonzero)).size != nonzero.size
    if not ties and nonzero.size <= WILCOXON_EXACT_MAX_N:
        method, name = "exact", "exact"
    elif ties and nonzero.size <= EXACT_PERMUTATION_MAX_N:
        method, name = st.PermutationMethod(n_resamples=np.inf), "exact (ties: mid-rank permutation)"
    else:
        method, name = "approx", "normal approximation"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns that small-n approximations are rough
        p = st.wilcoxon(d, zero_method="wilcox", method=method).pvalue
    return float(p), name


def paired_t_test(treatment, baseline) -> float:
    """Two-sided paired t-test p (Student 1908) via ``scipy.stats.ttest_rel``; NaN when the
    differences are constant (the t statistic is undefined)."""
    x, y = _finite(treatment).ravel(), _finite(baseline).ravel()
    if x.size < 2 or np.ptp(x - y) == 0:
        return np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # near-constant differences: scipy warns, p is still right
        return float(st.ttest_rel(x, y).pvalue)


def welch_test(treatment, baseline, confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """Welch's unequal-variance t-test (Welch 1947) via ``scipy.stats.ttest_ind``: ``(p, low,
    high)`` with the Welch-Satterthwaite interval for the difference of means."""
    x, y = _finite(treatment).ravel(), _finite(baseline).ravel()
    if x.size < 2 or y.size < 2 or (np.ptp(x) == 0 and np.ptp(y) == 0):
        return np.nan, np.nan, np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = st.ttest_ind(x, y, equal_var=False)
        ci = res.confidence_interval(confidence_level=confidence)
    return float(res.pvalue), float(ci.low), float(ci.high)


def mann_whitney_test(treatment, baseline) -> float:
    """Two-sided Mann-Whitney U test p (Mann & Whitney 1947) via ``scipy.stats.mannwhitneyu``
    (exact for small samples without ties, normal approximation otherwise)."""
    x, y = _finite(treatment).ravel(), _finite(baseline).ravel()
    return float(st.mannwhitneyu(x, y).pvalue) if x.size and y.size else np.nan


def compare_paired(treatment, baseline, *, confidence: float = CONFIDENCE,
                   n_resamples: int = N_RESAMPLES, seed: int = 0) -> dict:
    """Paired comparison of two arms over the same seeds (element i of each array is seed i).

    Per-seed differences d = treatment - baseline with their mean, t-interval and bootstrap
    interval; paired t-test (``scipy.stats.ttest_rel``), Wilcoxon signed-rank, sign-flip
    permutation test; effect size d_z; probability of improvement (rliable).
    """
    x, y = _finite(treatment).ravel(), _finite(baseline).ravel()
    if x.size != y.size:
        raise ValueError("paired comparison needs arrays of equal length (one value per shared seed)")
    d = x - y
    summary = describe(d, confidence=confidence, n_resamples=n_resamples, seed=seed)
    p_t = paired_t_test(x, y)
    p_w, w_method = wilcoxon_test(d) if d.size else (np.nan, "none (n=0)")
    p_perm, perm_method = permutation_test_paired(d, n_resamples=n_resamples, seed=seed)
    return {
        "design": "paired", "n": int(d.size), "n_treatment": int(x.size), "n_baseline": int(y.size),
        "diff": summary["mean"], "diff_sd": summary["sd"],
        "diff_t_low": summary["t_low"], "diff_t_high": summary["t_high"],
        "diff_boot_low": summary["boot_low"], "diff_boot_high": summary["boot_high"],
        "diff_boot_method": summary["boot_method"],
        "p_t": p_t, "p_wilcoxon": p_w, "wilcoxon_method": w_method,
        "p_permutation": p_perm, "permutation_method": perm_method,
        "effect_size": cohens_dz(d), "effect_size_name": "d_z",
        "prob_improvement": probability_of_improvement(x, y),
    }


def compare_unpaired(treatment, baseline, *, confidence: float = CONFIDENCE,
                     n_resamples: int = N_RESAMPLES, seed: int = 0) -> dict:
    """Fallback when the arms do not share seeds: Welch's t-test and interval (Welch 1947),
    Mann-Whitney U (Mann & Whitney 1947), Hedges' g, probability of improvement, and a
    bootstrap interval for the difference of means resampling each arm independently."""
    x, y = _finite(treatment).ravel(), _finite(baseline).ravel()
    diff = float(x.mean() - y.mean()) if x.size and y.size else np.nan
    p_t, t_lo, t_hi = welch_test(x, y, confidence)
    p_mw = mann_whitney_test(x, y)
    b_lo = b_hi = np.nan
    b_method = "none (n<2)"
    if x.size >= 2 and y.size >= 2:
        if np.ptp(x) == 0 and np.ptp(y) == 0:
            b_lo = b_hi = diff
            b_method = "degenerate (all values equal)"
        else:
            b_lo, b_hi, b_method = _two_sample_bootstrap(x, y, confidence, n_resamples, seed)
    return {
        "design": "unpaired (different seed sets)", "n": int(min(x.size, y.size)),
        "n_treatment": int(x.size), "n_baseline": int(y.size), "diff": diff,
        "diff_sd": np.nan, "diff_t_low": t_lo, "diff_t_high": t_hi,
        "diff_boot_low": b_lo, "diff_boot_high": b_hi, "diff_boot_method": b_method,
        "p_t": p_t, "p_wilcoxon": p_mw, "wilcoxon_method": "Mann-Whitney U",
        "p_permutation": np.nan, "permutation_method": "none (unpaired)",
        "effect_size": hedges_g(x, y), "effect_size_name": "g",
        "prob_improvement": probability_of_improvement(x, y),
    }


def _two_sample_bootstrap(x, y, confidence, n_resamples, seed):
    def stat(a, b, axis=-1):
        return a.mean(axis=axis) - b.mean(axis=axis)

    for method in (("BCa", "percentile") if min(x.size, y.size) >= 3 else ("percentile",)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = st.bootstrap((x, y), stat, vectorized=True, method=method, confidence_level=confidence,
                               n_resamples=n_resamples, rng=np.random.default_rng(seed))
        lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
        if np.isfinite(lo) and np.isfinite(hi):
            return lo, hi, f"{method} bootstrap"
    return np.nan, np.nan, "none"


def adjust_pvalues(pvalues, method: str = "holm") -> np.ndarray:
    """Family-wise (Holm 1979; Bonferroni) or false-discovery-rate (Benjamini & Hochberg 1995)
    adjustment via ``statsmodels.stats.multitest.multipletests``. NaN entries are not part of
    the family and stay NaN."""
    from statsmodels.stats.multitest import multipletests

    if method not in CORRECTIONS:
        raise ValueError(f"correction must be one of {', '.join(CORRECTIONS)}, not {method!r}")
    p = np.asarray(pvalues, dtype=float)
    out = p.copy()
    ok = np.isfinite(p)
    if CORRECTIONS[method] and ok.any():
        out[ok] = multipletests(p[ok], method=CORRECTIONS[method])[1]
    return out


# --------------------------------------------------------------------------- Δm


def delta_m(mtl: Mapping, single: Mapping, lower_is_better: Mapping) -> float:
    """Δm in percent: mean over (task, metric) keys of (-1)^l_k (M_mtl,k - M_single,k)/M_single,k,
    l_k = 1 when lower is better (Maninis et al. 2019; Vandenhende et al. 2021)."""
    keys = list(mtl)
    if not keys or set(keys) != set(single):
        raise ValueError("delta_m needs the same non-empty set of keys for MTL and single-task values")
    m = np.array([float(mtl[k]) for k in keys])
    b = np.array([float(single[k]) for k in keys])
    sign = np.array([-1.0 if lower_is_better.get(k, False) else 1.0 for k in keys])
    return float(100 * np.mean(sign * (m - b) / b))


def delta_m_ci(mtl: Mapping, single: Mapping, lower_is_better: Mapping, *, paired: bool,
               confidence: float = CONFIDENCE, groups: Mapping | None = None) -> dict:
    """Δm (ratio of seed means, :func:`delta_m`) from per-seed values with a t-interval that is
    calibrated at 3–10 seeds (README, "Statistics": simulated coverage 94–96%).

    Δm is a smooth function of the arms' mean metrics, so its sampling error is, to first order
    (the delta method; Casella & Berger 2002, §5.5.4), the mean of per-seed *linearised* values
    L_s = (100/K) Σ_k (-1)^l_k (m_k,s / B_k - M_k b_k,s / B_k²), with M_k, B_k the MTL and
    single-task means.
    Paired (every arm has the same seeds, element i = seed i): the interval is
    Δm ± t_{n-1} · sd(L)/√n — a t-interval over per-seed (linearised) Δm, which keeps the
    between-arm correlation of a shared seed. Unpaired: the MTL arm's and each single-task arm's
    linearised values are independent, their variances add and the degrees of freedom come from
    Welch-Satterthwaite (Welch 1947). ``groups[k]`` names the single-task arm behind key k (keys of
    one arm share its seeds; default: one arm per key). A percentile bootstrap over 3-5 seeds
    covers only 75-85% (it ignores the t reference and shrinks the variance by (n-1)/n).
    """
    keys = list(mtl)
    m = np.stack([_finite(mtl[k]).ravel() for k in keys])       # (K, n)
    b = [_finite(single[k]).ravel() for k in keys]
    sign = np.array([-1.0 if lower_is_better.get(k, False) else 1.0 for k in keys])
    big_m, big_b = m.mean(axis=1), np.array([v.mean() for v in b])
    point = delta_m(dict(zip(keys, big_m)), dict(zip(keys, big_b)), lower_is_better)
    scale = 100 / len(keys)
    if paired:
        if any(v.shape != m.shape[1:] for v in b):
            raise ValueError("paired delta_m_ci needs one value per shared seed in every arm")
        bb = np.stack(b)
        lin = scale * np.sum(sign[:, None] * (m / big_b[:, None] - big_m[:, None] * bb / big_b[:, None] ** 2), axis=0)
        parts = [lin]
        method = "t-interval over per-seed linearised Δm (delta method; paired, n-1 df)"
    else:
        parts = [scale * np.sum(sign[:, None] * m / big_b[:, None], axis=0)]
        groups = dict(groups or {k: k for k in keys})
        for g in dict.fromkeys(groups[k] for k in keys):
            members = [i for i, k in enumerate(keys) if groups[k] == g]
            if len({b[i].size for i in members}) != 1:
                raise ValueError(f"delta_m_ci: the keys of single-task arm {g!r} have different seed counts")
            parts.append(-scale * np.sum([sign[i] * big_m[i] * b[i] / big_b[i] ** 2 for i in members], axis=0))
        method = "delta-method t-interval (unpaired arms, Welch-Satterthwaite df)"
    low = high = np.nan
    if min(p.size for p in parts) >= 2:
        v = np.array([p.var(ddof=1) / p.size for p in parts])
        var = v.sum()
        if var > 0:
            df = var ** 2 / np.sum(v ** 2 / np.array([p.size - 1 for p in parts]))
            half = st.t.ppf(0.5 + confidence / 2, df) * np.sqrt(var)
            low, high = point - half, point + half
        else:
            low = high = point
            method += "; degenerate (no seed-to-seed variation)"
    else:
        method += "; no interval (fewer than 2 seeds)"
    return {"delta_m": point, "low": float(low), "high": float(high), "method": method, "n_keys": len(keys)}


# --------------------------------------------------------------------------- item level


def bootstrap_counts(n_items: int, n_resamples: int, seed: int, chunk: int,
                     dtype=np.float64) -> Iterator[np.ndarray]:
    """Yield (b, n_items) arrays: how often each item occurs in each bootstrap resample.
    The draws do not depend on ``chunk`` (one stream of item indices, consumed in order)."""
    rng = np.random.default_rng(seed)
    for start in range(0, n_resamples, chunk):
        b = min(chunk, n_resamples - start)
        idx = rng.integers(0, n_items, size=(b, n_items), dtype=np.int32).astype(np.int64)
        idx += (np.arange(b, dtype=np.int64) * n_items)[:, None]
        yield np.bincount(idx.ravel(), minlength=b * n_items).reshape(b, n_items).astype(dtype)


def paired_bootstrap_items(stats, finalize: Callable[[np.ndarray], np.ndarray], *, baseline: int = 0,
                           confidence: float = CONFIDENCE, n_resamples: int = N_RESAMPLES,
                           seed: int = 0, chunk: int | None = None, dtype=np.float32) -> dict:
    """Paired bootstrap over test items for a corpus-level metric (Koehn 2004; Berg-Kirkpatrick
    et al. 2012), pooled across seeds by stratifying on seed.

    ``stats`` has shape (arms, seeds, items, k): per-item sufficient statistics, items aligned
    (same test example at the same index in every arm and seed). ``finalize`` maps summed
    statistics (..., k) to the corpus metric (...), e.g. per-class TP/FP/FN → macro F1 — so the
    metric is recomputed on each resample, never averaged over items. Each resample draws items
    once and applies the draw to every arm and seed (the arms and seeds were all evaluated on
    the same test items); the metric is computed within each seed and averaged over seeds.
    Returns arrays over arms: ``metric`` (observed), ``diff`` (vs ``baseline``), percentile CI
    ``low``/``high`` of the difference, and the two-sided p-value of the null-shifted bootstrap
    test p = (1 + #{|δ* - δ| ≥ |δ|})/(1 + B) (Berg-Kirkpatrick et al. 2012, §3.1; Efron &
    Tibshirani 1993, §16.4). Resampled sums use ``dtype`` matrix products (float32 by default:
    exact for count statistics, ~1e-6 relative for real-valued ones; pass np.float64 if needed).
    The models are fixed: the interval describes these trained models and ignores seed-to-seed
    variance (simulated coverage of the retrained truth 88-91%; README, "Statistics"), which
    :func:`lexilab.hierarchical.two_level_items` adds.
    """
    s = np.asarray(stats, dtype=float)
    if s.ndim != 4:
        raise ValueError("stats must have shape (arms, seeds, items, k)")
    arms, seeds, n, k = s.shape
    flat = np.ascontiguousarray(s.transpose(2, 0, 1, 3).reshape(n, arms * seeds * k), dtype=dtype)
    observed = finalize(s.sum(axis=2)).mean(axis=-1)  # (arms,)
    diff = observed - observed[baseline]
    chunk = chunk or max(1, min(n_resamples, 4_000_000 // max(n, arms * seeds * k)))
    draws = np.empty((n_resamples, arms))
    row = 0
    for counts in bootstrap_counts(n, n_resamples, seed, chunk, dtype):
        sums = (counts @ flat).astype(np.float64).reshape(len(counts), arms, seeds, k)
        metric = finalize(sums).mean(axis=-1)  # (b, arms)
        draws[row:row + len(counts)] = metric - metric[:, [baseline]]
        row += len(counts)
    alpha = (1 - confidence) / 2
    extreme = np.sum(np.abs(draws - diff) >= np.abs(diff) - 1e-12, axis=0)
    p = (1 + extreme) / (1 + n_resamples)
    p[baseline] = np.nan
    return {"metric": observed, "diff": diff, "low": np.quantile(draws, alpha, axis=0),
            "high": np.quantile(draws, 1 - alpha, axis=0), "p": p,
            "method": f"paired item bootstrap ({n_resamples} resamples, stratified by seed)",
            "n_items": n, "n_seeds": seeds}


def paired_bootstrap_records(metric_fns: Sequence[Sequence[Callable[[np.ndarray], float]]], n_items: int, *,
                             baseline: int = 0, confidence: float = CONFIDENCE,
                             n_resamples: int = N_RESAMPLES, seed: int = 0) -> dict:
    """The test of :func:`paired_bootstrap_items` for a corpus metric without sufficient
    statistics: ``metric_fns[arm][seed](indices) -> float`` computes the metric on the items at
    ``indices`` (positions aligned across arms and seeds; ``lexilab.metrics.corpus_metric_fn``
    builds such functions from records). One call per arm, seed and resample — general but
    slow. Uses the same resample draws as the vectorised path, so both agree exactly."""
    arms, seeds = len(metric_fns), len(metric_fns[0])

    def corpus(idx):
        return np.array([[metric_fns[a][s](idx) for s in range(seeds)] for a in range(arms)]).mean(axis=1)

    observed = corpus(np.arange(n_items))
    diff = observed - observed[baseline]
    draws = np.empty((n_resamples, arms))
    row = 0
    for counts in bootstrap_counts(n_items, n_resamples, seed, max(1, 1_000_000 // n_items)):
        for c in counts:
            m = corpus(np.repeat(np.arange(n_items), c.astype(int)))
            draws[row] = m - m[baseline]
            row += 1
    alpha = (1 - confidence) / 2
    p = (1 + np.sum(np.abs(draws - diff) >= np.abs(diff) - 1e-12, axis=0)) / (1 + n_resamples)
    p[baseline] = np.nan
    return {"metric": observed, "diff": diff, "low": np.quantile(draws, alpha, axis=0),
            "high": np.quantile(draws, 1 - alpha, axis=0), "p": p,
            "method": f"paired item bootstrap ({n_resamples} resamples, stratified by seed)",
            "n_items": n_items, "n_seeds": seeds}
