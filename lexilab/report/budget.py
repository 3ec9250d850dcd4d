"""The compute budget each task received in each arm, and warnings when a comparison mixes a
method with a budget difference.

An MTL arm and a single-task arm with the same ``epochs`` rarely give a task the same number of
updates: with ``steps_per_epoch: largest`` a small task is cycled as often as the largest one
in the MTL arm, but alone it gets one pass. The difference between the arms is then partly a
difference in training budget. The trainer logs, on every history record, the examples of
each task seen so far (``examples_seen/<task>``) and the optimizer updates its gradient took
part in (``updates/<task>``); the last training record of a run is its budget.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

TOLERANCE = 0.10  # a relative budget difference above this is flagged
WARNING_PREFIX = "compute budget differs"  # the notes this module adds (the .tex caption repeats them)


def run_budgets(history: pd.DataFrame) -> pd.DataFrame:
    """One row per (arm, seed, task): ``examples`` and ``updates`` at the end of training.

    History written before the trainer logged budgets has no ``updates/<task>``: updates are
    then the training records that carry ``loss/<task>`` (exact when ``log_every`` is 1) and
    examples are unknown (NaN); ``exact`` says which."""
    if history.empty or "step" not in history:
        return pd.DataFrame(columns=["arm", "seed", "task", "examples", "updates", "exact"])
    train = history[history["split"].isna()] if "split" in history else history
    tasks = sorted(c.split("/", 1)[1] for c in history.columns if c.startswith("loss/"))
    rows = []
    for (arm, seed), run in train.groupby(["arm", "seed"], sort=False):
        last = run.sort_values("step").iloc[-1]
        for task in tasks:
            column = f"updates/{task}"
            if column in run and pd.notna(last.get(column)):
                rows.append({"arm": arm, "seed": int(seed), "task": task,
                             "examples": float(last[f"examples_seen/{task}"]), "updates": float(last[column]),
                             "exact": True})
            elif run[f"loss/{task}"].notna().any():
                rows.append({"arm": arm, "seed": int(seed), "task": task, "examples": np.nan,
                             "updates": float(run[f"loss/{task}"].notna().sum()), "exact": False})
    return pd.DataFrame(rows, columns=["arm", "seed", "task", "examples", "updates", "exact"])


def arm_budgets(history: pd.DataFrame, arms: list[str] | None = None) -> pd.DataFrame:
    """Mean (and min, max) over seeds of each task's examples and updates, per arm (arm order)."""
    per_run = run_budgets(history)
    if per_run.empty:
        return pd.DataFrame(columns=["arm", "task", "seeds", "examples", "updates", "updates_min", "updates_max",
                                     "exact"])
    out = per_run.groupby(["arm", "task"], sort=False).agg(
        seeds=("seed", "nunique"), examples=("examples", "mean"), updates=("updates", "mean"),
        updates_min=("updates", "min"), updates_max=("updates", "max"), exact=("exact", "all")).reset_index()
    if arms is not None:
        rank = {a: i for i, a in enumerate(arms)}
        out = out.assign(_r=out["arm"].map(lambda a: rank.get(a, len(rank)))).sort_values(["_r", "task"], kind="stable")
        out = out.drop(columns="_r").reset_index(drop=True)
    return out


def relative_difference(value: float, reference: float) -> float:
    return (value - reference) / reference if reference else (math.inf if value else 0.0)


def budget_warnings(budgets: pd.DataFrame, comparisons: pd.DataFrame) -> list[str]:
    """One note per compared (arm, baseline, task) whose updates or examples differ by more
    than :data:`TOLERANCE` between the two arms."""
    if budgets.empty or comparisons is None or comparisons.empty:
        return []
    table = {(r.arm, r.task): r for r in budgets.itertuples()}
    notes, seen = [], set()
    for comp in comparisons.itertuples():
        task = comp.metric.split("/", 1)[0]
        key = (comp.arm, comp.baseline, task)
        if key in seen or (comp.arm, task) not in table or (comp.baseline, task) not in table:
            continue
        seen.add(key)
        a, b = table[(comp.arm, task)], table[(comp.baseline, task)]
        diffs = {"updates": relative_difference(a.updates, b.updates)}
        if math.isfinite(a.examples) and math.isfinite(b.examples):
            diffs["examples"] = relative_difference(a.examples, b.examples)
        worst = max(diffs.values(), key=abs)
        if abs(worst) > TOLERANCE:
            notes.append(f"{WARNING_PREFIX}: {task} gets {budget_text(a)} in {comp.arm} but {budget_text(b)} in "
                         f"{comp.baseline} ({worst:+.0%}); the Δ of {task} mixes the method with the budget "
                         "(the spec's `budget: {match: ARM}` equalises it)")
    return notes


def budget_text(row) -> str:
    examples = f"{row.examples:,.0f} examples, " if math.isfinite(row.examples) else ""
    return f"{examples}{row.updates:,.0f} updates"


def budget_lines(budgets: pd.DataFrame, arms: list[str]) -> list[str]:
    """The terminal block: per arm and task, examples seen / optimizer updates (mean over seeds)."""
    if budgets.empty:
        return []
    from lexilab.report.terminal import table

    tasks = list(dict.fromkeys(budgets["task"]))
    cells = {(r.arm, r.task): r for r in budgets.itertuples()}
    rows = []
    for arm in [a for a in arms if any((a, t) in cells for t in tasks)]:
        row = [arm]
        for task in tasks:
            r = cells.get((arm, task))
            if r is None:
                row.append("—")
                continue
            spread = "" if r.updates_min == r.updates_max else f" ({r.updates_min:.0f}–{r.updates_max:.0f})"
            examples = f"{r.examples:,.0f}" if math.isfinite(r.examples) else "?"
            row.append(f"{examples} / {r.updates:,.0f}{spread}")
        rows.append(row)
    return ["compute budget per task (mean over seeds, from history.jsonl): examples seen / optimizer updates",
            table(["arm", *tasks], rows)]
