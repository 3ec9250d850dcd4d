"""Experiment specs: YAML → validated :class:`Spec` → arms (base × factors) × seeds → runs.

A spec names a ``base`` run config and the ``factors`` under study; each factor is a set of
named levels, each level a set of dotted-key overrides (``tasks.emotion.pooling: attention``).
A level's value replaces the value at its key (a mapping replaces the whole mapping and the
defaults fill in what it leaves out). Arms are the full factorial of the levels unless
``arms`` lists the combinations to run; ``exclude`` removes combinations. Every problem of
every arm is reported at once, one line each, naming the file, the line, the key path, what
was found and what is allowed — before anything is written or submitted.
"""
from __future__ import annotations

import collections
import copy
import itertools
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lexilab.config import MAX_SEED, NAME_RE, Problem, check_config, identity_hash
from lexilab.data.registry import did_you_mean
from lexilab.errors import LexilabError
from lexilab.spec_yaml import load_yaml

SPEC_KEYS = ("name", "description", "base", "factors", "arms", "exclude", "seeds", "report", "resources",
             "search", "budget")
ARM_JOIN = "+"  # arm name of a combination: its level names joined in factor order
BASE_ARM = "base"  # the single arm of a spec without factors
# Bounds: a typo (seeds: 1000000000) must be one line, not hours of planning or 30,000 folders
MAX_SEEDS = 10_000
MAX_COMBINATIONS = 100_000  # factor level combinations, before arms / exclude pick from them
MAX_ARMS = 1_000
MAX_RUNS = 1_000  # runs one command plans unless told more (run --max-runs N)
MAX_RUNS_CEILING = 100_000  # the most --max-runs accepts
# files the MLflow store keeps at the results root (lexilab.tracking.settings, SQLite's side
# files): an experiment folder of such a name would collide with them
STORE_NAMES = ("mlflow.db", "mlartifacts", "mlruns")


class SpecError(LexilabError):
    """Every problem of a spec, one line each (``str`` joins them with newlines)."""

    def __init__(self, lines: list[str]):
        super().__init__("\n".join(lines))
        self.lines = lines


@dataclass
class Arm:
    name: str
    levels: dict[str, str]  # factor -> level
    config: dict  # resolved run config (seed 0; each run sets its own)
    hash: str  # identity without the seed


@dataclass
class PlannedRun:
    experiment: str
    arm: str
    levels: dict[str, str]
    seed: int
    config: dict
    config_hash: str

    def run_dir(self, results: str | os.PathLike) -> Path:
        return Path(results) / self.experiment / self.arm / f"seed-{self.seed}"


@dataclass
class Spec:
    path: Path
    name: str
    description: str
    factors: dict[str, dict[str, dict]]  # factor -> level -> {dotted key: value}
    arms: list[Arm]
    seeds: list[int]
    report: dict = field(default_factory=dict)
    resources: dict = field(default_factory=dict)
    search: Any = None  # a lexilab.sweep.search.Search when the spec has `search:` (a sweep)

    @property
    def arm_names(self) -> list[str]:
        return [arm.name for arm in self.arms]

    def select(self, only: list[str] | None) -> list[Arm]:
        """The arms named in ``only`` (all when empty); an unknown name is a LexilabError."""
        if not only:
            return list(self.arms)
        unknown = [name for name in only if name not in self.arm_names]
        if unknown:
            raise SpecError([f"{self.path}: --only: unknown arm {name!r}{did_you_mean(name, self.arm_names)}; "
                             f"arms: {', '.join(self.arm_names)}" for name in unknown])
        return [arm for arm in self.arms if arm.name in only]

    def runs(self, seeds: int | list[int] | None = None, only: list[str] | None = None,
             max_runs: int | None = None) -> list[PlannedRun]:
        """Arms × seeds (``seeds``: a count overriding the spec's, as ``--seeds N`` does); more
        than ``max_runs`` runs is a SpecError, raised before any run is built."""
        if seeds is None:
            seed_list = self.seeds
        elif isinstance(seeds, int):
            if not 1 <= seeds <= MAX_SEEDS:
                raise SpecError([f"{self.path}: --seeds: {seeds}: expected a count from 1 to {MAX_SEEDS}"])
            seed_list = list(range(seeds))
        else:
            seed_list = list(seeds)
        arms = self.select(only)
        count = len(arms) * len(seed_list)
        if max_runs is not None and count > max_runs:
            grid = f"{len(arms)} arm{'s' * (len(arms) != 1)} × {len(seed_list)} seed{'s' * (len(seed_list) != 1)}"
            raise SpecError([f"{self.path}: {count:,} runs ({grid}) is more than {max_runs:,}, the limit of one "
                             f"command; pass --max-runs {count} to plan them"])
        out = []
        for arm in arms:
            for seed in seed_list:
                config = copy.deepcopy(arm.config)
                config["seed"] = seed
                out.append(PlannedRun(self.name, arm.name, dict(arm.levels), seed, config, identity_hash(config)))
        return out


# --------------------------------------------------------------------------- loading
class _Report:
    """Collects one line per problem: ``file:line: key.path: message``."""

    def __init__(self, path: Path, lines: dict[str, int]):
        self.path, self.lines, self.out, self.keys = path, lines, [], set()
        self.ambiguous = False  # no base, or two factors set the same key: arm configs are undefined

    def reported(self, key: str) -> bool:
        """Whether a problem was already reported at ``key`` or one of its ancestors."""
        parts = key.split(".")
        return any(".".join(parts[:i]) in self.keys for i in range(1, len(parts) + 1))

    def sorted(self) -> list[str]:
        """Problems in file order (those without a line first)."""
        def line(text: str) -> int:
            match = re.match(re.escape(str(self.path)) + r":(\d+): ", text)
            return int(match.group(1)) if match else 0
        return sorted(self.out, key=line)

    def add(self, key: str, message: str) -> None:
        self.keys.add(key)
        probe = key
        while probe and probe not in self.lines:  # nearest written ancestor for the line number
            probe = probe.rpartition(".")[0]
        line = self.lines.get(probe)
        where = f"{self.path}:{line}" if line else str(self.path)
        text = f"{where}: {key}: {message}" if key else f"{where}: {message}"
        if text not in self.out:
            self.out.append(text)


def load_spec(path: str | os.PathLike) -> Spec:
    """Read, validate and expand a spec; raise :class:`SpecError` listing every problem."""
    path = Path(path)
    data, lines = load_yaml(path)
    report = _Report(path, lines)
    if not isinstance(data, dict):
        raise SpecError([f"{path}: a spec is a mapping with keys {', '.join(SPEC_KEYS)}; found {type(data).__name__}"])
    for key in data:
        if key not in SPEC_KEYS:
            report.add(str(key), f"unknown key{did_you_mean(key, SPEC_KEYS)}; allowed: {', '.join(SPEC_KEYS)}")
    name = data.get("name", path.stem)
    if not isinstance(name, str) or not NAME_RE.match(name):
        report.add("name", f"expected a name of letters, digits, _ . - (it names the results folder), found {_short(name)}")
    elif any(name.lower() == n or name.lower().startswith((n + ".", n + "-")) for n in STORE_NAMES):
        report.add("name", f"{name!r} collides with the MLflow store's files at the results root "
                   f"({', '.join(STORE_NAMES)}); choose another name")
    description = data.get("description", "")
    if not isinstance(description, str):
        report.add("description", f"expected text, found {type(description).__name__}")
    base = data.get("base")
    if not isinstance(base, dict):
        report.add("base", f"expected a mapping (the run config every arm starts from), found {base!r}")
        report.ambiguous = True  # no config to build arms from: say only this
        base = None
    if "seed" in (base or {}):
        report.add("base.seed", "set seeds at the top level (seeds: 3 or seeds: [0, 1, 2]), not in base")
    factors = _read_factors(data.get("factors"), base, report)
    seeds = _read_seeds(data.get("seeds", 1), report)
    combos = _combinations(factors, data.get("arms"), data.get("exclude"), report)
    arms = _build_arms(factors, combos, base, path.parent, report) if combos and not report.ambiguous else []
    if arms and data.get("budget") is not None and not report.out:  # matched budgets (lexilab.budget)
        from lexilab.budget import match_budgets

        for key, message in match_budgets(arms, factors, data["budget"]):
            report.add(key, message)
    spec = Spec(path, name if isinstance(name, str) else path.stem, description or "", factors, arms, seeds,
                resources=_read_resources(data.get("resources"), report))
    if arms:
        spec.report = _read_report(data.get("report"), spec, report)
    if "search" in data:  # a sweep: lexilab.sweep checks the whole space, before anything is written
        from lexilab.sweep.search import read_search

        spec.search = read_search(data["search"], data, path, report)
    if report.out:
        raise SpecError(report.sorted())
    return spec


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _read_seeds(value: Any, report: _Report) -> list[int]:
    if isinstance(value, int) and not isinstance(value, bool):
        if 1 <= value <= MAX_SEEDS:
            return list(range(value))
    elif isinstance(value, list) and 0 < len(value) <= MAX_SEEDS:
        if all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s <= MAX_SEED for s in value):
            twice = [seed for seed, n in collections.Counter(value).items() if n > 1]
            if not twice:
                return list(value)
            report.add("seeds", f"seed {twice[0]} is listed more than once in {_short(value)}")
            return []
    report.add("seeds", f"expected a count from 1 to {MAX_SEEDS} or a list of at most {MAX_SEEDS} distinct "
               f"integers from 0 to {MAX_SEED}, found {_short(value)}")
    return []


def _read_factors(value: Any, base: dict | None, report: _Report) -> dict[str, dict[str, dict]]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        report.add("factors", f"expected a mapping factor → {{level → {{dotted.key: value}}}}, found {value!r}")
        return {}
    factors: dict[str, dict[str, dict]] = {}
    for factor, levels in value.items():
        where = f"factors.{factor}"
        if not isinstance(factor, str) or not NAME_RE.match(factor):
            report.add(where, "a factor name is letters, digits, _ . -")
            continue
        if not isinstance(levels, dict) or not levels:
            report.add(where, f"expected a mapping level name → overrides with at least one level, found {levels!r}")
            continue
        factors[factor] = {}
        for level, overrides in levels.items():
            at = f"{where}.{level}"
            if not isinstance(level, str) or not NAME_RE.match(level) or ARM_JOIN in level:
                report.add(at, "a level name is letters, digits, _ . - (it names the arm's folder)")
                continue
            overrides = {} if overrides is None else overrides
            if not isinstance(overrides, dict):
                report.add(at, f"expected a mapping dotted.key → value, found {overrides!r}")
                continue
            for key in overrides:
                if not isinstance(key, str) or not re.fullmatch(r"[^.\s]+(\.[^.\s]+)*", key):
                    report.add(f"{at}.{key}", "expected a dotted key such as tasks.emotion.pooling")
                elif key.split(".")[0] == "seed":
                    report.add(f"{at}.{key}", "the seed is not a factor; use seeds")
                else:
                    _check_override_path(key, overrides[key], base, f"{at}.{key}", report)
            factors[factor][level] = dict(overrides)
    _check_factor_overlap(factors, report)
    return factors


def _check_override_path(key: str, value: Any, base: dict | None, where: str, report: _Report) -> None:
    parts = key.split(".")
    if base is None:  # already reported: no base to check against
        return
    if parts[0] == "tasks" and (len(parts) > 2 or (len(parts) == 2 and value is None)):
        tasks = base.get("tasks") if isinstance(base.get("tasks"), dict) else {}
        if parts[1] not in tasks:
            report.add(where, f"no task {parts[1]!r} in base{did_you_mean(parts[1], tasks)}; base tasks: "
                       f"{', '.join(map(str, tasks)) or 'none'} (a level adds a task with tasks.NAME: {{kind: ..., data: ...}})")


def _overlaps(a: str, b: str) -> bool:
    return a == b or a.startswith(b + ".") or b.startswith(a + ".")


def _check_factor_overlap(factors: dict[str, dict[str, dict]], report: _Report) -> None:
    """Two factors must not set the same key (or one inside the other): the arm's config would
    depend on the order in which they are applied."""
    names = list(factors)
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            clash = next(((l1, k1, l2, k2) for l1, o1 in factors[first].items() for k1 in o1
                          for l2, o2 in factors[second].items() for k2 in o2 if _overlaps(k1, k2)), None)
            if clash:
                l1, k1, l2, k2 = clash
                report.ambiguous = True
                report.add(f"factors.{second}.{l2}.{k2}", f"factor {second!r} sets a key that factor {first!r} also "
                           f"sets (level {l1}: {k1}); each key may belong to one factor only")


def _combinations(factors: dict[str, dict[str, dict]], arms: Any, exclude: Any,
                  report: _Report) -> list[dict[str, str]]:
    names = list(factors)
    total = math.prod(len(factors[f]) for f in names)
    if total > MAX_COMBINATIONS:
        report.add("factors", f"the factors' levels combine into {total:,} arms; at most {MAX_COMBINATIONS:,}")
        return []
    full = [dict(zip(names, levels)) for levels in itertools.product(*(list(factors[f]) for f in names))]
    chosen = full
    if arms is not None:
        chosen = []
        if not isinstance(arms, list) or not arms:
            report.add("arms", f"expected a non-empty list of {{factor: level}} mappings, found {arms!r}")
        for index, entry in enumerate(arms if isinstance(arms, list) else []):
            if isinstance(entry, str):
                entry = dict(zip(names, entry.split(ARM_JOIN))) if entry.count(ARM_JOIN) == len(names) - 1 else entry
            combo = _read_combo(entry, factors, f"arms.{index}", report, complete=True)
            if combo is not None and combo in chosen:
                report.add(f"arms.{index}", f"arm {arm_name(combo)!r} is listed twice")
            elif combo is not None:
                chosen.append(combo)
    if exclude is not None:
        if not isinstance(exclude, list):
            report.add("exclude", f"expected a list of {{factor: level}} mappings, found {exclude!r}")
            exclude = []
        patterns = [_read_combo(e, factors, f"exclude.{i}", report, complete=False) for i, e in enumerate(exclude)]
        for index, pattern in enumerate(patterns):
            if pattern is not None and not any(_matches(c, pattern) for c in chosen):
                report.add(f"exclude.{index}", f"matches no arm: {pattern}")
        chosen = [c for c in chosen if not any(p is not None and _matches(c, p) for p in patterns)]
    if not chosen and not report.out:
        report.add("exclude" if exclude else "arms", "the spec expands to no arms (nothing would run)")
    if len(chosen) > MAX_ARMS:
        report.add("arms" if arms is not None else "factors", f"the spec expands to {len(chosen):,} arms; at most {MAX_ARMS:,}")
        return []
    return chosen


def _matches(combo: dict[str, str], pattern: dict[str, str]) -> bool:
    return all(combo.get(f) == level for f, level in pattern.items())


def _read_combo(entry: Any, factors: dict, where: str, report: _Report, complete: bool) -> dict[str, str] | None:
    if not isinstance(entry, dict) or not entry:
        report.add(where, f"expected a mapping factor → level, found {entry!r}")
        return None
    ok = True
    for factor, level in entry.items():
        if factor not in factors:
            report.add(f"{where}.{factor}", f"unknown factor{did_you_mean(factor, factors)}; factors: {', '.join(factors) or 'none'}")
            ok = False
        elif level not in factors[factor]:
            report.add(f"{where}.{factor}", f"unknown level {level!r} of factor {factor!r}"
                       f"{did_you_mean(level, factors[factor])}; levels: {', '.join(factors[factor])}")
            ok = False
    missing = [f for f in factors if f not in entry]
    if ok and complete and missing:
        report.add(where, f"an arm names a level of every factor; missing: {', '.join(missing)}")
        ok = False
    return {f: entry[f] for f in factors if f in entry} if ok else None


def arm_name(combo: dict[str, str]) -> str:
    return ARM_JOIN.join(combo.values()) if combo else BASE_ARM


def set_dotted(config: dict, key: str, value: Any) -> None:
    """Set ``config[a][b][c] = value`` for ``key = "a.b.c"``, creating missing mappings;
    ``tasks.NAME: null`` drops a task (a single-task arm from a multi-task base)."""
    parts = key.split(".")
    if len(parts) == 2 and parts[0] == "tasks" and value is None:
        if isinstance(config.get("tasks"), dict):
            config["tasks"].pop(parts[1], None)
        return
    node = config
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[parts[-1]] = copy.deepcopy(value)


def _build_arms(factors: dict, combos: list[dict[str, str]], base: dict, base_dir: Path,
                report: _Report) -> list[Arm]:
    """Resolve every arm; attribute each problem to the factor level that set its key, else
    to ``base`` (naming the arms when it occurs in only some of them)."""
    arms, found = [], {}  # found: (where, key, message) -> arms it occurs in
    for combo in combos:
        name = arm_name(combo)
        raw = copy.deepcopy(base)
        raw["seed"] = 0
        touched = []
        for factor, level in combo.items():
            for key, value in factors[factor][level].items():
                set_dotted(raw, key, value)
                touched.append((f"factors.{factor}.{level}.{key}", key))
        config, problems = check_config(raw, base_dir)
        for problem in problems:
            where, key = _attribute(problem, touched)
            found.setdefault((where, key, problem.message), []).append(name)
        arms.append(Arm(name, dict(combo), config, identity_hash(config)))
    for (where, key, message), names in found.items():
        scope = f" (arm{'s' if len(names) > 1 else ''} {', '.join(names)})" if len(names) < len(arms) and where == "base" else ""
        prefix = f"{where}.{key}" if where == "base" and key else where
        if report.reported(prefix):  # e.g. an override of a task base lacks: said once already
            continue
        inner = f"{key}: " if where != "base" and key and not where.endswith(f".{key}") else ""
        report.add(prefix, inner + message + scope)
    if not found:
        seen: dict[str, str] = {}
        for arm in arms:
            if arm.hash in seen:
                report.add("factors", f"arms {seen[arm.hash]!r} and {arm.name!r} resolve to the same config "
                           "(their levels change nothing); drop one or exclude it")
            seen.setdefault(arm.hash, arm.name)
    return arms


def _attribute(problem: Problem, touched: list[tuple[str, str]]) -> tuple[str, str]:
    for where, key in touched:
        if problem.path and _overlaps(problem.path, key):
            return where, problem.path
    return "base", problem.path


REPORT_KEYS = ("metrics", "baseline", "family", "test", "ci", "correction", "alpha", "confidence")


def _read_report(value: Any, spec: Spec, report: _Report) -> dict:
    """The spec's ``report:`` block: what to report and the analysis, fixed before the data
    exist (pre-registration). Only the analysis keys the spec names are returned; the report
    fills in its defaults and flags command-line overrides as deviations."""
    from lexilab.metrics import METRICS, is_known_metric

    if value is None:
        return {"metrics": [], "baseline": None}
    if not isinstance(value, dict):
        report.add("report", f"expected a mapping {{metrics: [task/metric, ...], baseline: ARM}}, found {value!r}")
        return {}
    for key in value:
        if key not in REPORT_KEYS:
            report.add(f"report.{key}", f"unknown key{did_you_mean(key, REPORT_KEYS)}; allowed: {', '.join(REPORT_KEYS)}")
    tasks = {t for arm in spec.arms for t in arm.config.get("tasks", {})}
    kinds = {t: b["kind"] for arm in spec.arms for t, b in arm.config.get("tasks", {}).items()}

    def metric_list(key: str) -> list:
        metrics = value.get(key, [])
        if not isinstance(metrics, list) or not all(isinstance(m, str) for m in metrics):
            report.add(f"report.{key}", f"expected a list of task/metric names, found {metrics!r}")
            return []
        for index, metric in enumerate(metrics):
            task, _, name = metric.partition("/")
            if task not in tasks:
                report.add(f"report.{key}.{index}", f"{metric!r}: expected task/metric with a task of the spec"
                           f"{did_you_mean(task, tasks)}; tasks: {', '.join(sorted(tasks))}")
            elif not is_known_metric(kinds[task], name):
                known = METRICS.get(kinds[task], ())
                report.add(f"report.{key}.{index}", f"{name!r} is not a {kinds[task]} metric"
                           f"{did_you_mean(name, known)}; known: {', '.join(known)}")
        return list(metrics)

    metrics = metric_list("metrics")
    baseline = value.get("baseline")
    if isinstance(baseline, dict):
        combo = _read_combo(baseline, spec.factors, "report.baseline", report, complete=True)
        baseline = arm_name(combo) if combo else None
    if baseline is not None and baseline not in spec.arm_names:
        report.add("report.baseline", f"unknown arm {baseline!r}{did_you_mean(baseline, spec.arm_names)}; "
                   f"arms: {', '.join(spec.arm_names)}")
    out = {"metrics": metrics, "baseline": baseline}
    if "family" in value:
        out["family"] = metric_list("family")
        if metrics and not set(metrics) <= set(out["family"]):
            report.add("report.family", f"must include every report.metrics entry; missing "
                       f"{', '.join(m for m in metrics if m not in out['family'])}")
    choices = [key for key in ("test", "ci", "correction") if key in value]
    if choices:
        from lexilab.report.compare import CI_METHODS, TESTS
        from lexilab.stats import CORRECTIONS

        for key in choices:
            allowed = {"test": TESTS, "ci": CI_METHODS, "correction": CORRECTIONS}[key]
            if value[key] not in allowed:
                report.add(f"report.{key}", f"unknown {key} {value[key]!r}{did_you_mean(str(value[key]), allowed)}; "
                           f"choose {', '.join(allowed)}")
            else:
                out[key] = value[key]
    for key in ("alpha", "confidence"):
        if key in value:
            level = value[key]
            if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level < 1:
                report.add(f"report.{key}", f"expected a number between 0 and 1 (exclusive), found {level!r}")
            else:
                out[key] = float(level)
    return out


def _read_resources(value: Any, report: _Report) -> dict:
    """Default resources of the spec's runs, checked by the dispatch layer's vocabulary
    (profile < spec resources < command line)."""
    from lexilab.dispatch.resources import normalize

    if value is None:
        return {}
    if not isinstance(value, dict):
        report.add("resources", f"expected a mapping (e.g. {{gpus: 1, time: '04:00:00'}}), found {value!r}")
        return {}
    out = {}
    for key, item in value.items():
        try:
            out.update(normalize({key: item}, "resources"))
        except LexilabError as err:
            report.add(f"resources.{key}", str(err).removeprefix("resources: ").removeprefix(f"{key}: "))
    return out


ABSENT = "—"  # shown for a key an arm does not have (e.g. a task a single-task arm drops)


def differences(arms: list[Arm]) -> dict[str, dict[str, Any]]:
    """Dotted key → {arm: value} for every resolved key whose value differs between arms.
    A subtree some arms lack is one entry (``ABSENT`` where missing, ``{...}`` elsewhere)."""
    out: dict[str, dict[str, Any]] = {}

    def walk(values: dict[str, Any], prefix: str) -> None:
        present = [v for v in values.values() if v is not _MISSING]
        if len(present) == len(values) and all(isinstance(v, dict) and v for v in present):
            for key in dict.fromkeys(k for v in present for k in v):
                walk({arm: v.get(key, _MISSING) for arm, v in values.items()}, f"{prefix}.{key}" if prefix else key)
            return
        first = next(iter(values.values()))
        if any(v != first for v in values.values()):
            out[prefix] = {arm: ABSENT if v is _MISSING else ("{...}" if isinstance(v, dict) and v else v)
                           for arm, v in values.items()}

    if len(arms) > 1:
        walk({arm.name: {k: v for k, v in arm.config.items() if k != "seed"} for arm in arms}, "")
    return out


_MISSING = object()
