"""Random initialisation draws from the same distributions as transformers' T5 ``_init_weights``.

Two independent truths per tensor kind: the standard deviation written out by hand from the
Mesh-TF / transformers formulas, and transformers' own freshly initialised model (two-sample
Kolmogorov-Smirnov test on the pooled values of each kind).
"""
from __future__ import annotations

import re

import pytest
import torch
from scipy.stats import ks_2samp

from lexilab.model import load_backbone
from lexilab.model.checkpoint import hf_name

CONFIGS = {
    "flan": dict(vocab_size=512, d_model=64, d_ff=128, num_layers=2, num_heads=4, d_kv=16,
                 feed_forward_proj="gated-gelu", tie_word_embeddings=False, initializer_factor=1.0),
    "v1_0_wide_heads": dict(vocab_size=512, d_model=64, d_ff=96, num_layers=2, num_decoder_layers=3,
                            num_heads=6, d_kv=8, feed_forward_proj="relu", initializer_factor=0.5),
}


def _kind(name: str) -> str:
    """HF tensor name -> kind (weights of one kind share one distribution)."""
    if name in ("shared.weight", "lm_head.weight"):
        return "embedding"
    if name.endswith("layer_norm.weight"):
        return "norm"
    match = re.search(r"\.(q|k|v|o|relative_attention_bias|wi|wi_0|wi_1|wo)\.weight$", name)
    return match.group(1)


def _expected_std(kind: str, cfg: dict) -> float:
    d, d_kv, heads, d_ff = cfg["d_model"], cfg["d_kv"], cfg["num_heads"], cfg["d_ff"]
    std = {"embedding": 1.0, "q": (d * d_kv) ** -0.5, "k": d ** -0.5, "v": d ** -0.5, "o": (heads * d_kv) ** -0.5,
           "relative_attention_bias": d ** -0.5, "wi": d ** -0.5, "wi_0": d ** -0.5, "wi_1": d ** -0.5,
           "wo": d_ff ** -0.5}[kind]
    return cfg["initializer_factor"] * std


def _pooled(named: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    kinds: dict[str, list[torch.Tensor]] = {}
    for name, tensor in named.items():
        kinds.setdefault(_kind(name), []).append(tensor.detach().flatten())
    return {kind: torch.cat(values) for kind, values in kinds.items()}


@pytest.mark.parametrize("config_name", list(CONFIGS))
def test_random_init_matches_transformers_distributions(config_name):
    from transformers import T5Config as HFConfig
    from transformers import T5ForConditionalGeneration

    cfg = CONFIGS[config_name]
    ours = load_backbone(cfg, init="random", seed=0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        reference = T5ForConditionalGeneration(HFConfig(**cfg))
    ours_named = {hf_name(n): p for n, p in ours.named_parameters()}
    # transformers ties lm_head to shared in every case; its distribution is the embedding's
    theirs_named = {n: p for n, p in reference.named_parameters() if n in ours_named}
    assert set(ours_named) - set(theirs_named) <= {"lm_head.weight"}
    for name, tensor in theirs_named.items():
        assert ours_named[name].shape == tensor.shape, name

    ours_kinds, theirs_kinds = _pooled(ours_named), _pooled(theirs_named)
    assert set(ours_kinds) == set(theirs_kinds)
    for kind, values in ours_kinds.items():
        if kind == "norm":
            assert torch.all(values == cfg["initializer_factor"]) and torch.all(theirs_kinds[kind] == values[0])
            continue
        expected = _expected_std(kind, cfg)
        tolerance = 4 / (2 * values.numel()) ** 0.5  # four standard errors of a sample std
        assert abs(values.std().item() / expected - 1) < tolerance, (kind, values.std().item(), expected)
        assert abs(theirs_kinds[kind].std().item() / expected - 1) < tolerance, kind
        assert abs(values.mean().item()) < 4 * expected / values.numel() ** 0.5, kind
        assert ks_2samp(values.numpy(), theirs_kinds[kind].numpy()).pvalue > 1e-3, kind


def test_seeded_init_is_reproducible_and_leaves_the_global_rng_alone():
    cfg = CONFIGS["flan"]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(123)
        before = torch.random.get_rng_state()
        a = load_backbone(cfg, init="random", seed=7)
        assert torch.equal(torch.random.get_rng_state(), before)  # a seeded build draws nothing globally
        b = load_backbone(cfg, init="random", seed=7)
        c = load_backbone(cfg, init="random", seed=8)
        torch.manual_seed(5)
        d = load_backbone(cfg, init="random")  # seed=None: the global RNG decides
        torch.manual_seed(5)
        e = load_backbone(cfg, init="random")
    for (name, pa), pb, pc, pd, pe in zip(a.named_parameters(), b.parameters(), c.parameters(), d.parameters(),
                                          e.parameters()):
        assert torch.equal(pa, pb) and torch.equal(pd, pe), name
        assert torch.equal(pa, pc) == name.endswith("norm.weight"), name  # norms are constant (1)
