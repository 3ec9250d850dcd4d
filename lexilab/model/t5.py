"""T5 / FLAN-T5 encoder-decoder written from scratch in PyTorch (nanoT5-style; its config in t5_config.py).

Architecture from Raffel et al. 2020, "Exploring the Limits of Transfer Learning with a Unified
Text-to-Text Transformer" (JMLR 21): pre-norm blocks with RMSNorm (Zhang & Sennrich 2019), relative
position buckets added to the attention logits, no 1/sqrt(d) scaling. T5 v1.1 / FLAN-T5 (Chung et al.
2022, "Scaling Instruction-Finetuned Language Models") use the gated-GELU feed-forward of Shazeer 2020
("GLU Variants Improve Transformer") with the tanh GELU, and an untied output projection.

Parameter names are ours; ``checkpoint.py`` maps them one-to-one onto the Hugging Face layout.
The decoder-side forward pass, the cache and the bias computation are checked against
``transformers.T5ForConditionalGeneration`` by tests/model/test_t5_parity.py.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from lexilab.errors import LexilabError
from lexilab.model.t5_config import (  # noqa: F401  (T5_MODEL_TYPES, ATTENTIONS: re-exported for callers)
    ACTIVATIONS, ATTENTIONS, FEED_FORWARD_PROJ, KEEP_IN_FP32, T5_MODEL_TYPES, T5Config,
)
from lexilab.model.t5_flex import FlexMask, flex_attend, stack_mask

# Bucket tables kept per Attention module (one entry per (query_len, key_len, offset, device)); a
# bound, since every decoding step and every new batch length is a new shape.
BUCKET_CACHE_SIZE = 32


class RMSNorm(nn.Module):
    """T5's layer norm: scale only, no mean subtraction, no bias; statistics in float32."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        variance = x.float().pow(2).mean(-1, keepdim=True)
        x = x * torch.rsqrt(variance + self.eps)
        if self.weight.dtype in (torch.float16, torch.bfloat16):
            x = x.to(self.weight.dtype)  # half-precision weights: hand back half precision
        return self.weight * x


def relative_position_bucket(relative_position: torch.Tensor, bidirectional: bool, num_buckets: int,
                             max_distance: int) -> torch.Tensor:
    """Map key-minus-query offsets to buckets (Raffel et al. 2020, sec. 2.1; Mesh-TensorFlow).

    Half the buckets are exact offsets, the rest log-spaced up to ``max_distance``; bidirectional
    (encoder) splits the buckets between past and future, causal (decoder) uses only the past.
    """
    buckets = torch.zeros_like(relative_position)
    if bidirectional:
        num_buckets //= 2
        buckets = buckets + (relative_position > 0).long() * num_buckets
        distance = relative_position.abs()
    else:
        distance = (-relative_position).clamp(min=0)
    max_exact = num_buckets // 2
    is_small = distance < max_exact
    # clamp(min=1) keeps log() finite on entries the where() below discards anyway
    scaled = torch.log(distance.clamp(min=1).float() / max_exact) / math.log(max_distance / max_exact)
    large = (max_exact + (scaled * (num_buckets - max_exact)).long()).clamp(max=num_buckets - 1)
    return buckets + torch.where(is_small, distance, large)


class Attention(nn.Module):
    """Multi-head attention without the 1/sqrt(d_kv) scaling (T5 folds it into the initialisation)."""

    def __init__(self, config: T5Config, has_relative_bias: bool = False, bidirectional: bool = True):
        super().__init__()
        self.num_heads, self.d_kv = config.num_heads, config.d_kv
        inner = config.num_heads * config.d_kv
        self.q = nn.Linear(config.d_model, inner, bias=False)
        self.k = nn.Linear(config.d_model, inner, bias=False)
        self.v = nn.Linear(config.d_model, inner, bias=False)
        self.o = nn.Linear(inner, config.d_model, bias=False)
        self.dropout = config.dropout_rate
        self.bidirectional = bidirectional
        self.num_buckets = config.relative_attention_num_buckets
        self.max_distance = config.relative_attention_max_distance
        if has_relative_bias:  # only the first layer of a stack owns the bias; the others reuse it
            self.relative_attention_bias = nn.Embedding(self.num_buckets, self.num_heads)
            self.bucket_cache: dict[tuple, torch.Tensor] = {}

    def buckets(self, query_len: int, key_len: int, offset: int = 0) -> torch.Tensor:
        """(query_len, key_len) bucket ids; ``offset`` = position of the first query (KV cache).

        They depend on the shape alone, so eagerly they are built once per (query_len, key_len,
        offset, device) and kept (first in, first out, ``BUCKET_CACHE_SIZE`` entries). Under
        ``torch.compile`` the graph builds them (once per forward pass and stack, fused): a dict
        keyed on sizes would put a guard on every shape."""
        device = self.relative_attention_bias.weight.device
        if torch.compiler.is_compiling():
            return self._build_buckets(query_len, key_len, offset, device)
        key = (query_len, key_len, offset, device)
        table = self.bucket_cache.get(key)
        if table is None:
            with torch.inference_mode(False):  # built under inference_mode, it could not serve a backward later
                table = self._build_buckets(query_len, key_len, offset, device)
            if len(self.bucket_cache) >= BUCKET_CACHE_SIZE:
                self.bucket_cache.pop(next(iter(self.bucket_cache), None), None)
            self.bucket_cache[key] = table
        return table

    def _build_buckets(self, query_len: int, key_len: int, offset: int, device: torch.device) -> torch.Tensor:
        query_pos = torch.arange(query_len, device=device)[:, None] + offset
        key_pos = torch.arange(key_len, device=device)[None, :]
        return relative_position_bucket(key_pos - query_pos, self.bidirectional, self.num_buckets, self.max_distance)

    def position_bias(self, query_len: int, key_len: int, offset: int = 0) -> torch.Tensor:
        """(1, heads, query_len, key_len) bias; ``offset`` = position of the first query (KV cache)."""
        return self.relative_attention_bias(self.buckets(query_len, key_len, offset)).permute(2, 0, 1).unsqueeze(0)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape[0], x.shape[1], self.num_heads, self.d_kv).transpose(1, 2)

    def key_value(self, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.split_heads(self.k(states)), self.split_heads(self.v(states))

    def forward(self, x: torch.Tensor, bias: "torch.Tensor | FlexMask", key: torch.Tensor,
                value: torch.Tensor) -> torch.Tensor:
        """x (B, Q, d); key/value (B, H, K, d_kv); bias: additive (B|1, H|1, Q, K), mask included
        (``attention: sdpa``), or the stack's :class:`FlexMask` (``attention: flex``; FlexAttention
        has no dropout on the attention probabilities)."""
        query = self.split_heads(self.q(x))
        if isinstance(bias, FlexMask):
            out = flex_attend(query, key, value, bias)
        else:
            out = F.scaled_dot_product_attention(
                query, key, value, attn_mask=bias.to(query.dtype),
                dropout_p=self.dropout if self.training else 0.0, scale=1.0,
            )
        return self.o(out.transpose(1, 2).reshape(x.shape[0], x.shape[1], -1))


class FeedForward(nn.Module):
    """relu (T5 v1.0: wi, wo) or gated (v1.1/FLAN: act(wi_0 x) * wi_1 x, then wo)."""

    def __init__(self, config: T5Config):
        super().__init__()
        self.gated = config.is_gated
        if self.gated:
            self.wi_0 = nn.Linear(config.d_model, config.d_ff, bias=False)
            self.wi_1 = nn.Linear(config.d_model, config.d_ff, bias=False)
        else:
            self.wi = nn.Linear(config.d_model, config.d_ff, bias=False)
        self.wo = nn.Linear(config.d_ff, config.d_model, bias=False)
        self.act = ACTIVATIONS[config.activation]
        self.dropout = nn.Dropout(config.dropout_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.act(self.wi_0(x)) * self.wi_1(x) if self.gated else self.act(self.wi(x))
        hidden = self.dropout(hidden)
        if hidden.dtype != self.wo.weight.dtype and not torch.is_autocast_enabled(hidden.device.type):
            hidden = hidden.to(self.wo.weight.dtype)  # float16 model: wo is kept in float32 (see KEEP_IN_FP32)
        return self.wo(hidden)


class Block(nn.Module):
    """Pre-norm residual block: self-attention, [cross-attention], feed-forward."""

    def __init__(self, config: T5Config, is_decoder: bool, has_relative_bias: bool):
        super().__init__()
        self.self_attn_norm = RMSNorm(config.d_model, config.layer_norm_epsilon)
        self.self_attn = Attention(config, has_relative_bias, bidirectional=not is_decoder)
        if is_decoder:
            self.cross_attn_norm = RMSNorm(config.d_model, config.layer_norm_epsilon)
            self.cross_attn = Attention(config)  # no position bias across encoder/decoder
        self.ff_norm = RMSNorm(config.d_model, config.layer_norm_epsilon)
        self.ff = FeedForward(config)
        self.dropout = nn.Dropout(config.dropout_rate)

    def forward(self, h, self_bias, past_kv=None, cross_kv=None, cross_bias=None):
        """Returns (h, (key, value)) where (key, value) covers all positions so far (the cache entry)."""
        normed = self.self_attn_norm(h)
        key, value = self.self_attn.key_value(normed)
        if past_kv is not None:
            key, value = torch.cat([past_kv[0], key], dim=2), torch.cat([past_kv[1], value], dim=2)
        h = clamp_fp16(h + self.dropout(self.self_attn(normed, self_bias, key, value)))
        if cross_kv is not None:
            h = clamp_fp16(h + self.dropout(self.cross_attn(self.cross_attn_norm(h), cross_bias, *cross_kv)))
        h = clamp_fp16(h + self.dropout(self.ff(self.ff_norm(h))))
        return h, (key, value)


def clamp_fp16(h: torch.Tensor) -> torch.Tensor:
    """transformers' T5 float16 guard after every sub-layer: when any state overflowed to inf, clamp all
    to finfo.max - 1000 (else to finfo.max, which leaves finite values alone). A no-op in other dtypes;
    no host synchronisation (the choice is a tensor)."""
    if h.dtype != torch.float16:
        return h
    finfo = torch.finfo(torch.float16)
    limit = torch.where(torch.isinf(h).any(), finfo.max - 1000, finfo.max)
    return torch.clamp(h, min=-limit, max=limit)


def additive_mask(keep: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """bool keep-mask -> 0 where kept, the dtype's most negative value where masked."""
    return torch.zeros(keep.shape, dtype=dtype, device=keep.device).masked_fill(~keep, torch.finfo(dtype).min)


def compute_dtype(tensor: torch.Tensor) -> torch.dtype:
    """The dtype attention runs in: the autocast dtype when autocast is on. Masks are built in it so
    that the most negative value stays finite (a float32 minimum would round to -inf in bfloat16)."""
    device_type = tensor.device.type
    if torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return tensor.dtype


class Stack(nn.Module):
    """A stack of blocks plus the final norm; block 0 owns the relative position bias."""

    def __init__(self, config: T5Config, num_layers: int, is_decoder: bool):
        super().__init__()
        self.config = config  # the model's own (``attention`` is read at every forward pass)
        self.is_decoder = is_decoder
        self.block = nn.ModuleList(Block(config, is_decoder, has_relative_bias=i == 0) for i in range(num_layers))
        self.final_norm = RMSNorm(config.d_model, config.layer_norm_epsilon)
        self.dropout = nn.Dropout(config.dropout_rate)

    def self_bias(self, query_len: int, key_len: int, offset: int,
                  key_mask: torch.Tensor | None) -> torch.Tensor | FlexMask:
        """Position bias computed once for all layers, with padding (encoder) or causal (decoder) mask:
        an additive tensor (sdpa), or a score_mod reading the bucketed bias plus a block mask (flex)."""
        owner = self.block[0].self_attn
        if self.config.attention == "flex":
            weight = owner.relative_attention_bias.weight
            return stack_mask(query_len, key_len, weight.device, key_keep=None if key_mask is None else key_mask.bool(),
                              causal_offset=offset if self.is_decoder else None, bias_table=weight,
                              buckets=owner.buckets(query_len, key_len, offset))
        bias = owner.position_bias(query_len, key_len, offset)
        bias = bias.to(compute_dtype(bias))
        if self.is_decoder:
            causal = torch.arange(key_len, device=bias.device)[None, :] <= (
                torch.arange(query_len, device=bias.device)[:, None] + offset)
            bias = bias + additive_mask(causal, bias.dtype)
        if key_mask is not None:
            bias = bias + additive_mask(key_mask[:, None, None, :].bool(), bias.dtype)
        return bias


class DecoderCache:
    """KV cache for incremental decoding: per layer, the growing self-attention keys/values and the
    cross-attention keys/values of the encoder states (computed once)."""

    def __init__(self, cross_kv: list[tuple[torch.Tensor, torch.Tensor]], encoder_mask: torch.Tensor):
        self.cross_kv = cross_kv
        self.encoder_mask = encoder_mask
        self.self_kv: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * len(cross_kv)
        self.length = 0

    def reorder(self, index: torch.Tensor, same_encoder_rows: bool = False) -> None:
        """Keep batch rows ``index`` (beam search moves hypotheses between beams).
        ``same_encoder_rows``: every row moves to a row with the same encoder states (beams of one
        input), so the cross-attention entries stay as they are."""
        pick = lambda kv: (kv[0].index_select(0, index), kv[1].index_select(0, index))  # noqa: E731
        self.self_kv = [None if kv is None else pick(kv) for kv in self.self_kv]
        if not same_encoder_rows:
            self.cross_kv = [pick(kv) for kv in self.cross_kv]
            self.encoder_mask = self.encoder_mask.index_select(0, index)


class T5Model(nn.Module):
    """T5 encoder-decoder with a language-modelling head (the lexilab backbone contract)."""

    is_encoder_decoder = True

    def __init__(self, config: T5Config):
        super().__init__()
        self.config = config
        self.shared = nn.Embedding(config.vocab_size, config.d_model)
        self.encoder = Stack(config, config.num_layers, is_decoder=False)
        self.decoder = Stack(config, config.num_decoder_layers, is_decoder=True)
        if not config.tie_word_embeddings:
            self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.init_weights()

    # ---- contract attributes -------------------------------------------------------------------
    @property
    def d_model(self) -> int:
        return self.config.d_model

    @property
    def pad_token_id(self) -> int:
        return self.config.pad_token_id

    @property
    def eos_token_id(self) -> int:
        return self.config.eos_token_id

    @property
    def decoder_start_token_id(self) -> int:
        return self.config.decoder_start_token_id

    # ---- initialisation ------------------------------------------------------------------------
    @torch.no_grad()
    def init_weights(self, generator: torch.Generator | None = None) -> None:
        """T5's initialisation (Mesh-TF; the distributions of transformers' T5PreTrainedModel._init_weights):
        embeddings/lm_head N(0, 1); q N(0, (d_model*d_kv)^-1/2); k, v N(0, d_model^-1/2);
        o N(0, (heads*d_kv)^-1/2); wi* N(0, d_model^-1/2); wo N(0, d_ff^-1/2); bias N(0, d_model^-1/2);
        norms 1. Every std is multiplied by ``initializer_factor``."""
        cfg, f = self.config, self.config.initializer_factor
        normal = lambda p, std: p.normal_(0.0, f * std, generator=generator)  # noqa: E731
        normal(self.shared.weight, 1.0)
        if not cfg.tie_word_embeddings:
            normal(self.lm_head.weight, 1.0)
        for module in self.modules():
            if isinstance(module, RMSNorm):
                module.weight.fill_(f)
            elif isinstance(module, Attention):
                normal(module.q.weight, (cfg.d_model * cfg.d_kv) ** -0.5)
                normal(module.k.weight, cfg.d_model ** -0.5)
                normal(module.v.weight, cfg.d_model ** -0.5)
                normal(module.o.weight, (cfg.num_heads * cfg.d_kv) ** -0.5)
                if hasattr(module, "relative_attention_bias"):
                    normal(module.relative_attention_bias.weight, cfg.d_model ** -0.5)
            elif isinstance(module, FeedForward):
                for name in ("wi", "wi_0", "wi_1"):
                    if hasattr(module, name):
                        normal(getattr(module, name).weight, cfg.d_model ** -0.5)
                normal(module.wo.weight, cfg.d_ff ** -0.5)

    # ---- input checks --------------------------------------------------------------------------
    def check_ids(self, ids: torch.Tensor, name: str, allow_ignore: bool = False) -> None:
        """One-line LexilabError for wrong rank/dtype or ids outside the vocabulary (before embedding).

        The range check reads the ids' min/max, which on an accelerator is a host synchronisation
        per forward pass: it runs on CPU tensors only (where it costs nothing; lexilab collates on
        the CPU, and every CPU test goes through it). On CUDA the embedding lookup itself asserts on
        an out-of-range id. Under ``torch.compile`` only the shape checks run (no data-dependent
        branch in the graph).
        """
        if not isinstance(ids, torch.Tensor) or ids.dim() != 2 or ids.dtype.is_floating_point:
            shape = tuple(ids.shape) if isinstance(ids, torch.Tensor) else type(ids).__name__
            raise LexilabError(f"{name}: expected an integer tensor of shape (batch, length), got {shape}")
        if ids.shape[1] == 0:
            raise LexilabError(f"{name}: empty sequences (length 0)")
        if ids.device.type != "cpu" or torch.compiler.is_compiling():
            return
        vocab = self.config.vocab_size
        outside = (ids < 0) | (ids >= vocab)
        if allow_ignore:
            outside &= ids != -100
        if outside.any():
            raise LexilabError(f"{name}: token id {ids[outside][0].item()} is outside the vocabulary [0, {vocab})")

    def check_mask(self, attention_mask: torch.Tensor | None, shape: torch.Size, name: str) -> torch.Tensor:
        if attention_mask is None:
            return torch.ones(shape, dtype=torch.long, device=self.shared.weight.device)
        if tuple(attention_mask.shape) != tuple(shape):
            raise LexilabError(f"attention_mask: shape {tuple(attention_mask.shape)} does not match "
                               f"{name} shape {tuple(shape)}")
        return attention_mask

    # ---- encoder / decoder ---------------------------------------------------------------------
    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Encoder states (B, L, d_model); padding positions are masked out of attention."""
        self.check_ids(input_ids, "input_ids")
        attention_mask = self.check_mask(attention_mask, input_ids.shape, "input_ids")
        return self._encode(input_ids, attention_mask)

    def _encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        enc = self.encoder
        h = enc.dropout(self.shared(input_ids))
        length = input_ids.shape[1]
        bias = enc.self_bias(length, length, 0, attention_mask)
        for block in enc.block:
            h, _ = block(h, bias)
        return enc.dropout(enc.final_norm(h))

    def new_cache(self, encoder_states: torch.Tensor, encoder_mask: torch.Tensor) -> DecoderCache:
        """Cross-attention keys/values of every decoder layer, computed once per generate() call."""
        cross_kv = [block.cross_attn.key_value(encoder_states) for block in self.decoder.block]
        return DecoderCache(cross_kv, encoder_mask)

    def decode(self, decoder_input_ids: torch.Tensor, encoder_states: torch.Tensor | None = None,
               encoder_mask: torch.Tensor | None = None, cache: DecoderCache | None = None,
               project: bool = True) -> torch.Tensor:
        """Logits (B, T, V) for ``decoder_input_ids``. With ``cache`` the ids continue the cached prefix
        and the cache is extended in place; without it they are the whole target prefix.
        ``project=False``: the (B, T, d_model) states the output projection reads instead (rescaled
        when ``scale_decoder_outputs``), so a loss can apply :meth:`output_weight` chunk by chunk."""
        dec = self.decoder
        if cache is None:
            cache = self.new_cache(encoder_states, encoder_mask)
        offset, length = cache.length, decoder_input_ids.shape[1]
        h = dec.dropout(self.shared(decoder_input_ids))
        self_bias = dec.self_bias(length, offset + length, offset, None)
        if self.config.attention == "flex":
            encoder_keep = cache.encoder_mask.bool()
            cross_bias = stack_mask(length, encoder_keep.shape[1], h.device, key_keep=encoder_keep)
        else:
            cross_bias = additive_mask(cache.encoder_mask[:, None, None, :].bool(), compute_dtype(h))
        for i, block in enumerate(dec.block):
            h, cache.self_kv[i] = block(h, self_bias, cache.self_kv[i], cache.cross_kv[i], cross_bias)
        cache.length = offset + length
        h = dec.dropout(dec.final_norm(h))
        if self.config.scale_decoder_outputs:
            h = h * self.config.d_model ** -0.5  # Mesh-TF rescaling for the tied projection (T5 v1.0)
        if not project:
            return h
        if self.config.tie_word_embeddings:
            return F.linear(h, self.shared.weight)
        return self.lm_head(h)

    def output_weight(self) -> nn.Parameter:
        """The (V, d_model) output projection: the shared embedding when tied, else ``lm_head``."""
        return self.shared.weight if self.config.tie_word_embeddings else self.lm_head.weight

    def shift_right(self, labels: torch.Tensor) -> torch.Tensor:
        """Teacher-forcing decoder inputs: start token, then labels[:-1]; -100 (ignored) -> pad."""
        shifted = labels.new_full(labels.shape, self.config.decoder_start_token_id)
        shifted[:, 1:] = labels[:, :-1]
        return shifted.masked_fill(shifted == -100, self.config.pad_token_id)

    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                decoder_input_ids: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                encoder_outputs: torch.Tensor | None = None, project: bool = True) -> torch.Tensor:
        """Logits (B, T, V). ``encoder_outputs``: states from :meth:`encode` (skips the encoder);
        ``project=False``: the decoder states before the output projection (see :meth:`decode`)."""
        if decoder_input_ids is None:
            if labels is None:
                raise LexilabError("forward: pass decoder_input_ids or labels")
            self.check_ids(labels, "labels", allow_ignore=True)
            decoder_input_ids = self.shift_right(labels)
        self.check_ids(decoder_input_ids, "decoder_input_ids")
        if encoder_outputs is None:
            if input_ids is None:
                raise LexilabError("forward: pass input_ids or encoder_outputs")
            encoder_outputs = self.encode(input_ids, attention_mask)
        attention_mask = self.check_mask(attention_mask, encoder_outputs.shape[:2], "encoder states")
        if decoder_input_ids.shape[0] != encoder_outputs.shape[0]:
            raise LexilabError(f"decoder_input_ids: batch size {decoder_input_ids.shape[0]} does not match "
                               f"input_ids batch size {encoder_outputs.shape[0]}")
        return self.decode(decoder_input_ids, encoder_outputs, attention_mask, project=project)

    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                 max_new_tokens: int = 20, num_beams: int = 1, length_penalty: float = 1.0,
                 min_new_tokens: int = 0, early_stopping: bool | str = True) -> torch.Tensor:
        """Token ids (B, 1 + n): the decoder start token, then up to ``max_new_tokens`` generated ids;
        positions after a row's end token hold pad. Greedy for ``num_beams=1``, else beam search with
        transformers' semantics (see lexilab.model.generation)."""
        from lexilab.model.generation import generate

        return generate(self, input_ids, attention_mask, max_new_tokens=max_new_tokens, num_beams=num_beams,
                        length_penalty=length_penalty, min_new_tokens=min_new_tokens,
                        early_stopping=early_stopping)

    # ---- groups for freezing and gradient diagnostics --------------------------------------------
    def shared_parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Encoder parameters by layer, bottom to top (the tied embedding counts as 'embeddings')."""
        groups = {"embeddings": [self.shared.weight]}
        for i, block in enumerate(self.encoder.block):
            groups[f"encoder.block.{i}"] = list(block.parameters())
        groups["encoder.final_norm"] = list(self.encoder.final_norm.parameters())
        return groups

    def freezable_layers(self) -> list[nn.Module]:
        return list(self.encoder.block)

    def embedding_modules(self) -> list[nn.Module]:
        return [self.shared]

    def to_dtype(self, dtype: torch.dtype) -> "T5Model":
        """Cast the parameters to ``dtype``; float16 keeps ``KEEP_IN_FP32`` in float32, as transformers'
        ``from_pretrained(dtype=torch.float16)`` does."""
        self.to(dtype)
        if dtype == torch.float16:
            for name, module in self.named_modules():
                if name.rsplit(".", 1)[-1] in KEEP_IN_FP32:
                    module.float()
        return self

    def save_pretrained(self, directory) -> None:
        """Write config.json + model.safetensors in the Hugging Face layout."""
        from lexilab.model.checkpoint import save_pretrained

        save_pretrained(self, directory)
