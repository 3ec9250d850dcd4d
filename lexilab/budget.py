"""Matched compute budgets: the spec key ``budget: {match: LEVEL}``.

With the same ``epochs``, an MTL arm and a single-task arm rarely give a task the same number
of training batches: under ``steps_per_epoch: largest`` and round-robin sampling every task of
the MTL arm gets as many batches per epoch as the largest task needs, while alone a small task
gets one pass over its own data. The report then shows a difference that is partly a budget
difference (its notes flag it). ``budget: {match: LEVEL}`` fixes this at spec expansion: every
single-task arm whose task the reference arm (the same levels, with ``LEVEL`` in its factor)
also trains gets ``sampler.steps_per_epoch`` set so that, over its epochs, it draws as many
batches of its task as the reference arm is expected to give that task — exactly for
round-robin, in expectation for the random samplers (Σ over the reference run's steps of the
sampler's probability of the task), and every step for weightings that use every task per step.

The trade-off: a matched single-task arm repeats a small dataset more often (more epochs'
worth of passes, more risk of over-fitting) and costs more compute than the plain one; an
unmatched comparison instead confounds the method with the budget. Multi-task arms other than
the reference keep their schedule. Task sizes are read from the reference arm's datasets
(synthetic tasks are generated, other datasets loaded), so a spec with ``budget`` needs its data
at expansion time.
"""
from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np

from lexilab.errors import LexilabError

BUDGET_KEYS = ("match", "factor")


def match_budgets(arms: list, factors: dict[str, dict], value: Any) -> list[tuple[str, str]]:
    """Set ``sampler.steps_per_epoch`` of each single-task arm from its reference arm (in
    place; arm hashes are recomputed). Returns problems as (key, message)."""
    from lexilab.config import identity_hash

    if not isinstance(value, dict) or "match" not in value:
        return [("budget", f"expected {{match: LEVEL}} (the factor level whose arms set the budget), found {value!r}")]
    unknown = [k for k in value if k not in BUDGET_KEYS]
    if unknown:
        return [(f"budget.{unknown[0]}", f"unknown key; allowed: {', '.join(BUDGET_KEYS)}")]
    level = value["match"]
    owners = [f for f, levels in factors.items() if level in levels and value.get("factor") in (None, f)]
    if len(owners) != 1:
        where = f"factor {value['factor']!r}" if value.get("factor") else "any factor"
        why = "is a level of several factors; add factor: NAME" if owners else f"is not a level of {where}"
        return [("budget.match", f"{level!r} {why}")]
    factor = owners[0]
    by_levels = {tuple(sorted(arm.levels.items())): arm for arm in arms}
    cache: dict[str, dict[str, float]] = {}
    problems = []
    for arm in arms:
        tasks = list(arm.config.get("tasks") or {})
        if arm.levels.get(factor) == level or len(tasks) != 1:
            continue
        reference = by_levels.get(tuple(sorted({**arm.levels, factor: level}.items())))
        if reference is None:
            problems.append(("budget.match", f"arm {arm.name} has no reference arm with {factor}={level}"))
            continue
        if tasks[0] not in (reference.config.get("tasks") or {}):
            continue
        try:
            if reference.name not in cache:
                cache[reference.name] = expected_batches(reference.config)
        except LexilabError as err:
            problems.append(("budget.match", f"cannot size the tasks of arm {reference.name}: {err}"))
            continue
        epochs = int(arm.config["train"]["epochs"])
        arm.config = copy.deepcopy(arm.config)
        arm.config["sampler"]["steps_per_epoch"] = max(1, round(cache[reference.name][tasks[0]] / epochs))
        arm.hash = identity_hash(arm.config)
    return problems


def expected_batches(config: dict) -> dict[str, float]:
    """Batches of each task over a whole run of ``config`` (expected value for random samplers;
    ``max_steps`` counted; early stopping is not known in advance)."""
    from lexilab.train.assembly import load_datasets
    from lexilab.train.samplers import build_sampler, steps_per_epoch
    from lexilab.train.weighting import WEIGHTINGS

    sizes = {name: len(data.splits["train"]) for name, data in load_datasets(config).items()}
    train = config["train"]
    weighting = WEIGHTINGS.get((config.get("weighting") or {}).get("kind", "equal"))
    every_task = bool(getattr(weighting, "needs_all_tasks", False))
    micro = steps_per_epoch(config["sampler"].get("steps_per_epoch", "largest"), sizes, int(train["batch_size"]),
                            tasks_per_step=len(sizes) if every_task else 1)
    accum = int(train.get("grad_accum", 1))
    total = micro * int(train["epochs"])
    if train.get("max_steps"):
        total = min(total, int(train["max_steps"]) * accum)
    if every_task:
        return {name: float(total) for name in sizes}
    sampler = build_sampler(config["sampler"], sizes, seed=0, total_steps=total)
    # the sampler's per-step distribution summed over the run: the expected draws of each task
    counts = np.zeros(len(sizes))
    for start in range(0, total, 65536):
        counts += sampler._probability_matrix(np.arange(start, min(total, start + 65536))).sum(axis=0)
    return {name: float(c) for name, c in zip(sampler.tasks, counts) if math.isfinite(c)}
