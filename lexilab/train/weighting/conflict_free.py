"""ConFIG, conflict-free inverse gradients (Liu et al., ICLR 2025, "ConFIG: Towards
Conflict-free Training of Physics Informed Neural Networks", Eq. 2).

The direction is ``d̂ ∝ U⁺ 1`` with U the matrix of unit task gradients (so d̂ has the same
cosine with every task gradient), scaled by ``Σ_t g_t · d̂``. Not a row weighting: ``backward``
returns ``{}``. Registered as ``config``. Through ``torchjd.aggregation.ConFIG``.
"""
from __future__ import annotations

from torchjd.aggregation import ConFIG

from lexilab.train.weighting import register_weighting
from lexilab.train.weighting.aggregation import AggregationWeighting


@register_weighting("config")
class ConFIGWeighting(AggregationWeighting):
    def make_aggregator(self):
        return ConFIG()
