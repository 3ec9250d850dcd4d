"""Metrics per task kind, and pure recomputation of any corpus metric from per-example records.

Records are the rows of ``predictions/<split>/<task>.jsonl`` (written from
``Task.evaluate``). They are self-contained: classification records carry ``scores`` as a
mapping label name → score, so the label set comes with them. The statistics code resamples
record positions and calls :func:`corpus_metric_fn` once per metric::

    fn = corpus_metric_fn("multilabel", "f1_samples", records)
    value = fn(np.arange(len(records)))          # == metrics["f1_samples"] of the run
    boot = [fn(rng.integers(0, n, n)) for _ in range(1000)]
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from lexilab.metrics.classification import (
    LOWER_IS_BETTER,
    MULTICLASS_METRICS,
    MULTILABEL_METRICS,
    multiclass_metric_fn,
    multilabel_metric_fn,
    records_label_names,
)
from lexilab.metrics.rouge import ROUGE_TYPES, rouge_corpus_fn, split_metric

METRICS: dict[str, tuple[str, ...]] = {
    "seq2seq": ROUGE_TYPES,
    "multiclass": MULTICLASS_METRICS,
    "multilabel": MULTILABEL_METRICS,
}
DEFAULT_METRIC = {"seq2seq": "rougeL", "multiclass": "f1_macro", "multilabel": "f1_micro"}


def is_known_metric(kind: str, metric: str) -> bool:
    """Whether ``metric`` is a metric of ``kind`` (seq2seq accepts ``<rouge>@<domain>``)."""
    if kind == "seq2seq":
        return split_metric(metric)[0] in ROUGE_TYPES
    return metric in METRICS.get(kind, ())


def metric_mode(metric: str) -> str:
    """"min" for metrics where lower is better (hamming loss), else "max"."""
    return "min" if metric in LOWER_IS_BETTER else "max"


def corpus_metric_fn(
    kind: str, metric: str, records: Sequence[dict], label_names: Sequence[str] | None = None
) -> Callable[[np.ndarray], float]:
    """Precompute arrays once; return ``f(indices) -> float`` (indices into ``records``)."""
    if kind == "seq2seq":
        return rouge_corpus_fn(metric, records)
    if kind not in ("multiclass", "multilabel"):
        raise KeyError(f"unknown task kind {kind!r}; known: {', '.join(METRICS)}")
    names = list(label_names) if label_names is not None else records_label_names(records)
    if kind == "multiclass":
        return multiclass_metric_fn(metric, records, names)
    return multilabel_metric_fn(metric, records, names)


def corpus_metric(kind: str, metric: str, records: Sequence[dict], label_names: Sequence[str] | None = None) -> float:
    """The corpus value of ``metric`` over all ``records`` (equal to what evaluate reported)."""
    return corpus_metric_fn(kind, metric, records, label_names)(np.arange(len(records)))


__all__ = [
    "DEFAULT_METRIC", "LOWER_IS_BETTER", "METRICS", "corpus_metric", "corpus_metric_fn",
    "is_known_metric", "metric_mode",
]
