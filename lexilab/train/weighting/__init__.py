"""Loss weighting and gradient aggregation: one module per method behind one interface.

The trainer builds one :class:`Weighting` per run with :func:`build_weighting`. Per optimizer
step (a window of ``grad_accum`` micro-batches) it calls ``weighting.accumulate(losses,
shared_params, scale)`` for every micro-batch instead of ``loss.backward()``, divides ``.grad`` by
the number of micro-batches, then calls ``weighting.finish(micro_batches, scale)`` once: the
gradient methods aggregate the window's mean per-task gradients there, so ``grad_accum = k`` with
batch b equals ``grad_accum = 1`` with batch k·b for every method. ``backward`` is a window of one
micro-batch. Two families:

- *loss weightings* (``equal``, ``fixed``, ``uncertainty``, ``dwa``): one backward of
  ``Σ_t w_t L_t``; they work with one sampled task per step (``needs_all_tasks = False``);
- *gradient methods* (``gradnorm`` and the Jacobian aggregators ``upgrad``, ``pcgrad``,
  ``cagrad``, ``mgda``, ...): they need the loss of every task at every step
  (``needs_all_tasks = True``).

Adding a method: a module in this package with a :class:`Weighting` subclass decorated by
``@register_weighting("name")``, imported at the bottom of this file.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, Callable, ClassVar, Iterable

from torch import Tensor, nn

from lexilab.data.registry import did_you_mean
from lexilab.errors import LexilabError

_WHERE = "config.yaml: weighting"

SharedParams = list[nn.Parameter] | dict[str, list[nn.Parameter]]


class Weighting(ABC):
    """One loss-weighting / gradient-aggregation method.

    ``accumulate`` adds one micro-batch's contribution to ``.grad`` (like ``loss.backward()``);
    ``finish`` ends the window. ``scale`` is the fp16 loss scale S: the losses passed in are
    unscaled, every method backpropagates S × its objective (so ``.grad`` holds S × the true
    gradient, which the grad scaler unscales as usual) and computes everything non-linear —
    uncertainty's ``+ s`` term, the aggregators' weights, GradNorm's norms — on true-scale
    quantities, so fp16 gives the fp32 answer for every method.
    """

    name: ClassVar[str] = ""
    needs_all_tasks: ClassVar[bool] = False
    options: ClassVar[tuple[str, ...]] = ()  # cfg keys besides ``kind``

    def __init__(self, task_names: list[str], shared_params: SharedParams, seed: int = 0) -> None:
        if not task_names:
            raise LexilabError(f"{_WHERE}: no tasks")
        self.task_names = list(task_names)
        self.seed = int(seed)
        self.shared_groups = _as_groups(shared_params)
        self.groups_given = isinstance(shared_params, dict)
        # a data-parallel run's in-place mean over ranks (lexilab.train.distributed), set by the
        # trainer: what a method computes from the window's gradients goes through it first
        self.reduce_mean: Callable[[Tensor], Tensor] | None = None

    def parameters(self) -> list[nn.Parameter]:
        """Learnable parameters of the method (the trainer adds them to the optimizer)."""
        return []

    def attach(self, backbone: nn.Module) -> None:
        """Called by the trainer with the module holding the shared parameters, before any
        forward pass (the gradient methods' Gramian engine hooks its modules)."""

    @abstractmethod
    def accumulate(self, losses: dict[str, Tensor], shared_params: SharedParams,
                   scale: float = 1.0) -> dict[str, float]:
        """Add one micro-batch's gradients of ``losses`` (task → unscaled scalar) to ``.grad``,
        at ``scale`` × their true value; return the per-task weights used (if already known)."""

    def finish(self, micro_batches: int, scale: float = 1.0) -> dict[str, float]:
        """End of a window of ``micro_batches`` accumulated micro-batches, called after the
        trainer divided ``.grad`` by that count; window-level contributions are added here."""
        return {}

    def backward(self, losses: dict[str, Tensor], shared_params: SharedParams,
                 scale: float = 1.0) -> dict[str, float]:
        """A window of one micro-batch: ``accumulate`` then ``finish(1)``."""
        used = self.accumulate(losses, shared_params, scale)
        return {**used, **self.finish(1, scale)}

    def epoch_end(self, mean_losses: dict[str, float]) -> None:
        """Called by the trainer after each epoch with the epoch's mean training loss per task."""

    def state_dict(self) -> dict[str, Any]:
        return {"kind": self.name, "tasks": list(self.task_names)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("kind") != self.name or list(state.get("tasks", [])) != self.task_names:
            raise LexilabError(
                f"{_WHERE}: saved state is for {state.get('kind')!r} over {state.get('tasks')}, "
                f"not {self.name!r} over {self.task_names}"
            )

    # -- helpers for subclasses ---------------------------------------------------------------
    def _reduce(self, tensor: Tensor) -> Tensor:
        """``tensor`` averaged over the ranks of a data-parallel run, in place (one process: as is)."""
        return tensor if self.reduce_mean is None else self.reduce_mean(tensor)

    def _check_losses(self, losses: dict[str, Tensor]) -> None:
        unknown = [t for t in losses if t not in self.task_names]
        if unknown:
            raise ValueError(f"weighting {self.name}: unknown tasks {unknown}; known {self.task_names}")
        if self.needs_all_tasks and set(losses) != set(self.task_names):
            raise ValueError(
                f"weighting {self.name} needs the loss of every task each step; got {sorted(losses)}"
            )
        if not losses:
            raise ValueError(f"weighting {self.name}: no losses given")


def weighted_backward(losses: dict[str, Tensor], weights: dict[str, Tensor | float],
                      scale: float = 1.0) -> None:
    """One backward pass of ``scale · Σ_t w_t L_t`` (gradients accumulate into ``.grad``)."""
    total = sum(weights[t] * loss for t, loss in losses.items())
    (total * scale).backward()


def _as_groups(shared_params: SharedParams | Iterable[nn.Parameter]) -> dict[str, list[nn.Parameter]]:
    if isinstance(shared_params, dict):
        return {name: list(params) for name, params in shared_params.items()}
    return {"shared": list(shared_params)}


def flat_params(shared_params: SharedParams | Iterable[nn.Parameter]) -> list[nn.Parameter]:
    """Shared parameters as one de-duplicated list (trainable ones only, order kept)."""
    seen: set[int] = set()
    out = []
    for params in _as_groups(shared_params).values():
        for p in params:
            if p.requires_grad and id(p) not in seen:
                seen.add(id(p))
                out.append(p)
    return out


WEIGHTINGS: dict[str, type[Weighting]] = {}


def register_weighting(name: str) -> Callable[[type[Weighting]], type[Weighting]]:
    """Class decorator adding a method under ``name`` (the cfg ``kind``)."""

    def wrap(cls: type[Weighting]) -> type[Weighting]:
        if name in WEIGHTINGS:
            raise ValueError(f"weighting {name!r} registered twice")
        cls.name = name
        WEIGHTINGS[name] = cls
        return cls

    return wrap


def build_weighting(cfg: dict | None, task_names: list[str], shared_params: SharedParams,
                    seed: int = 0) -> Weighting:
    """Build the method of ``cfg`` (the run config's ``weighting`` block, ``{kind, **options}``).

    ``shared_params`` is the list of shared (backbone) parameters, or the ordered mapping
    group → parameters of ``backbone.shared_parameter_groups()`` (GradNorm then uses the top
    group as "the last shared layer"). ``seed`` seeds the methods that draw random numbers
    (pcgrad, graddrop, rlw, gradvac); their draws never touch torch's global RNG.
    """
    cfg = dict(cfg or {})
    kind = cfg.pop("kind", "equal")
    if kind not in WEIGHTINGS:
        raise LexilabError(
            f"{_WHERE}.kind: unknown weighting {kind!r}{did_you_mean(kind, WEIGHTINGS)}; "
            f"known: {', '.join(sorted(WEIGHTINGS))}"
        )
    cls = WEIGHTINGS[kind]
    for key in cfg:
        if key not in cls.options:
            raise LexilabError(
                f"{_WHERE}.{key}: not an option of weighting {kind!r}"
                f"{did_you_mean(key, cls.options)}; options: {', '.join(cls.options) or 'none'}"
            )
    return cls(list(task_names), shared_params, seed=seed, **cfg)


def check_number(key: str, value: Any, low: float | None = None, low_inclusive: bool = True) -> float:
    """A user-given option as a finite float (optionally bounded below), else LexilabError."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    if ok and low is not None:
        ok = value >= low if low_inclusive else value > low
    if not ok:
        bound = "" if low is None else f" {'≥' if low_inclusive else '>'} {low}"
        raise LexilabError(f"{_WHERE}.{key}: {value!r} must be a finite number{bound}")
    return float(value)


# Populate the registry (each module registers itself).
from lexilab.train.weighting import (  # noqa: E402,F401
    aligned_mtl,
    cagrad,
    conflict_free,
    dualproj,
    dwa,
    equal,
    fairgrad,
    fixed,
    graddrop,
    gradnorm,
    gradvac,
    imtlg,
    mean,
    mgda,
    pcgrad,
    rlw,
    uncertainty,
    upgrad,
)
