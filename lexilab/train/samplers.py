"""Task samplers: which task's batch the next training step uses.

Every sampler is pure and seeded: it owns one ``numpy.random.Generator`` (PCG64) built from the
run seed, never touches a global RNG, and its ``state_dict()`` (JSON-serialisable) restores the
exact same stream. One call to ``next()`` is one step (one task's batch).

Probabilities, with ``n_t`` the number of training examples of task ``t`` and ``K`` an optional
cap:

- ``round_robin``: tasks in order, ``t_s = tasks[s mod T]`` (deterministic);
- ``uniform``: ``p_t = 1/T``;
- ``proportional``: ``p_t ∝ min(n_t, K)`` — T5's examples-proportional mixing (Raffel et al.
  2020, §3.5.2) when a cap is given;
- ``temperature``: ``p_t ∝ min(n_t, K)^α`` (T5's temperature-scaled mixing with ``α = 1/T``;
  α=1 is proportional, α=0 is uniform);
- ``annealed``: temperature sampling whose α moves linearly from ``alpha_start`` to
  ``alpha_end`` over the run: ``α(s) = α0 + (α1 − α0)·min(s/(S−1), 1)`` for ``S = total_steps``
  — the annealed sampling of Stickland & Murray 2019 ("BERT and PALs", α from 1 to 0.2, there
  per epoch) and jiant's time-dependent multi-task samplers (Phang et al. 2020).
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, Callable

import numpy as np

from lexilab.data.registry import did_you_mean
from lexilab.errors import LexilabError
from lexilab.io import jsonable

_WHERE = "config.yaml: sampler"
# Mixed into the seed so the sampler's stream differs from other consumers of the run seed.
_STREAM_ID = 0x5A4D_504C


class TaskSampler(ABC):
    """Base class: subclasses implement ``_probability_matrix(steps)`` (rows sum to 1)."""

    kind: str = ""
    options: tuple[str, ...] = ()  # cfg keys besides kind / steps_per_epoch

    def __init__(self, task_sizes: dict[str, int], seed: int, total_steps: int) -> None:
        if not task_sizes:
            raise LexilabError(f"{_WHERE}: no tasks to sample from")
        for name, size in task_sizes.items():
            if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size <= 0:
                raise LexilabError(
                    f"{_WHERE}: task {name!r} has {size!r} training examples; need a positive int"
                )
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise LexilabError(f"config.yaml: seed: {seed!r} must be a non-negative int")
        self.tasks: list[str] = list(task_sizes)
        self.sizes = np.array([int(task_sizes[t]) for t in self.tasks], dtype=np.float64)
        self.seed = int(seed)
        self.total_steps = int(total_steps)
        self.step = 0  # number of tasks drawn so far
        self.rng = np.random.default_rng([self.seed, _STREAM_ID])

    # -- subclasses ---------------------------------------------------------------------------
    @abstractmethod
    def _probability_matrix(self, steps: np.ndarray) -> np.ndarray:
        """Row ``i`` = the distribution over tasks at step ``steps[i]``."""

    # -- public API ---------------------------------------------------------------------------
    def probabilities(self, step: int) -> dict[str, float]:
        """The distribution the draw at ``step`` (0-based) is taken from."""
        row = self._probability_matrix(np.array([int(step)]))[0]
        return {t: float(p) for t, p in zip(self.tasks, row)}

    def draw(self, n: int) -> list[str]:
        """The next ``n`` tasks; identical to ``n`` calls of ``next()`` (same stream)."""
        if n <= 0:
            return []
        steps = np.arange(self.step, self.step + n)
        idx = self._draw_indices(steps)
        self.step += n
        return [self.tasks[i] for i in idx]

    def next(self) -> str:
        """The task of the next step."""
        return self.draw(1)[0]

    def _draw_indices(self, steps: np.ndarray) -> np.ndarray:
        probs = self._probability_matrix(steps)
        # One uniform double per step (Generator.random(n) yields the same doubles as n calls
        # of random()), inverted through the CDF; comparing against all but the last cumulative
        # value makes the last task absorb the rounding slack, so the index is always valid.
        u = self.rng.random(len(steps))
        cdf = np.cumsum(probs, axis=1)[:, :-1]
        return (u[:, None] >= cdf).sum(axis=1)

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state; ``load_state_dict`` restores an identical stream."""
        return {
            "kind": self.kind,
            "tasks": list(self.tasks),
            "step": self.step,
            "rng": jsonable(self.rng.bit_generator.state),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("kind") != self.kind or list(state.get("tasks", [])) != self.tasks:
            raise LexilabError(
                f"{_WHERE}: saved sampler state is for kind {state.get('kind')!r} over tasks "
                f"{state.get('tasks')}, not {self.kind!r} over {self.tasks}"
            )
        self.step = int(state["step"])
        self.rng.bit_generator.state = state["rng"]


def _capped(sizes: np.ndarray, cap: float | None) -> np.ndarray:
    return sizes if cap is None else np.minimum(sizes, float(cap))


def _power_probs(sizes: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    """Rows ``∝ sizes^α`` per α, computed in log space so large n and α stay finite."""
    logits = alphas[:, None] * np.log(sizes)[None, :]
    logits -= logits.max(axis=1, keepdims=True)
    weights = np.exp(logits)
    return weights / weights.sum(axis=1, keepdims=True)


SAMPLERS: dict[str, type[TaskSampler]] = {}


def register_sampler(name: str) -> Callable[[type[TaskSampler]], type[TaskSampler]]:
    """Class decorator adding a sampler under ``name`` (the cfg ``kind``)."""

    def wrap(cls: type[TaskSampler]) -> type[TaskSampler]:
        if name in SAMPLERS:
            raise ValueError(f"sampler {name!r} registered twice")
        cls.kind = name
        SAMPLERS[name] = cls
        return cls

    return wrap


@register_sampler("round_robin")
class RoundRobinSampler(TaskSampler):
    """Tasks in config order, one step each; ``probabilities(step)`` is one-hot."""

    def _probability_matrix(self, steps: np.ndarray) -> np.ndarray:
        out = np.zeros((len(steps), len(self.tasks)))
        out[np.arange(len(steps)), steps % len(self.tasks)] = 1.0
        return out

    def _draw_indices(self, steps: np.ndarray) -> np.ndarray:
        return steps % len(self.tasks)  # no randomness consumed


@register_sampler("uniform")
class UniformSampler(TaskSampler):
    """``p_t = 1/T``."""

    def _probability_matrix(self, steps: np.ndarray) -> np.ndarray:
        return np.full((len(steps), len(self.tasks)), 1.0 / len(self.tasks))


class _CappedSampler(TaskSampler):
    options = ("cap",)

    def __init__(self, task_sizes, seed, total_steps, cap: float | None = None) -> None:
        super().__init__(task_sizes, seed, total_steps)
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, (int, float)) or cap <= 0):
            raise LexilabError(f"{_WHERE}.cap: {cap!r} must be null or a positive number")
        self.cap = cap
        self.effective_sizes = _capped(self.sizes, cap)


@register_sampler("proportional")
class ProportionalSampler(_CappedSampler):
    """``p_t ∝ min(n_t, K)`` (Raffel et al. 2020, examples-proportional mixing)."""

    def _probability_matrix(self, steps: np.ndarray) -> np.ndarray:
        p = self.effective_sizes / self.effective_sizes.sum()
        return np.broadcast_to(p, (len(steps), len(p)))


@register_sampler("temperature")
class TemperatureSampler(_CappedSampler):
    """``p_t ∝ min(n_t, K)^α`` (Raffel et al. 2020, temperature-scaled mixing, α = 1/T)."""

    options = ("alpha", "cap")

    def __init__(self, task_sizes, seed, total_steps, alpha: float = 0.5, cap=None) -> None:
        super().__init__(task_sizes, seed, total_steps, cap=cap)
        self.alpha = _check_alpha("alpha", alpha)

    def _probability_matrix(self, steps: np.ndarray) -> np.ndarray:
        return _power_probs(self.effective_sizes, np.full(len(steps), self.alpha))


@register_sampler("annealed")
class AnnealedSampler(_CappedSampler):
    """Temperature sampling with α linear in the step from ``alpha_start`` to ``alpha_end``.

    Stickland & Murray 2019 (BERT and PALs, "annealed sampling": α = 1 − 0.8·(e−1)/(E−1) per
    epoch); jiant (Phang et al. 2020) time-dependent samplers. Here α changes every step and
    stays at ``alpha_end`` after ``total_steps``.
    """

    options = ("alpha_start", "alpha_end", "cap")

    def __init__(self, task_sizes, seed, total_steps, alpha_start: float = 1.0,
                 alpha_end: float = 0.2, cap=None) -> None:
        super().__init__(task_sizes, seed, total_steps, cap=cap)
        if self.total_steps <= 0:
            raise LexilabError(f"{_WHERE}: annealed sampling needs total_steps > 0, got {total_steps}")
        self.alpha_start = _check_alpha("alpha_start", alpha_start)
        self.alpha_end = _check_alpha("alpha_end", alpha_end)

    def alpha(self, step: int | np.ndarray) -> np.ndarray:
        frac = np.minimum(np.asarray(step, dtype=np.float64) / max(self.total_steps - 1, 1), 1.0)
        return self.alpha_start + (self.alpha_end - self.alpha_start) * frac

    def _probability_matrix(self, steps: np.ndarray) -> np.ndarray:
        return _power_probs(self.effective_sizes, self.alpha(steps))


def _check_alpha(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise LexilabError(f"{_WHERE}.{key}: {value!r} must be a finite number")
    return float(value)


def build_sampler(cfg: dict, task_sizes: dict[str, int], seed: int, total_steps: int) -> TaskSampler:
    """Build the sampler of ``cfg`` (the run config's ``sampler`` block).

    ``task_sizes`` maps task name → number of training examples (dict order = task order);
    ``total_steps`` is the number of sampled batches of the whole run (used by ``annealed``).
    The ``steps_per_epoch`` key of ``cfg`` is read by :func:`steps_per_epoch`, not here.
    """
    cfg = dict(cfg or {})
    kind = cfg.pop("kind", "temperature")
    cfg.pop("steps_per_epoch", None)
    if kind not in SAMPLERS:
        raise LexilabError(
            f"{_WHERE}.kind: unknown sampler {kind!r}{did_you_mean(kind, SAMPLERS)}; "
            f"known: {', '.join(sorted(SAMPLERS))}"
        )
    cls = SAMPLERS[kind]
    for key in cfg:
        if key not in cls.options:
            allowed = ", ".join(cls.options) or "none"
            raise LexilabError(
                f"{_WHERE}.{key}: not an option of sampler {kind!r}"
                f"{did_you_mean(key, cls.options)}; options: {allowed}"
            )
    return cls(task_sizes, seed, total_steps, **cfg)


def steps_per_epoch(rule: str | int, task_sizes: dict[str, int], batch_size: int,
                    tasks_per_step: int = 1) -> int:
    """Number of steps (sampled batches) in one epoch.

    - ``"largest"``: ``T · ceil(max_t n_t / B)`` — the steps round-robin needs to pass once over
      the largest task (under uniform sampling that task is seen once in expectation);
    - ``"sum"``: ``Σ_t ceil(n_t / B)`` — one batch per step for every batch of every task (under
      proportional sampling each example is seen once in expectation);
    - an int ``N > 0``: exactly ``N``.

    ``tasks_per_step`` (T for weightings that need every task each step) divides the
    ``largest``/``sum`` counts (rounding up): a step then consumes one batch of every task, so
    ``"largest"`` becomes ``ceil(max_t n_t / B)``. An explicit int is never divided.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise LexilabError(f"config.yaml: train.batch_size: {batch_size!r} must be a positive int")
    if not task_sizes or any(int(n) <= 0 for n in task_sizes.values()):
        raise LexilabError(f"{_WHERE}.steps_per_epoch: every task needs ≥ 1 training example: {task_sizes}")
    if isinstance(rule, bool):
        raise LexilabError(f"{_WHERE}.steps_per_epoch: {rule!r} must be largest, sum or a positive int")
    if isinstance(rule, (int, np.integer)):
        if rule <= 0:
            raise LexilabError(f"{_WHERE}.steps_per_epoch: {rule} must be a positive int")
        return int(rule)
    batches = [math.ceil(int(n) / batch_size) for n in task_sizes.values()]
    if rule == "largest":
        count = len(batches) * max(batches)
    elif rule == "sum":
        count = sum(batches)
    else:
        raise LexilabError(
            f"{_WHERE}.steps_per_epoch: unknown rule {rule!r}"
            f"{did_you_mean(rule, ('largest', 'sum'))}; use largest, sum or a positive int"
        )
    return math.ceil(count / max(int(tasks_per_step), 1))
