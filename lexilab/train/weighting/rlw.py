"""Random loss weighting, RLW (Lin et al., TMLR 2022, "Reasonable Effectiveness of Random
Weighting: A Litmus Test for Multi-Task Learning", Algorithm 2).

Each step draws ``λ = softmax(z)``, ``z ~ N(0, I_T)``, and uses ``d = Σ_t λ_t g_t``. Computed on
the Jacobian (so it needs every task each step) through ``torchjd.aggregation.Random``; the draws
come from the method's own seeded stream.
"""
from __future__ import annotations

from torchjd.aggregation import Random

from lexilab.train.weighting import register_weighting
from lexilab.train.weighting.aggregation import AggregationWeighting


@register_weighting("rlw")
class RLWWeighting(AggregationWeighting):
    def make_aggregator(self):
        return Random()
