"""Classification metrics (scikit-learn): multiclass and multilabel, corpus values, per-class
tables, and per-example scores, plus index-based recomputation for bootstrap resamples.

Conventions (documented in the README):
- Every average uses the FULL label list (``labels=range(C)``) with ``zero_division=0``: a
  class absent from a split and never predicted has precision = recall = F1 = 0 and counts in
  macro averages (support 0, so it does not count in weighted averages).
- Multilabel "samples" averages score a row with no gold and no predicted label as 0 (same
  ``zero_division=0``); such a row scores 0 whatever is predicted, so it never biases tuning.
- ROC-AUC macro: classes whose gold column holds a single value (all 0 or all 1) have no AUC;
  they are excluded and counted (``details.roc_auc_excluded``). ROC-AUC micro pools every
  (example, class) pair as scikit-learn does (defined when the pooled gold has both values).
- mAP (``map``) = macro average precision over classes with at least one positive (others
  excluded and counted); ``average_precision_micro`` pools every pair.
A value that is undefined on the given rows (e.g. no positive at all) is NaN.
"""
from __future__ import annotations

import warnings
from typing import Callable, Sequence

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    confusion_matrix,
    hamming_loss,
    precision_recall_fscore_support,
    roc_auc_score,
)

MULTICLASS_METRICS = (
    "accuracy",
    "f1_macro", "f1_weighted",
    "precision_macro", "precision_weighted",
    "recall_macro", "recall_weighted",
)
MULTILABEL_METRICS = tuple(
    f"{kind}_{avg}" for kind in ("f1", "precision", "recall") for avg in ("micro", "macro", "weighted", "samples")
) + ("hamming_loss", "subset_accuracy", "roc_auc_micro", "roc_auc_macro", "map", "average_precision_micro")
LOWER_IS_BETTER = frozenset({"hamming_loss"})
_PRF = {"precision": 0, "recall": 1, "f1": 2}


def _per_class(y_true, y_pred, n_classes: int):
    """Per-class (precision, recall, F1, support); all zeros for an empty split."""
    if len(y_true) == 0:
        return tuple(np.zeros(n_classes, dtype=int if k == 3 else float) for k in range(4))
    return precision_recall_fscore_support(y_true, y_pred, labels=list(range(n_classes)), average=None, zero_division=0)


# ---------------------------------------------------------------- multiclass
def multiclass_value(metric: str, y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    """One corpus metric from integer label arrays (labels 0..n_classes-1)."""
    if len(y_true) == 0:
        return float("nan")
    if metric == "accuracy":
        return float(accuracy_score(y_true, y_pred))
    kind, _, average = metric.partition("_")
    if kind not in _PRF or average not in ("macro", "weighted"):
        raise KeyError(f"unknown multiclass metric {metric!r}; known: {', '.join(MULTICLASS_METRICS)}")
    values = precision_recall_fscore_support(
        y_true, y_pred, labels=list(range(n_classes)), average=average, zero_division=0
    )
    return float(values[_PRF[kind]])


def multiclass_summary(y_true: Sequence[int], y_pred: Sequence[int], label_names: Sequence[str]) -> tuple[dict, dict]:
    """Corpus metrics + details (per-class table, confusion matrix with rows = gold)."""
    y_true, y_pred = np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)
    n = len(label_names)
    metrics = {name: multiclass_value(name, y_true, y_pred, n) for name in MULTICLASS_METRICS}
    p, r, f, s = _per_class(y_true, y_pred, n)
    details = {
        "label_names": list(label_names),
        "per_class": {
            name: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
            for i, name in enumerate(label_names)
        },
        "confusion_matrix": (confusion_matrix(y_true, y_pred, labels=list(range(n))).tolist() if len(y_true)
                             else [[0] * n for _ in range(n)]),
        "classes_absent": [name for i, name in enumerate(label_names) if s[i] == 0],
        "n_examples": int(len(y_true)),
    }
    return metrics, details


# ---------------------------------------------------------------- multilabel
def example_f1(gold: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Per-row F1 = 2|gold ∩ pred| / (|gold| + |pred|); 0 when both are empty."""
    gold, pred = np.asarray(gold, dtype=bool), np.asarray(pred, dtype=bool)
    tp = (gold & pred).sum(axis=1)
    denominator = gold.sum(axis=1) + pred.sum(axis=1)
    return np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0)


def _single_valued(gold: np.ndarray) -> np.ndarray:
    positives = gold.sum(axis=0)
    return (positives == 0) | (positives == gold.shape[0])


def multilabel_value(metric: str, gold: np.ndarray, pred: np.ndarray, scores: np.ndarray | None) -> float:
    """One corpus metric from (N, C) 0/1 gold and predicted matrices and (N, C) scores."""
    if gold.shape[0] == 0:
        return float("nan")
    if metric == "hamming_loss":
        return float(hamming_loss(gold, pred))
    if metric == "subset_accuracy":
        return float(accuracy_score(gold, pred))
    if metric.startswith(("roc_auc", "map", "average_precision")):
        if scores is None:
            raise ValueError(f"{metric} needs scores")
        return _ranking_value(metric, gold, scores)
    kind, _, average = metric.partition("_")
    if kind not in _PRF or average not in ("micro", "macro", "weighted", "samples"):
        raise KeyError(f"unknown multilabel metric {metric!r}; known: {', '.join(MULTILABEL_METRICS)}")
    values = precision_recall_fscore_support(
        gold, pred, labels=list(range(gold.shape[1])), average=average, zero_division=0
    )
    return float(values[_PRF[kind]])


def _ranking_value(metric: str, gold: np.ndarray, scores: np.ndarray) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # undefined cases are handled below
        if metric == "roc_auc_micro":
            flat = gold.ravel()
            if flat.min() == flat.max():
                return float("nan")
            return float(roc_auc_score(gold, scores, average="micro"))
        if metric == "roc_auc_macro":
            keep = ~_single_valued(gold)
            if not keep.any():
                return float("nan")
            return float(roc_auc_score(gold[:, keep], scores[:, keep], average="macro"))
        if metric == "map":
            keep = gold.sum(axis=0) > 0
            if not keep.any():
                return float("nan")
            return float(average_precision_score(gold[:, keep], scores[:, keep], average="macro"))
        if metric == "average_precision_micro":
            if gold.sum() == 0:
                return float("nan")
            return float(average_precision_score(gold, scores, average="micro"))
    raise KeyError(f"unknown multilabel metric {metric!r}; known: {', '.join(MULTILABEL_METRICS)}")


def multilabel_summary(
    gold: np.ndarray, pred: np.ndarray, scores: np.ndarray, label_names: Sequence[str], thresholds: Sequence[float]
) -> tuple[dict, dict]:
    """Corpus metrics + details (per-class table with threshold/AUC/AP, exclusions)."""
    gold, pred = np.asarray(gold, dtype=int), np.asarray(pred, dtype=int)
    scores = np.asarray(scores, dtype=float)
    metrics = {name: multilabel_value(name, gold, pred, scores) for name in MULTILABEL_METRICS}
    c = len(label_names)
    gold, pred = gold.reshape(-1, c), pred.reshape(-1, c)
    scores = scores.reshape(-1, c)
    p, r, f, s = _per_class(gold, pred, c)
    single = _single_valued(gold) if len(gold) else np.ones(c, dtype=bool)
    per_class = {}
    for i, name in enumerate(label_names):
        row = {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i]),
               "predicted": int(pred[:, i].sum()) if len(pred) else 0, "threshold": float(thresholds[i]),
               "roc_auc": None, "average_precision": None}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            if not single[i]:
                row["roc_auc"] = float(roc_auc_score(gold[:, i], scores[:, i]))
            if s[i] > 0:
                row["average_precision"] = float(average_precision_score(gold[:, i], scores[:, i]))
        per_class[name] = row
    details = {
        "label_names": list(label_names),
        "per_class": per_class,
        "thresholds": [float(t) for t in thresholds],
        "roc_auc_excluded": [name for i, name in enumerate(label_names) if single[i]],
        "roc_auc_n_excluded": int(single.sum()),
        "map_excluded": [name for i, name in enumerate(label_names) if s[i] == 0],
        "map_n_excluded": int((s == 0).sum()),
        "classes_absent": [name for i, name in enumerate(label_names) if s[i] == 0],
        "rows_without_gold": int((gold.sum(axis=1) == 0).sum()) if len(gold) else 0,
        "rows_without_prediction": int((pred.sum(axis=1) == 0).sum()) if len(pred) else 0,
        "n_examples": int(len(gold)),
    }
    return metrics, details


# ---------------------------------------------------------------- from records
def records_label_names(records: Sequence[dict]) -> list[str]:
    """Label names from the ``scores`` mapping of the first record (records are self-contained)."""
    if not records or not isinstance(records[0].get("scores"), dict):
        raise ValueError("records carry no 'scores' mapping; pass label_names")
    return list(records[0]["scores"])


def multiclass_metric_fn(metric: str, records: Sequence[dict], label_names: Sequence[str]) -> Callable[[np.ndarray], float]:
    """A function of resample indices computing ``metric`` from records' prediction/reference names."""
    index = {name: i for i, name in enumerate(label_names)}
    y_true = np.array([index[r["reference"]] for r in records], dtype=int)
    y_pred = np.array([index[r["prediction"]] for r in records], dtype=int)
    if metric not in MULTICLASS_METRICS:
        raise KeyError(f"unknown multiclass metric {metric!r}; known: {', '.join(MULTICLASS_METRICS)}")
    return lambda idx: multiclass_value(metric, y_true[idx], y_pred[idx], len(label_names))


def multilabel_matrices(records: Sequence[dict], label_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(gold, pred, scores) matrices in ``label_names`` order from records (names → columns)."""
    index = {name: i for i, name in enumerate(label_names)}
    n, c = len(records), len(label_names)
    gold, pred = np.zeros((n, c), dtype=int), np.zeros((n, c), dtype=int)
    have_scores = all(isinstance(r.get("scores"), dict) for r in records)
    scores = np.zeros((n, c), dtype=float) if have_scores else None
    for row, record in enumerate(records):
        gold[row, [index[name] for name in record["reference"]]] = 1
        pred[row, [index[name] for name in record["prediction"]]] = 1
        if scores is not None:
            scores[row] = [record["scores"][name] for name in label_names]
    return gold, pred, scores


def multilabel_metric_fn(metric: str, records: Sequence[dict], label_names: Sequence[str]) -> Callable[[np.ndarray], float]:
    if metric not in MULTILABEL_METRICS:
        raise KeyError(f"unknown multilabel metric {metric!r}; known: {', '.join(MULTILABEL_METRICS)}")
    gold, pred, scores = multilabel_matrices(records, label_names)
    return lambda idx: multilabel_value(metric, gold[idx], pred[idx], None if scores is None else scores[idx])
