"""IMTL-G, the gradient half of Impartial Multi-Task Learning (Liu et al., ICLR 2021).

Finds the update ``d = Σ_t α_t g_t`` (``Σ α_t = 1``) whose projections onto every unit task
gradient are equal (``d·u_t`` the same for all t, ``u_t = g_t/‖g_t‖``); torchjd's version uses a
pseudo-inverse so linearly dependent gradients are allowed. Through
``torchjd.aggregation.IMTLG``.
"""
from __future__ import annotations

from torchjd.aggregation import IMTLG

from lexilab.train.weighting import register_weighting
from lexilab.train.weighting.aggregation import AggregationWeighting


@register_weighting("imtlg")
class IMTLGWeighting(AggregationWeighting):
    def make_aggregator(self):
        return IMTLG()
