"""Sufficient statistics reproduce lexilab.metrics (scikit-learn based) on every resample."""
from __future__ import annotations

import numpy as np
import pytest

from lexilab.metrics import METRICS, corpus_metric_fn
from lexilab.report.itemstats import item_statistics

LABELS = ["a", "b", "c", "d"]


def _records(kind, n=50, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        if kind == "multiclass":
            ref = LABELS[rng.integers(0, 3)]  # class "d" never gold: absent classes count in macro
            pred = ref if rng.random() < 0.6 else LABELS[rng.integers(0, 4)]
            scores = dict(zip(LABELS, rng.dirichlet(np.ones(4)).tolist()))
            out.append({"id": str(i), "prediction": pred, "reference": ref, "scores": scores})
        elif kind == "multilabel":
            ref = [l for l in LABELS if rng.random() < 0.3]
            pred = [l for l in LABELS if (l in ref) != (rng.random() < 0.2)]
            scores = dict(zip(LABELS, rng.random(4).tolist()))
            out.append({"id": str(i), "prediction": pred, "reference": ref, "scores": scores})
        else:
            out.append({"id": str(i), "prediction": "x", "reference": "y", "rouge1": rng.random(),
                         "rouge2": rng.random(), "rougeL": rng.random(), "rougeLsum": rng.random(),
                         "domain": ["academic", "literary"][i % 3 == 0]})
    return out


CASES = [(k, m) for k in ("multiclass", "multilabel") for m in METRICS[k]] + [
    ("seq2seq", "rougeL"), ("seq2seq", "rouge2@literary"), ("seq2seq", "rouge1@academic")]


@pytest.mark.parametrize("kind,metric", CASES)
def test_statistics_equal_corpus_metric_on_resamples(kind, metric):
    records = _records(kind)
    got = item_statistics(kind, metric, records)
    if metric.startswith(("roc_auc", "map", "average_precision")):
        assert got is None  # ranking metrics do not decompose: the caller loops instead
        return
    assert got is not None, metric
    stats, finalize = got
    reference = corpus_metric_fn(kind, metric, records)
    rng = np.random.default_rng(1)
    for idx in [np.arange(len(records))] + [rng.integers(0, len(records), len(records)) for _ in range(20)]:
        counts = np.bincount(idx, minlength=len(records)).astype(float)
        assert finalize(counts @ stats) == pytest.approx(reference(idx), abs=1e-12), metric
