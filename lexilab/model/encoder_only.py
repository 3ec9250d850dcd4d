"""Encoder-only Hugging Face backbones (BERT family) behind lexilab's backbone contract.

For classification-only studies (e.g. MiniLM vs FLAN-T5's encoder): the wrapped model is a
``transformers.AutoModel`` of one of ``ENCODER_ONLY_MODEL_TYPES``, loaded from a local directory
or a hub id. The model's pooler (BERT's tanh layer over [CLS]) is dropped: lexilab pools with
its own registry (lexilab.model.pooling), and a pooler that never receives a gradient would only
sit in the optimizer. There is no decoder and no ``generate``: a seq2seq task on such a
backbone is a spec error.
"""
from __future__ import annotations

import inspect
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from lexilab.errors import LexilabError

# config.json model_type -> the config fields that hold the dropout probabilities, so the
# portable override ``dropout_rate`` (T5's name, the run config's ``backbone.dropout``) works.
_DROPOUT_FIELDS: dict[str, tuple[str, ...]] = {
    "bert": ("hidden_dropout_prob", "attention_probs_dropout_prob"),
    "roberta": ("hidden_dropout_prob", "attention_probs_dropout_prob"),
    "xlm-roberta": ("hidden_dropout_prob", "attention_probs_dropout_prob"),
    "electra": ("hidden_dropout_prob", "attention_probs_dropout_prob"),
    "mpnet": ("hidden_dropout_prob", "attention_probs_dropout_prob"),
    "deberta-v2": ("hidden_dropout_prob", "attention_probs_dropout_prob"),
    "distilbert": ("dropout", "attention_dropout"),
}
ENCODER_ONLY_MODEL_TYPES: frozenset[str] = frozenset(_DROPOUT_FIELDS)

# Top-level submodules holding the parameters that are not one layer's: embedding projections
# (ELECTRA's embeddings_project) belong with the embeddings.
_EMBEDDING_CHILDREN = ("embeddings", "embeddings_project")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


class EncoderOnlyBackbone(nn.Module):
    """A BERT-family encoder with the lexilab backbone interface.

    ``shared_parameter_groups()`` groups every parameter of the encoder exactly once:
    ``"embeddings"`` (token/position/type embeddings, their LayerNorm, any embedding projection),
    ``"encoder.shared"`` (parameters of the stack that belong to no single layer: MPNet's relative
    attention bias, DeBERTa-v2's relative embeddings, their norm and conv; absent for BERT), then
    ``"encoder.layer.0"`` ... ``"encoder.layer.{N-1}"`` bottom to top (DistilBERT's
    ``transformer.layer.i`` are named the same way).
    """

    is_encoder_decoder = False

    def __init__(self, model: nn.Module, name_or_path: str = "") -> None:
        super().__init__()
        config = model.config
        if config.model_type not in ENCODER_ONLY_MODEL_TYPES:
            raise LexilabError(
                f"{name_or_path or 'model'}: model_type {config.model_type!r} is not an encoder-only "
                f"type lexilab supports ({', '.join(sorted(ENCODER_ONLY_MODEL_TYPES))})"
            )
        if getattr(model, "pooler", None) is not None:
            model.pooler = None  # the forward passes of these models skip a None pooler
        self.model = model
        self.name_or_path = str(name_or_path)
        self.model_type: str = config.model_type
        self.d_model: int = int(config.hidden_size)
        self.vocab_size: int = int(config.vocab_size)
        pad = getattr(config, "pad_token_id", None)
        self.pad_token_id: int = 0 if pad is None else int(pad)
        self.max_positions: int | None = _max_positions(config)

    @property
    def hf_config(self) -> Any:
        """The wrapped model's ``transformers`` config."""
        return self.model.config

    def _layers(self) -> nn.ModuleList:
        stack = self.model.transformer if self.model_type == "distilbert" else self.model.encoder
        return stack.layer

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Last hidden states (B, L, d_model) of a padded batch."""
        self._check_inputs(input_ids, attention_mask)
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, return_dict=True)
        return out.last_hidden_state

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                decoder_input_ids: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                encoder_outputs: Any = None) -> torch.Tensor:
        """Same as :meth:`encode`; any decoder argument is an error (there is no decoder)."""
        if decoder_input_ids is not None or labels is not None or encoder_outputs is not None:
            raise LexilabError(
                f"{self.name_or_path or self.model_type}: an encoder-only {self.model_type} backbone "
                f"has no decoder; seq2seq tasks need an encoder-decoder backbone such as T5"
            )
        return self.encode(input_ids, attention_mask)

    def _check_inputs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> None:
        if input_ids.dim() != 2:
            raise LexilabError(f"encode: input_ids must be (batch, length), got {tuple(input_ids.shape)}")
        if tuple(attention_mask.shape) != tuple(input_ids.shape):
            raise LexilabError(
                f"encode: attention_mask {tuple(attention_mask.shape)} does not match input_ids "
                f"{tuple(input_ids.shape)}"
            )
        if self.max_positions is not None and input_ids.shape[1] > self.max_positions:
            raise LexilabError(
                f"encode: sequence length {input_ids.shape[1]} exceeds the {self.max_positions} "
                f"positions of {self.name_or_path or self.model_type}; lower the task's max_length"
            )
        # One device sync; out-of-range ids would otherwise be an opaque CUDA assert.
        if input_ids.numel() and bool(((input_ids < 0) | (input_ids >= self.vocab_size)).any()):
            raise LexilabError(
                f"encode: token ids out of range [0, {self.vocab_size}) (min {int(input_ids.min())}, "
                f"max {int(input_ids.max())}); is the tokenizer the model's own?"
            )

    def embedding_modules(self) -> list[nn.Module]:
        """Embedding modules (and any embedding projection), for freezing."""
        return [m for n in _EMBEDDING_CHILDREN if (m := getattr(self.model, n, None)) is not None]

    def freezable_layers(self) -> list[nn.Module]:
        """Encoder layers, bottom to top."""
        return list(self._layers())

    def shared_parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Every encoder parameter exactly once, grouped by layer, bottom to top (see class doc)."""
        embed = [p for m in self.embedding_modules() for p in m.parameters()]
        layers = [list(layer.parameters()) for layer in self._layers()]
        taken = {id(p) for p in embed} | {id(p) for ps in layers for p in ps}
        shared = [p for p in self.model.parameters() if id(p) not in taken]
        groups: dict[str, list[nn.Parameter]] = {"embeddings": embed}
        if shared:
            groups["encoder.shared"] = shared
        for i, params in enumerate(layers):
            groups[f"encoder.layer.{i}"] = params
        return groups

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        """Write config.json + model.safetensors (HF layout) so ``load_encoder_only`` round-trips.

        Files are written into a temporary folder beside ``directory`` and moved in one by one
        with ``os.replace``, so a crash never leaves a half-written file.
        """
        target = Path(directory)
        target.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            self.model.save_pretrained(tmp)
            for item in tmp.iterdir():
                os.replace(item, target / item.name)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def _max_positions(config: Any) -> int | None:
    """Longest input the position embeddings allow (None: no absolute positions)."""
    mpe = getattr(config, "max_position_embeddings", None)
    if mpe is None:
        return None
    if config.model_type == "deberta-v2" and not getattr(config, "position_biased_input", True):
        return None
    if config.model_type in ("roberta", "xlm-roberta", "mpnet"):
        # Their position ids start after padding_idx (= pad_token_id).
        return int(mpe) - int(config.pad_token_id or 0) - 1
    return int(mpe)


def _read_model_type(path: Path) -> str:
    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise LexilabError(f"{path}: no config.json (not a Hugging Face model directory)")
    try:
        raw = json.loads(cfg_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LexilabError(f"{cfg_file}: not readable JSON ({exc})".replace("\n", " ")) from None
    model_type = raw.get("model_type") if isinstance(raw, dict) else None
    if model_type is None:
        raise LexilabError(f"{cfg_file}: model_type: missing")
    return str(model_type)


def _check_supported(model_type: str, where: str) -> None:
    if model_type not in ENCODER_ONLY_MODEL_TYPES:
        raise LexilabError(
            f"{where}: model_type: {model_type!r} is not an encoder-only type lexilab supports "
            f"({', '.join(sorted(ENCODER_ONLY_MODEL_TYPES))})"
        )


def _checkpoint_has_pooler(path: Path) -> bool:
    """Whether a local safetensors checkpoint holds pooler weights (read from headers only)."""
    index = path / "model.safetensors.index.json"
    if index.is_file():
        keys = json.loads(index.read_text(encoding="utf-8")).get("weight_map", {})
    elif (path / "model.safetensors").is_file():
        from safetensors import safe_open

        with safe_open(str(path / "model.safetensors"), framework="pt") as f:
            keys = list(f.keys())
    else:
        return True  # pytorch_model.bin: assume the usual layout, with a pooler
    return any(k.split(".")[0] == "pooler" or ".pooler." in k for k in keys)


def _apply_overrides(config: Any, overrides: Mapping[str, Any] | None, where: str) -> None:
    for key, value in (overrides or {}).items():
        if key == "dropout_rate":
            if value is None:
                continue
            for field in _DROPOUT_FIELDS[config.model_type]:
                setattr(config, field, value)
        elif hasattr(config, key):
            setattr(config, key, value)
        else:
            raise LexilabError(f"{where}: config_overrides: {config.model_type} config has no field {key!r}")


def load_encoder_only(name_or_path: str | os.PathLike, init: str = "pretrained",
                      config_overrides: Mapping[str, Any] | None = None,
                      dtype: torch.dtype | None = None, seed: int | None = None) -> EncoderOnlyBackbone:
    """Load a BERT-family encoder from a local directory or a hub id.

    ``init="pretrained"`` loads the checkpoint's weights (missing encoder weights are an error);
    ``init="random"`` builds the same architecture with the model's own initialisation
    (``AutoModel.from_config``); with ``seed`` the draw is reproducible and leaves the global torch
    RNG as it was (forked), without it the global RNG is used. ``config_overrides`` sets config fields (``dropout_rate`` sets
    every dropout probability of the family). ``dtype`` defaults to float32. Returns the
    backbone in eval mode, as ``from_pretrained`` does.
    """
    from transformers import AutoConfig, AutoModel

    if init not in ("pretrained", "random"):
        raise LexilabError(f"backbone.init: must be 'pretrained' or 'random', got {init!r}")
    where = str(name_or_path)
    path = Path(name_or_path).expanduser()
    local = path.exists()
    if local:
        if not path.is_dir():
            raise LexilabError(f"{where}: not a directory (expected a Hugging Face model directory)")
        _check_supported(_read_model_type(path), str(path / "config.json"))
    elif not _HUB_ID.match(where):
        raise LexilabError(f"{where}: no such model directory")
    source = str(path) if local else where
    try:
        config = AutoConfig.from_pretrained(source)
    except (OSError, ValueError, KeyError) as exc:
        if local:
            raise LexilabError(f"{where}/config.json: cannot be read as a model config ({exc})"
                               .replace("\n", " ")) from None
        raise LexilabError(
            f"{where}: not a local directory and not fetchable from the Hugging Face hub "
            f"(offline, HF_HUB_OFFLINE=1, or no such model)"
        ) from None
    _check_supported(config.model_type, where)
    _apply_overrides(config, config_overrides, where)
    dtype = torch.float32 if dtype is None else dtype

    model_cls = AutoModel._model_mapping[type(config)]
    takes_pooler_flag = "add_pooling_layer" in inspect.signature(model_cls.__init__).parameters
    kwargs: dict[str, Any] = {}
    if init == "random":
        if takes_pooler_flag:
            kwargs["add_pooling_layer"] = False
        if seed is None:
            model = AutoModel.from_config(config, dtype=dtype, **kwargs)
        else:
            with torch.random.fork_rng(devices=[]):
                torch.random.default_generator.manual_seed(seed)  # CPU init only
                model = AutoModel.from_config(config, dtype=dtype, **kwargs)
    else:
        if takes_pooler_flag:
            # Match the checkpoint so the loader reports no pooler keys either way.
            kwargs["add_pooling_layer"] = _checkpoint_has_pooler(path) if local else True
        try:
            model, info = AutoModel.from_pretrained(
                source, config=config, dtype=dtype, output_loading_info=True, **kwargs
            )
        except OSError as exc:
            raise LexilabError(f"{where}: cannot load weights ({exc})".replace("\n", " ")) from None
        _check_loading_info(model, info, where)
    backbone = EncoderOnlyBackbone(model, name_or_path=where)
    backbone.eval()
    return backbone


def _check_loading_info(model: nn.Module, info: Mapping[str, Any], where: str) -> None:
    """Fail on encoder weights the checkpoint lacks or has with other shapes.

    Pooler weights may be missing (the pooler is dropped); unexpected keys outside the base
    model (task heads such as BERT's ``cls.*``) are normal and ignored.
    """
    children = {name for name, _ in model.named_children()}
    missing = sorted(k for k in info.get("missing_keys", ()) if not k.startswith("pooler."))
    unexpected = sorted(
        k for k in info.get("unexpected_keys", ())
        if k.split(".")[0] in children and not k.startswith("pooler.")
    )
    mismatched = sorted(str(k) for k in info.get("mismatched_keys", ()))
    problems = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("mismatched", mismatched)):
        if keys:
            shown = ", ".join(keys[:8]) + (f", ... ({len(keys)} in all)" if len(keys) > 8 else "")
            problems.append(f"{label} keys: {shown}")
    if info.get("error_msgs"):
        problems.append("errors: " + " | ".join(str(e) for e in info["error_msgs"]))
    if problems:
        raise LexilabError(f"{where}: checkpoint does not match the model ({'; '.join(problems)})"
                           .replace("\n", " "))
