"""Sweep objectives: validation metrics, their directions, and their values in a run directory.

An objective is ``TASK/METRIC`` (a metric of the task's kind, on val), ``val_loss`` (mean over
tasks) or ``val_loss/TASK``; a leading ``val/`` is allowed. The direction comes from the
metric (losses and hamming loss are minimised, everything else maximised). The sweep tunes on
validation data only: an objective on another split is refused (test is evaluated once, by
the confirmation runs that ``sweep export`` writes).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lexilab.config import SPLITS
from lexilab.data.registry import did_you_mean
from lexilab.io import read_json, read_jsonl


@dataclass(frozen=True)
class Objective:
    name: str  # as written, without a val/ prefix
    task: str | None  # None: val_loss over every task
    metric: str  # "val_loss" or a metric of the task's kind

    @property
    def direction(self) -> str:
        from lexilab.metrics import metric_mode

        if self.metric == "val_loss":
            return "minimize"
        return "minimize" if metric_mode(self.metric) == "min" else "maximize"

    @property
    def is_loss(self) -> bool:
        return self.metric == "val_loss"


def parse_objective(text: str) -> tuple[Objective | None, str | None]:
    """(objective, None) or (None, why it is refused) — the task is checked later."""
    parts = text.split("/")
    if parts[0] in SPLITS:
        if parts[0] != "val":
            return None, (f"{text!r} is on the {parts[0]} split; a sweep tunes on val only (test is evaluated once, "
                          "by the confirmation runs of `sweep export`)")
        parts = parts[1:]
    if parts == ["val_loss"]:
        return Objective("val_loss", None, "val_loss"), None
    if len(parts) == 2 and parts[0] == "val_loss":
        return Objective(f"val_loss/{parts[1]}", parts[1], "val_loss"), None
    if len(parts) == 2 and all(parts):
        return Objective("/".join(parts), parts[0], parts[1]), None
    return None, f"expected TASK/METRIC, val_loss or val_loss/TASK, found {text!r}"


def read_objectives(value, report, where: str = "search.objectives") -> list[Objective]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(v, str) for v in items):
        report.add(where, f"expected one or more validation metrics (emotion/f1_macro, val_loss, ...), found {value!r}")
        return []
    out = []
    for index, text in enumerate(items):
        at = where if isinstance(value, str) else f"{where}.{index}"
        objective, problem = parse_objective(text)
        if problem:
            report.add(at, problem)
        elif objective in out:
            report.add(at, f"{text!r} is listed twice")
        else:
            out.append(objective)
    return out


def check_against(objectives: list[Objective], config: dict) -> list[tuple[int, str]]:
    """(objective index, problem) for objectives a resolved run config cannot produce."""
    from lexilab.metrics import METRICS, is_known_metric

    tasks = config.get("tasks", {})
    problems = []
    for index, objective in enumerate(objectives):
        if objective.task is None:
            continue
        if objective.task not in tasks:
            problems.append((index, f"{objective.name!r}: no task {objective.task!r} in the arm"
                             f"{did_you_mean(objective.task, tasks)}; tasks: {', '.join(tasks)}"))
        elif not objective.is_loss and not is_known_metric(tasks[objective.task]["kind"], objective.metric):
            kind = tasks[objective.task]["kind"]
            known = METRICS.get(kind, ())
            problems.append((index, f"{objective.metric!r} is not a {kind} metric"
                             f"{did_you_mean(objective.metric, known)}; known: {', '.join(known)}"))
    return problems


def run_value(objective: Objective, run_dir: Path) -> float:
    """The objective's final value in a finished run: its val metrics (metrics.json), or the
    validation loss of the selected checkpoint (history.jsonl at training_summary's step)."""
    run_dir = Path(run_dir)
    if not objective.is_loss:
        return float(read_json(run_dir / "metrics.json")["val"][objective.task][objective.metric])
    selected = read_json(run_dir / "training_summary.json")["selected_step"]
    records = [r for r in read_jsonl(run_dir / "history.jsonl") if r.get("split") == "val"]
    chosen = [r for r in records if r.get("step") == selected] or records[-1:]
    if not chosen:
        raise ValueError(f"{run_dir / 'history.jsonl'}: no validation record")
    key = "val_loss" if objective.task is None else f"val_loss/{objective.task}"
    return float(chosen[-1][key])


def intermediate_value(objective: Objective, record: dict, trainer) -> float:
    """The objective at one evaluation during training (what the pruner sees)."""
    if objective.is_loss:
        return float(record["val_loss" if objective.task is None else f"val_loss/{objective.task}"])
    key = f"val/{objective.task}/{objective.metric}"
    if key in record:  # computed already (early stopping on task_metrics)
        return float(record[key])
    from lexilab.train.evaluation import evaluate_split

    metrics, _ = evaluate_split(trainer, "val", only=[objective.task])
    return float(metrics[objective.task][objective.metric])

