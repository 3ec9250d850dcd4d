"""Dynamic Weight Average (Liu, Johns & Davison, CVPR 2019, "End-to-end multi-task learning
with attention", Eq. 7).

    w_t(e) = T · exp(r_t(e−1)/τ) / Σ_i exp(r_i(e−1)/τ),   r_t(e−1) = L_t(e−1) / L_t(e−2)

where ``L_t(e)`` is task t's mean training loss over epoch e (the trainer passes it to
``epoch_end``) and τ the temperature (paper: 2). Weights are 1 during the first two epochs.
If a task has no (or a non-positive) mean loss in one of the two previous epochs — possible
when a sampler skipped it — its ratio is taken as 1 (neutral).
"""
from __future__ import annotations

import math

from torch import Tensor

from lexilab.train.weighting import Weighting, check_number, register_weighting, weighted_backward


@register_weighting("dwa")
class DWAWeighting(Weighting):
    options = ("temperature",)

    def __init__(self, task_names, shared_params, seed: int = 0, temperature: float = 2.0) -> None:
        super().__init__(task_names, shared_params, seed)
        self.temperature = check_number("temperature", temperature, low=0.0, low_inclusive=False)
        self.history: list[dict[str, float]] = []  # mean losses of the last two epochs
        self.weights = {t: 1.0 for t in self.task_names}

    def accumulate(self, losses: dict[str, Tensor], shared_params, scale: float = 1.0) -> dict[str, float]:
        self._check_losses(losses)
        used = {t: self.weights[t] for t in losses}
        weighted_backward(losses, used, scale)
        return used

    def epoch_end(self, mean_losses: dict[str, float]) -> None:
        self.history = (self.history + [{t: float(v) for t, v in mean_losses.items()}])[-2:]
        if len(self.history) < 2:
            return
        before, last = self.history
        ratios = {}
        for t in self.task_names:
            a, b = last.get(t), before.get(t)
            ok = a is not None and b is not None and b > 0 and math.isfinite(a) and math.isfinite(b)
            ratios[t] = a / b if ok else 1.0
        top = max(r / self.temperature for r in ratios.values())  # stable softmax
        exps = {t: math.exp(r / self.temperature - top) for t, r in ratios.items()}
        norm = sum(exps.values())
        self.weights = {t: len(self.task_names) * e / norm for t, e in exps.items()}

    def state_dict(self) -> dict:
        return dict(super().state_dict(), history=[dict(h) for h in self.history], weights=dict(self.weights))

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.history = [dict(h) for h in state["history"]]
        self.weights = dict(state["weights"])
