"""From a tidy results frame to the numbers of a report: per-arm summaries with CIs, comparisons
against a baseline with multiple-comparison-adjusted p-values, and Δm for multi-task arms.

Rules (stated in every output that uses them):
- Interval per arm: the t-interval across seeds by default (``ci="t"``) — with 3–5 seeds every
  bootstrap interval under-covers badly (README, "Statistics"); ``ci="bootstrap"`` shows the
  BCa/percentile interval of :func:`lexilab.stats.bootstrap_ci` instead.
- Two arms are compared paired when their finished seed sets are identical, otherwise unpaired
  (Welch / Mann-Whitney) and the output says so.
- The family for the p-value correction is every (arm, metric) comparison of the report.
- A metric whose task the baseline arm does not train is compared with the arm that trains
  that task alone, when there is exactly one (MTL vs single-task designs); otherwise not at all.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lexilab import stats
from lexilab.errors import LexilabError
from lexilab.metrics import DEFAULT_METRIC, metric_mode
from lexilab.metrics.rouge import split_metric
from lexilab.results import Experiment

TESTS = {"t": "t-test", "wilcoxon": "Wilcoxon signed-rank", "permutation": "sign-flip permutation test",
         "items": "paired item bootstrap"}
CI_METHODS = ("t", "bootstrap")
MARKERS = ((0.001, "***"), (0.01, "**"), (0.05, "*"))
UNPAIRED_MARK = "†"


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

    @property
    def n_seeds(self) -> list[int]:
        return sorted(set(self.summary["n"].astype(int)))


def lower_is_better(metric: str) -> bool:
    name = split_metric(metric.split("/", 1)[-1])[0]
    return metric_mode(name) == "min" or "loss" in name


def marker(p: float) -> str:
    """Significance marker of an adjusted p-value: *** < 0.001, ** < 0.01, * < 0.05."""
    if p is None or not np.isfinite(p):
        return ""
    return next((m for level, m in MARKERS if p < level), "")


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
                 baseline: str | None = None, correction: str = "holm", ci: str = "t", test: str = "t",
                 split: str = "test", n_resamples: int = stats.N_RESAMPLES, seed: int = 0,
                 records_loader=None) -> Report:
    """Summaries, comparisons and Δm for one split of an experiment's tidy results.

    ``records_loader(task, arms) -> {(arm, seed): records}`` is needed for ``test="items"``."""
    if correction not in stats.CORRECTIONS:
        raise LexilabError(f"--correction: {correction!r} unknown; choose {', '.join(stats.CORRECTIONS)}")
    if ci not in CI_METHODS:
        raise LexilabError(f"--ci: {ci!r} unknown; choose {', '.join(CI_METHODS)}")
    if test not in TESTS:
        raise LexilabError(f"--test: {test!r} unknown; choose {', '.join(TESTS)}")
    done = frame[frame["state"] == "done"]
    if done.empty:
        states = frame.drop_duplicates(["arm", "seed"])["state"].value_counts()
        summary = ", ".join(f"{n} {s}" for s, n in states.items()) or "no runs"
        raise LexilabError(f"{exp.root}: no finished runs ({summary}); see `python -m lexilab status {exp.name}`")
    if split not in set(done["split"]):
        raise LexilabError(f"{exp.root}: no {split!r} metrics; splits: {', '.join(sorted(set(done['split'])))}")
    metrics = choose_metrics(exp, frame, split, metrics)
    arms = [a for a in exp.arms if a in set(done["arm"])]
    baseline = baseline or exp.report_defaults.get("baseline") or arms[0]
    if baseline not in arms:
        raise LexilabError(f"--baseline: arm {baseline!r} has no finished runs in {exp.name}; arms: {', '.join(arms)}")
    rows = done[done["split"] == split]
    values = {(a, m): _seed_values(rows, a, m) for a in arms for m in metrics}
    summary = _summaries(values, arms, metrics, ci, n_resamples, seed)
    notes: list[str] = []
    comparisons = _comparisons(exp, values, arms, metrics, baseline, test, n_resamples, seed, notes,
                               records_loader, split)
    if not comparisons.empty:
        comparisons["p_adj"] = stats.adjust_pvalues(comparisons["p"].to_numpy(), correction)
        comparisons["marker"] = [marker(p) for p in comparisons["p_adj"]]
    report = Report(exp, split, metrics, arms, baseline, correction, ci, test, summary, comparisons,
                    _delta_m(exp, values, arms, metrics, n_resamples, seed), notes)
    not_done = frame.drop_duplicates(["arm", "seed"])
    report.not_done = not_done[not_done["state"] != "done"][["arm", "seed", "state"]]
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


def _seed_values(rows: pd.DataFrame, arm: str, metric: str) -> pd.Series:
    task, name = metric.split("/", 1)
    sel = rows[(rows["arm"] == arm) & (rows["task"] == task) & (rows["metric"] == name)]
    series = sel.set_index("seed")["value"].astype(float).sort_index()
    return series[np.isfinite(series.to_numpy())]


def _summaries(values, arms, metrics, ci, n_resamples, seed) -> pd.DataFrame:
    out = []
    for metric in metrics:
        for arm in arms:
            series = values[(arm, metric)]
            if series.empty:
                continue
            d = stats.describe(series.to_numpy(), n_resamples=n_resamples, seed=seed)
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


def _comparisons(exp, values, arms, metrics, baseline, test, n_resamples, seed, notes, records_loader,
                 split) -> pd.DataFrame:
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
        item_results = _item_level(exp, metric, base, others, values, records_loader, split, n_resamples,
                                   seed, notes) if test == "items" else {}
        for arm in others:
            series = values[(arm, metric)]
            paired = list(series.index) == list(ref.index)
            if paired:
                res = stats.compare_paired(series.to_numpy(), ref.to_numpy(), n_resamples=n_resamples, seed=seed)
            else:
                res = stats.compare_unpaired(series.to_numpy(), ref.to_numpy(), n_resamples=n_resamples, seed=seed)
                notes.append(f"{metric}: {arm} vs {base}: different seed sets ({_seeds(series)} vs "
                             f"{_seeds(ref)}); unpaired Welch / Mann-Whitney tests")
            row = {"arm": arm, "metric": metric, "baseline": base, **res,
                   "low": res["diff_t_low"], "high": res["diff_t_high"], "ci_method": "t-interval"}
            p, name = _p_value(res, test, paired)
            if test == "items" and arm in item_results:
                r = item_results[arm]
                p, name = r["p"], r["method"]
                row.update(diff=r["diff"], low=r["low"], high=r["high"], ci_method="percentile item bootstrap")
            row.update(p=p, test=name, lower_is_better=lower_is_better(metric))
            out.append(row)
    return pd.DataFrame(out)


def _seeds(series: pd.Series) -> str:
    return "{" + ", ".join(str(int(s)) for s in series.index) + "}"


def _p_value(res: dict, test: str, paired: bool) -> tuple[float, str]:
    if not paired:
        return (res["p_wilcoxon"], "Mann-Whitney U") if test == "wilcoxon" else (res["p_t"], "Welch t-test")
    if test == "wilcoxon":
        return res["p_wilcoxon"], f"Wilcoxon signed-rank ({res['wilcoxon_method']})"
    if test == "permutation":
        return res["p_permutation"], f"sign-flip permutation ({res['permutation_method']})"
    return res["p_t"], "paired t-test"


def _item_level(exp, metric, base, others, values, records_loader, split, n_resamples, seed, notes) -> dict:
    """Paired item bootstrap of ``metric`` for every arm sharing the baseline's seeds."""
    from lexilab.metrics import corpus_metric_fn
    from lexilab.report.itemstats import item_statistics

    if records_loader is None:
        raise LexilabError("--test items needs per-example records (predictions/<split>/<task>.jsonl)")
    task, name = metric.split("/", 1)
    kind = exp.task_kinds.get(task)
    seeds = list(values[(base, metric)].index)
    arms = [base] + [a for a in others if list(values[(a, metric)].index) == seeds]
    skipped = [a for a in others if a not in arms]
    if skipped:
        notes.append(f"{metric}: item bootstrap needs the baseline's seeds; {', '.join(skipped)} use the "
                     "seed-level Welch test instead")
    recs = records_loader(task, arms)
    missing = [f"{a}/seed-{s}" for a in arms for s in seeds if (a, int(s)) not in recs]
    if missing:
        raise LexilabError(f"{exp.root}: no predictions/{split}/{task}.jsonl for {', '.join(missing)}")
    ids = [r["id"] for r in recs[(base, int(seeds[0]))]]
    order = {i: k for k, i in enumerate(ids)}
    aligned = {}
    for key, rows in recs.items():
        if sorted(r["id"] for r in rows) != sorted(ids):
            raise LexilabError(f"{exp.root}/{key[0]}/seed-{key[1]}: predictions/{split}/{task}.jsonl holds "
                               f"other test items than {base}/seed-{seeds[0]}; cannot pair items")
        aligned[key] = sorted(rows, key=lambda r: order[r["id"]])
    grid = [[aligned[(a, int(s))] for s in seeds] for a in arms]
    labels = None
    if kind in ("multiclass", "multilabel"):
        from lexilab.metrics.classification import records_label_names
        labels = records_label_names(grid[0][0])
    first = item_statistics(kind, name, grid[0][0], labels)
    if first is not None:
        finalize = first[1]
        tensor = np.stack([np.stack([item_statistics(kind, name, rows, labels)[0] for rows in arm]) for arm in grid])
        res = stats.paired_bootstrap_items(tensor, finalize, n_resamples=n_resamples, seed=seed)
    else:
        fns = [[corpus_metric_fn(kind, name, rows, labels) for rows in arm] for arm in grid]
        res = stats.paired_bootstrap_records(fns, len(ids), n_resamples=n_resamples, seed=seed)
    return {arm: {"p": float(res["p"][i]), "diff": float(res["diff"][i]), "low": float(res["low"][i]),
                  "high": float(res["high"][i]), "method": f"{res['method']}, {len(ids)} items"}
            for i, arm in enumerate(arms) if i > 0}


def _delta_m(exp, values, arms, metrics, n_resamples, seed) -> pd.DataFrame:
    """Δm of every multi-task arm whose tasks all have a single-task arm (Maninis et al. 2019)."""
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
        paired = all(list(mtl[m].index) == list(single[m].index) for m in keys) and \
            len({tuple(v.index) for v in mtl.values()}) == 1
        row = {"arm": arm, "metrics": keys, "baselines": [singles[m] for m in keys], "paired": paired,
               "n_keys": len(keys), "delta_m": np.nan, "low": np.nan, "high": np.nan}
        if any(v.mean() == 0 for v in single.values()):
            row["method"] = "undefined (a single-task mean is 0)"
        elif not paired and (len({len(v) for v in mtl.values()}) > 1 or len({len(v) for v in single.values()}) > 1):
            row["method"] = "undefined (seed counts differ between metrics)"
        else:
            row.update(stats.delta_m_ci({m: v.to_numpy() for m, v in mtl.items()},
                                        {m: v.to_numpy() for m, v in single.items()},
                                        {m: lower_is_better(m) for m in keys}, paired=paired,
                                        n_resamples=n_resamples, seed=seed))
        out.append(row)
    return pd.DataFrame(out)
