"""Load and save T5 checkpoints in the Hugging Face layout; build randomly initialised backbones.

``load_backbone`` accepts a hub id (downloaded with huggingface_hub), a local checkpoint directory
(config.json + model.safetensors | pytorch_model.bin | a sharded index of either), or a dict of T5
config fields (random init only). Every Hugging Face tensor name maps to exactly one of our
parameters (``hf_name``); anything missing, left over or of the wrong shape is a LexilabError that
lists the names. BERT-family directories are handed to ``lexilab.model.encoder_only``.
"""
from __future__ import annotations

import json
import os
import re
import zipfile
from pathlib import Path
from typing import Any

import torch

from lexilab.errors import LexilabError
from lexilab.model.t5 import T5_MODEL_TYPES, T5Config, T5Model

BERT_FAMILY = ("bert", "roberta", "distilbert", "xlm-roberta", "electra", "deberta-v2", "mpnet")
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")
# HF names we accept and drop: embedding aliases of ``shared`` (transformers ties them too) and the
# cross-attention bias that old checkpoints carry but T5 never uses.
ALIASES_OF_SHARED = ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight")
UNUSED_KEYS = ("decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight",)
# our sub-module -> (HF sub-layer index in an encoder block, in a decoder block, HF module name)
_SUBLAYERS = {
    "self_attn": (0, 0, "SelfAttention"), "self_attn_norm": (0, 0, "layer_norm"),
    "cross_attn": (None, 1, "EncDecAttention"), "cross_attn_norm": (None, 1, "layer_norm"),
    "ff": (1, 2, "DenseReluDense"), "ff_norm": (1, 2, "layer_norm"),
}
_BLOCK_PARAM = re.compile(r"^(encoder|decoder)\.block\.(\d+)\.(\w+)\.(.+)$")


def hf_name(name: str) -> str:
    """Our parameter name -> its name in a Hugging Face T5ForConditionalGeneration state dict."""
    match = _BLOCK_PARAM.match(name)
    if match:
        stack, index, sub, rest = match.groups()
        enc_layer, dec_layer, hf_module = _SUBLAYERS[sub]
        layer = dec_layer if stack == "decoder" else enc_layer
        return f"{stack}.block.{index}.layer.{layer}.{hf_module}.{rest}"
    return re.sub(r"^(encoder|decoder)\.final_norm\.", r"\1.final_layer_norm.", name)


# ---- locating checkpoints ------------------------------------------------------------------------
def _looks_like_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or os.sep != "/" and os.sep in name


def _hub_files(repo_id: str, want_weights: bool) -> Path:
    """Download config.json (and one weight format) from the hub; return the snapshot folder."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError

    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on")
    why = "HF_HUB_OFFLINE is set and the files are not in the local cache" if offline else \
        "the Hugging Face hub is unreachable and the files are not in the local cache"
    try:
        folder = Path(hf_hub_download(repo_id, "config.json")).parent
        if not want_weights:
            return folder
        not_cached = False
        for filename in WEIGHT_FILES:  # the first format the repository has
            try:
                path = hf_hub_download(repo_id, filename)
            except LocalEntryNotFoundError:
                not_cached = True
                continue
            except EntryNotFoundError:
                continue
            if filename.endswith(".index.json"):
                for shard in sorted(set(json.loads(Path(path).read_text())["weight_map"].values())):
                    hf_hub_download(repo_id, shard)
            return folder
        if not_cached:
            raise LexilabError(f"{repo_id}: the config is cached but not the weights: {why}")
        raise LexilabError(f"{repo_id}: the hub repository has none of {', '.join(WEIGHT_FILES)}")
    except LocalEntryNotFoundError:
        raise LexilabError(f"{repo_id}: not a local directory, and cannot download it: {why}") from None
    except (HfHubHTTPError, ValueError, OSError) as err:
        first = " ".join(str(err).split()) or type(err).__name__
        raise LexilabError(f"{repo_id}: not a local directory, and the hub refused it: {first}") from None


def resolve_checkpoint(name_or_path: str | os.PathLike, want_weights: bool = True) -> Path:
    """A local checkpoint directory for a path or hub id (one-line LexilabError if there is none)."""
    name = str(name_or_path)
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise LexilabError(f"{name}: not a directory (expected a checkpoint folder with config.json)")
        if not (path / "config.json").is_file():
            raise LexilabError(f"{name}: no config.json in this directory (not a Hugging Face checkpoint)")
        return path
    if _looks_like_path(name) or not name.strip():
        raise LexilabError(f"{name}: checkpoint path does not exist")
    return _hub_files(name, want_weights)


def read_config(directory: Path) -> dict[str, Any]:
    path = directory / "config.json"
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise LexilabError(f"{path}: cannot read JSON: {err}") from None


# ---- reading weights -----------------------------------------------------------------------------
def _weight_files(directory: Path) -> list[Path]:
    for filename in WEIGHT_FILES:
        path = directory / filename
        if path.is_file():
            if filename.endswith(".index.json"):
                try:
                    weight_map = json.loads(path.read_text())["weight_map"]
                except (OSError, json.JSONDecodeError, KeyError) as err:
                    raise LexilabError(f"{path}: not a weight index ({err})") from None
                return [directory / shard for shard in sorted(set(weight_map.values()))]
            return [path]
    raise LexilabError(f"{directory}: no weights found (expected one of {', '.join(WEIGHT_FILES)})")


def read_state_dict(directory: Path) -> dict[str, torch.Tensor]:
    """All tensors of a checkpoint folder (.safetensors, or .bin — zip or legacy format — read with
    weights_only=True)."""
    from safetensors.torch import load_file

    tensors: dict[str, torch.Tensor] = {}
    for path in _weight_files(directory):
        if not path.is_file():
            raise LexilabError(f"{path}: weight shard listed in the index is missing")
        try:
            if path.suffix == ".safetensors":
                tensors.update(load_file(str(path)))
            else:  # mmap needs torch's zip format; a legacy (pre-1.6) file is read whole, as transformers does
                tensors.update(torch.load(path, map_location="cpu", weights_only=True,
                                          mmap=zipfile.is_zipfile(path)))
        except LexilabError:
            raise
        except Exception as err:  # corrupt or foreign file: name it, one line
            raise LexilabError(f"{path}: cannot read weights: {type(err).__name__}: {err}") from None
    return tensors


def _listing(names: list[str], limit: int = 30) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def load_hf_state_dict(model: T5Model, tensors: dict[str, torch.Tensor], source: str) -> None:
    """Copy HF-named tensors into ``model``; LexilabError listing missing/unexpected/mis-shaped keys."""
    tensors = dict(tensors)
    if "shared.weight" not in tensors:  # some exports keep only the per-stack aliases
        for alias in ALIASES_OF_SHARED:
            if alias in tensors:
                tensors["shared.weight"] = tensors[alias]
                break
    ignored = set(ALIASES_OF_SHARED) | set(UNUSED_KEYS)
    if model.config.tie_word_embeddings:
        ignored.add("lm_head.weight")  # tied: the output projection is the embedding (as transformers does)
    params = {hf_name(name): param for name, param in model.named_parameters()}
    missing = sorted(set(params) - set(tensors))
    unexpected = sorted(set(tensors) - set(params) - ignored)
    wrong_shape = sorted(f"{key} {tuple(tensors[key].shape)} vs {tuple(param.shape)}"
                         for key, param in params.items() if key in tensors and tensors[key].shape != param.shape)
    problems = [f"{label} keys [{_listing(keys)}]" for label, keys in
                (("missing", missing), ("unexpected", unexpected), ("wrong-shape", wrong_shape)) if keys]
    if problems:
        raise LexilabError(f"{source}: checkpoint does not match its T5 config: {'; '.join(problems)}")
    with torch.no_grad():
        for key, param in params.items():
            param.copy_(tensors[key])


def hf_state_dict(model: T5Model) -> dict[str, torch.Tensor]:
    return {hf_name(name): param.detach().contiguous() for name, param in model.named_parameters()}


def save_pretrained(model: T5Model, directory: str | os.PathLike) -> None:
    """config.json + model.safetensors (HF names), loadable by ``load_backbone`` and by transformers."""
    from safetensors.torch import save

    from lexilab.io import atomic_write_bytes, atomic_write_json

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {key: value.cpu() for key, value in hf_state_dict(model).items()}
    atomic_write_bytes(directory / "model.safetensors", save(tensors, metadata={"format": "pt"}))
    atomic_write_json(directory / "config.json", model.config.to_dict())


# ---- the public entry point ----------------------------------------------------------------------
def _dtype(dtype) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    names = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
             "float16": torch.float16, "fp16": torch.float16}
    if dtype not in names:
        raise LexilabError(f"load_backbone: dtype: {dtype!r} is not one of {sorted(names)}")
    return names[dtype]


def tying_as_transformers(raw: dict[str, Any], tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    """``raw`` with ``tie_word_embeddings`` / ``scale_decoder_outputs`` set as transformers 5.x reads them.

    transformers' T5Config always ties, then ``from_pretrained`` keeps a checkpoint's
    ``lm_head.weight`` untied when it is present and differs from ``shared.weight`` (whatever the
    config says, key absent included); a missing or equal one is the embedding. The decoder-output
    scaling is ``scale_decoder_outputs`` when config.json has it (transformers 5 writes it), else
    ``tie_word_embeddings is not False`` — so a t5-small-style config without the key scales.
    """
    head = tensors.get("lm_head.weight")
    shared = tensors.get("shared.weight")
    if shared is None:
        shared = next((tensors[a] for a in ALIASES_OF_SHARED if a in tensors), None)
    distinct = head is not None and not (shared is not None and head.shape == shared.shape
                                         and torch.equal(head, shared))
    scale = raw.get("scale_decoder_outputs")
    if scale is None:
        scale = raw.get("tie_word_embeddings") is not False
    return {**raw, "tie_word_embeddings": not distinct, "scale_decoder_outputs": bool(scale)}


def _build(config: T5Config) -> T5Model:
    """A T5-initialised model that leaves the global RNG untouched (the caller then loads weights or
    re-initialises from its own generator)."""
    with torch.random.fork_rng(devices=[]):
        return T5Model(config)


def load_backbone(name_or_path: str | os.PathLike | dict, init: str = "pretrained",
                  config_overrides: dict | None = None, dtype=None, seed: int | None = None):
    """A T5 backbone (``T5Model``) or, for BERT-family checkpoints, an ``EncoderOnlyBackbone``.

    name_or_path: hub id, checkpoint directory, or a dict of T5 config fields (requires init="random").
    init: "pretrained" loads the weights; "random" uses only the config, with T5's initialisation
    drawn from ``torch.Generator().manual_seed(seed)`` (or the global torch RNG when seed is None).
    config_overrides: T5 config fields to replace (e.g. {"dropout_rate": 0.0}); unknown keys are an error.
    dtype: parameter dtype (torch.dtype or "float32"/"bfloat16"/"float16"); default float32.
    The model is returned in eval mode.
    """
    if init not in ("pretrained", "random"):
        raise LexilabError(f"load_backbone: init: {init!r} is not 'pretrained' or 'random'")
    overrides = dict(config_overrides or {})
    directory = None
    if isinstance(name_or_path, dict):
        if init != "random":
            raise LexilabError("backbone: a mapping of config fields has no weights: use init: random")
        config = T5Config.from_dict({**name_or_path, **overrides}, source="backbone config", strict=True)
    else:
        directory = resolve_checkpoint(name_or_path, want_weights=False)
        raw = read_config(directory)
        model_type = raw.get("model_type")
        if model_type in BERT_FAMILY:
            from lexilab.model.encoder_only import load_encoder_only

            return load_encoder_only(name_or_path, init=init, config_overrides=config_overrides or None,
                                     dtype=_dtype(dtype))
        if model_type not in T5_MODEL_TYPES:
            raise LexilabError(f"{directory / 'config.json'}: model_type: {model_type!r} is not a T5 checkpoint "
                               f"(supported: {', '.join(T5_MODEL_TYPES)}; BERT family: {', '.join(BERT_FAMILY)})")
        unknown = sorted(set(overrides) - set(T5Config.__dataclass_fields__))
        if unknown:
            raise LexilabError(f"config_overrides: unknown T5 config keys {unknown}")
        if init == "pretrained" and not Path(str(name_or_path)).expanduser().exists():
            directory = _hub_files(str(name_or_path), want_weights=True)
        tensors = read_state_dict(directory) if init == "pretrained" else {}
        if init == "pretrained":  # a random init keeps the config's own layout (FLAN: untied)
            raw = tying_as_transformers(raw, tensors)
        config = T5Config.from_dict({**raw, **overrides}, source=str(directory / "config.json"))
    model = _build(config)
    if init == "random":
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        model.init_weights(generator)
    else:
        load_hf_state_dict(model, tensors, str(directory))
    target = _dtype(dtype)
    if target is not None:
        model = model.to_dtype(target)
    return model.eval()  # like transformers' from_pretrained; the trainer switches to train()
