"""Multiclass classification (one label per example): pooled encoder states → head → softmax.

Loss: cross-entropy with optional class weights (a list in label order, a mapping label →
weight, or "balanced" = scikit-learn's n / (C · count) on the train split) and optional label
smoothing; or focal loss (Lin et al. 2017) when ``focal_gamma`` is set (class weights act as α).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lexilab.errors import LexilabError
from lexilab.metrics.classification import multiclass_summary
from lexilab.tasks.base import ClassificationTask, register_task_kind
from lexilab.tasks.losses import balanced_class_weights, focal_softmax_loss, resolve_weights


@register_task_kind("multiclass")
class MulticlassTask(ClassificationTask):
    label_field = "label"

    def validate(self) -> None:
        super().validate()
        loss = self.loss_cfg()
        if loss.get("pos_weight") is not None:
            raise LexilabError(f"{self.key('loss', 'pos_weight')}: multilabel only; use class_weights for multiclass")
        self.label_smoothing = float(loss.get("label_smoothing") or 0.0)
        if not 0.0 <= self.label_smoothing < 1.0:
            raise LexilabError(f"{self.key('loss', 'label_smoothing')}: must be in [0, 1), got {self.label_smoothing}")
        gamma = loss.get("focal_gamma")
        self.focal_gamma = None if gamma is None else float(gamma)
        if self.focal_gamma is not None and self.focal_gamma < 0:
            raise LexilabError(f"{self.key('loss', 'focal_gamma')}: must be >= 0, got {gamma}")
        if self.focal_gamma is not None and self.label_smoothing:
            raise LexilabError(f"{self.key('loss')}: focal_gamma and label_smoothing cannot be combined")
        balanced = None
        if loss.get("class_weights") == "balanced":
            ids = [self.example_label_ids(e)[0] for e in self.examples("train")]
            balanced = balanced_class_weights(ids, len(self.label_names))
        weights = resolve_weights(loss.get("class_weights"), self.label_names, balanced, self.key("loss", "class_weights"))
        self.class_weights = None if weights is None else torch.tensor(weights, dtype=torch.float32)

    def example_label_ids(self, example: dict) -> list[int]:
        if "label" not in example:
            raise self.example_error(example, "multiclass example without a 'label'")
        return [self.label_id(example, example["label"])]

    def collate(self, examples: list[dict]) -> dict:
        batch = self.encode_inputs(examples)
        batch["label_ids"] = torch.tensor([self.example_label_ids(e)[0] for e in examples], dtype=torch.long)
        batch["ids"] = [str(e["id"]) for e in examples]
        return batch

    def loss(self, backbone: nn.Module, module: nn.Module, batch: dict) -> torch.Tensor:
        batch = self.to_device(batch, self.device_of(backbone))  # labels too: no blocking copy later
        logits = self.logits(backbone, module, batch)
        target = batch["label_ids"].to(logits.device)
        weight = None if self.class_weights is None else self.class_weights.to(logits.device, non_blocking=True)
        if self.focal_gamma is not None:
            return focal_softmax_loss(logits, target, self.focal_gamma, weight)
        return F.cross_entropy(logits, target, weight=weight, label_smoothing=self.label_smoothing)

    def activation(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.softmax(logits, dim=-1)

    def evaluate(self, predictions: list[dict], split: str, thresholds=None) -> tuple[dict, list[dict]]:
        """Prediction = argmax of the scores (first index on ties)."""
        if thresholds is not None:
            raise ValueError(f"task {self.name}: thresholds apply to multilabel tasks only")
        scores = self.scores_matrix(predictions)
        y_pred = scores.argmax(axis=1)
        records, y_true = [], []
        for p, row, k in zip(predictions, scores, y_pred):
            example = self.example_by_id(split, p["id"])
            gold = self.example_label_ids(example)[0]
            y_true.append(gold)
            records.append({
                "id": str(p["id"]), "prediction": self.label_names[k], "reference": self.label_names[gold],
                "correct": bool(k == gold), "confidence": float(row[k]), "scores": self.named_scores(row),
            })
        metrics, details = multiclass_summary(y_true, y_pred, self.label_names)
        metrics["details"] = details
        return metrics, records
