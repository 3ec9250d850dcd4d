"""Multilabel classification (a set of labels per example, possibly empty): pooled encoder
states → head → per-class sigmoid; a label is predicted when score >= its threshold.

Loss: binary cross-entropy (mean over examples × classes) with optional ``pos_weight`` (a list
in label order, a mapping label → weight, or "balanced" = negatives / positives per class on
the train split); or sigmoid focal loss (Lin et al. 2017) when ``focal_gamma`` is set.
Thresholds: cfg ``threshold: {tune: none|global|per_class, default: 0.5, metric: f1_micro}``;
tuned on the calibration split (lexilab.metrics.thresholds), frozen, then passed to evaluate.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lexilab.errors import LexilabError
from lexilab.metrics.classification import example_f1, multilabel_summary
from lexilab.metrics.thresholds import TUNING_METRICS, apply_thresholds, tune_global, tune_per_class
from lexilab.tasks.base import ClassificationTask, register_task_kind
from lexilab.tasks.losses import balanced_pos_weight, focal_sigmoid_loss, resolve_weights

TUNE_MODES = ("none", "global", "per_class")


@register_task_kind("multilabel")
class MultilabelTask(ClassificationTask):
    label_field = "labels"

    def validate(self) -> None:
        super().validate()
        loss = self.loss_cfg()
        if loss.get("class_weights") is not None:
            raise LexilabError(f"{self.key('loss', 'class_weights')}: multiclass only; use pos_weight for multilabel")
        if loss.get("label_smoothing"):
            raise LexilabError(f"{self.key('loss', 'label_smoothing')}: not supported for multilabel tasks")
        gamma = loss.get("focal_gamma")
        self.focal_gamma = None if gamma is None else float(gamma)
        if self.focal_gamma is not None and self.focal_gamma < 0:
            raise LexilabError(f"{self.key('loss', 'focal_gamma')}: must be >= 0, got {gamma}")
        balanced = None
        if loss.get("pos_weight") == "balanced":
            balanced = balanced_pos_weight(self.label_matrix(self.examples("train")))
        weights = resolve_weights(loss.get("pos_weight"), self.label_names, balanced, self.key("loss", "pos_weight"))
        self.pos_weight = None if weights is None else torch.tensor(weights, dtype=torch.float32)
        threshold = dict(self.cfg.get("threshold") or {})
        unknown = sorted(set(threshold) - {"tune", "default", "metric"})
        if unknown:
            raise LexilabError(f"{self.key('threshold')}: unknown key(s) {unknown}; known: tune, default, metric")
        self.tune_mode = threshold.get("tune") or "none"
        if self.tune_mode not in TUNE_MODES:
            raise LexilabError(f"{self.key('threshold', 'tune')}: {self.tune_mode!r} not in {TUNE_MODES}")
        default = threshold.get("default")
        self.default_threshold = 0.5 if default is None else float(default)
        if not 0.0 < self.default_threshold < 1.0:
            raise LexilabError(f"{self.key('threshold', 'default')}: must be in (0, 1), got {self.default_threshold}")
        self.tune_metric = threshold.get("metric") or "f1_micro"
        if self.tune_metric not in TUNING_METRICS:
            raise LexilabError(f"{self.key('threshold', 'metric')}: {self.tune_metric!r} not in {TUNING_METRICS}")

    def example_label_ids(self, example: dict) -> list[int]:
        names = example.get("labels")
        if not isinstance(names, (list, tuple)):
            raise self.example_error(example, "multilabel example without a 'labels' list")
        return sorted({self.label_id(example, name) for name in names})

    def label_matrix(self, examples: Sequence[dict]) -> np.ndarray:
        matrix = np.zeros((len(examples), len(self.label_names)), dtype=int)
        for row, example in enumerate(examples):
            matrix[row, self.example_label_ids(example)] = 1
        return matrix

    def collate(self, examples: list[dict]) -> dict:
        batch = self.encode_inputs(examples)
        batch["label_matrix"] = torch.tensor(self.label_matrix(examples), dtype=torch.float32)
        batch["ids"] = [str(e["id"]) for e in examples]
        return batch

    def loss(self, backbone: nn.Module, module: nn.Module, batch: dict) -> torch.Tensor:
        batch = self.to_device(batch, self.device_of(backbone))  # labels too: no blocking copy later
        logits = self.logits(backbone, module, batch)
        target = batch["label_matrix"].to(logits.device, torch.float32)
        pos_weight = None if self.pos_weight is None else self.pos_weight.to(logits.device, non_blocking=True)
        if self.focal_gamma is not None:
            return focal_sigmoid_loss(logits, target, self.focal_gamma, pos_weight)
        return F.binary_cross_entropy_with_logits(logits, target, pos_weight=pos_weight)

    def activation(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits)

    # ------------------------------------------------------------ thresholds
    def resolve_thresholds(self, thresholds) -> list[float]:
        """None → the default for every class; a number → that for every class; a list in label
        order; or a mapping label → threshold (labels not named keep the default)."""
        c = len(self.label_names)
        if thresholds is None:
            values = [self.default_threshold] * c
        elif isinstance(thresholds, (int, float)):
            values = [float(thresholds)] * c
        elif isinstance(thresholds, Mapping):
            unknown = sorted(set(thresholds) - set(self.label_names))
            if unknown:
                raise LexilabError(f"task {self.name}: thresholds for unknown label(s) {unknown}")
            values = [float(thresholds.get(name, self.default_threshold)) for name in self.label_names]
        else:
            values = [float(t) for t in thresholds]
            if len(values) != c:
                raise ValueError(f"task {self.name}: {len(values)} thresholds for {c} labels")
        return values

    def _gold_and_scores(self, predictions: list[dict], split: str) -> tuple[list[dict], np.ndarray, np.ndarray]:
        examples = [self.example_by_id(split, p["id"]) for p in predictions]
        return examples, self.label_matrix(examples), self.scores_matrix(predictions)

    def tune_thresholds(self, predictions: list[dict], mode: str | None = None, metric: str | None = None,
                        split: str = "calibration") -> list[float]:
        """Thresholds from ``predictions`` on ``split`` (the calibration split): ``global`` =
        one value maximising ``metric`` (cfg threshold.metric, default f1_micro); ``per_class``
        = each class maximises its own F1; ``none`` = the default threshold."""
        mode = mode or self.tune_mode
        if mode not in TUNE_MODES:
            raise ValueError(f"threshold mode {mode!r} not in {TUNE_MODES}")
        if mode == "none" or not predictions:
            return self.resolve_thresholds(None)
        _, gold, scores = self._gold_and_scores(predictions, split)
        if mode == "global":
            value, _ = tune_global(gold, scores, metric or self.tune_metric, self.default_threshold)
            return [value] * len(self.label_names)
        thresholds, _ = tune_per_class(gold, scores, self.default_threshold)
        return thresholds

    # ------------------------------------------------------------ metrics
    def evaluate(self, predictions: list[dict], split: str, thresholds=None) -> tuple[dict, list[dict]]:
        values = self.resolve_thresholds(thresholds)
        _, gold, scores = self._gold_and_scores(predictions, split)
        pred = apply_thresholds(scores, values) if len(predictions) else np.zeros_like(gold)
        f1 = example_f1(gold, pred)
        records = []
        for i, p in enumerate(predictions):
            records.append({
                "id": str(p["id"]),
                "prediction": [n for j, n in enumerate(self.label_names) if pred[i, j]],
                "reference": [n for j, n in enumerate(self.label_names) if gold[i, j]],
                "f1": float(f1[i]), "exact": bool((gold[i] == pred[i]).all()),
                "scores": self.named_scores(scores[i]),
            })
        metrics, details = multilabel_summary(gold, pred, scores, self.label_names, values)
        metrics["details"] = details
        return metrics, records
