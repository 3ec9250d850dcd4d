"""MGDA (Désidéri 2012; Sener & Koltun, NeurIPS 2018, "Multi-Task Learning as Multi-Objective
Optimization").

The update is the minimum-norm point of the convex hull of the task gradients,
``d = Σ_t λ_t g_t`` with ``λ = argmin_{λ ∈ Δ} ‖Σ_t λ_t g_t‖²`` (Frank–Wolfe, Sener & Koltun's
Algorithm 2; exact for two tasks), computed on the shared *parameters* (not the MGDA-UB
representation bound). Options: ``epsilon`` (stop when the step γ < ε, default 1e-3),
``max_iters`` (default 100). Through ``torchjd.aggregation.MGDA``.
"""
from __future__ import annotations

from torchjd.aggregation import MGDA

from lexilab.errors import LexilabError
from lexilab.train.weighting import check_number, register_weighting
from lexilab.train.weighting.aggregation import AggregationWeighting


@register_weighting("mgda")
class MGDAWeighting(AggregationWeighting):
    options = ("epsilon", "max_iters")

    def __init__(self, task_names, shared_params, seed: int = 0, epsilon: float = 1e-3,
                 max_iters: int = 100) -> None:
        self.epsilon = check_number("epsilon", epsilon, low=0.0, low_inclusive=False)
        if isinstance(max_iters, bool) or not isinstance(max_iters, int) or max_iters <= 0:
            raise LexilabError(f"config.yaml: weighting.max_iters: {max_iters!r} must be a positive int")
        self.max_iters = max_iters
        super().__init__(task_names, shared_params, seed)

    def make_aggregator(self):
        return MGDA(epsilon=self.epsilon, max_iters=self.max_iters)
