"""GradDrop, gradient sign dropout (Chen et al., NeurIPS 2020, "Just Pick a Sign: Optimizing
Deep Multitask Models with Gradient Sign Dropout", Algorithm 1 lines 10–15).

Per coordinate, the positive-sign purity ``P = ½(1 + Σ_t g_t / Σ_t |g_t|)`` decides, with one
uniform draw U, whether only the positive (``P > U``) or only the negative components are kept;
the kept components are summed. Applied to the gradients of the shared parameters (the paper
applies it at a shared activation layer). Not a row weighting: ``backward`` returns ``{}``.
Through ``torchjd.aggregation.GradDrop``; U comes from the method's own seeded stream.
"""
from __future__ import annotations

from torchjd.aggregation import GradDrop

from lexilab.train.weighting import register_weighting
from lexilab.train.weighting.aggregation import AggregationWeighting


@register_weighting("graddrop")
class GradDropWeighting(AggregationWeighting):
    def make_aggregator(self):
        return GradDrop()
