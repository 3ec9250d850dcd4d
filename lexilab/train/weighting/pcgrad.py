"""PCGrad, projecting conflicting gradients (Yu et al., NeurIPS 2020, "Gradient Surgery for
Multi-Task Learning", Algorithm 1).

For each task i, in a random order over the other tasks j: if ``g_i^PC · g_j < 0`` then
``g_i^PC ← g_i^PC − (g_i^PC · g_j / ‖g_j‖²) g_j``; the update is ``Σ_i g_i^PC`` (a sum, so its
scale grows with T). Through ``torchjd.aggregation.PCGrad``; the random order draws from the
method's own seeded stream.
"""
from __future__ import annotations

from torchjd.aggregation import PCGrad

from lexilab.train.weighting import register_weighting
from lexilab.train.weighting.aggregation import AggregationWeighting


@register_weighting("pcgrad")
class PCGradWeighting(AggregationWeighting):
    def make_aggregator(self):
        return PCGrad()
