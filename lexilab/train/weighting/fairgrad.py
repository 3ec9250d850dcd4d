"""FairGrad (Ban & Ji, ICML 2024, "Fair Resource Allocation in Multi-Task Learning").

α-fair allocation of the update ``d = Σ_t w_t g_t``: the weights solve ``G w = w^{−1/α}``
elementwise (G the Gram matrix of the task gradients), by non-negative least squares
(scipy). ``alpha = 0`` is linear scalarisation with weights 1/T; α=1 proportional fairness,
α=2 minimum potential delay fairness. Through ``torchjd.aggregation.FairGrad``.
"""
from __future__ import annotations

from torchjd.aggregation import FairGrad

from lexilab.train.weighting import check_number, register_weighting
from lexilab.train.weighting.aggregation import AggregationWeighting


@register_weighting("fairgrad")
class FairGradWeighting(AggregationWeighting):
    options = ("alpha",)

    def __init__(self, task_names, shared_params, seed: int = 0, alpha: float = 1.0, **common) -> None:
        self.alpha = check_number("alpha", alpha, low=0.0)
        super().__init__(task_names, shared_params, seed, **common)

    def make_aggregator(self):
        return FairGrad(alpha=self.alpha)
