"""Pooling registry: mask-awareness against brute force, attention pooling by hand, bf16."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lexilab.errors import LexilabError
from lexilab.model.pooling import POOLINGS, Pooling, build_pooling, register_pooling

D = 8


def make_batch(seed: int = 0, dtype: torch.dtype = torch.float32):
    """States (4, 6, D) and a mask with right padding, left padding, full and single-token rows."""
    g = torch.Generator().manual_seed(seed)
    states = torch.randn(4, 6, D, generator=g, dtype=torch.float64).to(dtype)
    mask = torch.tensor(
        [
            [1, 1, 1, 0, 0, 0],  # right padding
            [0, 0, 1, 1, 1, 1],  # left padding
            [1, 1, 1, 1, 1, 1],  # no padding
            [0, 0, 0, 1, 0, 0],  # a single valid token in the middle
        ]
    )
    return states, mask


def build(name: str, d: int = D, seed: int = 0) -> Pooling:
    pooling = build_pooling(name, d)
    with torch.no_grad():
        for p in pooling.parameters():  # a non-trivial query for attention pooling
            p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(seed + 1)))
    return pooling


def test_registry_holds_the_documented_poolings():
    assert set(POOLINGS) == {"mean", "max", "first", "attention"}
    for name, cls in POOLINGS.items():
        assert isinstance(build_pooling(name, D), cls)


@pytest.mark.parametrize("name", sorted(POOLINGS))
@pytest.mark.parametrize("fill", ["huge", "inf", "nan"])
def test_padding_never_changes_the_pooled_vector(name, fill):
    states, mask = make_batch()
    pooling = build(name)
    reference = pooling(states, mask)
    g = torch.Generator().manual_seed(7)
    garbage = {
        "huge": torch.randn(states.shape, generator=g) * 1e30,
        "inf": torch.full(states.shape, float("inf")) * torch.randn(states.shape, generator=g).sign(),
        "nan": torch.full(states.shape, float("nan")),
    }[fill]
    poisoned = torch.where(mask.bool().unsqueeze(-1), states, garbage)
    out = pooling(poisoned, mask)
    assert torch.isfinite(out).all()
    assert torch.equal(out, reference)


def brute_force(name: str, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    rows = []
    for b in range(states.shape[0]):
        valid = states[b][mask[b].bool()].double()
        rows.append({"mean": valid.mean(0), "max": valid.max(0).values, "first": valid[0]}[name])
    return torch.stack(rows)


@pytest.mark.parametrize("name", ["mean", "max", "first"])
def test_simple_poolings_equal_per_row_brute_force(name):
    states, mask = make_batch(seed=3)
    out = build_pooling(name, D)(states, mask)
    torch.testing.assert_close(out.double(), brute_force(name, states, mask), atol=1e-6, rtol=1e-6)


def test_max_pooling_of_negative_states_ignores_zeroed_padding():
    # All valid values negative: a padded 0 must not win the max.
    states = -torch.rand(1, 4, D) - 1.0
    mask = torch.tensor([[1, 1, 0, 0]])
    out = build_pooling("max", D)(states, mask)
    torch.testing.assert_close(out, states[:, :2].amax(dim=1))
    assert (out < 0).all()


@pytest.mark.parametrize("mask_dtype", [torch.bool, torch.int64, torch.float32])
def test_mask_dtypes_agree(mask_dtype):
    states, mask = make_batch(seed=4)
    for name in POOLINGS:
        pooling = build(name)
        torch.testing.assert_close(pooling(states, mask.to(mask_dtype)), pooling(states, mask.bool()))


def test_attention_pooling_of_a_single_valid_token_returns_its_state():
    states, mask = make_batch(seed=5)
    pooling = build("attention")
    with torch.no_grad():
        pooling.query.mul_(50.0)  # large scores must not matter with one valid position
    out = pooling(states, mask)
    torch.testing.assert_close(out[3], states[3, 3], atol=1e-6, rtol=0)


def test_attention_pooling_equals_hand_computation():
    states, mask = make_batch(seed=6)
    pooling = build("attention", seed=11)
    out = pooling(states, mask).detach().double().numpy()
    h = states.double().numpy()
    q = pooling.query.detach().double().numpy()
    m = mask.numpy().astype(bool)
    for b in range(h.shape[0]):
        valid = h[b][m[b]]
        scores = valid @ q / math.sqrt(D)
        w = np.exp(scores - scores.max())
        w /= w.sum()
        np.testing.assert_allclose(out[b], w @ valid, rtol=1e-5, atol=1e-6)


def test_untrained_attention_pooling_is_mean_pooling():
    states, mask = make_batch(seed=8)
    attention = build_pooling("attention", D)  # query starts at zero: uniform weights
    torch.testing.assert_close(attention(states, mask), build_pooling("mean", D)(states, mask))


@pytest.mark.parametrize("name", sorted(POOLINGS))
def test_fully_padded_row_is_zero_with_finite_gradients(name):
    states, mask = make_batch(seed=9)
    mask[1] = 0
    states = states.clone().requires_grad_(True)
    pooling = build(name)
    out = pooling(states, mask)
    assert torch.isfinite(out).all()
    assert torch.equal(out[1], torch.zeros(D))
    out.square().sum().backward()
    assert torch.isfinite(states.grad).all()
    assert torch.equal(states.grad[1], torch.zeros(6, D))
    for p in pooling.parameters():
        assert torch.isfinite(p.grad).all()


def test_gradients_flow_to_the_attention_query():
    states, mask = make_batch(seed=10)
    pooling = build_pooling("attention", D)  # zero-initialised query: gradient still non-zero
    target = torch.randn(4, D, generator=torch.Generator().manual_seed(1))
    (pooling(states, mask) * target).sum().backward()
    assert pooling.query.grad is not None and pooling.query.grad.abs().sum() > 0


def test_attention_pooling_gradients_match_finite_differences():
    states, mask = make_batch(seed=12, dtype=torch.float64)
    pooling = build("attention").double()
    states.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda s, q: _attention_with_query(pooling, s, q, mask),
                                    (states, pooling.query.detach().clone().requires_grad_(True)))


def _attention_with_query(pooling, states, query, mask):
    return torch.func.functional_call(pooling, {"query": query}, (states, mask))


@pytest.mark.parametrize("name", sorted(POOLINGS))
def test_bf16_states_pool_in_their_dtype_close_to_float32(name):
    states, mask = make_batch(seed=13)
    pooling = build(name)
    bf16 = states.to(torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = pooling(bf16, mask)
    assert out.dtype == torch.bfloat16
    # Reference: the same bf16-rounded values pooled in float32.
    torch.testing.assert_close(out.float(), pooling(bf16.float(), mask), atol=2e-2, rtol=2e-2)


def test_autocast_with_float32_states_runs_and_keeps_float32():
    states, mask = make_batch(seed=14)
    pooling = build("attention")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = pooling(states, mask)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, pooling(states, mask))


def test_mean_pooling_sums_long_bf16_sequences_in_float32():
    # 4096 copies of 1 + 2^-7 (exact in bf16): a bf16 running sum would stall near 256.
    value = 1.0 + 2.0 ** -7
    states = torch.full((1, 4096, D), value, dtype=torch.bfloat16)
    out = build_pooling("mean", D)(states, torch.ones(1, 4096))
    assert torch.equal(out, torch.full((1, D), value, dtype=torch.bfloat16))


def test_attention_query_is_one_parameter_vector():
    assert sum(p.numel() for p in build_pooling("attention", 32).parameters()) == 32
    for name in ("mean", "max", "first"):
        assert list(build_pooling(name, 32).parameters()) == []


def test_unknown_pooling_names_a_close_match():
    with pytest.raises(LexilabError, match=r"tasks\.emotion\.pooling: unknown pooling 'maen'; did you mean 'mean'"):
        build_pooling("maen", D, where="tasks.emotion.pooling")
    with pytest.raises(LexilabError, match="known: attention, first, max, mean"):
        build_pooling("cls", D)


def test_shape_errors_are_one_line():
    pooling = build_pooling("mean", D)
    with pytest.raises(LexilabError, match=r"attention_mask \(2, 5\) does not match states \(2, 6, 8\)"):
        pooling(torch.zeros(2, 6, D), torch.ones(2, 5))
    with pytest.raises(LexilabError, match=r"states must be \(batch, length, 8\)"):
        pooling(torch.zeros(2, 6, D + 1), torch.ones(2, 6))


def test_registering_a_pooling_is_one_class(monkeypatch):
    monkeypatch.setattr("lexilab.model.pooling.POOLINGS", dict(POOLINGS))

    @register_pooling("last")
    class LastPooling(Pooling):
        def _pool(self, states, mask):
            last = mask.shape[1] - 1 - mask.flip(1).to(torch.int8).argmax(dim=1)
            return states[torch.arange(states.shape[0]), last]

    states, mask = make_batch(seed=15)
    out = build_pooling("last", D)(states, mask)
    torch.testing.assert_close(out[0], states[0, 2])
    torch.testing.assert_close(out[1], states[1, 5])
    with pytest.raises(ValueError, match="already registered"):
        register_pooling("last")(LastPooling)


@pytest.mark.gpu
@pytest.mark.parametrize("name", sorted(POOLINGS))
def test_cuda_bf16_pooling_matches_cpu(name):
    states, mask = make_batch(seed=16)
    pooling = build(name)
    expected = pooling(states.to(torch.bfloat16).float(), mask)
    gpu = pooling.to("cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = gpu(states.to("cuda", torch.bfloat16), mask.to("cuda"))
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float().cpu(), expected, atol=2e-2, rtol=2e-2)
