"""Classification metrics against scikit-learn called directly, and hand-worked edge cases."""
from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import (accuracy_score, average_precision_score, confusion_matrix, f1_score, hamming_loss,
                             precision_score, recall_score, roc_auc_score)

from lexilab.metrics import corpus_metric, corpus_metric_fn
from lexilab.metrics.classification import (MULTICLASS_METRICS, MULTILABEL_METRICS, example_f1, multiclass_summary,
                                            multilabel_summary)

NAMES4 = ["a", "b", "c", "d"]


def test_multiclass_hand_worked_with_absent_class():
    metrics, details = multiclass_summary([0, 0, 1, 2], [0, 1, 1, 0], NAMES4)
    # per-class F1: a 0.5, b 2/3, c 0, d 0 (absent: counted in the macro average)
    assert metrics["accuracy"] == pytest.approx(0.5)
    assert metrics["f1_macro"] == pytest.approx((0.5 + 2 / 3) / 4)
    assert metrics["f1_weighted"] == pytest.approx((2 * 0.5 + 1 * 2 / 3) / 4)
    assert details["per_class"]["d"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert details["confusion_matrix"] == [[1, 1, 0, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]]
    assert details["classes_absent"] == ["d"]


def test_multiclass_matches_sklearn_random():
    rng = np.random.default_rng(0)
    y_true, y_pred = rng.integers(0, 3, 200), rng.integers(0, 4, 200)  # class 3 predicted, never gold
    metrics, details = multiclass_summary(y_true, y_pred, NAMES4)
    labels = list(range(4))
    assert metrics["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    for avg in ("macro", "weighted"):
        kw = dict(labels=labels, average=avg, zero_division=0)
        assert metrics[f"f1_{avg}"] == pytest.approx(f1_score(y_true, y_pred, **kw))
        assert metrics[f"precision_{avg}"] == pytest.approx(precision_score(y_true, y_pred, **kw))
        assert metrics[f"recall_{avg}"] == pytest.approx(recall_score(y_true, y_pred, **kw))
    assert details["confusion_matrix"] == confusion_matrix(y_true, y_pred, labels=labels).tolist()


def _multilabel_case(seed=0, n=60):
    rng = np.random.default_rng(seed)
    gold = (rng.random((n, 5)) < 0.3).astype(int)
    gold[:5, :4] = 0  # rows whose only label is Z
    gold[:, 3] = 0  # class absent from the split
    gold[:, 4] = 1  # single-valued the other way
    scores = np.clip(gold * 0.3 + rng.random((n, 5)) * 0.7, 0, 1)
    pred = (scores >= 0.5).astype(int)
    pred[5:8] = 0  # empty predictions
    return gold, pred, scores


def test_multilabel_matches_sklearn_with_edge_cases():
    gold, pred, scores = _multilabel_case()
    names = list("VWXYZ")
    metrics, details = multilabel_summary(gold, pred, scores, names, [0.5] * 5)
    for kind, fn in (("f1", f1_score), ("precision", precision_score), ("recall", recall_score)):
        for avg in ("micro", "macro", "weighted", "samples"):
            assert metrics[f"{kind}_{avg}"] == pytest.approx(fn(gold, pred, average=avg, zero_division=0)), (kind, avg)
    assert metrics["hamming_loss"] == pytest.approx(hamming_loss(gold, pred))
    assert metrics["subset_accuracy"] == pytest.approx(accuracy_score(gold, pred))
    keep = [0, 1, 2]  # Y (all 0) and Z (all 1) have no ROC-AUC
    assert metrics["roc_auc_macro"] == pytest.approx(roc_auc_score(gold[:, keep], scores[:, keep], average="macro"))
    assert metrics["roc_auc_micro"] == pytest.approx(roc_auc_score(gold, scores, average="micro"))
    with_pos = [0, 1, 2, 4]
    assert metrics["map"] == pytest.approx(average_precision_score(gold[:, with_pos], scores[:, with_pos], average="macro"))
    assert metrics["average_precision_micro"] == pytest.approx(average_precision_score(gold, scores, average="micro"))
    assert details["roc_auc_excluded"] == ["Y", "Z"] and details["roc_auc_n_excluded"] == 2
    assert details["map_excluded"] == ["Y"] and details["rows_without_prediction"] >= 3
    assert details["per_class"]["Y"]["roc_auc"] is None and details["per_class"]["X"]["roc_auc"] == pytest.approx(
        roc_auc_score(gold[:, 2], scores[:, 2]))
    assert example_f1(gold, pred).mean() == pytest.approx(f1_score(gold, pred, average="samples", zero_division=0))


def test_multilabel_hand_worked_rows():
    gold = np.array([[1, 0, 1], [0, 0, 0], [0, 1, 0]])
    pred = np.array([[1, 1, 0], [0, 0, 0], [0, 0, 0]])
    # row F1: 2*1/(2+2) = 0.5; empty/empty = 0 (zero_division=0); gold without prediction = 0
    assert example_f1(gold, pred).tolist() == [0.5, 0.0, 0.0]
    metrics, _ = multilabel_summary(gold, pred, pred.astype(float), ["p", "q", "r"], [0.5] * 3)
    assert metrics["f1_micro"] == pytest.approx(2 * 1 / (2 * 1 + 1 + 2))
    assert metrics["hamming_loss"] == pytest.approx(3 / 9)
    assert metrics["subset_accuracy"] == pytest.approx(1 / 3)


def test_undefined_values_are_nan():
    gold = np.zeros((4, 2), dtype=int)
    metrics, _ = multilabel_summary(gold, gold, np.full((4, 2), 0.2), ["p", "q"], [0.5, 0.5])
    assert all(np.isnan(metrics[m]) for m in ("roc_auc_micro", "roc_auc_macro", "map", "average_precision_micro"))
    assert metrics["f1_micro"] == 0.0


def test_corpus_metric_from_records_matches_and_survives_json_roundtrip():
    gold, pred, scores = _multilabel_case(seed=3)
    names = list("VWXYZ")
    metrics, _ = multilabel_summary(gold, pred, scores, names, [0.5] * 5)
    records = [{"id": str(i), "prediction": [n for n, on in zip(names, p) if on],
                "reference": [n for n, on in zip(names, g) if on], "scores": dict(zip(names, s.tolist()))}
               for i, (g, p, s) in enumerate(zip(gold, pred, scores))]
    records = [json.loads(json.dumps(r, sort_keys=True)) for r in records]  # as written to predictions/*.jsonl
    for metric in MULTILABEL_METRICS:
        assert corpus_metric("multilabel", metric, records) == pytest.approx(metrics[metric], nan_ok=True), metric
    idx = np.random.default_rng(1).integers(0, len(records), len(records))
    boot = corpus_metric_fn("multilabel", "f1_macro", records)(idx)
    assert boot == pytest.approx(f1_score(gold[idx], pred[idx], average="macro", zero_division=0))

    y_true, y_pred = np.array([0, 1, 2, 2, 1]), np.array([0, 2, 2, 2, 1])
    mc_records = [{"id": str(i), "prediction": NAMES4[p], "reference": NAMES4[t],
                   "scores": {n: float(n == NAMES4[p]) for n in NAMES4}} for i, (t, p) in enumerate(zip(y_true, y_pred))]
    mc_metrics, _ = multiclass_summary(y_true, y_pred, NAMES4)
    for metric in MULTICLASS_METRICS:
        assert corpus_metric("multiclass", metric, mc_records) == pytest.approx(mc_metrics[metric])
    idx = np.array([0, 0, 3, 4])
    assert corpus_metric_fn("multiclass", "f1_macro", mc_records)(idx) == pytest.approx(
        f1_score(y_true[idx], y_pred[idx], labels=range(4), average="macro", zero_division=0))
    with pytest.raises(KeyError):
        corpus_metric("multiclass", "f1_samples", mc_records)


def test_empty_split_gives_nan_metrics_and_zero_tables():
    metrics, details = multiclass_summary([], [], NAMES4)
    assert all(np.isnan(v) for v in metrics.values()) and details["confusion_matrix"] == [[0] * 4] * 4
    empty = np.zeros((0, 3), dtype=int)
    metrics, details = multilabel_summary(empty, empty, empty.astype(float), ["p", "q", "r"], [0.5] * 3)
    assert all(np.isnan(v) for v in metrics.values()) and details["per_class"]["p"]["support"] == 0
