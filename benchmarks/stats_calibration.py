"""Calibration of the report's comparisons by simulation with known ground truth.

Reproduces the figures of the README's "Statistics" section:

1. Item-level comparisons when both training seeds and test items vary (the model of
   ``tests/stats/simulation.py``: item difficulty, arm × item skill, per-seed training shifts,
   Bernoulli correctness; the true accuracy difference by quadrature). Coverage of the 95%
   interval of a true difference (logit +0.3, ≈ +4 accuracy points) and the false-positive
   rate at α = 0.05 of equal arms, for: the item bootstrap of these trained models
   (``--test these-models``; Koehn 2004), a plain two-level percentile bootstrap (seeds then
   items; Bouthillier et al. 2021), the two-level variance with Satterthwaite's df, and the
   shipped two-level test (``--test items``, ``lexilab.hierarchical``).
2. The degrees-of-freedom rule of the two-level test over the whole range of the ratio
   ρ = item variance / seed variance, in the idealised model (normal mean, seed variance with
   n-1 df, item variance known).
3. Δm's interval: coverage at 3, 5, 10 seeds of the former percentile bootstrap over seeds and
   of the delta-method t-interval (``lexilab.stats.delta_m_ci``), paired and unpaired.
4. ``lexilab power``: simulated power of the paired t-test at the planned number of seeds.

    python benchmarks/stats_calibration.py            # prints a markdown report (~5 min on 2 cores)
    python benchmarks/stats_calibration.py --write    # also writes benchmarks/stats_calibration.md
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats as st

from lexilab import hierarchical, power, stats

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stats_bootstrap import _cpu_name  # noqa: E402  (the sibling benchmark's device name)

_spec = importlib.util.spec_from_file_location(
    "calibration_models", Path(__file__).resolve().parents[1] / "tests" / "stats" / "simulation.py")
sim = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sim)

ALPHA = 0.05


def item_methods(n_seeds: int, delta_logit: float, sims: int, items: int, resamples: int, seed: int) -> dict:
    """{method: (covered or rejected per simulation)} for one condition; one batched call."""
    data, truth = sim.accuracy_items(np.random.default_rng(seed), sims, n_seeds, items, delta_logit)
    out = hierarchical.two_level_items(data, sim.accuracy, n_resamples=resamples, seed=seed)
    draws = out["draws"][..., 1, :] - out["draws"][..., 0, :]      # (B, sims, seeds) per-seed Δ
    d = out["diff"][:, 1]
    q = ((1 - 0.95) / 2, 1 - (1 - 0.95) / 2)
    # these trained models: items resampled, seeds fixed (= stats.paired_bootstrap_items on these draws)
    fixed = draws.mean(axis=-1)
    # plain two-level percentile: resample seeds (paired across arms), then the items of that draw
    rng = np.random.default_rng(seed + 1)
    pick = rng.integers(0, n_seeds, size=(resamples, 1, n_seeds))
    plain = np.take_along_axis(draws, np.broadcast_to(pick, draws.shape), axis=-1).mean(axis=-1)
    results = {}
    for name, boot in (("item bootstrap of these trained models", fixed), ("two-level percentile bootstrap", plain)):
        low, high = np.quantile(boot, q, axis=0)
        p = (1 + np.sum(np.abs(boot - d) >= np.abs(d) - 1e-12, axis=0)) / (1 + resamples)
        results[name] = (low, high, p)
    satt_df = np.where(out["var_seed"][:, 1] > 0, (n_seeds - 1) * (out["se"][:, 1] ** 2 / out["var_seed"][:, 1]) ** 2,
                       np.inf)
    half = st.t.ppf(0.975, satt_df) * out["se"][:, 1]
    results["two-level, Satterthwaite df"] = (d - half, d + half, 2 * st.t.sf(np.abs(d / out["se"][:, 1]), satt_df))
    results["two-level test (shipped: --test items)"] = (out["low"][:, 1], out["high"][:, 1], out["p"][:, 1])
    key = "coverage" if delta_logit else "false-positive rate"
    return {name: (np.mean((lo <= truth) & (truth <= hi)) if delta_logit else np.mean(p <= ALPHA))
            for name, (lo, hi, p) in results.items()}, key, truth


def item_table(sims: int, items: int, resamples: int) -> list[str]:
    rows = {}
    for n in (3, 5, 10):
        cov, _, truth = item_methods(n, 0.3, sims, items, resamples, seed=100 + n)
        fpr, _, _ = item_methods(n, 0.0, sims, items, resamples, seed=200 + n)
        for name in cov:
            rows.setdefault(name, []).append((cov[name], fpr[name]))
    lines = ["| method | " + " | ".join(f"{n} seeds: coverage / FPR" for n in (3, 5, 10)) + " |",
             "|---|---|---|---|"]
    for name, cells in rows.items():
        lines.append(f"| {name} | " + " | ".join(f"{100 * c:.1f}% / {100 * f:.1f}%" for c, f in cells) + " |")
    return lines + ["", f"True difference {truth:+.4f} (coverage rows); equal arms for the false-positive rate; "
                        f"{sims:,} simulated experiments per cell, {items} test items, {resamples} item resamples."]


def df_rule_table(sims: int = 200_000) -> list[str]:
    rng = np.random.default_rng(0)
    ratios = (0.01, 0.05, 0.2, 0.5, 1, 2, 5, 20, 100)
    lines = ["| seeds | df rule | " + " | ".join(f"ρ={r:g}" for r in ratios) + " |",
             "|---|---|" + "---|" * len(ratios)]
    for n in (3, 5, 10):
        nu = n - 1
        cells = {"Satterthwaite (n-1)(1+ρ̂)²": [], "shipped (n-1)(1+ρ̂)": []}
        for rho in ratios:
            z = rng.normal(size=sims) * np.sqrt(1 + rho)
            seed_var = rng.chisquare(nu, sims) / nu
            ratio = rho / seed_var
            for name, df in (("Satterthwaite (n-1)(1+ρ̂)²", nu * (1 + ratio) ** 2), ("shipped (n-1)(1+ρ̂)", nu * (1 + ratio))):
                cells[name].append(np.mean(np.abs(z) <= st.t.ppf(0.975, df) * np.sqrt(seed_var + rho)))
        for name, values in cells.items():
            lines.append(f"| {n} | {name} | " + " | ".join(f"{100 * v:.1f}%" for v in values) + " |")
    return lines + ["", f"Coverage of the nominal 95% interval, {sims:,} draws per cell (idealised model)."]


def _delta_m_percentile(m, b, paired, rng, resamples=2000):
    """The former interval: percentile bootstrap over seeds (paired: the same seed indices)."""
    n = m.shape[1]
    idx = rng.integers(0, n, size=(resamples, n))
    idx_b = idx if paired else rng.integers(0, b.shape[1], size=(resamples, b.shape[1]))
    mm, bb = m[:, idx].mean(-1), b[:, idx_b].mean(-1)
    return np.quantile(100 * np.mean((mm - bb) / bb, axis=0), [0.025, 0.975])


def delta_m_table(sims: int) -> list[str]:
    mtl_means, single_means = [0.62, 0.40], [0.60, 0.42]
    truth = 100 * np.mean([(m - s) / s for m, s in zip(mtl_means, single_means)])
    keys = ["a/accuracy", "b/accuracy"]
    lines = ["| seeds | design | percentile bootstrap (former) | delta-method t-interval (shipped) |", "|---|---|---|---|"]
    for n in (3, 5, 10):
        for paired in (True, False):
            rng = np.random.default_rng(n + 10 * paired)
            mtl, single = sim.seed_metrics(rng, sims, n, mtl_means, single_means)
            if not paired:
                single = sim.seed_metrics(rng, sims, n, mtl_means, single_means)[1]
            old, new = [], []
            for m, s in zip(mtl, single):
                lo, hi = _delta_m_percentile(m, s, paired, rng)
                old.append(lo <= truth <= hi)
                out = stats.delta_m_ci(dict(zip(keys, m)), dict(zip(keys, s)), {}, paired=paired,
                                       groups={"a/accuracy": "a_only", "b/accuracy": "b_only"})
                new.append(out["low"] <= truth <= out["high"])
            lines.append(f"| {n} | {'paired' if paired else 'unpaired'} | {100 * np.mean(old):.1f}% | "
                         f"{100 * np.mean(new):.1f}% |")
    return lines + ["", f"Coverage of Δm = {truth:+.2f}% (two tasks), {sims:,} simulated experiments per cell; "
                        "per-seed sd 0.02 plus a shift 0.015 shared by the arms of a seed."]


def power_table(sims: int) -> list[str]:
    lines = ["| δ | σ | α per comparison | planned seeds | simulated power at n | at n-1 |", "|---|---|---|---|---|---|"]
    rng = np.random.default_rng(3)
    for delta, sd, alpha in ((0.01, 0.02, 0.05), (0.012, 0.02, 0.0125), (0.03, 0.015, 0.05 / 6)):
        n = power.seeds_needed(delta, sd, alpha)
        rates = [np.mean(st.ttest_1samp(rng.normal(delta, sd, (sims, k)), 0.0, axis=1).pvalue <= alpha) for k in (n, n - 1)]
        lines.append(f"| {delta:g} | {sd:g} | {alpha:.4g} | {n} | {100 * rates[0]:.1f}% | {100 * rates[1]:.1f}% |")
    return lines + ["", f"Target power 80%; {sims:,} simulated studies of normal paired differences per cell."]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="write benchmarks/stats_calibration.md")
    parser.add_argument("--sims", type=int, default=2000, help="simulated experiments per item-level cell")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    sections = [
        "## Item-level comparisons, seeds and items both varying", "", *item_table(args.sims, 300, 400), "",
        "## The two-level test's degrees of freedom", "", *df_rule_table(), "",
        "## Δm interval", "", *delta_m_table(2000), "",
        "## Power analysis (`lexilab power`)", "", *power_table(10_000), "",
    ]
    lines = ["# Calibration of the report's intervals and tests (simulation with known truth)", "",
             f"Command: `python benchmarks/stats_calibration.py{' --write' if args.write else ''}"
             f"{f' --sims {args.sims}' if args.sims != 2000 else ''}`  ",
             f"Device: {_cpu_name()}, {os.cpu_count()} logical CPUs, no GPU; "
             f"Python {platform.python_version()}, numpy {np.__version__}; "
             f"{time.perf_counter() - start:.0f} s", "", *sections]
    text = "\n".join(lines)
    print(text)
    if args.write:
        Path(__file__).with_name("stats_calibration.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
