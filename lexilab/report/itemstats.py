"""Per-item sufficient statistics of corpus metrics, for the vectorised item-level bootstrap.

A corpus metric M(records) decomposes when M = g(Σ_i s_i) for per-item vectors s_i: then the
metric of any resample is g(counts @ S), one matrix product for thousands of resamples
(``lexilab.stats.paired_bootstrap_items``). Macro F1 is g(per-class TP, predicted, gold
counts) — not a mean of per-item values — and ROUGE here is a mean of per-item F-measures
(``lexilab.metrics.rouge``). The definitions follow ``lexilab.metrics`` exactly (full label
list, zero_division=0); ranking metrics (ROC-AUC, mAP) do not decompose and return None, and
the caller falls back to ``lexilab.metrics.corpus_metric_fn`` on every resample.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from lexilab.metrics.classification import multilabel_matrices, records_label_names
from lexilab.metrics.rouge import ROUGE_TYPES, split_metric

Finalize = Callable[[np.ndarray], np.ndarray]


def _safe_div(num, den):
    return np.where(den > 0, num / np.where(den > 0, den, 1), 0.0)


def _prf(kind: str, tp, pp, tt):
    if kind == "precision":
        return _safe_div(tp, pp)
    if kind == "recall":
        return _safe_div(tp, tt)
    return _safe_div(2 * tp, pp + tt)


def _class_counts(pred: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """(n, 3C): per-item TP, predicted and gold indicators per class."""
    return np.concatenate([pred & gold, pred, gold], axis=1).astype(float)


def _averaged(metric: str, c: int) -> Finalize | None:
    kind, _, average = metric.partition("_")
    if kind not in ("precision", "recall", "f1") or average not in ("macro", "weighted", "micro"):
        return None

    def finalize(s):
        tp, pp, tt = s[..., :c], s[..., c:2 * c], s[..., 2 * c:3 * c]
        if average == "micro":
            return _prf(kind, tp.sum(-1), pp.sum(-1), tt.sum(-1))
        per_class = _prf(kind, tp, pp, tt)
        if average == "macro":
            return per_class.mean(-1)
        return _safe_div((per_class * tt).sum(-1), tt.sum(-1))

    return finalize


def item_statistics(kind: str, metric: str, records: Sequence[dict],
                    label_names: Sequence[str] | None = None) -> tuple[np.ndarray, Finalize] | None:
    """``(S, finalize)`` with S of shape (n_items, k) such that ``finalize(S[idx].sum(0))``
    equals ``lexilab.metrics.corpus_metric_fn(kind, metric, records)(idx)``; None when the
    metric has no such decomposition."""
    if kind == "seq2seq":
        base, domain = split_metric(metric)
        if base not in ROUGE_TYPES:
            return None
        values = np.array([float(r[base]) for r in records])
        mask = np.array([domain is None or r.get("domain") == domain for r in records], dtype=float)
        return np.stack([values * mask, mask], axis=1), lambda s: np.where(
            s[..., 1] > 0, s[..., 0] / np.where(s[..., 1] > 0, s[..., 1], 1), np.nan)
    names = list(label_names) if label_names is not None else records_label_names(records)
    c = len(names)
    if kind == "multiclass":
        index = {name: i for i, name in enumerate(names)}
        eye = np.eye(c, dtype=bool)
        pred = eye[[index[r["prediction"]] for r in records]]
        gold = eye[[index[r["reference"]] for r in records]]
        stats = _class_counts(pred, gold)
        if metric == "accuracy":
            return stats, lambda s: _safe_div(s[..., :c].sum(-1), s[..., 2 * c:].sum(-1))
        finalize = _averaged(metric, c)
        return (stats, finalize) if finalize and not metric.endswith("_micro") else None
    if kind == "multilabel":
        gold, pred, _ = multilabel_matrices(records, names)
        gold, pred = gold.astype(bool), pred.astype(bool)
        counts = _class_counts(pred, gold)
        if metric == "hamming_loss":
            errors = (pred ^ gold).sum(1, keepdims=True).astype(float)
            return np.hstack([errors, np.full_like(errors, c)]), lambda s: _safe_div(s[..., 0], s[..., 1])
        if metric == "subset_accuracy":
            exact = np.all(pred == gold, axis=1, keepdims=True).astype(float)
            return np.hstack([exact, np.ones_like(exact)]), lambda s: _safe_div(s[..., 0], s[..., 1])
        kind_, _, average = metric.partition("_")
        if average == "samples" and kind_ in ("precision", "recall", "f1"):
            tp, pp, tt = (pred & gold).sum(1), pred.sum(1), gold.sum(1)
            row = _prf(kind_, tp, pp, tt).astype(float)[:, None]
            return np.hstack([row, np.ones_like(row)]), lambda s: _safe_div(s[..., 0], s[..., 1])
        finalize = _averaged(metric, c)
        return (counts, finalize) if finalize else None
    return None
