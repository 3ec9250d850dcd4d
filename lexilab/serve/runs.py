"""The run directories a server offers: checked before anything starts, named, described.

A served run is a finished run directory (status ``done``, ``tasks.json``, the selected weights
in ``checkpoints/best``). It is named ``<arm>/seed-<n>`` — or ``<experiment>/<arm>/seed-<n>``
for every run when two served runs share an arm and seed (the same arm from two studies).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lexilab.errors import LexilabError
from lexilab.io import read_json, read_jsonl

EXAMPLES_PER_TASK = 3  # example texts per task offered by the page, from the run's test split


@dataclass
class ServedRun:
    path: Path
    experiment: str
    arm: str
    seed: int | None
    config_hash: str | None
    name: str = ""
    info: dict[str, Any] = field(default_factory=dict)  # tasks.json: kinds, label names, generation


def check_run_dir(path: str | os.PathLike) -> ServedRun:
    """A finished run with weights, or one LexilabError line naming what is missing."""
    from lexilab.inference import TASKS_FILE
    from lexilab.runner import read_run_config, run_identity
    from lexilab.runs import STATUS_FILE, read_status
    from lexilab.train.evaluation import BEST_DIR, WEIGHTS_FILE

    run_dir = Path(path).resolve()
    if not run_dir.is_dir():
        raise LexilabError(f"{path}: no such run directory")
    state = read_status(run_dir).get("state", "pending")
    if state != "done":
        raise LexilabError(f"{run_dir / STATUS_FILE}: the run is {state}, not done (serve needs a finished run)")
    weights = run_dir / BEST_DIR / WEIGHTS_FILE
    if not weights.is_file():
        raise LexilabError(f"{weights}: missing (the run has no selected weights)")
    if not (run_dir / TASKS_FILE).is_file():
        raise LexilabError(f"{run_dir / TASKS_FILE}: missing (not a finished lexilab run)")
    config, meta = read_run_config(run_dir)
    identity = run_identity(run_dir, config, meta)
    seed = identity.get("seed")
    return ServedRun(run_dir, str(identity["experiment"]), str(identity["arm"]),
                     None if seed is None else int(seed), identity.get("config_hash"),
                     info=read_json(run_dir / TASKS_FILE))


def check_run_dirs(paths: list[str]) -> list[ServedRun]:
    """Every directory checked and named; the same directory twice is refused."""
    runs = [check_run_dir(p) for p in paths]
    seen: dict[Path, str] = {}
    for given, run in zip(paths, runs):
        if run.path in seen:
            raise LexilabError(f"{given}: given twice (also as {seen[run.path]})")
        seen[run.path] = given
    short = [f"{r.arm}/seed-{r.seed}" for r in runs]
    qualify = len(set(short)) < len(short)
    for run, name in zip(runs, short):
        run.name = f"{run.experiment}/{name}" if qualify else name
    names = [r.name for r in runs]
    if len(set(names)) < len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise LexilabError(f"{twice}: two run directories have this experiment, arm and seed; serve them separately")
    return runs


def describe(run: ServedRun, thresholds: dict[str, list[float]], device: str) -> dict[str, Any]:
    """What `GET /runs` says about a run: identity, tasks, thresholds, generation, test metrics."""
    metrics = read_json(run.path / "metrics.json") if (run.path / "metrics.json").exists() else {}
    tasks = {}
    for name, entry in run.info.items():
        task = {"kind": entry["kind"], "label_names": entry.get("label_names") or []}
        if entry["kind"] == "multilabel":
            task["thresholds"] = dict(zip(task["label_names"], thresholds[name]))
        if entry.get("generation"):
            task["generation"] = entry["generation"]
        tasks[name] = task
    return {"name": run.name, "experiment": run.experiment, "arm": run.arm, "seed": run.seed,
            "config_hash": run.config_hash, "path": str(run.path), "device": device, "tasks": tasks,
            "test_metrics": metrics.get("test", {})}


def example_texts(run: ServedRun, config: dict) -> list[dict[str, Any]]:
    """A few texts of each task's test split, with their reference, for the page's example list.

    Rows are taken in the order of the run's recorded test predictions (so they are texts this
    run was scored on); the texts themselves come from the dataset, which predictions omit. A
    dataset that cannot be read here (the run was copied without its data) yields no examples."""
    from lexilab.config import effective_data_root
    from lexilab.data import load_dataset

    examples = []
    for name, task_cfg in config["tasks"].items():
        try:
            rows = load_dataset(task_cfg["data"], effective_data_root(config)).splits["test"]
        except (LexilabError, OSError):
            continue
        by_id = {row["id"]: row for row in rows}
        recorded = run.path / "predictions" / "test" / f"{name}.jsonl"
        ids = [r["id"] for r in read_jsonl(recorded)] if recorded.exists() else list(by_id)
        for row_id in [i for i in ids if i in by_id][:EXAMPLES_PER_TASK]:
            row = by_id[row_id]
            reference = row.get("label", row.get("labels", row.get("target")))
            examples.append({"task": name, "id": row_id, "text": row["text"], "reference": reference})
    return examples
