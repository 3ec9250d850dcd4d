"""Aligned-MTL (Senushkin et al., CVPR 2023, "Independent Component Alignment for Multi-Task
Learning", Algorithm 1).

Aligns the principal components of the task-gradient matrix: with the Gram matrix
``G = V Λ Vᵀ``, the balance transformation ``B = √λ_s · V Λ^{-1/2} Vᵀ`` makes the rescaled
gradients orthogonal with equal norm ``√λ_s`` (λ_s the smallest eigenvalue for
``scale_mode: min``; ``median`` and ``rmse`` = mean eigenvalue as in the authors' code), then
averages them. Through ``torchjd.aggregation.AlignedMTL``.
"""
from __future__ import annotations

from torchjd.aggregation import AlignedMTL

from lexilab.errors import LexilabError
from lexilab.train.weighting import register_weighting
from lexilab.train.weighting.aggregation import AggregationWeighting

_MODES = ("min", "median", "rmse")


@register_weighting("aligned_mtl")
class AlignedMTLWeighting(AggregationWeighting):
    options = ("scale_mode",)

    def __init__(self, task_names, shared_params, seed: int = 0, scale_mode: str = "min", **common) -> None:
        if scale_mode not in _MODES:
            raise LexilabError(f"config.yaml: weighting.scale_mode: {scale_mode!r} not in {_MODES}")
        self.scale_mode = scale_mode
        super().__init__(task_names, shared_params, seed, **common)

    def make_aggregator(self):
        return AlignedMTL(scale_mode=self.scale_mode)
