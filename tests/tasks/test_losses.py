"""Focal loss (Lin et al. 2017), class weights and pos_weight against PyTorch and NumPy by hand."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.utils.class_weight import compute_class_weight

from lexilab.errors import LexilabError
from lexilab.tasks.losses import (balanced_class_weights, balanced_pos_weight, focal_sigmoid_loss, focal_softmax_loss,
                                  resolve_weights)


def _softmax_case():
    g = torch.Generator().manual_seed(0)
    return torch.randn(7, 4, generator=g, dtype=torch.float64), torch.tensor([0, 3, 1, 1, 2, 0, 3])


def test_softmax_focal_gamma_zero_is_weighted_cross_entropy():
    logits, target = _softmax_case()
    weight = torch.tensor([1.0, 2.0, 0.5, 3.0], dtype=torch.float64)
    assert focal_softmax_loss(logits, target, 0.0).item() == pytest.approx(F.cross_entropy(logits, target).item())
    assert focal_softmax_loss(logits, target, 0.0, weight).item() == pytest.approx(
        F.cross_entropy(logits, target, weight=weight).item())


def test_softmax_focal_matches_numpy():
    logits, target = _softmax_case()
    weight = np.array([1.0, 2.0, 0.5, 3.0])
    x = logits.numpy()
    p = np.exp(x - x.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    pt = p[np.arange(len(x)), target.numpy()]
    per = -((1 - pt) ** 2.0) * np.log(pt)
    w = weight[target.numpy()]
    assert focal_softmax_loss(logits, target, 2.0).item() == pytest.approx(per.mean(), rel=1e-6)
    assert focal_softmax_loss(logits, target, 2.0, torch.tensor(weight)).item() == pytest.approx(
        (w * per).sum() / w.sum(), rel=1e-6)


def test_sigmoid_focal_gamma_zero_is_bce_and_matches_numpy():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(6, 3, generator=g, dtype=torch.float64)
    targets = (torch.rand(6, 3, generator=g) < 0.4).double()
    pos_weight = torch.tensor([1.0, 3.0, 0.5], dtype=torch.float64)
    assert focal_sigmoid_loss(logits, targets, 0.0, pos_weight).item() == pytest.approx(
        F.binary_cross_entropy_with_logits(logits, targets, pos_weight=pos_weight).item())
    p, y = 1 / (1 + np.exp(-logits.numpy())), targets.numpy()
    per = -(pos_weight.numpy() * y * (1 - p) ** 2 * np.log(p) + (1 - y) * p ** 2 * np.log(1 - p))
    assert focal_sigmoid_loss(logits, targets, 2.0, pos_weight).item() == pytest.approx(per.mean(), rel=1e-6)


def test_gradients_stay_finite_when_saturated():
    logits = torch.tensor([[60.0, -60.0, 0.0]], requires_grad=True)
    focal_softmax_loss(logits, torch.tensor([0]), 0.5).backward()
    assert torch.isfinite(logits.grad).all()
    logits = torch.tensor([[60.0, -60.0]], requires_grad=True)
    focal_sigmoid_loss(logits, torch.tensor([[1.0, 0.0]]), 0.5).backward()
    assert torch.isfinite(logits.grad).all()


def test_balanced_weights():
    labels = np.array([0, 0, 0, 1, 2, 2])
    assert balanced_class_weights(labels, 3) == pytest.approx(
        compute_class_weight("balanced", classes=np.arange(3), y=labels).tolist())
    assert balanced_class_weights(labels, 4)[3] == 1.0  # absent from train: never a target
    matrix = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 0], [1, 0, 0]])
    assert balanced_pos_weight(matrix) == pytest.approx([1 / 3, 3.0, 1.0])


def test_resolve_weights_forms_and_errors():
    names = ["x", "y", "z"]
    assert resolve_weights(None, names, None, "w") is None
    assert resolve_weights("balanced", names, [1.0, 2.0, 3.0], "w") == [1.0, 2.0, 3.0]
    assert resolve_weights(2, names, None, "w") == [2.0, 2.0, 2.0]
    assert resolve_weights({"z": 5}, names, None, "w") == [1.0, 1.0, 5.0]
    assert resolve_weights([1, 0, 2], names, None, "w") == [1.0, 0.0, 2.0]
    for bad, match in [([1, 2], "2 weights for 3"), ({"q": 1}, "unknown label"), ([1, -1, 1], ">= 0"), ("big", "expected")]:
        with pytest.raises(LexilabError, match=match):
            resolve_weights(bad, names, None, "tasks.t.loss.class_weights")
