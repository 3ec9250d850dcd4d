"""CAGrad, conflict-averse gradient descent (Liu, Liu, Jin, Stone & Liu, NeurIPS 2021,
"Conflict-Averse Gradient Descent for Multi-task Learning", Algorithm 1).

With ``g_0 = (1/T) Σ_t g_t`` and ``c ∈ [0, 1)``, the update maximises the worst task's
improvement within a ball around the mean gradient:

    d = argmax_{‖d − g_0‖ ≤ c‖g_0‖} min_t ⟨g_t, d⟩,

solved through its dual ``w* = argmin_{w ∈ Δ} g_wᵀ g_0 + c‖g_0‖ ‖g_w‖`` (``g_w = Σ_t w_t g_t``),
giving ``d = g_0 + (c‖g_0‖ / ‖g_w*‖) g_w*`` — as in the paper, with no final rescaling (the
authors' code optionally divides by ``1 + c²``). ``c = 0`` is the mean gradient.

torchjd's ``CAGrad`` needs cvxpy + clarabel, which lexilab does not depend on; this module
plugs its own torchjd ``Weighting`` (the dual solved with scipy's SLSQP on the Gram matrix,
like the authors' code) into torchjd's ``GramianWeightedAggregator``.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import minimize
from torch import Tensor
from torchjd.aggregation import GramianWeightedAggregator, Weighting

from lexilab.errors import LexilabError
from lexilab.train.weighting import check_number, register_weighting
from lexilab.train.weighting.aggregation import AggregationWeighting

_EPS = 1e-12


class CAGradGramianWeighting(Weighting):
    """Gram matrix ``G = J Jᵀ`` → weights ``λ`` with ``d = Jᵀ λ`` the CAGrad update."""

    def __init__(self, c: float) -> None:
        super().__init__()
        self.c = c

    def forward(self, gramian: Tensor, /) -> Tensor:
        m = gramian.shape[0]
        G = gramian.detach().cpu().double().numpy()
        scale = float(np.trace(G)) / m
        uniform = np.full(m, 1.0 / m)
        if scale <= _EPS or self.c == 0.0:  # all gradients ~0, or plain mean
            return torch.as_tensor(uniform, dtype=gramian.dtype, device=gramian.device)
        G = G / scale  # the weights are scale-invariant; this keeps the solver well conditioned
        g0_norm = float(np.sqrt(max(uniform @ G @ uniform, 0.0)))
        radius = self.c * g0_norm
        Gg0 = G @ uniform

        def objective(w: np.ndarray) -> tuple[float, np.ndarray]:
            gw_norm = float(np.sqrt(max(w @ G @ w, 0.0) + _EPS))
            return float(w @ Gg0) + radius * gw_norm, Gg0 + radius * (G @ w) / gw_norm

        result = minimize(objective, uniform, jac=True, method="SLSQP",
                          bounds=[(0.0, 1.0)] * m,
                          constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1.0,
                                        "jac": lambda w: np.ones_like(w)}],
                          options={"ftol": 1e-12, "maxiter": 500})
        w = np.clip(result.x, 0.0, None)
        w = w / w.sum()
        gw_norm = float(np.sqrt(max(w @ G @ w, 0.0)))
        # ‖g_w‖ = 0: the hull contains 0 (Pareto-stationary); the authors' code then returns g_0
        weights = uniform + (radius / gw_norm) * w if gw_norm > 1e-9 else uniform
        return torch.as_tensor(weights, dtype=gramian.dtype, device=gramian.device)


@register_weighting("cagrad")
class CAGradWeighting(AggregationWeighting):
    options = ("c",)

    def __init__(self, task_names, shared_params, seed: int = 0, c: float = 0.4, **common) -> None:
        self.c = check_number("c", c, low=0.0)
        if self.c >= 1.0:
            raise LexilabError(f"config.yaml: weighting.c: {c!r} must lie in [0, 1) (CAGrad's convergence condition)")
        super().__init__(task_names, shared_params, seed, **common)

    def make_aggregator(self):
        return GramianWeightedAggregator(CAGradGramianWeighting(self.c))
