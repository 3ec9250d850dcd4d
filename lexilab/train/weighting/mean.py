"""Mean of the task gradients, ``d = (1/T) Σ_t g_t`` — the control arm for the aggregation
methods: the same all-tasks-per-step compute path with no conflict handling (equal to
``equal`` weighting over all tasks, divided by T). Through ``torchjd.aggregation.Mean``.
"""
from __future__ import annotations

from torchjd.aggregation import Mean

from lexilab.train.weighting import register_weighting
from lexilab.train.weighting.aggregation import AggregationWeighting


@register_weighting("mean")
class MeanWeighting(AggregationWeighting):
    def make_aggregator(self):
        return Mean()
