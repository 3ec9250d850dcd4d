"""Classification heads: shapes, residual path by hand, dropout, parameter counts, config errors."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lexilab.errors import LexilabError
from lexilab.model.heads import HEADS, build_head, register_head, take_options


def seeded_head(cfg, d_model, n_outputs, seed=0):
    # fork_rng: a reproducible init without touching the suite's global RNG state.
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return build_head(cfg, d_model, n_outputs)


def inputs(b=5, d=16, seed=1):
    return torch.randn(b, d, generator=torch.Generator().manual_seed(seed))


def test_registry_holds_linear_and_mlp():
    assert set(HEADS) == {"linear", "mlp"}


@pytest.mark.parametrize(
    "cfg",
    [
        None,
        {"kind": "linear"},
        {"kind": "linear", "dropout": 0.2},
        {"kind": "mlp"},
        {"kind": "mlp", "hidden": 7, "dropout": 0.0, "layer_norm": True, "residual": True},
        {"kind": "mlp", "hidden": 16, "residual": True},
        {"kind": "mlp", "hidden": 40, "layer_norm": True},
    ],
)
def test_output_shape(cfg):
    head = seeded_head(cfg, 16, 3).eval()
    assert head(inputs()).shape == (5, 3)


def test_linear_head_is_an_affine_map():
    head = seeded_head({"kind": "linear"}, 16, 4).eval()
    x = inputs()
    torch.testing.assert_close(head(x), x @ head.out.weight.T + head.out.bias)


def test_mlp_forward_equals_formula():
    head = seeded_head({"kind": "mlp", "hidden": 12, "layer_norm": True, "residual": True}, 16, 3).eval()
    with torch.no_grad():  # non-trivial LayerNorm affine parameters
        head.norm.weight.uniform_(0.5, 1.5, generator=torch.Generator().manual_seed(2))
        head.norm.bias.uniform_(-0.5, 0.5, generator=torch.Generator().manual_seed(3))
    x = inputs()
    mu, var = x.mean(-1, keepdim=True), x.var(-1, unbiased=False, keepdim=True)
    z = (x - mu) / torch.sqrt(var + 1e-5) * head.norm.weight + head.norm.bias
    pre = z @ head.fc1.weight.T + head.fc1.bias
    h = 0.5 * pre * (1.0 + torch.erf(pre / 2.0 ** 0.5))  # exact GELU
    h = h + x @ head.skip.weight.T
    torch.testing.assert_close(head(x), h @ head.fc2.weight.T + head.fc2.bias)


@pytest.mark.parametrize("layer_norm", [False, True])
def test_residual_with_zeroed_inner_layer_is_identity_when_hidden_equals_d_model(layer_norm):
    head = seeded_head({"kind": "mlp", "hidden": 16, "residual": True, "layer_norm": layer_norm}, 16, 3)
    head.eval()
    with torch.no_grad():
        head.fc1.weight.zero_()
        head.fc1.bias.zero_()  # GELU(0) = 0: only the skip path remains
    x = inputs()
    # The skip carries the raw input (not the LayerNorm output): out = W2 x + b2.
    torch.testing.assert_close(head(x), x @ head.fc2.weight.T + head.fc2.bias)


def test_residual_with_zeroed_inner_layer_uses_the_projection_when_hidden_differs():
    head = seeded_head({"kind": "mlp", "hidden": 6, "residual": True}, 16, 3).eval()
    assert head.skip.weight.shape == (6, 16) and head.skip.bias is None
    with torch.no_grad():
        head.fc1.weight.zero_()
        head.fc1.bias.zero_()
    x = inputs()
    torch.testing.assert_close(head(x), (x @ head.skip.weight.T) @ head.fc2.weight.T + head.fc2.bias)


def test_no_residual_with_zeroed_inner_layer_gives_the_output_bias():
    head = seeded_head({"kind": "mlp", "hidden": 16, "residual": False}, 16, 3).eval()
    with torch.no_grad():
        head.fc1.weight.zero_()
        head.fc1.bias.zero_()
    torch.testing.assert_close(head(inputs()), head.fc2.bias.expand(5, 3))


@pytest.mark.parametrize("cfg", [{"kind": "linear", "dropout": 0.5},
                                 {"kind": "mlp", "dropout": 0.5, "residual": True}])
def test_dropout_is_off_in_eval_and_on_in_train(cfg):
    head = seeded_head(cfg, 16, 3)
    x = inputs(b=64)
    head.eval()
    assert torch.equal(head(x), head(x))
    head.train()
    with torch.random.fork_rng():
        torch.manual_seed(0)
        a, b = head(x), head(x)
    assert not torch.equal(a, b)


def count(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("d,n", [(16, 3), (32, 28), (8, 1)])
@pytest.mark.parametrize("hidden", [None, 5, 40])
@pytest.mark.parametrize("layer_norm", [False, True])
@pytest.mark.parametrize("residual", [False, True])
def test_mlp_parameter_count_matches_formula(d, n, hidden, layer_norm, residual):
    cfg = {"kind": "mlp", "layer_norm": layer_norm, "residual": residual}
    if hidden is not None:
        cfg["hidden"] = hidden
    h = d if hidden is None else hidden
    expected = (2 * d if layer_norm else 0) + d * h + h + h * n + n + (d * h if residual and h != d else 0)
    assert count(build_head(cfg, d, n)) == expected


@pytest.mark.parametrize("d,n", [(16, 3), (768, 28)])
def test_linear_parameter_count_matches_formula(d, n):
    assert count(build_head({"kind": "linear"}, d, n)) == d * n + n


def test_gradients_reach_every_parameter():
    head = seeded_head({"kind": "mlp", "hidden": 6, "layer_norm": True, "residual": True}, 16, 3)
    head(inputs()).square().sum().backward()
    for name, p in head.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_head_runs_under_bf16_autocast():
    head = seeded_head({"kind": "mlp", "layer_norm": True, "residual": True}, 16, 3).eval()
    x = inputs()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = head(x)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), head(x), atol=0.1, rtol=0.05)


@pytest.mark.parametrize(
    "cfg,pattern",
    [
        ({"kind": "mpl"}, r"tasks\.topic\.head\.kind: unknown head kind 'mpl'; did you mean 'mlp'"),
        ({}, r"unknown head kind None"),
        ("linear", r"must be a mapping with a 'kind'"),
        ({"kind": "mlp", "hiden": 8}, r"tasks\.topic\.head\.hiden: unknown key .*did you mean 'hidden'"),
        ({"kind": "linear", "hidden": 8}, r"tasks\.topic\.head\.hidden: unknown key for head kind 'linear'"),
        ({"kind": "mlp", "hidden": 0}, r"head\.hidden: must be a positive integer, got 0"),
        ({"kind": "mlp", "hidden": 2.5}, r"head\.hidden: must be a positive integer"),
        ({"kind": "mlp", "hidden": True}, r"head\.hidden: must be a positive integer"),
        ({"kind": "mlp", "dropout": 1.0}, r"head\.dropout: must be a number in \[0, 1\)"),
        ({"kind": "linear", "dropout": -0.1}, r"head\.dropout: must be a number in \[0, 1\)"),
        ({"kind": "mlp", "layer_norm": "yes"}, r"head\.layer_norm: must be true or false"),
        ({"kind": "mlp", "residual": 1}, r"head\.residual: must be true or false"),
    ],
)
def test_config_errors_are_one_line_and_name_the_key(cfg, pattern):
    with pytest.raises(LexilabError, match=pattern) as info:
        build_head(cfg, 16, 3, where="tasks.topic.head")
    assert "\n" not in str(info.value)


def test_zero_outputs_is_an_error():
    with pytest.raises(LexilabError, match="at least one output"):
        build_head({"kind": "linear"}, 16, 0)


def test_registering_a_head_is_one_class(monkeypatch):
    monkeypatch.setattr("lexilab.model.heads.HEADS", dict(HEADS))

    @register_head("scaled_test")
    class ScaledHead(torch.nn.Module):
        def __init__(self, d_model, n_outputs, scale):
            super().__init__()
            self.scale = scale
            self.out = torch.nn.Linear(d_model, n_outputs)

        @classmethod
        def from_config(cls, cfg, d_model, n_outputs, where):
            return cls(d_model, n_outputs, take_options(cfg, {"scale": 2.0}, where)["scale"])

        def forward(self, pooled):
            return self.scale * self.out(pooled)

    head = build_head({"kind": "scaled_test", "scale": 3.0}, 16, 2)
    x = inputs()
    torch.testing.assert_close(head(x), 3.0 * F.linear(x, head.out.weight, head.out.bias))
    with pytest.raises(ValueError, match="already registered"):
        register_head("scaled_test")(ScaledHead)
