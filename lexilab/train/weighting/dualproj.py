"""DualProj (Quinton & Rey 2024, "Jacobian Descent for Multi-Objective Optimization").

Projects the mean task gradient onto the dual cone of the task gradients (the closest vector
to the mean with ``⟨d, g_t⟩ ≥ 0`` for every t); when the mean conflicts with no task it is
returned unchanged. The dual-cone projection is solved by
:class:`~lexilab.train.weighting.aggregation.NNLSProjector` (scipy) since torchjd's default
needs the optional quadprog. Through ``torchjd.aggregation.DualProj``.
"""
from __future__ import annotations

from torchjd.aggregation import DualProj

from lexilab.train.weighting import register_weighting
from lexilab.train.weighting.aggregation import AggregationWeighting, NNLSProjector


@register_weighting("dualproj")
class DualProjWeighting(AggregationWeighting):
    def make_aggregator(self):
        return DualProj(projector=NNLSProjector())
