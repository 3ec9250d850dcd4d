"""Fixed per-task loss weights: ``L = Σ_t w_t L_t`` with ``w_t`` from the config.

Config: ``weighting: {kind: fixed, weights: {summary: 1.0, emotion: 1.0, topic: 0.3}}``
(LexiMind's hand-picked weights). Every task needs a weight ≥ 0.
"""
from __future__ import annotations

from torch import Tensor

from lexilab.data.registry import did_you_mean
from lexilab.errors import LexilabError
from lexilab.train.weighting import Weighting, check_number, register_weighting, weighted_backward


@register_weighting("fixed")
class FixedWeighting(Weighting):
    options = ("weights",)

    def __init__(self, task_names, shared_params, seed: int = 0, weights: dict | None = None) -> None:
        super().__init__(task_names, shared_params, seed)
        if not isinstance(weights, dict):
            raise LexilabError(
                "config.yaml: weighting.weights: fixed weighting needs a mapping task -> weight"
            )
        for task in weights:
            if task not in self.task_names:
                raise LexilabError(
                    f"config.yaml: weighting.weights.{task}: not a task of this run"
                    f"{did_you_mean(task, self.task_names)}"
                )
        missing = [t for t in self.task_names if t not in weights]
        if missing:
            raise LexilabError(f"config.yaml: weighting.weights: no weight for tasks {missing}")
        self.weights = {t: check_number(f"weights.{t}", weights[t], low=0.0) for t in self.task_names}

    def accumulate(self, losses: dict[str, Tensor], shared_params, scale: float = 1.0) -> dict[str, float]:
        self._check_losses(losses)
        used = {t: self.weights[t] for t in losses}
        weighted_backward(losses, used, scale)
        return used
