"""Equal weighting: ``L = Σ_t L_t`` — the baseline every MTL method must beat.

Tuned equal weighting is the required baseline in the MTL literature (Xin et al. 2022, "Do
current multi-task optimization methods in deep learning even help?"; Kurin et al. 2022, "In
defense of the unitary scalarization for deep multi-task learning").
"""
from __future__ import annotations

from torch import Tensor

from lexilab.train.weighting import Weighting, register_weighting, weighted_backward


@register_weighting("equal")
class EqualWeighting(Weighting):
    """Every task loss with weight 1 (one sampled task per step, or all tasks)."""

    def accumulate(self, losses: dict[str, Tensor], shared_params, scale: float = 1.0) -> dict[str, float]:
        self._check_losses(losses)
        weights = {t: 1.0 for t in losses}
        weighted_backward(losses, weights, scale)
        return weights
