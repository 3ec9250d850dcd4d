"""Samplers and pruners of a sweep: read from the spec, built as Optuna objects.

Samplers (all seeded; ``seed`` defaults to 0):
- ``tpe`` (default): Optuna's TPE (Bergstra et al. 2011) with ``multivariate`` and ``group``
  (conditional spaces), and ``constant_liar`` when trials run in parallel (so that workers
  do not all ask for the same point); works for one or several objectives.
- ``nsga2``: NSGA-II (Deb et al. 2002), for several objectives.
- ``random``; ``grid``: every combination of the listed values (each parameter categorical
  or with a ``step``).

Pruners (one objective only: Optuna cannot prune several): ``none``, ``median``,
``hyperband`` (Li et al. 2018) over the evaluations reported by the trainer, and ``wilcoxon``
(Wilcoxon signed-rank test of the trial's seeds against the best trial's same seeds; the
seeds run one after another and the rest are skipped once pruned).
"""
from __future__ import annotations

import math
import warnings
from typing import Any

from lexilab.data.registry import did_you_mean

SAMPLERS = ("tpe", "nsga2", "random", "grid")
PRUNERS = ("none", "median", "hyperband", "wilcoxon")
SAMPLER_OPTIONS = {"tpe": ("n_startup_trials",), "nsga2": ("population_size",), "random": (), "grid": ()}
PRUNER_OPTIONS = {"none": (), "median": ("n_startup_trials", "n_warmup_steps", "interval_steps"),
                  "hyperband": ("min_resource", "max_resource", "reduction_factor"),
                  "wilcoxon": ("p_threshold", "n_startup_steps")}


def _read_method(value: Any, default: str, kinds: tuple, options: dict, where: str, report) -> dict | None:
    if value is None:
        value = default
    if isinstance(value, str):
        value = {"kind": value}
    if not isinstance(value, dict):
        report.add(where, f"expected one of {', '.join(kinds)} or {{kind: ..., options}}, found {value!r}")
        return None
    kind = value.get("kind", default)
    if kind not in kinds:
        report.add(f"{where}.kind" if "kind" in value and len(value) > 1 else where,
                   f"unknown {where.split('.')[-1]} {kind!r}{did_you_mean(str(kind), kinds)}; allowed: {', '.join(kinds)}")
        return None
    allowed = ("kind", "seed", *options[kind]) if where.endswith("sampler") else ("kind", *options[kind])
    out = {"kind": kind}
    for key, item in value.items():
        if key == "kind":
            continue
        if key not in allowed:
            report.add(f"{where}.{key}", f"unknown option of {kind}{did_you_mean(str(key), allowed)}; "
                       f"allowed: {', '.join(allowed[1:]) or 'none'}")
            return None
        if isinstance(item, bool) or not isinstance(item, (int, float)) or not math.isfinite(item) or item < 0:
            report.add(f"{where}.{key}", f"expected a number ≥ 0, found {item!r}")
            return None
        out[key] = item
    return out


def read_sampler(value: Any, report, where: str = "search.sampler") -> dict | None:
    sampler = _read_method(value, "tpe", SAMPLERS, SAMPLER_OPTIONS, where, report)
    if sampler is not None:
        sampler.setdefault("seed", 0)
    return sampler


def read_pruner(value: Any, report, where: str = "search.pruner") -> dict | None:
    return _read_method(value, "none", PRUNERS, PRUNER_OPTIONS, where, report)


def build_sampler(spec: dict, directions: list[str], workers: int, grid: dict[str, list] | None = None):
    import optuna

    kind, seed = spec["kind"], int(spec.get("seed", 0))
    options = {k: v for k, v in spec.items() if k not in ("kind", "seed")}
    with warnings.catch_warnings():  # multivariate/group/constant_liar are marked experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if kind == "tpe":
            return optuna.samplers.TPESampler(multivariate=True, group=True, constant_liar=workers > 1, seed=seed,
                                              **{k: int(v) for k, v in options.items()})
        if kind == "nsga2":
            return optuna.samplers.NSGAIISampler(seed=seed, **{k: int(v) for k, v in options.items()})
        if kind == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        return optuna.samplers.GridSampler(grid or {}, seed=seed)


def build_pruner(spec: dict):
    import optuna

    kind = spec["kind"]
    options = {k: v for k, v in spec.items() if k != "kind"}
    if kind == "median":
        return optuna.pruners.MedianPruner(**{k: int(v) for k, v in options.items()})
    if kind == "hyperband":
        return optuna.pruners.HyperbandPruner(**{k: int(v) for k, v in options.items()})
    if kind == "wilcoxon":
        return optuna.pruners.WilcoxonPruner(p_threshold=float(options.get("p_threshold", 0.1)),
                                             n_startup_steps=int(options.get("n_startup_steps", 2)))
    return optuna.pruners.NopPruner()
