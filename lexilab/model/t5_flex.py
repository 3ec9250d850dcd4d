"""The FlexAttention path of lexilab's T5 (``T5Config.attention = "flex"``).

FlexAttention (Dong et al. 2024, "Flex Attention: A Programming Model for Generating Optimized
Attention Kernels", arXiv:2412.05496) fuses a ``score_mod`` and a block-sparse mask into one
attention kernel that torch.compile generates. T5's relative position bias (Raffel et al. 2020,
sec. 2.1) becomes a score_mod reading ``embedding[bucket[q, k], h]``: the (B, H, Q, K) bias is never
materialised, and in the backward pass its gradient is accumulated into the (buckets, heads) table
inside the kernel. The sdpa path passes the bias as a float ``attn_mask`` instead, which rules out the
flash kernel and materialises a B×H×Q×K bias gradient (what dominated attention in issue #13's probe).

Same function as the sdpa path: scale 1.0 (T5 has no 1/sqrt(d)); padded keys masked (encoder
self-attention and cross-attention), future keys masked (decoder, with the KV cache's offset);
padded query rows attend like any other row; a row whose keys are all padding (an all-zero
attention_mask row) averages every value uniformly, as the sdpa path (its finite additive mask
makes every logit the dtype's minimum) and transformers do. One difference: FlexAttention has no
dropout on the attention probabilities (the model's other dropouts are unchanged).

On CUDA the kernel is compiled (``flex_attention`` is wrapped in torch.compile here unless the model
itself is being compiled); on CPU and MPS it runs eagerly and forward only: torch has no backward
for it there.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import torch
from torch.nn.attention.flex_attention import BlockMask, create_block_mask, flex_attention

from lexilab.errors import LexilabError

NO_BACKWARD_DEVICES = ("cpu", "mps")  # torch's FlexAttention runs forward only there


@dataclass
class FlexMask:
    """What every layer of a stack shares in one forward pass (built once, like the sdpa bias)."""

    score_mod: Callable | None
    block_mask: BlockMask | None
    bias_table: torch.Tensor | None = None  # the (buckets, heads) weight the score_mod reads


def stack_mask(query_len: int, key_len: int, device: torch.device, key_keep: torch.Tensor | None = None,
               causal_offset: int | None = None, bias_table: torch.Tensor | None = None,
               buckets: torch.Tensor | None = None) -> FlexMask:
    """The score_mod and block mask of one attention kind.

    key_keep: (B, K) bool, True for real keys (None: no padding mask); causal_offset: position of the
    first query for causal attention (None: bidirectional); bias_table (num_buckets, H) with buckets
    (Q, K) long: the relative position bias (None: no bias, as in cross-attention)."""
    causal = causal_offset is not None
    if causal:  # a tensor, not an int, so that a compiled kernel is not specialised on each decoding step
        causal_offset = torch.full((), causal_offset, device=device)  # filled on the device: no host copy
    # rows with only padding attend to every key, uniformly (see the module doc); always bound, since
    # torch.compile refuses closures over a cell that was never set
    no_key = None if key_keep is None else ~key_keep.any(dim=1)

    def mask_mod(b, h, q_idx, kv_idx):
        allowed = kv_idx <= q_idx + causal_offset if causal else None
        if key_keep is not None:
            padding = key_keep[b, kv_idx] | no_key[b]
            allowed = padding if allowed is None else allowed & padding
        return allowed

    def score_mod(score, b, h, q_idx, kv_idx):
        if bias_table is not None:
            score = score + bias_table[buckets[q_idx, kv_idx], h].to(score.dtype)
        if key_keep is not None:
            score = torch.where(no_key[b], 0.0, score)
        return score

    block_mask = None
    if causal or key_keep is not None:
        batch = None if key_keep is None else key_keep.shape[0]
        block_mask = create_block_mask(mask_mod, batch, None, query_len, key_len, device=device)
    needs_score_mod = bias_table is not None or key_keep is not None
    return FlexMask(score_mod if needs_score_mod else None, block_mask, bias_table)


@functools.cache
def _compiled_flex_attention():
    return torch.compile(flex_attention)


def flex_attend(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: FlexMask) -> torch.Tensor:
    """(B, H, Q, d_kv) attention output of query/key/value (B, H, Q|K, d_kv) under ``mask``."""
    device = query.device.type
    if device in NO_BACKWARD_DEVICES and torch.is_grad_enabled():
        needs_grad = [t for t in (query, key, value, mask.bias_table) if t is not None and t.requires_grad]
        if needs_grad:
            raise LexilabError(f"attention: flex: torch's FlexAttention has no backward pass on {device}; "
                               f"use attention: sdpa there (or run under torch.no_grad, or on CUDA)")
    compiled = device not in NO_BACKWARD_DEVICES and not torch.compiler.is_compiling()
    attend = _compiled_flex_attention() if compiled else flex_attention
    return attend(query, key, value, score_mod=mask.score_mod, block_mask=mask.block_mask, scale=1.0)
