"""GradVac, gradient vaccine (Wang, Tsvetkov, Firat & Cao, ICLR 2021, "Gradient Vaccine:
Investigating and Improving Multi-task Optimization in Massively Multilingual Models").

Keeps an EMA target cosine ``φ̂_ij`` per task pair; when the current cosine of ``g_i`` (already
corrected) with ``g_j`` is below the target, a closed-form multiple of ``g_j`` is added to
``g_i`` so the cosine reaches the target; ``φ̂_ij ← (1−β) φ̂_ij + β φ_ij``. The update is the sum
of the corrected gradients. Options: ``beta`` (EMA rate, default 0.5 as in torchjd).
Through ``torchjd.aggregation.GradVac``; the EMA targets are saved in ``state_dict`` and the
random task order draws from the method's own seeded stream, so resume is exact.
"""
from __future__ import annotations

from typing import Any

import torch
from torchjd.aggregation import GradVac

from lexilab.errors import LexilabError
from lexilab.train.weighting import check_number, register_weighting
from lexilab.train.weighting.aggregation import AggregationWeighting


@register_weighting("gradvac")
class GradVacWeighting(AggregationWeighting):
    options = ("beta",)

    def __init__(self, task_names, shared_params, seed: int = 0, beta: float = 0.5, **common) -> None:
        self.beta = check_number("beta", beta, low=0.0)
        if self.beta > 1.0:
            raise LexilabError(f"config.yaml: weighting.beta: {beta!r} must lie in [0, 1]")
        super().__init__(task_names, shared_params, seed, **common)

    def make_aggregator(self):
        return GradVac(beta=self.beta)

    # torchjd keeps φ̂ in the weighting's ``_phi_t`` buffer, created lazily for (T, dtype)
    def aggregator_state(self) -> dict[str, Any]:
        phi = self.aggregator.gramian_weighting._phi_t
        return {} if phi is None else {"phi": phi.tolist(), "dtype": str(phi.dtype).removeprefix("torch.")}

    def load_aggregator_state(self, state: dict[str, Any]) -> None:
        weighting = self.aggregator.gramian_weighting
        weighting.reset()
        if "phi" in state:
            dtype = getattr(torch, state["dtype"])
            weighting._phi_t = torch.tensor(state["phi"], dtype=dtype)
            weighting._state_key = (len(state["phi"]), dtype)
