"""From a tidy results frame to the numbers of a report: per-arm summaries with CIs, comparisons
against a baseline with multiple-comparison-adjusted p-values, and Δm for multi-task arms.

Rules (stated in every output that uses them):
- Interval per arm: the t-interval across seeds by default (``ci="t"``) — with 3–5 seeds every
  bootstrap interval under-covers badly (README, "Statistics"); ``ci="bootstrap"`` shows the
  BCa/percentile interval of :func:`lexilab.stats.bootstrap_ci` instead.
- Two arms are compared paired on the seeds both have finished (at least 2); seeds only one of
  them has are dropped from that comparison and named, with the reason (the other arm's run
  failed, is pending, ...). Fewer than 2 shared seeds: unpaired (Welch / Mann-Whitney), said so.
- The analysis (test, ci, correction, alpha, confidence, family) is the spec's ``report:`` block
  — pre-registered — unless overridden; every override is listed as a deviation.
- The family for the p-value correction is every (arm, metric) comparison over the family's
  metrics (the spec's ``report.family``, else its ``report.metrics``, else one per task), even
  when fewer metrics are shown.
- A metric whose task the baseline arm does not train is compared with the arm that trains
  that task alone, when there is exactly one (MTL vs single-task designs); otherwise not at all.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lexilab import hierarchical, power, stats
from lexilab.errors import LexilabError
from lexilab.metrics import DEFAULT_METRIC, metric_mode
from lexilab.metrics.rouge import split_metric
from lexilab.results import Experiment

TESTS = {"t": "t-test", "wilcoxon": "Wilcoxon signed-rank", "permutation": "sign-flip permutation test",
         "items": "two-level test over seeds × test items",
         "these-models": "item bootstrap of these trained models"}
CI_METHODS = ("t", "bootstrap")
# the analysis choices a spec's `report:` block pre-registers, with their defaults
ANALYSIS_DEFAULTS = {"test": "t", "ci": "t", "correction": "holm", "alpha": 0.05, "confidence": 0.95}
MARKERS = ((0.001, "***"), (0.01, "**"), (0.05, "*"))
UNPAIRED_MARK = "†"
DROPPED_MARK = "‡"
POWER = 0.8  # power at which the minimum detectable difference is reported
FIXED_MODELS_CAVEAT = ("the item bootstrap of these trained models resamples test items with the models fixed: it "
                       "describes these trained models and ignores seed-to-seed variance, so it says nothing about "
                       "retraining them")


@dataclass
class Report:
    experiment: Experiment
    split: str
    metrics: list[str]          # task/metric
    arms: list[str]             # arms with at least one finished run, spec order
    baseline: str
    correction: str
    ci: str
    test: str
    summary: pd.DataFrame       # arm, metric, n, mean, sd, low, high, ci_method, seeds, values
    comparisons: pd.DataFrame   # arm, metric, baseline, design, n, diff, low, high, p, p_adj, marker, ...
    delta_m: pd.DataFrame       # arm, delta_m, low, high, method, n_keys, paired
    notes: list[str] = field(default_factory=list)
    not_done: pd.DataFrame | None = None  # runs that are not finished (state, error)
    alpha: float = 0.05
    confidence: float = 0.95
    family: list[str] = field(default_factory=list)  # metrics whose comparisons form the correction family
    family_size: int = 0        # comparisons the correction adjusts over (≥ the rows shown)
    deviations: list[str] = field(default_factory=list)  # overrides of the spec's pre-registered analysis
    dropped: dict = field(default_factory=dict)  # arm -> {seed: why} dropped to pair on shared seeds

    @property
    def n_seeds(self) -> list[int]:
        return sorted(set(self.summary["n"].astype(int)))

    @property
    def markers(self) -> tuple[tuple[float, str], ...]:
        """Significance markers: * at alpha, ** and *** at 0.01 and 0.001 when below alpha."""
        return tuple((level, m) for level, m in MARKERS[:2] if level < self.alpha) + ((self.alpha, "*"),)

    @property
    def p_label(self) -> str:
        return "p" if self.correction == "none" else "p_adj"


def lower_is_better(metric: str) -> bool:
    name = split_metric(metric.split("/", 1)[-1])[0]
    return metric_mode(name) == "min" or "loss" in name


def marker(p: float, markers=MARKERS) -> str:
    """Significance marker of an adjusted p-value: *** < 0.001, ** < 0.01, * < 0.05."""
    if p is None or not np.isfinite(p):
        return ""
    return next((m for level, m in markers if p < level), "")


def resolve_analysis(exp: Experiment, **overrides) -> tuple[dict, list[str]]:
    """The analysis of a report: the spec's pre-registered ``report:`` choices (defaults where it
    names none), then ``overrides`` (None = not given). Returns (analysis, deviations): one line
    per override that changes the spec's choice."""
    spec = exp.report_defaults or {}
    analysis = {key: spec.get(key, default) for key, default in ANALYSIS_DEFAULTS.items()}
    analysis["family"] = list(spec.get("family") or [])
    deviations = []
    for key, value in overrides.items():
        if value is None:
            continue
        before = analysis.get(key)
        if key == "family":
            value = list(value)
        if value != before:
            shown = (", ".join(before) or "the report metrics") if key == "family" else before
            given = ", ".join(value) if key == "family" else value
            deviations.append(f"--{key} {given} instead of the spec's {shown}" if key in spec else
                              f"--{key} {given} instead of the default {shown} (the spec names none)")
        analysis[key] = value
    checks = {"test": TESTS, "ci": CI_METHODS, "correction": stats.CORRECTIONS}
    for key, allowed in checks.items():
        if analysis[key] not in allowed:
            where = f"--{key}" if overrides.get(key) is not None else f"{exp.root}: the spec's report.{key}"
            raise LexilabError(f"{where}: {analysis[key]!r} unknown; choose {', '.join(allowed)}")
    for key in ("alpha", "confidence"):
        value = analysis[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
            where = f"--{key}" if overrides.get(key) is not None else f"{exp.root}: the spec's report.{key}"
            raise LexilabError(f"{where}: expected a number between 0 and 1 (exclusive), found {value!r}")
    return analysis, deviations


def available_metrics(frame: pd.DataFrame, split: str) -> list[str]:
    done = frame[(frame["state"] == "done") & (frame["split"] == split)]
    return sorted(set(done["task"] + "/" + done["metric"]))


def choose_metrics(exp: Experiment, frame: pd.DataFrame, split: str, metrics: list[str] | None) -> list[str]:
    available = available_metrics(frame, split)
    if not metrics:
        metrics = list(exp.report_defaults.get("metrics") or [])
    if not metrics:  # one headline metric per task: the kind's default when present, else its first
        metrics = []
        for task, kind in exp.task_kinds.items():
            mine = [m for m in available if m.split("/", 1)[0] == task]
            preferred = f"{task}/{DEFAULT_METRIC.get(kind)}"
            metrics += [preferred] if preferred in mine else mine[:1]
    missing = [m for m in metrics if m not in available]
    if missing:
        raise LexilabError(f"{exp.root}: metric {', '.join(missing)} not in the {split} results; "
                           f"available: {', '.join(available) or 'none'}")
    return metrics


def single_task_arm(exp: Experiment, task: str, arms: list[str]) -> str | None:
    alone = [a for a in arms if exp.arm_tasks.get(a) == [task]]
    return alone[0] if len(alone) == 1 else None


def build_report(exp: Experiment, frame: pd.DataFrame, *, metrics: list[str] | None = None,
                 baseline: str | None = None, correction: str | None = None, ci: str | None = None,
                 test: str | None = None, alpha: float | None = None, confidence: float | None = None,
                 family: list[str] | None = None, split: str = "test", n_resamples: int = stats.N_RESAMPLES,
                 seed: int = 0, records_loader=None) -> Report:
    """Summaries, comparisons and Δm for one split of an experiment's tidy results.

    The analysis choices left as None are the spec's ``report:`` block (else the defaults,
    ``ANALYSIS_DEFAULTS``); a given one that differs is recorded in ``Report.deviations``.
    ``records_loader(task, arms) -> {(arm, seed): records}`` is needed for the item-level tests."""
    analysis, deviations = resolve_analysis(exp, test=test, ci=ci, correction=correction, alpha=alpha,
                                            confidence=confidence, family=family)
    done = frame[frame["state"] == "done"]
    if done.empty:
        states = frame.drop_duplicates(["arm", "seed"])["state"].value_counts()
        summary = ", ".join(f"{n} {s}" for s, n in states.items()) or "no runs"
        raise LexilabError(f"{exp.root}: no finished runs ({summary}); see `python -m lexilab status {exp.name}`")
    if split not in set(done["split"]):
        raise LexilabError(f"{exp.root}: no {split!r} metrics; splits: {', '.join(sorted(set(done['split'])))}")
    metrics = choose_metrics(exp, frame, split, metrics)
    # the pre-registered family (report.family, else report.metrics); nothing pre-registered: the shown metrics
    registered = analysis["family"] or list(exp.report_defaults.get("metrics") or [])
    fam = choose_metrics(exp, frame, split, registered) if registered else list(metrics)
    notes: list[str] = []
    extra = [m for m in metrics if m not in fam]
    if extra:
        notes.append(f"the correction family ({', '.join(fam)}) is extended by the shown {', '.join(extra)}")
    fam = list(dict.fromkeys([*fam, *metrics]))
    arms = [a for a in exp.arms if a in set(done["arm"])]
    spec_baseline = exp.report_defaults.get("baseline") or arms[0]
    if baseline is not None and exp.report_defaults.get("baseline") and baseline != spec_baseline:
        # only a pre-registered baseline: the first arm is a fallback, not an analysis choice
        deviations.append(f"--baseline {baseline} instead of the spec's {spec_baseline}")
    baseline = baseline or spec_baseline
    if baseline not in arms:
        raise LexilabError(f"--baseline: arm {baseline!r} has no finished runs in {exp.name}; arms: {', '.join(arms)}")
    rows = done[done["split"] == split]
    values = {(a, m): _seed_values(rows, a, m) for a in arms for m in fam}
    runs_state = _run_states(frame, rows, fam)
    test, confidence = analysis["test"], analysis["confidence"]
    summary = _summaries(values, arms, metrics, analysis["ci"], confidence, n_resamples, seed)
    comparisons = _comparisons(exp, values, arms, fam, baseline, test, confidence, n_resamples, seed, notes,
                               records_loader, split, runs_state)
    report = Report(exp, split, metrics, arms, baseline, analysis["correction"], analysis["ci"], test, summary,
                    comparisons, _delta_m(exp, values, arms, metrics, confidence, notes, runs_state), notes,
                    alpha=analysis["alpha"], confidence=confidence, family=fam, family_size=len(comparisons),
                    deviations=deviations)
    if not comparisons.empty:
        comparisons["p_adj"] = stats.adjust_pvalues(comparisons["p"].to_numpy(), analysis["correction"])
        comparisons["marker"] = [marker(p, report.markers) for p in comparisons["p_adj"]]
        per_test = power.comparison_alpha(report.alpha, report.correction, report.family_size)
        comparisons["mdd"] = [power.minimum_detectable_difference(r.diff_sd, r.n, per_test, POWER)
                              if r.design == "paired" else np.nan for r in comparisons.itertuples()]
        report.comparisons = comparisons[comparisons["metric"].isin(metrics)].reset_index(drop=True)
        for r in report.comparisons.itertuples():
            for arm, seeds in r.dropped.items():
                report.dropped.setdefault(arm, {}).update(seeds)
    for r in report.delta_m.itertuples() if not report.delta_m.empty else ():
        for arm, seeds in r.dropped.items():
            report.dropped.setdefault(arm, {}).update(seeds)
    report.not_done = frame.drop_duplicates(["arm", "seed"])
    report.not_done = report.not_done[report.not_done["state"] != "done"][["arm", "seed", "state"]]
    if len(report.not_done):
        counts = report.not_done["state"].value_counts()
        named = [f"{r.arm}/seed-{r.seed}" for r in report.not_done.itertuples()]
        notes.append("not finished and left out: " + ", ".join(f"{n} {s}" for s, n in counts.items())
                     + f" ({', '.join(named[:10])}{', ...' if len(named) > 10 else ''})")
    dropped = rows[rows["value"].isna() & (rows["task"] + "/" + rows["metric"]).isin(metrics)]
    if len(dropped):
        notes.append("undefined (NaN) values left out: "
                     + ", ".join(f"{r.arm}/seed-{r.seed} {r.task}/{r.metric}" for r in dropped.itertuples()))
    return report


def _run_states(frame: pd.DataFrame, rows: pd.DataFrame, metrics: list[str]) -> dict:
    """(arm, seed) -> state of every run (failed, pending, ...), for saying why a seed is missing."""
    states = {(r.arm, int(r.seed)): str(r.state) for r in frame.drop_duplicates(["arm", "seed"]).itertuples()}
    for r in rows[rows["value"].isna()].itertuples():
        states.setdefault((r.arm, int(r.seed)), "done")
    return states


def _why_missing(states: dict, arm: str, seed: int, metric: str) -> str:
    state = states.get((arm, int(seed)))
    if state is None:
        return f"{arm} has no seed-{seed} run"
    if state == "done":
        return f"{arm}/seed-{seed} has no {metric} value"
    return f"{arm}/seed-{seed} {state}"


def pair_seeds(series: pd.Series, ref: pd.Series, arm: str, base: str, metric: str, states: dict):
    """The seeds both arms finished, and {arm: {seed: why dropped}} for the seeds only one has."""
    shared = sorted(set(series.index) & set(ref.index))
    dropped: dict = {}
    for who, other, own in ((arm, base, series), (base, arm, ref)):
        for s in own.index:
            if s not in shared:
                dropped.setdefault(who, {})[int(s)] = _why_missing(states, other, s, metric)
    return shared, dropped


def _seed_values(rows: pd.DataFrame, arm: str, metric: str) -> pd.Series:
    task, name = metric.split("/", 1)
    sel = rows[(rows["arm"] == arm) & (rows["task"] == task) & (rows["metric"] == name)]
    series = sel.set_index("seed")["value"].astype(float).sort_index()
    return series[np.isfinite(series.to_numpy())]


def _summaries(values, arms, metrics, ci, confidence, n_resamples, seed) -> pd.DataFrame:
    out = []
    for metric in metrics:
        for arm in arms:
            series = values[(arm, metric)]
            if series.empty:
                continue
            d = stats.describe(series.to_numpy(), confidence=confidence, n_resamples=n_resamples, seed=seed)
            low, high, method = ((d["t_low"], d["t_high"], "t-interval") if ci == "t"
                                 else (d["boot_low"], d["boot_high"], d["boot_method"]))
            if d["n"] >= 2 and d["sd"] == 0:
                method = "degenerate (all seeds equal)"
                low = high = d["mean"]
            out.append({"arm": arm, "metric": metric, "n": d["n"], "mean": d["mean"], "sd": d["sd"],
                        "low": low, "high": high, "ci_method": method, "t_low": d["t_low"], "t_high": d["t_high"],
                        "boot_low": d["boot_low"], "boot_high": d["boot_high"], "boot_method": d["boot_method"],
                        "seeds": list(series.index.astype(int)), "values": list(series.to_numpy())})
    return pd.DataFrame(out)


def _comparisons(exp, values, arms, metrics, baseline, test, confidence, n_resamples, seed, notes, records_loader,
                 split, states) -> pd.DataFrame:
    out = []
    for metric in metrics:
        task = metric.split("/", 1)[0]
        base = baseline
        if values[(baseline, metric)].empty:
            base = single_task_arm(exp, task, arms)
            if base is None or values[(base, metric)].empty:
                notes.append(f"{metric}: baseline {baseline} has no {task} results and no single-task arm "
                             f"trains {task} alone; no comparisons")
                continue
            notes.append(f"{metric}: baseline {baseline} does not train {task}; compared with {base} "
                         "(the arm that trains it alone)")
        ref = values[(base, metric)]
        others = [a for a in arms if a != base and not values[(a, metric)].empty]
        pairs = {a: pair_seeds(values[(a, metric)], ref, a, base, metric, states) for a in others}
        item_results = (_item_level(exp, metric, base, pairs, records_loader, split, test, confidence,
                                    n_resamples, seed, notes) if test in ("items", "these-models") else {})
        for arm in others:
            series = values[(arm, metric)]
            shared, dropped = pairs[arm]
            paired = len(shared) >= 2
            if paired:
                res = stats.compare_paired(series[shared].to_numpy(), ref[shared].to_numpy(), confidence=confidence,
                                           n_resamples=n_resamples, seed=seed)
                if dropped:
                    why = "; ".join(f"{who} seed {s} ({reason})" for who, seeds in dropped.items()
                                    for s, reason in seeds.items())
                    notes.append(f"{metric}: {arm} vs {base} paired on the seeds both finished "
                                 f"({_seeds(shared)}); dropped {why}")
            else:
                res = stats.compare_unpaired(series.to_numpy(), ref.to_numpy(), confidence=confidence,
                                             n_resamples=n_resamples, seed=seed)
                dropped = {}
                notes.append(f"{metric}: {arm} vs {base}: fewer than 2 shared seeds ({_seeds(series.index)} vs "
                             f"{_seeds(ref.index)}); unpaired Welch / Mann-Whitney tests")
            row = {"arm": arm, "metric": metric, "baseline": base, **res, "seeds": [int(s) for s in shared],
                   "dropped": dropped, "low": res["diff_t_low"], "high": res["diff_t_high"], "ci_method": "t-interval"}
            p, name = _p_value(res, test, paired)
            if arm in item_results:
                r = item_results[arm]
                p, name = r["p"], r["method"]
                row.update(diff=r["diff"], low=r["low"], high=r["high"], ci_method=r["ci_method"])
            row.update(p=p, test=name, lower_is_better=lower_is_better(metric))
            out.append(row)
    return pd.DataFrame(out)


def _seeds(seeds) -> str:
    return "{" + ", ".join(str(int(s)) for s in seeds) + "}"


def _p_value(res: dict, test: str, paired: bool) -> tuple[float, str]:
    if not paired:
        return (res["p_wilcoxon"], "Mann-Whitney U") if test == "wilcoxon" else (res["p_t"], "Welch t-test")
    if test == "wilcoxon":
        return res["p_wilcoxon"], f"Wilcoxon signed-rank ({res['wilcoxon_method']})"
    if test == "permutation":
        return res["p_permutation"], f"sign-flip permutation ({res['permutation_method']})"
    return res["p_t"], "paired t-test"


def _item_level(exp, metric, base, pairs, records_loader, split, test, confidence, n_resamples, seed,
                notes) -> dict:
    """Item-level comparisons of ``metric``: the two-level test over seeds × items (``items``) or
    the bootstrap over items of these trained models (``these-models``), each arm against the
    baseline on the seeds they share (arms with the same shared seeds are resampled together)."""
    from lexilab.metrics import corpus_metric_fn
    from lexilab.report.itemstats import item_statistics

    if records_loader is None:
        raise LexilabError(f"--test {test} needs per-example records (predictions/<split>/<task>.jsonl)")
    task, name = metric.split("/", 1)
    kind = exp.task_kinds.get(task)
    need = 2 if test == "items" else 1
    groups: dict[tuple, list[str]] = {}
    for arm, (shared, _dropped) in pairs.items():
        if len(shared) >= need:
            groups.setdefault(tuple(shared), []).append(arm)
    skipped = [a for a in pairs if not any(a in g for g in groups.values())]
    if skipped:
        notes.append(f"{metric}: the item-level test needs {need} seed{'s' * (need > 1)} shared with {base}; "
                     f"{', '.join(skipped)} use the seed-level test instead")
    if not groups:
        return {}
    recs = records_loader(task, [base, *[a for g in groups.values() for a in g]])
    out = {}
    for seeds, arms in groups.items():
        grid, n_items = _aligned_records(exp, recs, [base, *arms], seeds, base, split, task)
        labels = None
        if kind in ("multiclass", "multilabel"):
            from lexilab.metrics.classification import records_label_names
            labels = records_label_names(grid[0][0])
        first = item_statistics(kind, name, grid[0][0], labels)
        if first is not None:
            tensor = np.stack([np.stack([item_statistics(kind, name, rows, labels)[0] for rows in arm])
                               for arm in grid])
            res = (hierarchical.two_level_items if test == "items" else stats.paired_bootstrap_items)(
                tensor, first[1], confidence=confidence, n_resamples=n_resamples, seed=seed)
        else:
            fns = [[corpus_metric_fn(kind, name, rows, labels) for rows in arm] for arm in grid]
            res = (hierarchical.two_level_records if test == "items" else stats.paired_bootstrap_records)(
                fns, n_items, confidence=confidence, n_resamples=n_resamples, seed=seed)
        method = (f"{res['method']}, {len(seeds)} seeds × {n_items} items" if test == "items" else
                  f"item bootstrap of these trained models ({n_resamples} resamples, stratified by seed, "
                  f"{n_items} items)")
        ci_method = "two-level t-interval (seeds × items)" if test == "items" else             "percentile item bootstrap of these trained models"
        for i, arm in enumerate(arms, start=1):
            out[arm] = {"p": float(res["p"][i]), "diff": float(res["diff"][i]), "low": float(res["low"][i]),
                        "high": float(res["high"][i]), "method": method, "ci_method": ci_method}
    return out


def _aligned_records(exp, recs, arms, seeds, base, split, task):
    """records[arm][seed] of every run, ordered like the baseline's first seed (aligned by id)."""
    missing = [f"{a}/seed-{s}" for a in arms for s in seeds if (a, int(s)) not in recs]
    if missing:
        raise LexilabError(f"{exp.root}: no predictions/{split}/{task}.jsonl for {', '.join(missing)}")
    ids = [r["id"] for r in recs[(base, int(seeds[0]))]]
    order = {i: k for k, i in enumerate(ids)}
    grid = []
    for arm in arms:
        row = []
        for s in seeds:
            rows = recs[(arm, int(s))]
            if sorted(r["id"] for r in rows) != sorted(ids):
                raise LexilabError(f"{exp.root}/{arm}/seed-{s}: predictions/{split}/{task}.jsonl holds "
                                   f"other test items than {base}/seed-{seeds[0]}; cannot pair items")
            row.append(sorted(rows, key=lambda r: order[r["id"]]))
        grid.append(row)
    return grid, len(ids)


def _delta_m(exp, values, arms, metrics, confidence, notes, states) -> pd.DataFrame:
    """Δm of every multi-task arm whose tasks all have a single-task arm (Maninis et al. 2019),
    paired on the seeds every arm involved finished (at least 2), else unpaired."""
    out = []
    for arm in arms:
        tasks = exp.arm_tasks.get(arm, [])
        if len(tasks) < 2:
            continue
        keys = [m for m in metrics if m.split("/", 1)[0] in tasks and not values[(arm, m)].empty]
        singles = {m: single_task_arm(exp, m.split("/", 1)[0], arms) for m in keys}
        if not keys or any(s is None or values[(s, m)].empty for m, s in singles.items()):
            continue
        mtl = {m: values[(arm, m)] for m in keys}
        single = {m: values[(singles[m], m)] for m in keys}
        shared = sorted(set.intersection(*[set(v.index) for v in [*mtl.values(), *single.values()]]))
        paired = len(shared) >= 2
        dropped: dict = {}
        if paired:
            involved = [(arm, m, mtl[m]) for m in keys] + [(singles[m], m, single[m]) for m in keys]
            for who, _m, series in involved:
                for s in series.index:
                    if s not in shared:
                        lacking, metric = next((a, k) for a, k, v in involved if s not in v.index)
                        dropped.setdefault(who, {})[int(s)] = _why_missing(states, lacking, s, metric)
            mtl = {m: v[shared] for m, v in mtl.items()}
            single = {m: v[shared] for m, v in single.items()}
            if dropped:
                why = "; ".join(f"{who} seed {s} ({reason})" for who, seeds in dropped.items()
                                for s, reason in seeds.items())
                notes.append(f"Δm of {arm}: paired on the seeds every arm finished ({_seeds(shared)}); dropped {why}")
        row = {"arm": arm, "metrics": keys, "baselines": [singles[m] for m in keys], "paired": paired,
               "n_keys": len(keys), "delta_m": np.nan, "low": np.nan, "high": np.nan, "dropped": dropped,
               "n": len(shared) if paired else min(len(v) for v in mtl.values())}
        if any(v.mean() == 0 for v in single.values()):
            row["method"] = "undefined (a single-task mean is 0)"
        elif not paired and len({len(v) for v in mtl.values()}) > 1:
            row["method"] = "undefined (seed counts differ between metrics)"
        else:
            try:
                row.update(stats.delta_m_ci({m: v.to_numpy() for m, v in mtl.items()},
                                            {m: v.to_numpy() for m, v in single.items()},
                                            {m: lower_is_better(m) for m in keys}, paired=paired,
                                            confidence=confidence, groups=singles))
            except ValueError as err:  # a single-task arm's metrics have different seed counts
                row["method"] = f"undefined ({err})"
        out.append(row)
    return pd.DataFrame(out)
