"""Classification heads: a pooled vector (B, d_model) -> logits (B, n_outputs).

A registry: ``HEADS`` maps a ``kind`` to a class; ``@register_head("kind")`` adds one and
``build_head(cfg, d_model, n_outputs)`` builds it from the task's ``head`` block, e.g.
``{"kind": "linear"}`` or ``{"kind": "mlp", "hidden": 768, "dropout": 0.1, "layer_norm": true,
"residual": true}``. Unknown kinds and keys, and values of the wrong type, are one-line
:class:`~lexilab.errors.LexilabError` s.

Adding a head: one ``nn.Module`` subclass with a ``from_config(cfg, d_model, n_outputs, where)``
classmethod (use :func:`take_options` to read its keys) plus one test.
"""
from __future__ import annotations

import difflib
from typing import Any, Callable, Mapping

import torch
from torch import nn

from lexilab.errors import LexilabError

HEADS: dict[str, type[nn.Module]] = {}


def register_head(kind: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator adding a head class (with a ``from_config`` classmethod) to ``HEADS``."""

    def add(cls: type[nn.Module]) -> type[nn.Module]:
        if kind in HEADS:
            raise ValueError(f"head kind {kind!r} is already registered ({HEADS[kind].__name__})")
        if not callable(getattr(cls, "from_config", None)):
            raise TypeError(f"head class {cls.__name__} needs a from_config classmethod")
        cls.kind = kind
        HEADS[kind] = cls
        return cls

    return add


def _did_you_mean(value: object, known: list[str]) -> str:
    close = difflib.get_close_matches(str(value), known, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def build_head(cfg: Mapping[str, Any] | None, d_model: int, n_outputs: int,
               where: str = "head") -> nn.Module:
    """Build the head described by ``cfg`` (``None`` means ``{"kind": "linear"}``).

    ``where`` prefixes error messages (e.g. ``"experiments/x.yaml: tasks.topic.head"``).
    """
    cfg = {"kind": "linear"} if cfg is None else cfg
    if not isinstance(cfg, Mapping):
        raise LexilabError(f"{where}: must be a mapping with a 'kind', got {cfg!r}")
    kind = cfg.get("kind")
    if kind not in HEADS:
        known = sorted(HEADS)
        raise LexilabError(
            f"{where}.kind: unknown head kind {kind!r}{_did_you_mean(kind, known)} "
            f"(known: {', '.join(known)})"
        )
    if isinstance(n_outputs, bool) or not isinstance(n_outputs, int) or n_outputs < 1:
        raise LexilabError(f"{where}: a head needs at least one output, got n_outputs={n_outputs!r}")
    return HEADS[kind].from_config(cfg, int(d_model), n_outputs, where)


def take_options(cfg: Mapping[str, Any], defaults: Mapping[str, Any], where: str) -> dict[str, Any]:
    """``defaults`` overridden by ``cfg`` (minus ``kind``); an unknown key is an error."""
    out = dict(defaults)
    for key, value in cfg.items():
        if key == "kind":
            continue
        if key not in defaults:
            known = sorted(defaults)
            raise LexilabError(
                f"{where}.{key}: unknown key for head kind {cfg.get('kind')!r}"
                f"{_did_you_mean(key, known)} (allowed: {', '.join(['kind', *known])})"
            )
        out[key] = value
    return out


def _positive_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise LexilabError(f"{where}: must be a positive integer, got {value!r}")
    return value


def _probability(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise LexilabError(f"{where}: must be a number in [0, 1), got {value!r}")
    return float(value)


def _flag(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise LexilabError(f"{where}: must be true or false, got {value!r}")
    return value


@register_head("linear")
class LinearHead(nn.Module):
    """Dropout (default off) then one affine map d_model -> n_outputs.

    Parameters: d_model * n_outputs + n_outputs.
    """

    def __init__(self, d_model: int, n_outputs: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(d_model, n_outputs)

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], d_model: int, n_outputs: int,
                    where: str) -> "LinearHead":
        opts = take_options(cfg, {"dropout": 0.0}, where)
        return cls(d_model, n_outputs, dropout=_probability(opts["dropout"], f"{where}.dropout"))

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.out(self.dropout(pooled))


@register_head("mlp")
class MLPHead(nn.Module):
    """Two-layer MLP head with optional input LayerNorm and an optional residual connection.

        z   = LayerNorm(x)                 if layer_norm else x      (Ba et al., 2016)
        h   = Dropout(GELU(W1 z + b1))                               (Hendrycks & Gimpel, 2016;
                                                                      Srivastava et al., 2014)
        h   = h + S x                      if residual               (He et al., 2016)
        out = W2 h + b2

    The residual (the Miyraa-style head) adds the *un-normalised* input, as in pre-norm
    Transformer blocks: S is the identity when ``hidden == d_model`` and a bias-free projection
    d_model -> hidden otherwise.

    Parameters: [2 d if layer_norm] + d h + h + h n + n + [d h if residual and h != d].
    Defaults: hidden = d_model, dropout = 0.1, layer_norm = false, residual = false.
    """

    def __init__(self, d_model: int, n_outputs: int, hidden: int | None = None,
                 dropout: float = 0.1, layer_norm: bool = False, residual: bool = False) -> None:
        super().__init__()
        hidden = d_model if hidden is None else hidden
        self.norm = nn.LayerNorm(d_model) if layer_norm else nn.Identity()
        self.fc1 = nn.Linear(d_model, hidden)
        self.act = nn.GELU()
        self.dropout = nn.Dropout(dropout)
        self.residual = residual
        self.skip: nn.Module | None = None
        if residual:
            self.skip = nn.Identity() if hidden == d_model else nn.Linear(d_model, hidden, bias=False)
        self.fc2 = nn.Linear(hidden, n_outputs)

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], d_model: int, n_outputs: int,
                    where: str) -> "MLPHead":
        opts = take_options(
            cfg, {"hidden": d_model, "dropout": 0.1, "layer_norm": False, "residual": False}, where
        )
        return cls(
            d_model,
            n_outputs,
            hidden=_positive_int(opts["hidden"], f"{where}.hidden"),
            dropout=_probability(opts["dropout"], f"{where}.dropout"),
            layer_norm=_flag(opts["layer_norm"], f"{where}.layer_norm"),
            residual=_flag(opts["residual"], f"{where}.residual"),
        )

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        h = self.dropout(self.act(self.fc1(self.norm(pooled))))
        if self.skip is not None:
            h = h + self.skip(pooled)
        return self.fc2(h)
