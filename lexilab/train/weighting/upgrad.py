"""UPGrad (Quinton & Rey 2024, "Jacobian Descent for Multi-Objective Optimization").

Each task gradient is projected onto the dual cone of the rows of the Jacobian (the set of
vectors with a non-negative inner product with every task gradient) and the projections are
averaged: the update never conflicts with any task (``⟨d, g_t⟩ ≥ 0``) and its scale follows
the gradients' (identical task gradients g give d = g). The dual-cone projection is solved by
:class:`~lexilab.train.weighting.aggregation.NNLSProjector` (scipy) since torchjd's default
needs the optional quadprog. Through ``torchjd.aggregation.UPGrad``.
"""
from __future__ import annotations

from torchjd.aggregation import UPGrad

from lexilab.train.weighting import register_weighting
from lexilab.train.weighting.aggregation import AggregationWeighting, NNLSProjector


@register_weighting("upgrad")
class UPGradWeighting(AggregationWeighting):
    def make_aggregator(self):
        return UPGrad(projector=NNLSProjector())
