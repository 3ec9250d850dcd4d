"""Gradient-conflict diagnostics vs a brute-force reference; .grad and RNG untouched."""
from __future__ import annotations

import copy
import itertools
import json

import pytest
import torch
from torch import nn

from lexilab.train.diagnostics import conflict_rate, gradient_cosines


class Net(nn.Module):
    """Embedding-free toy encoder: two shared blocks, one parameter only task a uses, a head per task."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.block0 = nn.Linear(5, 4)
        self.block1 = nn.Linear(4, 4)
        self.only_a = nn.Parameter(torch.zeros(4))
        self.heads = nn.ModuleDict({"a": nn.Linear(4, 1), "b": nn.Linear(4, 3), "c": nn.Linear(4, 2)})
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen))
        self.x = torch.randn(7, 5, generator=gen)
        self.y = {t: torch.randn(7, h.out_features, generator=gen) for t, h in self.heads.items()}

    def losses(self) -> dict[str, torch.Tensor]:
        h = torch.tanh(self.block1(torch.tanh(self.block0(self.x))))
        out = {}
        for t, head in self.heads.items():
            z = h * self.only_a if t == "a" else h
            out[t] = ((head(z) - self.y[t]) ** 2).mean()
        return out

    def groups(self) -> dict[str, list[nn.Parameter]]:
        return {"block0": list(self.block0.parameters()),
                "block1": list(self.block1.parameters()) + [self.only_a]}


def _brute_force(model: Net) -> list[dict]:
    """Separate backward pass per task on a clone; flatten .grad (None → zeros); cosines in fp64."""
    flat = {}
    for t in model.heads:
        clone = copy.deepcopy(model)
        clone.losses()[t].backward()
        groups = clone.groups()
        flat[t] = {g: torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
                                 for p in ps]).double() for g, ps in groups.items()}
        flat[t]["all"] = torch.cat([flat[t]["block0"], flat[t]["block1"]])
    out = []
    for a, b in itertools.combinations(list(model.heads), 2):
        for g in ("all", "block0", "block1"):
            va, vb = flat[a][g], flat[b][g]
            out.append({"task_a": a, "task_b": b, "group": g, "cosine": float(va @ vb / (va.norm() * vb.norm())),
                        "norm_a": float(va.norm()), "norm_b": float(vb.norm())})
    return out


@pytest.mark.parametrize("seed", [0, 3])  # seed 3 mixes conflicting and aligned pairs
def test_matches_brute_force_reference(seed):
    model = Net(seed)
    records = gradient_cosines(model.losses(), model.groups(), step=42)
    reference = _brute_force(model)
    assert len(records) == len(reference) == 3 * 3
    assert [r["group"] for r in records[:3]] == ["all"] * 3  # "all" first, then groups in order
    got_by = {(r["task_a"], r["task_b"], r["group"]): r for r in records}
    assert len(got_by) == 9
    for ref in reference:
        got = got_by[(ref["task_a"], ref["task_b"], ref["group"])]
        assert got["step"] == 42
        assert got["cosine"] == pytest.approx(ref["cosine"], abs=1e-5)
        assert got["norm_a"] == pytest.approx(ref["norm_a"], rel=1e-5)
        assert got["norm_b"] == pytest.approx(ref["norm_b"], rel=1e-5)
        assert got["norm_ratio"] == pytest.approx(ref["norm_a"] / ref["norm_b"], rel=1e-5)
        assert got["conflict"] == (ref["cosine"] < 0)
    if seed == 3:
        assert any(r["conflict"] for r in records) and not all(r["conflict"] for r in records)
    json.dumps(records)  # JSON-ready


def test_grad_untouched_graph_kept_and_rng_not_consumed():
    model = Net()
    model.block0.weight.grad = torch.full_like(model.block0.weight, 3.0)  # pre-existing grad
    before = {n: (None if p.grad is None else p.grad.clone()) for n, p in model.named_parameters()}
    rng = torch.get_rng_state()
    losses = model.losses()
    gradient_cosines(losses, model.groups(), step=0)
    for n, p in model.named_parameters():
        if before[n] is None:
            assert p.grad is None, n
        else:
            assert torch.equal(p.grad, before[n]), n
    assert torch.equal(torch.get_rng_state(), rng)
    sum(losses.values()).backward()  # the graph is still there for the training backward


def test_opposite_and_identical_losses():
    w = nn.Parameter(torch.tensor([0.5, -1.0, 2.0]))
    v = nn.Parameter(torch.tensor([1.0, 1.0]))
    base = (w ** 2).sum() * v.sum() + w[0]
    losses = {"a": base, "b": -base, "c": 2 * base}
    records = gradient_cosines(losses, {"w": [w], "v": [v]}, step=1)
    by = {(r["task_a"], r["task_b"], r["group"]): r for r in records}
    for group in ("all", "w", "v"):
        assert by[("a", "b", group)]["cosine"] == pytest.approx(-1.0, abs=1e-6)
        assert by[("a", "b", group)]["conflict"] is True
        assert by[("a", "c", group)]["cosine"] == pytest.approx(1.0, abs=1e-6)
        assert by[("a", "c", group)]["norm_ratio"] == pytest.approx(0.5, rel=1e-6)
        assert by[("a", "c", group)]["conflict"] is False


def test_unused_and_frozen_parameters():
    shared = nn.Parameter(torch.tensor([1.0, 2.0]))
    only_a = nn.Parameter(torch.tensor([3.0]))
    frozen = nn.Parameter(torch.tensor([1.0]), requires_grad=False)
    losses = {"a": (shared * frozen).sum() + only_a.sum(), "b": shared[0] * 4.0}
    records = gradient_cosines(losses, {"g1": [shared, frozen], "g2": [only_a], "g3": [frozen]}, step=0)
    by = {r["group"]: r for r in records}
    assert set(by) == {"all", "g1", "g2"}  # g3 has no trainable parameter
    # all: g_a = (1, 1, 1), g_b = (4, 0, 0) -> cos = 4 / (sqrt(3) * 4)
    assert by["all"]["cosine"] == pytest.approx(1 / 3 ** 0.5, rel=1e-6)
    assert by["g2"]["cosine"] is None and by["g2"]["norm_b"] == 0.0
    assert by["g2"]["norm_ratio"] is None and by["g2"]["conflict"] is False
    # a loss with no graph at all counts as a zero gradient
    records = gradient_cosines({"a": losses["a"], "z": torch.tensor(1.0)}, {"g1": [shared]}, step=0)
    assert all(r["cosine"] is None for r in records)
    assert gradient_cosines({"a": losses["a"]}, {"g1": [shared]}, step=0) == []


def test_conflict_rate_summary():
    records = [
        {"task_a": "a", "task_b": "b", "group": "all", "cosine": -0.5},
        {"task_a": "a", "task_b": "b", "group": "all", "cosine": 0.25},
        {"task_a": "a", "task_b": "b", "group": "all", "cosine": -0.25},
        {"task_a": "a", "task_b": "b", "group": "all", "cosine": None},
        {"task_a": "a", "task_b": "b", "group": "enc", "cosine": 0.5},
    ]
    summary = conflict_rate(records)
    assert summary == [
        {"task_a": "a", "task_b": "b", "group": "all", "n": 3, "conflicts": 2,
         "conflict_rate": pytest.approx(2 / 3), "mean_cosine": pytest.approx(-1 / 6)},
        {"task_a": "a", "task_b": "b", "group": "enc", "n": 1, "conflicts": 0,
         "conflict_rate": 0.0, "mean_cosine": 0.5},
    ]
