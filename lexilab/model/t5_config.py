"""The T5 / FLAN-T5 configuration: the Hugging Face ``config.json`` fields that define a T5, checked.

Split from ``t5.py`` (the model) so that the model file stays one readable sitting; everything
here is re-exported from ``lexilab.model.t5``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import torch.nn.functional as F

from lexilab.errors import LexilabError

# feed_forward_proj's activation part -> function. "gated-gelu" means the tanh GELU (HF: gelu_new);
# a plain "gelu" is the exact erf GELU, as in transformers.
ACTIVATIONS = {
    "relu": F.relu,
    "gelu": F.gelu,
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "silu": F.silu,
}
FEED_FORWARD_PROJ = {  # name -> (gated, activation)
    "relu": (False, "relu"),
    "gelu": (False, "gelu"),
    "gated-gelu": (True, "gelu_new"),
    "gated-relu": (True, "relu"),
    "gated-silu": (True, "silu"),
}
T5_MODEL_TYPES = ("t5", "mt5")  # mT5 is the T5 v1.1 architecture with another vocabulary
# Sub-modules that stay float32 in a float16 model (transformers' T5 ``_keep_in_fp32_modules``): the
# feed-forward output projection is where FLAN-T5's activations overflow float16.
KEEP_IN_FP32 = ("wo",)
ATTENTIONS = ("sdpa", "flex")  # T5Config.attention

@dataclass
class T5Config:
    """The Hugging Face ``config.json`` fields that define a T5 (same names, same defaults).

    ``tie_word_embeddings``: the output projection is the input embedding (T5 v1.0) or a separate
    ``lm_head`` (v1.1/FLAN). ``scale_decoder_outputs`` (transformers 5.x writes it): multiply the
    decoder output by d_model**-0.5 before the projection; unset, it follows ``tie_word_embeddings``.

    ``attention`` is lexilab's own, a run-time choice rather than part of the checkpoint (``to_dict``
    leaves it out): ``sdpa`` (scaled_dot_product_attention with the bias and mask as a float
    ``attn_mask``) or ``flex`` (FlexAttention with the bucketed bias in a ``score_mod`` and a block
    mask; see lexilab/model/t5_flex.py).
    """

    vocab_size: int = 32128
    d_model: int = 512
    d_kv: int = 64
    d_ff: int = 2048
    num_layers: int = 6
    num_decoder_layers: int | None = None
    num_heads: int = 8
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 128
    dropout_rate: float = 0.1
    layer_norm_epsilon: float = 1e-6
    initializer_factor: float = 1.0
    feed_forward_proj: str = "relu"
    tie_word_embeddings: bool = True
    scale_decoder_outputs: bool | None = None
    pad_token_id: int = 0
    eos_token_id: int = 1
    decoder_start_token_id: int | None = None
    model_type: str = "t5"
    attention: str = "sdpa"

    def __post_init__(self) -> None:
        if self.num_decoder_layers is None:
            self.num_decoder_layers = self.num_layers
        if self.scale_decoder_outputs is None:
            self.scale_decoder_outputs = bool(self.tie_word_embeddings)
        if self.decoder_start_token_id is None:
            self.decoder_start_token_id = self.pad_token_id  # T5 starts decoding from <pad>
        if isinstance(self.eos_token_id, (list, tuple)):
            if len(self.eos_token_id) != 1:
                raise LexilabError(f"config: eos_token_id: only one end token is supported, got {self.eos_token_id}")
            self.eos_token_id = self.eos_token_id[0]
        if self.feed_forward_proj not in FEED_FORWARD_PROJ:
            raise LexilabError(
                f"config: feed_forward_proj: {self.feed_forward_proj!r} is not one of {sorted(FEED_FORWARD_PROJ)}"
            )
        if self.attention not in ATTENTIONS:
            raise LexilabError(f"config: attention: {self.attention!r} is not one of {', '.join(ATTENTIONS)}")
        for name in ("vocab_size", "d_model", "d_kv", "d_ff", "num_layers", "num_decoder_layers", "num_heads",
                     "relative_attention_num_buckets", "relative_attention_max_distance"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise LexilabError(f"config: {name}: must be a positive integer, got {value!r}")
        if not 0.0 <= float(self.dropout_rate) < 1.0:
            raise LexilabError(f"config: dropout_rate: must be in [0, 1), got {self.dropout_rate!r}")
        for name in ("pad_token_id", "eos_token_id", "decoder_start_token_id"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 0 <= value < self.vocab_size:
                raise LexilabError(f"config: {name}: {value!r} is not a token id below vocab_size {self.vocab_size}")

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config", strict: bool = False) -> "T5Config":
        """Build from a config.json mapping. ``strict``: unknown keys are an error (user-written dicts);
        otherwise the many other fields of an HF config.json are ignored."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if strict and unknown:
            raise LexilabError(f"{source}: unknown T5 config keys {unknown} (known: {sorted(known)})")
        kwargs = {k: v for k, v in values.items() if k in known and v is not None}
        try:
            return cls(**kwargs)
        except LexilabError as err:
            raise LexilabError(f"{source}: {str(err).removeprefix('config: ')}") from None
        except TypeError as err:
            raise LexilabError(f"{source}: {err}") from None

    def to_dict(self) -> dict[str, Any]:
        """config.json content in the Hugging Face layout (loadable by transformers too)."""
        out = asdict(self)
        del out["attention"]  # how attention is computed is not part of the checkpoint
        out.update(architectures=["T5ForConditionalGeneration"], is_encoder_decoder=True)
        return out

    @property
    def is_gated(self) -> bool:
        return FEED_FORWARD_PROJ[self.feed_forward_proj][0]

    @property
    def activation(self) -> str:
        return FEED_FORWARD_PROJ[self.feed_forward_proj][1]
