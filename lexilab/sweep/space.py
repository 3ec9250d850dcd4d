"""The search space of a sweep: ``search.params`` and ``search.task_weights``.

A parameter is a dotted key of the run config with an Optuna distribution
(``{type: float|int|categorical, low, high, log, step, choices}``) and, for a conditional
parameter, ``when: {other.key: value or [values]}``: it exists only in trials where that
categorical parameter took one of those values (e.g. ``weighting.alpha`` only for gradnorm).

``task_weights`` is a built-in parametrisation of the per-task loss weights (they are
scale-redundant with the learning rate, so one degree of freedom is removed):

- ``simplex``: one number ``x_t`` in [0, 1] per task; the weights are the shares
  ``low + (1 − K·low)·x_t / Σ x`` scaled by K (so that equal weights are all 1, the scale of
  ``weighting: equal``). A vertex of the simplex gives the other tasks weight 0, which is
  refused unless ``low: 0`` is written out.
- ``log_uniform``: the first listed task keeps weight 1; every other task's weight is drawn
  log-uniformly in [low, high] (a ratio to the first).

A trial's weights land in ``tasks.NAME.weight`` with ``weighting: {kind: fixed}``.
"""
from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, field
from typing import Any

from lexilab.data.registry import did_you_mean

PARAM_TYPES = ("float", "int", "categorical")
PARAM_KEYS = {"float": ("type", "low", "high", "log", "step", "when"),
              "int": ("type", "low", "high", "log", "step", "when"),
              "categorical": ("type", "choices", "when")}
WEIGHT_SPACES = ("simplex", "log_uniform")
WEIGHT_KEYS = ("tasks", "space", "low", "high")
WEIGHT_PARAM = "weight."  # Optuna parameter name prefix of task weights
_DOTTED = re.compile(r"[^.\s]+(\.[^.\s]+)*")
MAX_CORNERS = 2048  # beyond this, each parameter's corners are checked with the others at their first


@dataclass
class Param:
    key: str
    type: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: list = field(default_factory=list)
    when: dict[str, list] = field(default_factory=dict)

    def active(self, values: dict[str, Any]) -> bool:
        return all(values.get(key, _UNSET) in allowed for key, allowed in self.when.items())

    def corners(self) -> list:
        if self.type == "categorical":
            return list(self.choices)
        if self.step:  # the largest grid point ≤ high is the upper corner
            top = self.low + math.floor((self.high - self.low) / self.step + 1e-9) * self.step
            return list(dict.fromkeys([self.low, type(self.low)(top) if self.type == "int" else top]))
        return list(dict.fromkeys([self.low, self.high]))

    def grid(self) -> list | None:
        """Every value (categorical, or int/float with a step); None for a continuous range."""
        if self.type == "categorical":
            return list(self.choices)
        if self.step:
            count = int(math.floor((self.high - self.low) / self.step + 1e-9)) + 1
            values = [self.low + i * self.step for i in range(count)]
            return [int(v) for v in values] if self.type == "int" else [round(v, 12) for v in values]
        if self.type == "int" and not self.log:
            return list(range(int(self.low), int(self.high) + 1))
        return None

    def suggest(self, trial) -> Any:
        if self.type == "categorical":
            return trial.suggest_categorical(self.key, self.choices)
        if self.type == "int":
            return trial.suggest_int(self.key, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.key, float(self.low), float(self.high), step=self.step, log=self.log)


@dataclass
class TaskWeights:
    tasks: list[str]
    space: str
    low: float
    high: float | None = None

    def param_names(self) -> list[str]:
        tasks = self.tasks if self.space == "simplex" else self.tasks[1:]
        return [WEIGHT_PARAM + t for t in tasks]

    def weights(self, raw: dict[str, float]) -> dict[str, float]:
        """Task → weight from the trial's raw values (see the module docstring)."""
        if self.space == "log_uniform":
            return {self.tasks[0]: 1.0, **{t: float(raw[WEIGHT_PARAM + t]) for t in self.tasks[1:]}}
        k = len(self.tasks)
        x = [float(raw[WEIGHT_PARAM + t]) for t in self.tasks]
        total = sum(x)
        shares = [1.0 / k] * k if total <= 0 else [v / total for v in x]
        return {t: k * (self.low + (1.0 - k * self.low) * s) for t, s in zip(self.tasks, shares)}

    def suggest(self, trial) -> dict[str, float]:
        if self.space == "log_uniform":
            raw = {name: trial.suggest_float(name, self.low, self.high, log=True) for name in self.param_names()}
        else:
            raw = {name: trial.suggest_float(name, 0.0, 1.0) for name in self.param_names()}
        return self.weights(raw)

    def corners(self) -> list[dict[str, float]]:
        names = self.param_names()
        ends = (self.low, self.high) if self.space == "log_uniform" else (0.0, 1.0)
        out = []
        for combo in itertools.product(ends, repeat=len(names)):
            if self.space == "simplex" and not any(combo):
                continue  # all zero is the centre (equal shares), not a corner
            out.append(self.weights(dict(zip(names, combo))))
        return out


_UNSET = object()


def weight_overrides(tasks_weights: dict[str, float]) -> dict[str, Any]:
    overrides: dict[str, Any] = {"weighting": {"kind": "fixed"}}
    overrides.update({f"tasks.{t}.weight": w for t, w in tasks_weights.items()})
    return overrides


def overrides_for(params: list[Param], weights: TaskWeights | None, values: dict[str, Any],
                  task_weights: dict[str, float] | None) -> dict[str, Any]:
    """Dotted key → value for one point of the space (inactive conditional params left out)."""
    out = {p.key: values[p.key] for p in params if p.key in values}
    if weights is not None and task_weights is not None:
        out.update(weight_overrides(task_weights))
    return out


def suggest(trial, params: list[Param], weights: TaskWeights | None) -> tuple[dict[str, Any], dict | None]:
    """Ask ``trial`` for every active parameter (declaration order: a condition's parameter
    comes first); returns (param values, task weights)."""
    values: dict[str, Any] = {}
    for param in params:
        if param.active(values):
            values[param.key] = param.suggest(trial)
    return values, (weights.suggest(trial) if weights is not None else None)


def corners(params: list[Param], weights: TaskWeights | None) -> list[tuple[dict[str, Any], dict | None]]:
    """The corners of the space: every combination of each active parameter's extreme values
    (every choice of a categorical) and of the task-weight corners; when there are more than
    MAX_CORNERS, each parameter's corners one at a time (the others at their first)."""
    weight_corners = weights.corners() if weights is not None else [None]

    def expand(index: int, values: dict) -> list[dict]:
        if index == len(params):
            return [values]
        param = params[index]
        if not param.active(values):
            return expand(index + 1, values)
        return [out for value in param.corners() for out in expand(index + 1, {**values, param.key: value})]

    size = math.prod(len(p.corners()) for p in params) * len(weight_corners)
    if size <= MAX_CORNERS:
        return [(values, w) for values in expand(0, {}) for w in weight_corners]
    first = {}
    for param in params:
        if param.active(first):
            first[param.key] = param.corners()[0]
    points = [(first, w) for w in weight_corners]
    for param in params:
        for value in param.corners()[1:]:
            values = {**first, param.key: value}
            points.append(({k: v for k, v in values.items()
                            if next(p for p in params if p.key == k).active(values)}, weight_corners[0]))
    return points


# --------------------------------------------------------------------------- reading the spec
def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def read_params(value: Any, base: dict, report, where: str = "search.params") -> list[Param]:
    if value is None:
        return []
    if not isinstance(value, dict):
        report.add(where, f"expected a mapping dotted.key → {{type: float|int|categorical, ...}}, found {value!r}")
        return []
    params = []
    for key, entry in value.items():
        at = f"{where}.{key}"
        if not isinstance(key, str) or not _DOTTED.fullmatch(key):
            report.add(at, "expected a dotted key of the run config such as optim.lr")
            continue
        if key.split(".")[0] == "seed":
            report.add(at, "the seed is not a search parameter; use search.seeds_per_trial")
            continue
        param = _read_param(key, entry, at, report)
        if param is not None:
            params.append(param)
    known = {p.key: p for p in params}
    for index, param in enumerate(params):
        for other in params[:index]:
            if other.key == param.key or param.key.startswith(other.key + ".") or other.key.startswith(param.key + "."):
                report.add(f"{where}.{param.key}", f"overlaps parameter {other.key!r}; each key may be searched once")
        for cond, allowed in param.when.items():
            at = f"{where}.{param.key}.when.{cond}"
            target = known.get(cond)
            if target is None or target.type != "categorical":
                report.add(at, f"a condition names a categorical parameter declared above"
                           f"{did_you_mean(cond, [p.key for p in params if p.type == 'categorical'])}")
            elif params.index(target) > index:
                report.add(at, f"declare {cond!r} before the parameters that depend on it")
            else:
                for item in allowed:
                    if item not in target.choices:
                        report.add(at, f"{item!r} is not a choice of {cond!r}; choices: "
                                   f"{', '.join(map(str, target.choices))}")
    tasks = base.get("tasks") if isinstance(base.get("tasks"), dict) else {}
    for param in params:
        parts = param.key.split(".")
        if parts[0] == "tasks" and len(parts) > 1 and parts[1] not in tasks:
            report.add(f"{where}.{param.key}", f"no task {parts[1]!r} in base{did_you_mean(parts[1], tasks)}; "
                       f"base tasks: {', '.join(map(str, tasks)) or 'none'}")
    return params


def _read_param(key: str, entry: Any, at: str, report) -> Param | None:
    if not isinstance(entry, dict):
        report.add(at, f"expected a mapping {{type: float|int|categorical, low, high, log, step, choices}}, "
                   f"found {entry!r}")
        return None
    kind = entry.get("type")
    if kind not in PARAM_TYPES:
        report.add(f"{at}.type", f"expected one of {', '.join(PARAM_TYPES)}{did_you_mean(str(kind), PARAM_TYPES)}, "
                   f"found {kind!r}")
        return None
    ok = True
    for item in entry:
        if item not in PARAM_KEYS[kind]:
            report.add(f"{at}.{item}", f"unknown key for a {kind} parameter{did_you_mean(str(item), PARAM_KEYS[kind])}; "
                       f"allowed: {', '.join(PARAM_KEYS[kind])}")
            ok = False
    if not ok:  # a misspelt key: saying that its intended key is missing too would be noise
        return None
    when = _read_when(entry.get("when"), f"{at}.when", report)
    if when is None:
        return None
    if kind == "categorical":
        choices = entry.get("choices")
        if not isinstance(choices, list) or not choices:
            report.add(f"{at}.choices", f"expected a non-empty list of values, found {choices!r}")
            return None
        bad = [c for c in choices if not (c is None or isinstance(c, (bool, int, float, str)))]
        if bad:
            report.add(f"{at}.choices", f"a choice is a number, string, true/false or null (Optuna stores them); "
                       f"found {bad[0]!r}")
            return None
        if len({repr(c) for c in choices}) != len(choices):
            report.add(f"{at}.choices", f"a choice is listed twice in {choices}")
            return None
        return Param(key, kind, choices=list(choices), when=when)
    low, high, log, step = entry.get("low"), entry.get("high"), entry.get("log", False), entry.get("step")
    for name, item in (("low", low), ("high", high)):
        if not _is_number(item) or (kind == "int" and not float(item).is_integer()):
            report.add(f"{at}.{name}", f"expected {'an integer' if kind == 'int' else 'a number'}, found {item!r}")
            ok = False
    if not isinstance(log, bool):
        report.add(f"{at}.log", f"expected true or false, found {log!r}")
        ok = False
    if step is not None and (not _is_number(step) or step <= 0 or (kind == "int" and not float(step).is_integer())):
        report.add(f"{at}.step", f"expected a {'whole ' if kind == 'int' else ''}number > 0, found {step!r}")
        ok = False
    if not ok:
        return None
    if low > high:
        report.add(f"{at}.low", f"low ({low}) is greater than high ({high})")
        return None
    if log and low <= 0:
        report.add(f"{at}.log", f"log: true needs low > 0, found low: {low}")
        return None
    if log and step is not None and not (kind == "int" and step == 1):
        report.add(f"{at}.step", "log: true and a step cannot be combined (Optuna samples either on a log scale or on a grid)")
        return None
    cast = int if kind == "int" else float
    return Param(key, kind, cast(low), cast(high), log, cast(step) if step is not None else None, when=when)


def _read_when(value: Any, at: str, report) -> dict[str, list] | None:
    if value is None:
        return {}
    if not isinstance(value, dict) or not value:
        report.add(at, f"expected a mapping categorical.param → value or [values], found {value!r}")
        return None
    return {str(k): list(v) if isinstance(v, list) else [v] for k, v in value.items()}


def read_task_weights(value: Any, base: dict, params: list[Param], report,
                      where: str = "search.task_weights") -> TaskWeights | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        report.add(where, f"expected a mapping {{tasks: [..], space: simplex|log_uniform, low, high}}, found {value!r}")
        return None
    for key in value:
        if key not in WEIGHT_KEYS:
            report.add(f"{where}.{key}", f"unknown key{did_you_mean(str(key), WEIGHT_KEYS)}; allowed: {', '.join(WEIGHT_KEYS)}")
            return None
    base_tasks = list(base.get("tasks") or {}) if isinstance(base.get("tasks"), dict) else []
    tasks = value.get("tasks", base_tasks)
    if not isinstance(tasks, list) or len(tasks) < 2 or len(set(map(str, tasks))) != len(tasks):
        report.add(f"{where}.tasks", f"expected a list of two or more distinct tasks of base, found {tasks!r}")
        return None
    unknown = [t for t in tasks if t not in base_tasks]
    if unknown:
        report.add(f"{where}.tasks", f"no task {unknown[0]!r} in base{did_you_mean(str(unknown[0]), base_tasks)}; "
                   f"base tasks: {', '.join(base_tasks)}")
        return None
    space = value.get("space", "simplex")
    if space not in WEIGHT_SPACES:
        report.add(f"{where}.space", f"expected one of {', '.join(WEIGHT_SPACES)}{did_you_mean(str(space), WEIGHT_SPACES)}, "
                   f"found {space!r}")
        return None
    low, high = value.get("low"), value.get("high")
    if space == "simplex":
        if high is not None:
            report.add(f"{where}.high", "a simplex has no high (the shares sum to 1); use low for a minimum share")
            return None
        if low is None:
            report.add(where, f"a corner of the simplex gives task {tasks[1]!r} weight 0 (and {tasks[0]!r} all of it); "
                       "write low: 0 to allow zero weights, or a minimum share such as low: 0.05")
            return None
        if not _is_number(low) or not 0 <= low < 1 / len(tasks):
            report.add(f"{where}.low", f"expected a minimum share ≥ 0 and < 1/{len(tasks)}, found {low!r}")
            return None
    else:
        for name, item in (("low", low), ("high", high)):
            if not _is_number(item):
                report.add(f"{where}.{name}", f"expected a number (the weight ratio to {tasks[0]!r}), found {item!r}")
                return None
        if low > high:
            report.add(f"{where}.low", f"low ({low}) is greater than high ({high})")
            return None
        if low <= 0:
            report.add(f"{where}.low", f"log_uniform needs low > 0, found low: {low}")
            return None
    for param in params:  # the weights own these keys
        if param.key.startswith("weighting") or any(param.key.startswith(f"tasks.{t}.weight") for t in tasks):
            report.add(f"search.params.{param.key}", "task_weights sets the task weights and weighting: {kind: fixed}; "
                       "do not search this key as well")
    return TaskWeights([str(t) for t in tasks], space, float(low), float(high) if high is not None else None)
