"""Freezing strategies: embeddings, the bottom-k encoder layers, the whole encoder, and
progressive unfreezing on a step schedule (as in ULMFiT's gradual unfreezing, Howard & Ruder 2018).

Frozen parameters get ``requires_grad=False``: autograd computes no gradient for them and
AdamW skips parameters without a gradient, so neither the update nor weight decay moves them.
"""
from __future__ import annotations

from torch import nn

from lexilab.errors import LexilabError


def frozen_layer_count(cfg: dict, step: int, n_layers: int) -> int:
    """How many bottom encoder layers are frozen at optimizer step ``step``."""
    if cfg.get("encoder"):
        count = n_layers
    else:
        count = int(cfg.get("encoder_layers", 0) or 0)
    for entry in sorted(cfg.get("unfreeze") or [], key=lambda e: e["step"]):
        if step >= int(entry["step"]):
            count = int(entry["encoder_layers"])
    if not 0 <= count <= n_layers:
        raise LexilabError(f"backbone.freeze.encoder_layers: {count} is outside 0..{n_layers}")
    return count


def apply_freezing(backbone: nn.Module, cfg: dict | None, step: int) -> dict:
    """Set requires_grad on the backbone for ``step``; returns what is frozen (for the history)."""
    cfg = cfg or {}
    layers = list(backbone.freezable_layers())
    count = frozen_layer_count(cfg, step, len(layers))
    freeze_embeddings = bool(cfg.get("embeddings")) or bool(cfg.get("encoder"))
    for module in backbone.embedding_modules():
        for param in module.parameters():
            param.requires_grad_(not freeze_embeddings)
    for index, layer in enumerate(layers):
        for param in layer.parameters():
            param.requires_grad_(index >= count)
    if cfg.get("encoder") and count == len(layers):
        # the whole encoder: also what sits outside its layers (final norm, position bias)
        for params in backbone.shared_parameter_groups().values():
            for param in params:
                param.requires_grad_(False)
    return {"frozen_encoder_layers": count, "frozen_embeddings": freeze_embeddings}
