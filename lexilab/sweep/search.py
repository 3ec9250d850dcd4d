"""The ``search:`` block of an experiment spec (a spec with ``search:`` is a sweep).

    search:
      params:                       # dotted run-config keys → Optuna distributions
        optim.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
        weighting.kind: {type: categorical, choices: [equal, gradnorm]}
        weighting.alpha: {type: float, low: 0.5, high: 3.0, when: {weighting.kind: gradnorm}}
      task_weights: {tasks: [a, b], space: simplex, low: 0.05}
      objectives: [emotion/f1_macro, summarization/rougeL]
      trials: 40
      seeds_per_trial: 1
      sampler: tpe                  # tpe | nsga2 | random | grid (all seeded)
      pruner: none                  # none | median | hyperband | wilcoxon
      storage: postgresql://user@host:5432/db   # default: a journal file under the results root

Validation runs over the whole space before anything is written: every corner of the space
(see :func:`lexilab.sweep.space.corners`) must give a valid run config, and every objective
must exist in each of them.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lexilab.data.registry import did_you_mean
from lexilab.sweep import methods, objectives, space, storage

SEARCH_KEYS = ("params", "task_weights", "objectives", "trials", "seeds_per_trial", "sampler", "pruner", "storage")


@dataclass
class Search:
    params: list[space.Param]
    task_weights: space.TaskWeights | None
    objectives: list[objectives.Objective]
    trials: int
    seeds_per_trial: int
    sampler: dict
    pruner: dict
    storage: storage.StorageSpec
    base: dict = field(repr=False, default_factory=dict)  # the raw base of the spec
    base_dir: Path = Path(".")

    @property
    def directions(self) -> list[str]:
        return [o.direction for o in self.objectives]

    def grid(self) -> dict[str, list] | None:
        return {p.key: p.grid() for p in self.params} if self.sampler["kind"] == "grid" else None

    def config_for(self, values: dict[str, Any], weights: dict[str, float] | None, seed: int = 0) -> tuple[dict, list]:
        """(resolved run config, problems) of one point of the space."""
        from lexilab.config import check_config
        from lexilab.spec import set_dotted

        raw = copy.deepcopy(self.base)
        raw["seed"] = seed
        for key, value in space.overrides_for(self.params, self.task_weights, values, weights).items():
            set_dotted(raw, key, value)
        return check_config(raw, self.base_dir)


def read_search(value: Any, data: dict, path: Path, report) -> Search | None:
    """Validate a ``search:`` block (problems go to the spec's report, one line each)."""
    if not isinstance(value, dict):
        report.add("search", f"expected a mapping with keys {', '.join(SEARCH_KEYS)}, found {value!r}")
        return None
    for key in value:
        if key not in SEARCH_KEYS:
            report.add(f"search.{key}", f"unknown key{did_you_mean(str(key), SEARCH_KEYS)}; allowed: {', '.join(SEARCH_KEYS)}")
    for key in ("factors", "arms", "exclude"):
        if key in data:
            report.add(key, "a sweep spec (with search:) has no factors: the search space replaces them")
    base = data.get("base") if isinstance(data.get("base"), dict) else None
    if base is None:
        return None  # reported by the spec loader
    params = space.read_params(value.get("params"), base, report)
    weights = space.read_task_weights(value.get("task_weights"), base, params, report)
    if not params and weights is None and "params" not in value and "task_weights" not in value:
        report.add("search", "give params and/or task_weights: the space to search")
    goals = objectives.read_objectives(value.get("objectives"), report)
    trials = _count(value.get("trials"), "search.trials", report, required=True)
    seeds = _count(value.get("seeds_per_trial", 1), "search.seeds_per_trial", report)
    sampler = methods.read_sampler(value.get("sampler"), report)
    pruner = methods.read_pruner(value.get("pruner"), report)
    store = storage.read_storage(value.get("storage"), report)
    if pruner and pruner["kind"] != "none" and len(goals) > 1:
        report.add("search.pruner", f"a pruner needs one objective (Optuna cannot prune several); "
                   f"objectives: {', '.join(o.name for o in goals)} — use pruner: none")
    if pruner and pruner["kind"] == "wilcoxon" and seeds is not None and seeds < 2:
        report.add("search.pruner", "wilcoxon compares a trial's seeds with the best trial's: set seeds_per_trial ≥ 2")
    if sampler and sampler["kind"] == "grid":
        for param in params:
            if param.grid() is None:
                report.add(f"search.params.{param.key}", "the grid sampler needs listed values: a categorical with "
                           "choices or a step")
        if weights is not None:
            report.add("search.task_weights", "the grid sampler takes listed values only; search "
                       "tasks.NAME.weight as categorical params with weighting.kind: fixed in base instead")
        grids = [p.grid() for p in params]
        if trials is not None and params and all(g is not None for g in grids) and not any(p.when for p in params):
            size = 1
            for grid in grids:
                size *= len(grid)
            if trials > size:
                report.add("search.trials", f"{trials} trials, but the grid has {size} points (each is tried once)")
    if report.out or trials is None or seeds is None or not goals or not sampler or not pruner or store is None:
        return None
    search = Search(params, weights, goals, trials, seeds, sampler, pruner, store, copy.deepcopy(base), path.parent)
    _check_corners(search, report)
    return search


def _count(value: Any, where: str, report, required: bool = False) -> int | None:
    if value is None and required:
        report.add(where, "expected the number of trials (a whole number ≥ 1)")
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        report.add(where, f"expected a whole number ≥ 1, found {value!r}")
        return None
    return value


def _check_corners(search: Search, report) -> None:
    """Every corner of the space must be a valid run config with every objective in it."""
    found: dict[tuple[str, str], str] = {}
    for values, weights in space.corners(search.params, search.task_weights):
        config, problems = search.config_for(values, weights)
        point = ", ".join(f"{k}={v}" for k, v in values.items())
        if weights is not None:
            point += (", " if point else "") + "weights " + ", ".join(f"{t}={w:g}" for t, w in weights.items())
        for problem in problems:
            where = _owner(problem.path, search)
            found.setdefault((where, problem.line()), point)
        if not problems:
            for index, message in objectives.check_against(search.objectives, config):
                where = "search.objectives" if len(search.objectives) == 1 else f"search.objectives.{index}"
                found.setdefault((where, message), point)
    for (where, message), point in found.items():
        report.add(where, f"{message} (at the corner {point})" if point else message)


def _owner(path: str, search: Search) -> str:
    """The spec key a run-config problem belongs to: the searched key it touches, else base."""
    for param in search.params:
        if path and (path == param.key or path.startswith(param.key + ".") or param.key.startswith(path + ".")):
            return f"search.params.{param.key}"
    if search.task_weights is not None and (path.startswith("weighting") or ".weight" in path):
        return "search.task_weights"
    return "base" + (f".{path}" if path else "")
