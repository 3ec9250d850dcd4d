"""Task kinds: the registry, the common Task behaviour, and the classification base.

A task binds a dataset (lexilab.data.registry.Dataset), a tokenizer and the task block of the
run config. Adding a kind is one module with a class decorated ``@register_task_kind("name")``
plus one test; ``build_task`` finds it by ``cfg["kind"]``.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from lexilab.config import MAX_PAD_MULTIPLE
from lexilab.data.registry import SPLITS, Dataset, did_you_mean
from lexilab.errors import LexilabError
from lexilab.metrics import DEFAULT_METRIC, is_known_metric, metric_mode
from lexilab.tasks.collate import DEFAULT_CHUNK_BATCHES, batch_indices, pad_sequences

TASK_KINDS: dict[str, type["Task"]] = {}
DEFAULT_MAX_LENGTH = 512
DEFAULT_MAX_TARGET_LENGTH = 256


def register_task_kind(kind: str):
    """Class decorator: register a Task subclass under ``kind``."""

    def wrap(cls: type[Task]) -> type[Task]:
        if kind in TASK_KINDS:
            raise ValueError(f"task kind {kind!r} registered twice")
        cls.kind = kind
        TASK_KINDS[kind] = cls
        return cls

    return wrap


def _to_cuda(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A CPU tensor through pinned memory, without blocking the host (see Task.to_device)."""
    if tensor.device.type != "cpu":
        return tensor.to(device)
    return (tensor if tensor.is_pinned() else tensor.pin_memory()).to(device, non_blocking=True)


def build_task(name: str, cfg: dict, dataset: Dataset, tokenizer) -> "Task":
    """The Task of kind ``cfg["kind"]`` over ``dataset``; config errors raise LexilabError."""
    import lexilab.tasks  # noqa: F401  (registers the built-in kinds)

    kind = cfg.get("kind")
    if kind not in TASK_KINDS:
        raise LexilabError(
            f"tasks.{name}.kind: unknown task kind {kind!r}{did_you_mean(kind, TASK_KINDS)}; "
            f"known: {', '.join(sorted(TASK_KINDS))}"
        )
    if dataset.kind != kind:
        raise LexilabError(f"tasks.{name}.kind: task is {kind} but dataset {dataset.name!r} is {dataset.kind}")
    return TASK_KINDS[kind](name, cfg, dataset, tokenizer)


class Task(ABC):
    """Common behaviour: splits (with ``limit``), input text (with ``prefix``), tokenisation,
    batching (with optional length bucketing), references by id, and the validation objective."""

    kind: ClassVar[str] = ""
    needs_decoder: ClassVar[bool] = False

    def __init__(self, name: str, cfg: dict, dataset: Dataset, tokenizer) -> None:
        self.name, self.cfg, self.dataset, self.tokenizer = name, dict(cfg), dataset, tokenizer
        self.label_names: list[str] = list(dataset.label_names or [])
        self.max_length = int(self.cfg.get("max_length") or DEFAULT_MAX_LENGTH)
        self.prefix = str(self.cfg.get("prefix") or "")
        bucket = self.cfg.get("bucket", False)
        if not isinstance(bucket, (bool, int)) or (not isinstance(bucket, bool) and bucket < 1):
            raise LexilabError(f"{self.key('bucket')}: expected true/false or a chunk size in batches >= 1, got {bucket!r}")
        self.bucket = bool(bucket)
        self.bucket_chunk = DEFAULT_CHUNK_BATCHES if isinstance(bucket, bool) else int(bucket)
        multiple = self.cfg.get("pad_to_multiple_of")
        if multiple is not None and (isinstance(multiple, bool) or not isinstance(multiple, int)
                                     or not 1 <= multiple <= MAX_PAD_MULTIPLE):
            raise LexilabError(f"config.yaml: {self.key('pad_to_multiple_of')}: expected null or an integer from 1 to "
                               f"{MAX_PAD_MULTIPLE}, got {multiple!r}")
        self.pad_to_multiple_of = multiple or 1  # source and target lengths (see collate.pad_sequences)
        self.limit = self._parse_limit(self.cfg.get("limit"))
        self.objective_metric = self.cfg.get("early_stopping_metric") or DEFAULT_METRIC[self.kind]
        if not is_known_metric(self.kind, self.objective_metric):
            raise LexilabError(f"{self.key('early_stopping_metric')}: {self.objective_metric!r} is not a {self.kind} metric")
        self._lengths: dict[str, list[int]] = {}
        self._by_id: dict[str, dict[str, dict]] = {}
        # (max_length, target) -> text -> token ids: each text is tokenised once per run, so from
        # the second pass over a split on, collation is padding only (the GPU does not wait on it)
        self._token_cache: dict[tuple[int, bool], dict[str, np.ndarray]] = {}
        self.validate()

    # ------------------------------------------------------------ config helpers
    def key(self, *parts: str) -> str:
        return ".".join(("tasks", self.name) + parts)

    def loss_cfg(self) -> dict:
        return dict(self.cfg.get("loss") or {})

    def _parse_limit(self, limit) -> dict[str, int | None]:
        limit = dict(limit or {})
        unknown = sorted(set(limit) - set(SPLITS))
        if unknown:
            raise LexilabError(f"{self.key('limit')}: unknown split(s) {unknown}; known: {', '.join(SPLITS)}")
        for split, value in limit.items():
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise LexilabError(f"{self.key('limit', split)}: expected null or an integer >= 1, got {value!r}")
        return {split: limit.get(split) for split in SPLITS}

    def validate(self) -> None:
        """Kind-specific checks of the data and config (labels by name, loss keys)."""

    def example_error(self, example: dict, what: str) -> LexilabError:
        return LexilabError(f"dataset {self.dataset.name}: example {example.get('id')!r}: {what}")

    # ------------------------------------------------------------ data
    def examples(self, split: str) -> list[dict]:
        """The split's examples, cut to the first ``limit[split]`` when set."""
        if split not in self.dataset.splits:
            raise LexilabError(f"dataset {self.dataset.name}: no split {split!r}; known: {', '.join(self.dataset.splits)}")
        rows = self.dataset.splits[split]
        n = self.limit.get(split)
        return rows[:n] if n else rows

    def example_by_id(self, split: str, example_id: str) -> dict:
        if split not in self._by_id:
            self._by_id[split] = {str(e["id"]): e for e in self.dataset.splits[split]}
        try:
            return self._by_id[split][str(example_id)]
        except KeyError:
            raise ValueError(f"task {self.name}: id {example_id!r} is not in split {split!r}") from None

    def input_text(self, example: dict) -> str:
        return self.prefix + example["text"]

    def tokenize(self, texts: list[str], max_length: int, target: bool = False) -> list[list[int]]:
        """Token ids of ``texts`` (truncated to ``max_length``); texts seen before come from the
        task's cache, the others are tokenised in one call."""
        if not texts:
            return []
        cache = self._token_cache.setdefault((int(max_length), bool(target)), {})
        missing = [t for t in dict.fromkeys(texts) if t not in cache]
        if missing:
            kwargs = {"text_target": missing} if target else {"text": missing}
            ids = self.tokenizer(**kwargs, truncation=True, max_length=max_length)["input_ids"]
            for text, row in zip(missing, ids):
                cache[text] = np.asarray(row, dtype=np.int32)  # ~4 bytes a token, not a Python list
        return [cache[t].tolist() for t in texts]

    def encode_inputs(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        ids = self.tokenize([self.input_text(e) for e in examples], self.max_length)
        input_ids, attention_mask = pad_sequences(ids, self.tokenizer.pad_token_id, self.pad_to_multiple_of)
        return {"input_ids": input_ids, "attention_mask": attention_mask}

    def lengths(self, split: str) -> list[int]:
        """Tokenised input lengths (after truncation) of ``examples(split)``; cached."""
        if split not in self._lengths:
            ids = self.tokenize([self.input_text(e) for e in self.examples(split)], self.max_length)
            self._lengths[split] = [len(x) for x in ids]
        return self._lengths[split]

    def batches(self, split: str, batch_size: int, generator: torch.Generator | None = None,
                shuffle: bool = False) -> list[list[dict]]:
        """Batches of examples; length-bucketed when cfg ``bucket`` is set. Deterministic
        given ``generator`` (required when shuffling). The last batch may be smaller."""
        rows = self.examples(split)
        lengths = self.lengths(split) if self.bucket else [0] * len(rows)
        order = batch_indices(lengths, batch_size, generator, shuffle, self.bucket, self.bucket_chunk)
        return [[rows[i] for i in batch] for batch in order]

    # ------------------------------------------------------------ model side
    @staticmethod
    def device_of(backbone: nn.Module) -> torch.device:
        return next(backbone.parameters()).device

    @staticmethod
    def to_device(batch: dict, device: torch.device) -> dict:
        """The batch's tensors on ``device`` (other values as they are).

        To CUDA, CPU tensors are copied through pinned (page-locked) memory without blocking:
        a blocking copy from pageable memory synchronises the host with the GPU stream on every
        micro-batch, so the next batch could not be collated while the GPU computes. The pinned
        buffer stays reserved until its copy has run (torch's caching host allocator records the
        copy on the stream), so the batch may be dropped at once. Elsewhere: a plain ``.to``."""
        device = torch.device(device)
        if device.type != "cuda":
            return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        return {k: _to_cuda(v, device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}

    @abstractmethod
    def collate(self, examples: list[dict]) -> dict:
        """Tensors padded to the longest in the batch (rounded up to ``pad_to_multiple_of``),
        plus ``"ids"``."""

    @abstractmethod
    def build_module(self, backbone: nn.Module) -> nn.Module | None:
        """Task-specific parameters (pooling + head), or None when the backbone does it all."""

    @abstractmethod
    def loss(self, backbone: nn.Module, module: nn.Module | None, batch: dict) -> torch.Tensor:
        """Scalar training loss of one collated batch."""

    @abstractmethod
    def predict(self, backbone: nn.Module, module: nn.Module | None, batch: dict, generation: dict | None = None) -> list[dict]:
        """One dict per example with its ``id`` and the model's output."""

    @abstractmethod
    def evaluate(self, predictions: list[dict], split: str, thresholds=None) -> tuple[dict, list[dict]]:
        """(metrics, per-example records) against the split's references."""

    # ------------------------------------------------------------ early stopping
    @property
    def val_mode(self) -> str:
        return metric_mode(self.objective_metric)

    def val_objective(self, metrics: dict[str, Any]) -> float:
        """The value of the early-stopping metric (``early_stopping_metric``, default per kind)."""
        if self.objective_metric not in metrics:
            raise KeyError(f"task {self.name}: metric {self.objective_metric!r} missing from {sorted(metrics)}")
        return float(metrics[self.objective_metric])


class ClassifierModule(nn.Module):
    """Pooling over encoder states, then a head: (B, L, d) → (B, n_labels) logits."""

    def __init__(self, pooling: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.pooling, self.head = pooling, head

    def forward(self, states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.pooling(states, attention_mask))


class ClassificationTask(Task):
    """Shared by multiclass and multilabel: encoder → pooling → head. Never runs the decoder.

    Labels are names; ``label_names`` (the dataset's order) fixes the head's output columns
    and every name is mapped through ``label_index`` — never by position in the raw data.
    """

    label_field: ClassVar[str] = ""

    def validate(self) -> None:
        if not self.label_names:
            raise LexilabError(f"dataset {self.dataset.name}: a {self.kind} dataset needs label_names")
        if len(set(self.label_names)) != len(self.label_names):
            raise LexilabError(f"dataset {self.dataset.name}: duplicate label names in {self.label_names}")
        self.label_index = {name: i for i, name in enumerate(self.label_names)}
        for split in self.dataset.splits:
            for example in self.dataset.splits[split]:
                self.example_label_ids(example)  # raises on an unknown name

    def label_id(self, example: dict, name: Any) -> int:
        try:
            return self.label_index[name]
        except (KeyError, TypeError):
            raise self.example_error(
                example, f"unknown label {name!r}{did_you_mean(name, self.label_names)}; known: {', '.join(self.label_names)}"
            ) from None

    @abstractmethod
    def example_label_ids(self, example: dict) -> list[int]:
        """Gold label indices of one example (by name; raises on an unknown name)."""

    def build_module(self, backbone: nn.Module) -> nn.Module:
        from lexilab.model.heads import build_head
        from lexilab.model.pooling import build_pooling

        pooling = build_pooling(self.cfg.get("pooling") or "mean", backbone.d_model, where=self.key("pooling"))
        head = build_head(dict(self.cfg.get("head") or {"kind": "linear"}), backbone.d_model, len(self.label_names),
                          where=self.key("head"))
        return ClassifierModule(pooling, head)

    def logits(self, backbone: nn.Module, module: nn.Module, batch: dict) -> torch.Tensor:
        batch = self.to_device(batch, self.device_of(backbone))
        states = backbone.encode(batch["input_ids"], batch["attention_mask"])
        return module(states, batch["attention_mask"]).float()

    @abstractmethod
    def activation(self, logits: torch.Tensor) -> torch.Tensor:
        """Logits → scores (softmax or sigmoid)."""

    def predict(self, backbone: nn.Module, module: nn.Module, batch: dict, generation: dict | None = None) -> list[dict]:
        with torch.no_grad():
            scores = self.activation(self.logits(backbone, module, batch)).cpu().tolist()
        return [{"id": i, "scores": s} for i, s in zip(batch["ids"], scores)]

    def scores_matrix(self, predictions: list[dict]) -> np.ndarray:
        scores = np.array([p["scores"] for p in predictions], dtype=float).reshape(len(predictions), len(self.label_names))
        if not np.all(np.isfinite(scores)):
            bad = next(p["id"] for p in predictions if not all(math.isfinite(x) for x in p["scores"]))
            raise ValueError(f"task {self.name}: non-finite score for example {bad!r}")
        return scores

    def named_scores(self, row) -> dict[str, float]:
        return {name: float(row[i]) for i, name in enumerate(self.label_names)}
