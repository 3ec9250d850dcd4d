"""Read an experiment's results tree into pandas: runs, tidy metrics, per-example records,
training history and gradient diagnostics.

    results/<experiment>/<arm>/seed-<n>/{config.yaml, status.json, metrics.json, history.jsonl,
                                         gradcos.jsonl, metrics_details.json, predictions/...}

Nothing is dropped silently: :func:`runs` lists every run directory plus every run the spec
expects that has no directory (``state == "missing"``), and :func:`load` keeps a row for every
run that has no metrics (``state`` says why, ``value`` is NaN). Analyses filter on
``state == "done"`` themselves.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
import yaml

from lexilab.errors import LexilabError
from lexilab.io import read_jsonl
from lexilab.runs import METRICS_FILE, scan_experiment

RESERVED = ("experiment", "arm", "seed", "split", "task", "metric", "value", "run_id", "state", "error", "path")
MISSING = "missing"  # a run the spec expects that has no directory yet


@dataclass
class Experiment:
    """Where an experiment's runs live and what its arms are."""

    name: str
    root: Path                      # results/<name>
    arms: list[str]                 # in spec order when a spec is known, else sorted
    factors: dict[str, list[str]]   # factor -> levels (spec order)
    levels: dict[str, dict[str, str]] = field(default_factory=dict)  # arm -> factor -> level
    spec: object | None = None      # lexilab.spec.Spec when known
    task_kinds: dict[str, str] = field(default_factory=dict)  # task -> seq2seq|multiclass|multilabel
    arm_tasks: dict[str, list[str]] = field(default_factory=dict)  # arm -> its tasks
    report_defaults: dict = field(default_factory=dict)  # the spec's `report:` (metrics, baseline)

    def factor_column(self, factor: str) -> str:
        """A factor's column name in the tables (prefixed when it clashes with a fixed column)."""
        return f"factor:{factor}" if factor in RESERVED else factor


def results_root(results: str | os.PathLike | None = None) -> Path:
    """``results``, else $LEXILAB_RESULTS, else ./results (the rule of the run command)."""
    return Path(results or os.environ.get("LEXILAB_RESULTS") or "results")


def experiment(experiment_or_spec, results: str | os.PathLike | None = None) -> Experiment:
    """Resolve a spec path, a spec object or an experiment name to an :class:`Experiment`."""
    from lexilab.spec import Spec, load_spec

    root = results_root(results)
    spec = None
    if isinstance(experiment_or_spec, Spec):
        spec = experiment_or_spec
    else:
        text = os.fspath(experiment_or_spec)
        if text.endswith((".yaml", ".yml")) or Path(text).is_file():
            spec = load_spec(text)
    name = spec.name if spec is not None else os.fspath(experiment_or_spec)
    exp_dir = root / name
    if not exp_dir.is_dir():
        known = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) if root.is_dir() else []
        hint = f"; experiments there: {', '.join(known)}" if known else f"; nothing under {root} (run it first)"
        raise LexilabError(f"{exp_dir}: no results for experiment {name!r}{hint}")
    raw = {}
    if spec is None:
        spec, raw = _spec_from_runs(exp_dir)
    exp = Experiment(name=name, root=exp_dir, arms=[], factors={}, spec=spec)
    if spec is not None:
        exp.arms = list(spec.arm_names)
        exp.factors = {f: list(levels) for f, levels in spec.factors.items()}
        exp.levels = {arm.name: dict(arm.levels) for arm in spec.arms}
        exp.report_defaults = dict(spec.report or {})
        for arm in spec.arms:
            _note_tasks(exp, arm.name, arm.config.get("tasks") or {})
    elif raw:  # the spec no longer validates here (e.g. another data root): keep its order and report
        factors = raw.get("factors") if isinstance(raw.get("factors"), dict) else {}
        exp.factors = {str(f): [str(level) for level in levels] for f, levels in factors.items()
                       if isinstance(levels, dict)}
        exp.report_defaults = raw.get("report") if isinstance(raw.get("report"), dict) else {}
    for (arm, _seed), info in sorted(scan_experiment(exp_dir).items()):
        if arm in exp.levels and arm in exp.arm_tasks:
            continue
        meta, config = _read_config(info.path)
        exp.levels.setdefault(arm, dict(meta.get("levels") or {}))
        for factor, level in exp.levels[arm].items():
            exp.factors.setdefault(factor, [])
            if level not in exp.factors[factor]:
                exp.factors[factor].append(level)
        _note_tasks(exp, arm, config.get("tasks") or {})
        if arm not in exp.arms:
            exp.arms.append(arm)
    if spec is None:  # spec order of levels, then name
        rank = {f: {level: i for i, level in enumerate(levels)} for f, levels in exp.factors.items()}
        exp.arms.sort(key=lambda a: ([rank[f].get(exp.levels.get(a, {}).get(f), len(rank[f])) for f in rank], a))
    return exp


def _note_tasks(exp: Experiment, arm: str, tasks: dict) -> None:
    exp.arm_tasks.setdefault(arm, list(tasks))
    for task, block in tasks.items():
        if isinstance(block, dict) and "kind" in block:
            exp.task_kinds.setdefault(task, block["kind"])


def _read_config(run_dir: Path) -> tuple[dict, dict]:
    path = run_dir / "config.yaml"
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return {}, {}
    return document.get("meta") or {}, {k: v for k, v in document.items() if k not in ("meta", "config_hash")}


def _spec_from_runs(exp_dir: Path):
    """(spec, raw YAML) of the spec the runs were written from (config.yaml meta.spec): the
    validated spec when it still loads, else None and its raw mapping, else (None, {})."""
    from lexilab.spec import load_spec

    for info in scan_experiment(exp_dir).values():
        path = (_read_config(info.path)[0] or {}).get("spec")
        if not path or not Path(path).is_file():
            continue
        try:
            spec = load_spec(path)
            return (spec, {}) if spec.name == exp_dir.name else (None, {})
        except LexilabError:
            try:
                raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
            except (OSError, yaml.YAMLError):
                return None, {}
            ok = isinstance(raw, dict) and raw.get("name", Path(path).stem) == exp_dir.name
            return None, raw if ok else {}
    return None, {}


def _run_columns(exp: Experiment, arm: str) -> dict:
    levels = exp.levels.get(arm, {})
    return {exp.factor_column(f): levels.get(f) for f in exp.factors}


def runs(experiment_or_spec, results: str | os.PathLike | None = None) -> pd.DataFrame:
    """One row per run: experiment, arm, factor columns, seed, state, run_id (config hash),
    error, path. Runs the spec expects without a directory have state ``missing``: the arms
    of the spec × the seeds found anywhere in the experiment (the spec's seeds if none)."""
    exp = experiment_or_spec if isinstance(experiment_or_spec, Experiment) else experiment(experiment_or_spec, results)
    found = scan_experiment(exp.root)
    seeds = sorted({seed for _arm, seed in found}) or (list(exp.spec.seeds) if exp.spec is not None else [])
    rows = []
    keys = set(found)
    if exp.spec is not None:
        keys |= {(arm, seed) for arm in exp.spec.arm_names for seed in seeds}
    order = {arm: i for i, arm in enumerate(exp.arms)}
    for arm, seed in sorted(keys, key=lambda k: (order.get(k[0], len(order)), k[0], k[1])):
        info = found.get((arm, seed))
        status = info.status if info else {}
        rows.append({"experiment": exp.name, "arm": arm, **_run_columns(exp, arm), "seed": seed,
                     "state": info.state if info else MISSING,
                     "run_id": (info.config_hash or status.get("config_hash")) if info else None,
                     "error": status.get("error"), "path": str(info.path) if info else None})
    columns = ["experiment", "arm", *[exp.factor_column(f) for f in exp.factors], "seed", "state", "run_id",
               "error", "path"]
    return pd.DataFrame(rows, columns=columns)


def load(experiment_or_spec, results: str | os.PathLike | None = None, *,
         splits: Iterable[str] | None = None) -> pd.DataFrame:
    """Tidy metrics: one row per (experiment, arm, factors..., seed, split, task, metric) with
    ``value``, ``run_id`` and ``state``. A run without metrics (pending, running, failed,
    missing, or done but without metrics.json) keeps one row with NaN split/task/metric/value
    and its state — filter ``state == "done"`` for analysis."""
    exp = experiment_or_spec if isinstance(experiment_or_spec, Experiment) else experiment(experiment_or_spec, results)
    table = runs(exp)
    wanted = set(splits) if splits is not None else None
    rows = []
    for run in table.itertuples(index=False):
        base = dict(zip(table.columns, run))
        metrics = _read_metrics(Path(run.path)) if run.path and run.state == "done" else None
        ident = {k: base[k] for k in table.columns if k not in ("error", "path", "state", "run_id")}
        if not metrics:
            state = run.state if run.state != "done" else "done (no metrics.json)"
            rows.append({**ident, "split": None, "task": None, "metric": None, "value": np.nan,
                         "run_id": run.run_id, "state": state})
            continue
        for split, tasks in metrics.items():
            if wanted is not None and split not in wanted or not isinstance(tasks, dict):
                continue
            for task, values in tasks.items():
                for metric, value in (values or {}).items():
                    if isinstance(value, (int, float)) and not isinstance(value, bool) or value is None:
                        rows.append({**ident, "split": split, "task": task, "metric": metric,
                                     "value": np.nan if value is None else float(value),
                                     "run_id": run.run_id, "state": "done"})
    columns = [c for c in table.columns if c not in ("error", "path", "state", "run_id")]
    return pd.DataFrame(rows, columns=[*columns, "split", "task", "metric", "value", "run_id", "state"])


def _read_metrics(run_dir: Path) -> dict | None:
    try:
        with open(run_dir / METRICS_FILE, encoding="utf-8") as handle:
            return json.load(handle)
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def done_runs(exp: Experiment) -> pd.DataFrame:
    table = runs(exp)
    return table[table["state"] == "done"]


def records(experiment_or_spec, results: str | os.PathLike | None = None, *, task: str,
            split: str = "test", arms: Iterable[str] | None = None) -> dict[tuple[str, int], list[dict]]:
    """Per-example records of finished runs: (arm, seed) → rows of
    predictions/<split>/<task>.jsonl (id, prediction, reference, per-example scores, domain)."""
    exp = experiment_or_spec if isinstance(experiment_or_spec, Experiment) else experiment(experiment_or_spec, results)
    wanted = set(arms) if arms is not None else None
    out = {}
    for run in done_runs(exp).itertuples(index=False):
        if wanted is not None and run.arm not in wanted:
            continue
        path = Path(run.path) / "predictions" / split / f"{task}.jsonl"
        if path.exists():
            out[(run.arm, int(run.seed))] = list(read_jsonl(path))
    return out


def load_records(experiment_or_spec, results: str | os.PathLike | None = None, *, task: str,
                 split: str = "test", arms: Iterable[str] | None = None) -> pd.DataFrame:
    """:func:`records` as one DataFrame (arm, factor columns, seed, then the record fields)."""
    exp = experiment_or_spec if isinstance(experiment_or_spec, Experiment) else experiment(experiment_or_spec, results)
    frames = []
    for (arm, seed), rows in records(exp, task=task, split=split, arms=arms).items():
        frame = pd.DataFrame(rows)
        for col, value in reversed([("arm", arm), *_run_columns(exp, arm).items(), ("seed", seed)]):
            frame.insert(0, col, value) if col not in frame else None
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _jsonl_frame(exp: Experiment, filename: str, arms: Iterable[str] | None, states=("done",)) -> pd.DataFrame:
    wanted = set(arms) if arms is not None else None
    frames = []
    table = runs(exp)
    for run in table[table["state"].isin(states)].itertuples(index=False):
        if wanted is not None and run.arm not in wanted:
            continue
        path = Path(run.path) / filename
        if path.exists():
            rows = list(read_jsonl(path))
            if rows:
                frame = pd.DataFrame(rows)
                frame.insert(0, "seed", int(run.seed))
                for col, value in reversed([("arm", run.arm), *_run_columns(exp, run.arm).items()]):
                    frame.insert(0, col, value)
                frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def load_history(experiment_or_spec, results: str | os.PathLike | None = None, *,
                 arms: Iterable[str] | None = None) -> pd.DataFrame:
    """history.jsonl of every finished run (training steps and validation evaluations)."""
    exp = experiment_or_spec if isinstance(experiment_or_spec, Experiment) else experiment(experiment_or_spec, results)
    return _jsonl_frame(exp, "history.jsonl", arms)


def load_gradcos(experiment_or_spec, results: str | os.PathLike | None = None, *,
                 arms: Iterable[str] | None = None) -> pd.DataFrame:
    """gradcos.jsonl of every finished run: step, task_a, task_b, group, cosine, norms, conflict."""
    exp = experiment_or_spec if isinstance(experiment_or_spec, Experiment) else experiment(experiment_or_spec, results)
    return _jsonl_frame(exp, "gradcos.jsonl", arms)


def load_details(experiment_or_spec, results: str | os.PathLike | None = None, *,
                 split: str = "test") -> dict[tuple[str, int], dict]:
    """metrics_details.json of finished runs: (arm, seed) → {task: details} for ``split``."""
    exp = experiment_or_spec if isinstance(experiment_or_spec, Experiment) else experiment(experiment_or_spec, results)
    out = {}
    for run in done_runs(exp).itertuples(index=False):
        path = Path(run.path) / "metrics_details.json"
        if path.exists():
            try:
                out[(run.arm, int(run.seed))] = (json.loads(path.read_text(encoding="utf-8")) or {}).get(split, {})
            except json.JSONDecodeError:
                continue
    return out
