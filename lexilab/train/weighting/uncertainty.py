"""Homoscedastic uncertainty weighting (Kendall, Gal & Cipolla, CVPR 2018).

Each task has a learnable ``s_t = log σ_t²`` and the objective is

    L = Σ_t exp(−s_t) · L_t + s_t

i.e. twice Kendall et al.'s Gaussian (regression) form ``L_t/(2σ²) + log σ``; both have the
optimum ``s_t = log L_t``. Their classification (softmax) form would be ``L_t/σ² + log σ``
(= ``exp(−s)L + s/2``, optimum ``s = log 2L``). We use the same form for every task kind, as
LibMTL and most re-implementations do. The reported weight of task t is ``exp(−s_t)``.
The objective is linear in each micro-batch's loss, so gradient accumulation over a window gives
the window-mean answer (``∂/∂s_t = 1 − exp(−s_t) · mean L_t``).

Each ``s_t`` is a separate scalar parameter so a step that samples one task leaves the others'
gradients at ``None`` (AdamW then skips them instead of applying stale momentum).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from lexilab.train.weighting import Weighting, check_number, register_weighting


@register_weighting("uncertainty")
class UncertaintyWeighting(Weighting):
    options = ("init",)

    def __init__(self, task_names, shared_params, seed: int = 0, init: float = 0.0) -> None:
        super().__init__(task_names, shared_params, seed)
        init = check_number("init", init)
        self.log_vars = {t: nn.Parameter(torch.tensor(init)) for t in self.task_names}

    def parameters(self) -> list[nn.Parameter]:
        return [self.log_vars[t] for t in self.task_names]

    def accumulate(self, losses: dict[str, Tensor], shared_params, scale: float = 1.0) -> dict[str, float]:
        self._check_losses(losses)
        total = 0.0
        for t, loss in losses.items():
            s = self.log_vars[t]
            total = total + torch.exp(-s) * loss + s
        # the fp16 loss scale multiplies the whole objective: scaling L_t alone would make
        # ∂/∂s = 1 − S·exp(−s)·L_t, which no unscaling repairs
        (total * scale).backward()
        return {t: float(torch.exp(-self.log_vars[t].detach())) for t in losses}

    def state_dict(self) -> dict:
        # the values also live in the optimizer's param list; saved here so resume needs no model
        return dict(super().state_dict(), log_vars={t: float(p.detach()) for t, p in self.log_vars.items()})

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        with torch.no_grad():
            for t, value in state["log_vars"].items():
                self.log_vars[t].fill_(value)
