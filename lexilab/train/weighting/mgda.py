"""MGDA (Désidéri 2012; Sener & Koltun, NeurIPS 2018, "Multi-Task Learning as Multi-Objective
Optimization").

The update is the minimum-norm point of the convex hull of the task gradients,
``d = Σ_t λ_t g_t`` with ``λ = argmin_{λ ∈ Δ} λᵀ G λ`` (G the Gram matrix of the task gradients),
computed on the shared *parameters* (not the MGDA-UB representation bound).

For up to :data:`EXACT_MAX_TASKS` tasks the quadratic programme is solved exactly by enumerating
active sets: the optimum has a support S of affinely independent gradients (Carathéodory), on
which λ solves the KKT system ``G_SS λ_S = ν 1, 1ᵀ λ_S = 1``; among the supports whose solution is
non-negative the smallest objective wins. (Sener & Koltun's Frank–Wolfe Algorithm 2 with the
usual stopping rule γ < 1e-3 stops measurably short of that point on 3 tasks.) Above that many
tasks, Frank–Wolfe (``torchjd.aggregation.MGDA``) with the options ``epsilon`` (stop when the
step γ < ε, default 1e-6) and ``max_iters`` (default 1000).
"""
from __future__ import annotations

from itertools import combinations

import numpy as np
import torch
from torch import Tensor
from torchjd.aggregation import MGDA, GramianWeightedAggregator, Weighting

from lexilab.errors import LexilabError
from lexilab.train.weighting import check_number, register_weighting
from lexilab.train.weighting.aggregation import AggregationWeighting

EXACT_MAX_TASKS = 8  # 2^8 − 1 tiny linear solves per step


def min_norm_weights(gram: np.ndarray) -> np.ndarray:
    """``argmin_{λ ∈ Δ} λᵀ G λ`` exactly, by enumerating the supports (small T)."""
    m = gram.shape[0]
    scale = float(np.trace(gram)) / m
    if scale <= 1e-300:  # every gradient is zero: any λ is optimal
        return np.full(m, 1.0 / m)
    G = gram / scale  # λ is scale-invariant; this keeps the solves well conditioned
    best, best_value = None, np.inf
    for size in range(1, m + 1):
        for support in combinations(range(m), size):
            idx = list(support)
            kkt = np.zeros((size + 1, size + 1))
            kkt[:size, :size] = G[np.ix_(idx, idx)]
            kkt[:size, size] = -1.0
            kkt[size, :size] = 1.0
            rhs = np.zeros(size + 1)
            rhs[size] = 1.0
            try:
                solution = np.linalg.solve(kkt, rhs)
            except np.linalg.LinAlgError:  # affinely dependent support: a smaller one covers it
                continue
            lam_s = solution[:size]
            if lam_s.min() < -1e-12:
                continue
            lam = np.zeros(m)
            lam[idx] = np.clip(lam_s, 0.0, None)
            lam /= lam.sum()
            value = float(lam @ G @ lam)
            if value < best_value:
                best, best_value = lam, value
    return best


class ExactMinNormWeighting(Weighting):
    """torchjd Gramian weighting: ``G ↦ argmin_{λ ∈ Δ} λᵀ G λ`` (see :func:`min_norm_weights`)."""

    def forward(self, gramian: Tensor, /) -> Tensor:
        weights = min_norm_weights(gramian.detach().cpu().double().numpy())
        return torch.as_tensor(weights, dtype=gramian.dtype, device=gramian.device)


@register_weighting("mgda")
class MGDAWeighting(AggregationWeighting):
    options = ("epsilon", "max_iters")

    def __init__(self, task_names, shared_params, seed: int = 0, epsilon: float = 1e-6,
                 max_iters: int = 1000, **common) -> None:
        self.epsilon = check_number("epsilon", epsilon, low=0.0, low_inclusive=False)
        if isinstance(max_iters, bool) or not isinstance(max_iters, int) or max_iters <= 0:
            raise LexilabError(f"config.yaml: weighting.max_iters: {max_iters!r} must be a positive int")
        self.max_iters = max_iters
        super().__init__(task_names, shared_params, seed, **common)

    def make_aggregator(self):
        if len(self.task_names) <= EXACT_MAX_TASKS:
            return GramianWeightedAggregator(ExactMinNormWeighting())
        return MGDA(epsilon=self.epsilon, max_iters=self.max_iters)
