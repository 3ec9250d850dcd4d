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
    arms: list[str]                 # in spec order when a spec or grid is known, else sorted
    factors: dict[str, list[str]]   # factor -> levels (spec order)
    levels: dict[str, dict[str, str]] = field(default_factory=dict)  # arm -> factor -> level
    spec: object | None = None      # lexilab.spec.Spec when one was passed in
    task_kinds: dict[str, str] = field(default_factory=dict)  # task -> seq2seq|multiclass|multilabel
    arm_tasks: dict[str, list[str]] = field(default_factory=dict)  # arm -> its tasks
    report_defaults: dict = field(default_factory=dict)  # the spec's `report:` (metrics, baseline)
    expected_seeds: list[int] | None = None  # seeds the runs were planned with (None: unknown)
    spec_path: Path | None = None   # the spec file given or recorded by the runs (may not load here)

    def factor_column(self, factor: str) -> str:
        """A factor's column name in the tables (prefixed when it clashes with a fixed column)."""
        return f"factor:{factor}" if factor in RESERVED else factor


def results_root(results: str | os.PathLike | None = None) -> Path:
    """``results``, else $LEXILAB_RESULTS, else ./results (the rule of the run command)."""
    return Path(results or os.environ.get("LEXILAB_RESULTS") or "results")


def spec_name(path: str | os.PathLike) -> str:
    """The experiment name of a spec file from its raw YAML (``name``, else the file stem),
    without validating it: reading results must not need the spec's data."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise LexilabError(f"{path}: cannot read the spec ({err.strerror})") from None
    except yaml.YAMLError as err:
        raise LexilabError(f"{path}: YAML syntax error: {str(err).splitlines()[0]}") from None
    name = raw.get("name") if isinstance(raw, dict) else None
    return name if isinstance(name, str) and name else path.stem


def experiment(experiment_or_spec, results: str | os.PathLike | None = None) -> Experiment:
    """Resolve a spec path, a spec object or an experiment name to an :class:`Experiment`.

    The arms, their levels and the expected arm × seed grid come from what each run directory
    recorded when it was written (config.yaml ``meta.grid``), so a spec path is read only for
    its name: the report works from any directory, with or without the spec's data. A
    :class:`~lexilab.spec.Spec` object adds its arms and order; runs written before the grid
    was recorded fall back to the recorded spec when it still validates here."""
    from lexilab.spec import Spec

    root = results_root(results)
    spec, spec_path = None, None
    if isinstance(experiment_or_spec, Spec):
        spec, spec_path = experiment_or_spec, Path(experiment_or_spec.path)
    else:
        text = os.fspath(experiment_or_spec)
        if text.endswith((".yaml", ".yml")) or Path(text).is_file():
            spec_path = Path(text)
    name = spec.name if spec is not None else spec_name(spec_path) if spec_path else os.fspath(experiment_or_spec)
    exp_dir = root / name
    if not exp_dir.is_dir():
        known = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) if root.is_dir() else []
        hint = f"; experiments there: {', '.join(known)}" if known else f"; nothing under {root} (run it first)"
        raise LexilabError(f"{exp_dir}: no results for experiment {name!r}{hint}")
    found = scan_experiment(exp_dir)
    metas = {key: _read_config(info.path) for key, info in found.items()}
    exp = Experiment(name=name, root=exp_dir, arms=[], factors={}, spec=spec, spec_path=spec_path)
    newest = _newest_first(metas, found)
    grids = [meta["grid"] for meta, _config in newest if isinstance(meta.get("grid"), dict)]
    if spec is None and not grids:  # runs written before the grid was recorded
        spec, raw = _spec_from_runs(exp_dir, metas, spec_path)
        exp.spec = spec
        if raw:  # the spec no longer validates here (e.g. another data root): keep its order and report
            factors = raw.get("factors") if isinstance(raw.get("factors"), dict) else {}
            exp.factors = {str(f): [str(level) for level in levels] for f, levels in factors.items()
                           if isinstance(levels, dict)}
            exp.report_defaults = raw.get("report") if isinstance(raw.get("report"), dict) else {}
    if exp.spec is not None:
        exp.arms = list(exp.spec.arm_names)
        exp.factors = {f: list(levels) for f, levels in exp.spec.factors.items()}
        exp.levels = {arm.name: dict(arm.levels) for arm in exp.spec.arms}
        exp.report_defaults = dict(exp.spec.report or {})
        exp.expected_seeds = list(exp.spec.seeds) if not found else None
        for arm in exp.spec.arms:
            _note_tasks(exp, arm.name, arm.config.get("tasks") or {})
    for grid in grids:
        _add_grid(exp, grid)
    recorded = next((meta for meta, _config in newest if isinstance(meta.get("report"), dict)), None)
    if recorded is not None and spec is None:  # the pre-registered analysis, as it was when the runs were planned
        exp.report_defaults = dict(recorded["report"])
    if exp.spec_path is None:
        exp.spec_path = next((Path(m["spec"]) for m, _c in newest if m.get("spec")), None)
    for arm, seed in sorted(found):
        meta, config = metas[(arm, seed)]
        exp.levels.setdefault(arm, dict(meta.get("levels") or {}))
        _add_levels(exp, exp.levels[arm])
        if arm not in exp.arm_tasks:
            _note_tasks(exp, arm, config.get("tasks") or {})
        if arm not in exp.arms:
            exp.arms.append(arm)
    if exp.spec is None and not grids:  # spec order of levels, then name
        rank = {f: {level: i for i, level in enumerate(levels)} for f, levels in exp.factors.items()}
        exp.arms.sort(key=lambda a: ([rank[f].get(exp.levels.get(a, {}).get(f), len(rank[f])) for f in rank], a))
    return exp


def _newest_first(metas: dict, found: dict) -> list[tuple[dict, dict]]:
    """(meta, config) of every run, the most recently written config.yaml first."""
    def written(key):
        try:
            return (found[key].path / "config.yaml").stat().st_mtime_ns
        except OSError:
            return 0
    return [metas[key] for key in sorted(metas, key=lambda k: (-written(k), k))]


def _add_grid(exp: Experiment, grid: dict) -> None:
    """Merge one run's recorded grid (``{"arms": {arm: levels}, "seeds": [...]}``)."""
    arms = grid.get("arms") if isinstance(grid.get("arms"), dict) else {}
    for arm, levels in arms.items():
        if arm not in exp.arms:
            exp.arms.append(arm)
        exp.levels.setdefault(arm, {str(f): str(v) for f, v in (levels or {}).items()})
        _add_levels(exp, exp.levels[arm])
    seeds = [int(s) for s in grid.get("seeds") or [] if isinstance(s, int)]
    exp.expected_seeds = sorted(set(exp.expected_seeds or []) | set(seeds))


def _add_levels(exp: Experiment, levels: dict) -> None:
    for factor, level in levels.items():
        exp.factors.setdefault(factor, [])
        if level not in exp.factors[factor]:
            exp.factors[factor].append(level)


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


def _spec_from_runs(exp_dir: Path, metas: dict, given: Path | None = None):
    """(spec, raw YAML) of the spec given or the one the runs were written from (config.yaml
    meta.spec): the validated spec when it still loads, else None and its raw mapping, else
    (None, {})."""
    from lexilab.spec import load_spec

    paths = [given] if given is not None else []
    paths += [(meta or {}).get("spec") for meta, _config in metas.values()]
    for path in paths:
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
    error, path. Runs that were planned but have no directory have state ``missing``: every
    arm of the recorded grid × the recorded seeds and every seed found in the experiment."""
    exp = experiment_or_spec if isinstance(experiment_or_spec, Experiment) else experiment(experiment_or_spec, results)
    found = scan_experiment(exp.root)
    rows = []
    keys = set(found)
    if exp.expected_seeds is not None or exp.spec is not None:
        seeds = sorted(set(exp.expected_seeds or []) | {seed for _arm, seed in found})
        keys |= {(arm, seed) for arm in exp.arms for seed in seeds}
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
