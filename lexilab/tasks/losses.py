"""Classification losses: cross-entropy / BCE with class weights or pos_weight, and focal loss.

Focal loss: Lin, Goyal, Girshick, He, Dollár (2017), "Focal Loss for Dense Object Detection",
FL(p_t) = -α_t (1 - p_t)^γ log p_t. With γ = 0 both focal functions equal PyTorch's weighted
cross-entropy / BCE-with-logits exactly (same weighting and same mean), which the tests check.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from lexilab.errors import LexilabError


def focal_softmax_loss(
    logits: torch.Tensor, target: torch.Tensor, gamma: float, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Multiclass focal loss, mean over the batch.

    ``weight`` (C,) plays α_t (the class weight of each row's target); as in
    ``F.cross_entropy(weight=...)`` the mean is Σ w_t·FL / Σ w_t.
    """
    log_p = F.log_softmax(logits.float(), dim=-1)
    log_pt = log_p.gather(1, target.unsqueeze(1)).squeeze(1)
    losses = -log_pt
    if gamma:
        # clamp: (1 - p_t)^γ has an infinite derivative at p_t = 1 when γ < 1
        losses = losses * (1.0 - log_pt.exp()).clamp_min(1e-12) ** gamma
    if weight is None:
        return losses.mean()
    w = weight.to(losses)[target]
    return (w * losses).sum() / w.sum()


def focal_sigmoid_loss(
    logits: torch.Tensor, targets: torch.Tensor, gamma: float, pos_weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Multilabel (per-class sigmoid) focal loss, mean over all (example, class) cells.

    Per cell: -[pw·y·(1-p)^γ·log p + (1-y)·p^γ·log(1-p)]; ``pos_weight`` (C,) multiplies the
    positive term as in ``F.binary_cross_entropy_with_logits``.
    """
    logits, targets = logits.float(), targets.float()
    log_p, log_not_p = F.logsigmoid(logits), F.logsigmoid(-logits)
    # (1-p)^γ = exp(γ·log(1-p)) and p^γ = exp(γ·log p): finite gradients even when saturated
    positive = targets * torch.exp(gamma * log_not_p) * log_p
    if pos_weight is not None:
        positive = positive * pos_weight.to(positive)
    negative = (1.0 - targets) * torch.exp(gamma * log_p) * log_not_p
    return -(positive + negative).mean()


def balanced_class_weights(label_ids: Sequence[int], n_classes: int) -> list[float]:
    """scikit-learn's "balanced" rule n / (C · count_c); a class absent from train gets 1.0
    (it is never a target, so its weight never enters the loss)."""
    counts = np.bincount(np.asarray(label_ids, dtype=int), minlength=n_classes)
    total = counts.sum()
    return [float(total / (n_classes * c)) if c > 0 else 1.0 for c in counts]


def balanced_pos_weight(label_matrix: np.ndarray) -> list[float]:
    """negatives / positives per class (the BCE pos_weight that balances each class);
    1.0 for a class with no positive in train."""
    label_matrix = np.asarray(label_matrix, dtype=int)
    positives = label_matrix.sum(axis=0)
    negatives = label_matrix.shape[0] - positives
    return [float(n / p) if p > 0 else 1.0 for n, p in zip(negatives, positives)]


def resolve_weights(value, label_names: Sequence[str], balanced: list[float] | None, where: str) -> list[float] | None:
    """Class weights / pos_weight from the config: null, "balanced", one number (every label),
    a mapping label → weight (labels not named keep 1.0), or a list in ``label_names`` order."""
    if value is None:
        return None
    if value == "balanced":
        return balanced
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        weights = [float(value)] * len(label_names)
    elif isinstance(value, Mapping):
        unknown = sorted(set(map(str, value)) - set(label_names))
        if unknown:
            raise LexilabError(f"{where}: unknown label(s) {unknown}; known: {', '.join(label_names)}")
        weights = [float(value.get(name, 1.0)) for name in label_names]
    elif isinstance(value, (list, tuple)):
        if len(value) != len(label_names):
            raise LexilabError(f"{where}: {len(value)} weights for {len(label_names)} labels ({', '.join(label_names)})")
        weights = [float(v) for v in value]
    else:
        raise LexilabError(f"{where}: expected null, 'balanced', a list or a mapping label -> weight, got {value!r}")
    if any(not np.isfinite(w) or w < 0 for w in weights):
        raise LexilabError(f"{where}: weights must be finite and >= 0, got {weights}")
    return weights
