"""Loss weightings (equal, fixed, uncertainty, DWA, GradNorm) against hand-worked answers."""
from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

from lexilab.errors import LexilabError
from lexilab.train.weighting import WEIGHTINGS, Weighting, build_weighting


class TwoHeads(nn.Module):
    """A shared trunk and one head per task."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.trunk = nn.Linear(4, 3)
        self.heads = nn.ModuleDict({"a": nn.Linear(3, 1), "b": nn.Linear(3, 2)})
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen))
        self.x = torch.randn(5, 4, generator=gen)
        self.y = {"a": torch.randn(5, 1, generator=gen), "b": torch.randn(5, 2, generator=gen)}

    def losses(self, tasks=("a", "b")) -> dict[str, torch.Tensor]:
        h = torch.tanh(self.trunk(self.x))
        return {t: ((self.heads[t](h) - self.y[t]) ** 2).mean() for t in tasks}

    def shared(self) -> list[nn.Parameter]:
        return list(self.trunk.parameters())


def _grads(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _reference_grads(model: TwoHeads, weights: dict[str, float]) -> dict[str, torch.Tensor]:
    ref = copy.deepcopy(model)
    losses = ref.losses(tuple(weights))
    sum(weights[t] * losses[t] for t in weights).backward()
    return _grads(ref)


def test_registry_has_every_method_and_base_interface():
    expected = {"equal", "fixed", "uncertainty", "dwa", "gradnorm", "upgrad", "pcgrad", "cagrad",
                "mgda", "imtlg", "aligned_mtl", "dualproj", "graddrop", "rlw", "mean", "config",
                "fairgrad", "gradvac"}
    assert expected <= set(WEIGHTINGS)
    for name, cls in WEIGHTINGS.items():
        assert issubclass(cls, Weighting) and cls.name == name
    loss_only = {"equal", "fixed", "uncertainty", "dwa"}
    for name in expected:
        assert WEIGHTINGS[name].needs_all_tasks == (name not in loss_only), name


def test_build_errors_are_user_errors():
    model = TwoHeads()
    with pytest.raises(LexilabError, match=r"weighting.kind: unknown weighting 'pcgard' \(did you mean 'pcgrad'\?\)"):
        build_weighting({"kind": "pcgard"}, ["a", "b"], model.shared())
    with pytest.raises(LexilabError, match=r"weighting.temprature: .*did you mean 'temperature'"):
        build_weighting({"kind": "dwa", "temprature": 2}, ["a", "b"], model.shared())
    with pytest.raises(LexilabError, match=r"weighting.weights: no weight for tasks \['b'\]"):
        build_weighting({"kind": "fixed", "weights": {"a": 1.0}}, ["a", "b"], model.shared())
    with pytest.raises(LexilabError, match=r"weights.c: not a task.*did you mean"):
        build_weighting({"kind": "fixed", "weights": {"a": 1, "b": 1, "c": 1}}, ["a", "b", "bc"], model.shared())
    with pytest.raises(LexilabError, match="weights.b"):
        build_weighting({"kind": "fixed", "weights": {"a": 1, "b": -0.5}}, ["a", "b"], model.shared())
    with pytest.raises(LexilabError, match="weighting.c"):
        build_weighting({"kind": "cagrad", "c": 1.5}, ["a", "b"], model.shared())
    with pytest.raises(LexilabError, match="weighting.layer"):
        build_weighting({"kind": "gradnorm", "layer": "nope"}, ["a", "b"], {"trunk": model.shared()})
    assert build_weighting(None, ["a", "b"], model.shared()).name == "equal"


def test_all_task_methods_refuse_a_single_task():
    model = TwoHeads()
    w = build_weighting({"kind": "gradnorm"}, ["a", "b"], model.shared())
    with pytest.raises(ValueError, match="every task"):
        w.backward(model.losses(("a",)), model.shared())


@pytest.mark.parametrize("cfg, weights", [
    ({"kind": "equal"}, {"a": 1.0, "b": 1.0}),
    ({"kind": "fixed", "weights": {"a": 1.0, "b": 0.3}}, {"a": 1.0, "b": 0.3}),
])
def test_equal_and_fixed_equal_manual_weighted_sum(cfg, weights):
    model = TwoHeads()
    expected = _reference_grads(model, weights)
    w = build_weighting(cfg, ["a", "b"], model.shared())
    assert w.backward(model.losses(), model.shared()) == weights
    got = _grads(model)
    assert got.keys() == expected.keys()
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=1e-7)


def test_fixed_single_sampled_task_uses_its_weight():
    model = TwoHeads()
    expected = _reference_grads(model, {"b": 0.3})
    w = build_weighting({"kind": "fixed", "weights": {"a": 1.0, "b": 0.3}}, ["a", "b"], model.shared())
    assert w.backward(model.losses(("b",)), model.shared()) == {"b": 0.3}
    got = _grads(model)
    assert "heads.a.weight" not in got
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=1e-7)


def test_uncertainty_gradients_by_hand():
    model = TwoHeads()
    w = build_weighting({"kind": "uncertainty", "init": 0.5}, ["a", "b"], model.shared())
    params = w.parameters()
    assert len(params) == 2 and all(p.requires_grad for p in params)
    with torch.no_grad():
        params[1].fill_(-0.25)
    values = {t: float(l.detach()) for t, l in model.losses().items()}
    expected = _reference_grads(model, {"a": math.exp(-0.5), "b": math.exp(0.25)})
    used = w.backward(model.losses(), model.shared())
    assert used == pytest.approx({"a": math.exp(-0.5), "b": math.exp(0.25)})
    # d/ds [exp(-s) L + s] = 1 - exp(-s) L
    assert float(params[0].grad) == pytest.approx(1 - math.exp(-0.5) * values["a"], rel=1e-6)
    assert float(params[1].grad) == pytest.approx(1 - math.exp(0.25) * values["b"], rel=1e-6)
    for name, g in expected.items():
        torch.testing.assert_close(_grads(model)[name], g, rtol=1e-6, atol=1e-7)


def test_uncertainty_one_task_step_leaves_other_log_variance_alone():
    model = TwoHeads()
    w = build_weighting({"kind": "uncertainty"}, ["a", "b"], model.shared())
    w.backward(model.losses(("a",)), model.shared())
    assert w.parameters()[0].grad is not None and w.parameters()[1].grad is None
    restored = build_weighting({"kind": "uncertainty"}, ["a", "b"], model.shared())
    with torch.no_grad():
        w.parameters()[0].fill_(0.7)
    restored.load_state_dict(w.state_dict())
    assert float(restored.parameters()[0].detach()) == pytest.approx(0.7)


def test_dwa_weights_by_hand():
    model = TwoHeads()
    w = build_weighting({"kind": "dwa", "temperature": 2.0}, ["a", "b"], model.shared())
    assert w.backward(model.losses(), model.shared()) == {"a": 1.0, "b": 1.0}  # epoch 1
    w.epoch_end({"a": 1.0, "b": 2.0})
    assert w.weights == {"a": 1.0, "b": 1.0}  # epoch 2: still 1
    w.epoch_end({"a": 0.5, "b": 1.8})  # r_a = 0.5, r_b = 0.9
    ea, eb = math.exp(0.5 / 2), math.exp(0.9 / 2)
    expected = {"a": 2 * ea / (ea + eb), "b": 2 * eb / (ea + eb)}
    assert w.weights == pytest.approx(expected, rel=1e-12)
    w.epoch_end({"a": 0.25, "b": 1.8})  # only the last two epochs count: r_a = 0.5, r_b = 1
    ea, eb = math.exp(0.25), math.exp(0.5)
    assert w.weights == pytest.approx({"a": 2 * ea / (ea + eb), "b": 2 * eb / (ea + eb)})
    w.epoch_end({"a": 0.25})  # b missing (never sampled): neutral ratio 1
    ea, eb = math.exp(0.5), math.exp(0.5)
    assert w.weights == pytest.approx({"a": 1.0, "b": 1.0})

    w.epoch_end({"a": 0.5, "b": 2.0})
    w.epoch_end({"a": 0.4, "b": 1.0})  # r = 0.8, 0.5
    fresh = TwoHeads()
    ea, eb = math.exp(0.4), math.exp(0.25)
    weights = {"a": 2 * ea / (ea + eb), "b": 2 * eb / (ea + eb)}
    expected_grads = _reference_grads(fresh, weights)
    assert w.backward(fresh.losses(), fresh.shared()) == pytest.approx(weights)
    for name, g in expected_grads.items():
        torch.testing.assert_close(_grads(fresh)[name], g, rtol=1e-6, atol=1e-7)
    clone = build_weighting({"kind": "dwa"}, ["a", "b"], fresh.shared())
    clone.load_state_dict(w.state_dict())
    clone.epoch_end({"a": 0.2, "b": 1.0})
    w.epoch_end({"a": 0.2, "b": 1.0})
    assert clone.weights == w.weights


def test_gradnorm_two_updates_by_hand():
    """2 tasks, linear model: L_t = (x_t·θ − y_t)², W = θ (the only shared parameter)."""
    x = {"a": np.array([1.0, 2.0]), "b": np.array([-3.0, 0.5])}
    y = {"a": 0.5, "b": 2.0}
    theta = nn.Parameter(torch.tensor([0.3, -0.2], dtype=torch.float64))
    alpha, lr = 0.5, 0.01

    def losses():
        return {t: (torch.tensor(x[t]) @ theta - y[t]) ** 2 for t in ("a", "b")}

    def hand(th, w, l0):
        res = {t: x[t] @ th - y[t] for t in x}
        loss = np.array([res[t] ** 2 for t in ("a", "b")])
        grad = {t: 2 * res[t] * x[t] for t in x}
        norms = np.array([np.linalg.norm(grad["a"]), np.linalg.norm(grad["b"])])
        g = w * norms
        l0 = loss if l0 is None else l0
        r = (loss / l0) / np.mean(loss / l0)
        target = g.mean() * r ** alpha
        grad_w = np.sign(g - target) * norms
        grad_theta = w[0] * grad["a"] + w[1] * grad["b"]
        return grad_w, grad_theta, l0

    wt = build_weighting({"kind": "gradnorm", "alpha": alpha}, ["a", "b"], [theta])
    weights = wt.parameters()[0]
    with torch.no_grad():
        weights.data = weights.data.double()
    # step 1: w = (1, 1), r = 1
    used = wt.backward(losses(), [theta])
    assert used == {"a": 1.0, "b": 1.0}
    gw, gth, l0 = hand(np.array([0.3, -0.2]), np.array([1.0, 1.0]), None)
    # norms and loss ratios are computed in fp32 by design
    np.testing.assert_allclose(weights.grad.numpy(), gw, rtol=1e-6)
    np.testing.assert_allclose(theta.grad.numpy(), gth, rtol=1e-12)
    # one SGD step on both, then step 2 (weights renormalised to sum to T = 2 first)
    with torch.no_grad():
        weights -= lr * weights.grad
        theta -= lr * theta.grad
    weights.grad, theta.grad = None, None
    w2 = np.array([1.0, 1.0]) - lr * gw
    w2 = 2 * w2 / w2.sum()
    used = wt.backward(losses(), [theta])
    assert [used["a"], used["b"]] == pytest.approx(w2.tolist(), rel=1e-6)
    gw2, gth2, _ = hand(theta.detach().numpy(), w2, l0)
    assert not np.allclose(gw2, gw)  # the loss ratios now matter
    np.testing.assert_allclose(weights.grad.numpy(), gw2, rtol=1e-5)
    np.testing.assert_allclose(theta.grad.numpy(), gth2, rtol=1e-5)
    # state restores the weights and L(0)
    other = build_weighting({"kind": "gradnorm", "alpha": alpha}, ["a", "b"], [theta])
    other.load_state_dict(wt.state_dict())
    assert other.initial_losses == pytest.approx(l0.tolist())
    assert other.parameters()[0].tolist() == pytest.approx(weights.tolist())


def test_gradnorm_last_layer_is_the_top_weight_matrix_or_the_named_group():
    model = TwoHeads()
    groups = {"weight": [model.trunk.weight], "bias": [model.trunk.bias]}
    # default: the last ≥2-D parameter of the topmost group that has one (the paper's "last
    # shared layer of weights"); the top group here holds only a bias
    wt = build_weighting({"kind": "gradnorm"}, ["a", "b"], groups)
    assert wt._last_layer(model.shared()) == [model.trunk.weight]
    named = build_weighting({"kind": "gradnorm", "layer": "bias"}, ["a", "b"], groups)
    assert named._last_layer(groups) == [model.trunk.bias]
    named = build_weighting({"kind": "gradnorm", "layer": "weight"}, ["a", "b"], groups)
    assert named._last_layer(groups) == [model.trunk.weight]
    flat = build_weighting({"kind": "gradnorm"}, ["a", "b"], model.shared())
    assert flat._last_layer(model.shared()) == [model.trunk.weight]
    # norms are taken on the chosen layer only
    losses = model.losses()
    norms = [float(torch.autograd.grad(losses[t], model.trunk.weight, retain_graph=True)[0].norm())
             for t in ("a", "b")]
    named.backward(losses, groups)
    mean = sum(norms) / 2
    expected = [math.copysign(n, n - mean) for n in norms]
    assert named.parameters()[0].grad.tolist() == pytest.approx(expected, rel=1e-6)
