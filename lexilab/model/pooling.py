"""Mask-aware pooling of encoder states (B, L, d) into one vector per example (B, d).

A registry: ``POOLINGS`` maps a name to a class; ``@register_pooling("name")`` adds one and
``build_pooling(name, d_model)`` builds it. Every pooling sees the states with padded positions
already zeroed (so no value there, not even inf or NaN, can reach the result) and returns zeros
for a row that has no valid position at all. Outputs keep the states' dtype; sums, softmaxes and
counts of half-precision states run in float32, so long bf16 sums do not lose digits.

Adding a pooling: one subclass of :class:`Pooling` implementing ``_pool`` plus one test.
"""
from __future__ import annotations

import abc
import difflib
import math
from typing import Callable

import torch
from torch import nn

from lexilab.errors import LexilabError

POOLINGS: dict[str, type["Pooling"]] = {}


def register_pooling(name: str) -> Callable[[type["Pooling"]], type["Pooling"]]:
    """Class decorator adding a :class:`Pooling` subclass to ``POOLINGS`` under ``name``."""

    def add(cls: type[Pooling]) -> type[Pooling]:
        if name in POOLINGS:
            raise ValueError(f"pooling {name!r} is already registered ({POOLINGS[name].__name__})")
        cls.name = name
        POOLINGS[name] = cls
        return cls

    return add


def build_pooling(name: str, d_model: int, where: str = "pooling") -> "Pooling":
    """Build the pooling registered as ``name`` for states of width ``d_model``.

    ``where`` prefixes error messages (e.g. ``"experiments/x.yaml: tasks.emotion.pooling"``).
    """
    if not isinstance(name, str) or name not in POOLINGS:
        known = sorted(POOLINGS)
        close = difflib.get_close_matches(str(name), known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise LexilabError(f"{where}: unknown pooling {name!r}{hint} (known: {', '.join(known)})")
    return POOLINGS[name](d_model)


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for half-precision states (bf16/fp16 sums lose digits), else the states' dtype."""
    return torch.float32 if dtype in (torch.bfloat16, torch.float16) else dtype


class Pooling(nn.Module, abc.ABC):
    """Base class: validates shapes, zeroes padded positions, then calls ``_pool``."""

    name = "base"

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.d_model = int(d_model)

    def forward(self, states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if states.dim() != 3 or states.shape[-1] != self.d_model:
            raise LexilabError(
                f"pooling {self.name!r}: states must be (batch, length, {self.d_model}), "
                f"got {tuple(states.shape)}"
            )
        if tuple(attention_mask.shape) != tuple(states.shape[:2]):
            raise LexilabError(
                f"pooling {self.name!r}: attention_mask {tuple(attention_mask.shape)} does not match "
                f"states {tuple(states.shape)}"
            )
        mask = attention_mask.to(device=states.device) != 0
        # torch.where (not multiplication) so inf/NaN in padded positions cannot leak as 0*inf.
        states = torch.where(mask.unsqueeze(-1), states, states.new_zeros(()))
        pooled = self._pool(states, mask)
        # A row with no valid position pools to zeros, whatever _pool computed for it.
        has_any = mask.any(dim=1, keepdim=True)
        return torch.where(has_any, pooled, pooled.new_zeros(())).to(states.dtype)

    @abc.abstractmethod
    def _pool(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """states (B, L, d) with padded positions zeroed; mask (B, L) bool -> (B, d)."""

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}"


@register_pooling("mean")
class MeanPooling(Pooling):
    """Masked mean of the valid positions (the best-performing pooling for sentence embeddings in
    Reimers & Gurevych, 2019, "Sentence-BERT")."""

    def _pool(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        acc = accumulation_dtype(states.dtype)
        total = states.to(acc).sum(dim=1)
        count = mask.sum(dim=1, keepdim=True).clamp(min=1).to(acc)
        return total / count


@register_pooling("max")
class MaxPooling(Pooling):
    """Element-wise max over the valid positions (Conneau et al., 2017, "InferSent")."""

    def _pool(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # -inf at padded positions so a negative valid maximum is never replaced by a padded 0.
        filled = torch.where(mask.unsqueeze(-1), states, states.new_full((), float("-inf")))
        return filled.amax(dim=1)


@register_pooling("first")
class FirstPooling(Pooling):
    """State of the first valid position: BERT's [CLS] token (Devlin et al., 2019) under right
    padding; still the first real token under left padding."""

    def _pool(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # argmax returns the first maximal index, i.e. the first True of each row.
        first = mask.to(torch.int8).argmax(dim=1)
        return states[torch.arange(states.shape[0], device=states.device), first]


@register_pooling("attention")
class AttentionPooling(Pooling):
    """Attention pooling with one learned query vector q (d,).

    score_i = h_i · q / sqrt(d)  (the scaling of Vaswani et al., 2017), a softmax over the valid
    positions, and the weighted sum of the states — the learned "context vector" of Yang et al.,
    2016 ("Hierarchical Attention Networks") applied to the states directly. q starts at zero, so
    an untrained attention pooling equals mean pooling and its build consumes no random numbers;
    the gradient with respect to q is non-zero from the first step.
    """

    def __init__(self, d_model: int) -> None:
        super().__init__(d_model)
        self.query = nn.Parameter(torch.zeros(self.d_model))

    def _pool(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = states.to(accumulation_dtype(states.dtype))
        # Element-wise product + sum instead of a matmul: autocast leaves it in h's dtype.
        scores = (h * self.query.to(h.dtype)).sum(dim=-1) / math.sqrt(self.d_model)
        # finfo.min (not -inf): a fully padded row gives a finite uniform softmax instead of NaN,
        # and for any other row exp(min - max) underflows to exactly 0 at padded positions.
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
        weights = torch.softmax(scores, dim=-1) * mask
        return (weights.unsqueeze(-1) * h).sum(dim=1)
