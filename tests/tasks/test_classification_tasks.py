"""Multiclass and multilabel task kinds against hand computations, scikit-learn and a tiny T5."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support
from sklearn.utils.class_weight import compute_class_weight

from lexilab.data.registry import SPLITS, Dataset
from lexilab.errors import LexilabError
from lexilab.tasks import TASK_KINDS, build_task

TOPICS = ["sports", "politics", "science"]
TOPIC_ROWS = [
    ("the match ended in a late goal", "sports"),
    ("parliament passed the budget after a long and bitter debate about taxes", "politics"),
    ("a new telescope observed distant galaxies", "science"),
    ("the striker scored twice", "sports"),
    ("voters chose a new mayor", "politics"),
    ("cells divide", "science"),
    ("the coach praised the defence and the goalkeeper for a clean sheet in the final", "sports"),
    ("physicists measured the mass of the particle", "science"),
]
EMOTIONS = ["joy", "anger", "fear", "surprise"]
EMOTION_ROWS = [
    ("what a wonderful day", ["joy"]),
    ("I am furious and scared", ["anger", "fear"]),
    ("oh wow, I did not expect that at all", ["surprise", "joy"]),
    ("the report is due on monday", []),
    ("this makes me so angry", ["anger"]),
    ("terrifying news tonight", ["fear", "surprise"]),
]


def topic_dataset(label_names=TOPICS, rows=TOPIC_ROWS, name="topics-test") -> Dataset:
    splits = {split: [{"id": f"{split}-{i}", "text": t, "label": y} for i, (t, y) in enumerate(rows)]
              for split in SPLITS}
    return Dataset(name, "multiclass", splits, list(label_names))


def emotion_dataset(label_names=EMOTIONS, rows=EMOTION_ROWS) -> Dataset:
    splits = {split: [{"id": f"{split}-{i}", "text": t, "labels": list(y)} for i, (t, y) in enumerate(rows)]
              for split in SPLITS}
    return Dataset("emotions-test", "multilabel", splits, list(label_names))


def multiclass_cfg(**extra) -> dict:
    return {"kind": "multiclass", "pooling": "mean", "head": {"kind": "linear"}, "max_length": 64, **extra}


def multilabel_cfg(**extra) -> dict:
    return {"kind": "multilabel", "pooling": "mean", "head": {"kind": "linear"}, "max_length": 64,
            "threshold": {"tune": "per_class", "default": 0.5}, **extra}


def hand_logits(backbone, module, batch):
    states = backbone.encode(batch["input_ids"], batch["attention_mask"])
    return module(states, batch["attention_mask"])


# ----------------------------------------------------------------------------- registry and labels
def test_registry_and_kind_errors(tokenizer):
    assert {"seq2seq", "multiclass", "multilabel"} <= set(TASK_KINDS)
    with pytest.raises(LexilabError, match=r"tasks\.topic\.kind: unknown task kind 'regression'"):
        build_task("topic", {"kind": "regression"}, topic_dataset(), tokenizer)
    with pytest.raises(LexilabError, match="is multiclass"):
        build_task("topic", {"kind": "multilabel"}, topic_dataset(), tokenizer)


def test_unknown_label_names_dataset_example_and_label(tokenizer):
    ds = topic_dataset()
    ds.splits["val"][2] = {"id": "val-2", "text": "x", "label": "sprots"}
    with pytest.raises(LexilabError) as err:
        build_task("topic", multiclass_cfg(), ds, tokenizer)
    message = str(err.value)
    assert "topics-test" in message and "'val-2'" in message and "'sprots'" in message and "\n" not in message
    ml = emotion_dataset()
    ml.splits["test"][1] = {"id": "test-1", "text": "x", "labels": ["joy", "rage"]}
    with pytest.raises(LexilabError, match=r"emotions-test: example 'test-1': unknown label 'rage'"):
        build_task("emotion", multilabel_cfg(), ml, tokenizer)


def test_labels_are_mapped_by_name_not_position(tokenizer):
    permuted = ["science", "sports", "politics"]
    task = build_task("topic", multiclass_cfg(), topic_dataset(permuted), tokenizer)
    batch = task.collate(task.examples("train"))
    expected = [permuted.index(y) for _, y in TOPIC_ROWS]
    assert batch["label_ids"].tolist() == expected
    ml = build_task("emotion", multilabel_cfg(), emotion_dataset(["fear", "joy", "surprise", "anger"]), tokenizer)
    matrix = ml.collate(ml.examples("train"))["label_matrix"]
    assert matrix[1].tolist() == [1.0, 0.0, 0.0, 1.0]  # anger + fear
    assert matrix[3].tolist() == [0.0] * 4  # no label


# ----------------------------------------------------------------------------- collation
def test_collate_pads_to_longest_and_truncates(tokenizer):
    task = build_task("topic", multiclass_cfg(prefix="topic: "), topic_dataset(), tokenizer)
    examples = task.examples("train")[:3]
    batch = task.collate(examples)
    direct = [tokenizer("topic: " + e["text"])["input_ids"] for e in examples]
    assert batch["input_ids"].shape == (3, max(len(d) for d in direct))
    for row, ids in enumerate(direct):
        assert batch["input_ids"][row, : len(ids)].tolist() == ids
        assert batch["attention_mask"][row].sum().item() == len(ids)
        assert set(batch["input_ids"][row, len(ids):].tolist()) <= {tokenizer.pad_token_id}
    assert batch["ids"] == ["train-0", "train-1", "train-2"]
    short = build_task("topic", multiclass_cfg(max_length=5), topic_dataset(), tokenizer)
    batch = short.collate(examples)
    assert batch["input_ids"].shape[1] == 5
    assert batch["input_ids"][1].tolist() == tokenizer(examples[1]["text"], truncation=True, max_length=5)["input_ids"]


def test_batches_deterministic_bucketed_and_limited(tokenizer):
    task = build_task("topic", multiclass_cfg(bucket=True, limit={"train": 6}), topic_dataset(), tokenizer)
    assert [e["id"] for e in task.examples("train")] == [f"train-{i}" for i in range(6)]
    one = task.batches("train", 2, torch.Generator().manual_seed(3), shuffle=True)
    two = task.batches("train", 2, torch.Generator().manual_seed(3), shuffle=True)
    assert [[e["id"] for e in b] for b in one] == [[e["id"] for e in b] for b in two]
    assert sorted(e["id"] for b in one for e in b) == sorted(f"train-{i}" for i in range(6))
    # one chunk (50 batches) holds everything: batches are consecutive runs of the length-sorted order
    lengths = {e["id"]: len(tokenizer(e["text"])["input_ids"]) for e in task.examples("train")}
    ranked = sorted(lengths, key=lambda i: (-lengths[i], int(i.split("-")[1])))
    assert sorted([e["id"] for e in b] for b in one) == sorted(ranked[k:k + 2] for k in range(0, 6, 2))
    with pytest.raises(ValueError, match="Generator"):
        task.batches("train", 2, None, shuffle=True)


# ----------------------------------------------------------------------------- multiclass loss
def expected_class_weights(spec) -> torch.Tensor:
    if spec is None:
        return torch.ones(3, dtype=torch.double)
    if spec == "balanced":
        labels = np.array([lab for _, lab in TOPIC_ROWS])
        return torch.tensor(compute_class_weight("balanced", classes=np.array(TOPICS), y=labels))
    if isinstance(spec, dict):  # names not given keep 1.0
        return torch.tensor([float(spec.get(name, 1.0)) for name in TOPICS], dtype=torch.double)
    return torch.tensor(spec, dtype=torch.double)


@pytest.mark.parametrize("loss_cfg", [
    {}, {"class_weights": [1.0, 2.0, 3.0]}, {"class_weights": "balanced"}, {"label_smoothing": 0.2},
    {"focal_gamma": 2.0}, {"focal_gamma": 1.5, "class_weights": {"science": 4.0}},
])
def test_multiclass_loss_matches_hand_computation(tokenizer, backbone, loss_cfg):
    task = build_task("topic", multiclass_cfg(loss=loss_cfg), topic_dataset(), tokenizer)
    torch.manual_seed(0)
    module = task.build_module(backbone)
    batch = task.collate(task.examples("train"))
    loss = task.loss(backbone, module, batch)
    logp = torch.log_softmax(hand_logits(backbone, module, batch).double(), dim=-1)
    y = batch["label_ids"]
    nll = -logp[torch.arange(len(y)), y]
    w = expected_class_weights(loss_cfg.get("class_weights"))[y]
    if loss_cfg.get("focal_gamma"):
        per = (1 - nll.neg().exp()) ** loss_cfg["focal_gamma"] * nll
    elif loss_cfg.get("label_smoothing"):
        eps = loss_cfg["label_smoothing"]
        per = (1 - eps) * nll + eps * (-logp.mean(dim=-1))
    else:
        per = nll
    expected = (w * per).sum() / w.sum()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5, abs=1e-6)


def test_multiclass_loss_config_errors(tokenizer):
    bad = [({"pos_weight": [1.0, 1.0, 1.0]}, "pos_weight"), ({"focal_gamma": 2.0, "label_smoothing": 0.1}, "combined"),
           ({"class_weights": [1.0, 2.0]}, "2 weights for 3 labels"), ({"class_weights": {"art": 2.0}}, "unknown label")]
    for loss_cfg, match in bad:
        with pytest.raises(LexilabError, match=match):
            build_task("topic", multiclass_cfg(loss=loss_cfg), topic_dataset(), tokenizer)
    with pytest.raises(LexilabError, match="early_stopping_metric"):
        build_task("topic", multiclass_cfg(early_stopping_metric="rougeL"), topic_dataset(), tokenizer)


# ----------------------------------------------------------------------------- no decoder
def test_classification_never_calls_the_decoder(tokenizer, backbone):
    calls = []
    backbone.decoder.register_forward_hook(lambda *a: calls.append("decoder"))
    for name in ("forward", "decode", "generate"):
        setattr(backbone, name, lambda *a, _n=name, **k: calls.append(_n))
    for task in (build_task("topic", multiclass_cfg(), topic_dataset(), tokenizer),
                 build_task("emotion", multilabel_cfg(), emotion_dataset(), tokenizer)):
        assert task.needs_decoder is False
        module = task.build_module(backbone)
        batch = task.collate(task.examples("train"))
        task.loss(backbone, module, batch).backward()
        task.predict(backbone, module, batch, {})
    assert calls == []


# ----------------------------------------------------------------------------- permutation invariance
def test_permuted_label_names_give_the_same_predictions_by_name(tokenizer, backbone):
    permuted = ["politics", "science", "sports"]
    first = build_task("topic", multiclass_cfg(), topic_dataset(TOPICS), tokenizer)
    second = build_task("topic", multiclass_cfg(), topic_dataset(permuted), tokenizer)
    torch.manual_seed(1)
    module = first.build_module(backbone)
    moved = copy.deepcopy(module)
    linear = [m for m in moved.modules() if isinstance(m, torch.nn.Linear)][-1]
    order = [TOPICS.index(name) for name in permuted]
    with torch.no_grad():  # output row k of the second head = row of the same NAME in the first
        linear.weight.copy_(linear.weight[order])
        linear.bias.copy_(linear.bias[order])
    batch_1, batch_2 = first.collate(first.examples("val")), second.collate(second.examples("val"))
    assert first.loss(backbone, module, batch_1).item() == pytest.approx(second.loss(backbone, moved, batch_2).item(), rel=1e-6)
    pred_1 = first.predict(backbone, module, batch_1)
    pred_2 = second.predict(backbone, moved, batch_2)
    metrics_1, records_1 = first.evaluate(pred_1, "val")
    metrics_2, records_2 = second.evaluate(pred_2, "val")
    for r1, r2 in zip(records_1, records_2):
        assert r1["prediction"] == r2["prediction"] and r1["reference"] == r2["reference"]
        assert r1["scores"] == pytest.approx(r2["scores"], rel=1e-6)
    metrics_1.pop("details"), metrics_2.pop("details")
    assert metrics_1 == pytest.approx(metrics_2)


# ----------------------------------------------------------------------------- multiclass evaluate
def test_multiclass_evaluate_matches_sklearn_with_absent_class(tokenizer):
    names = TOPICS + ["arts"]  # "arts" never occurs in the data
    task = build_task("topic", multiclass_cfg(early_stopping_metric="accuracy"), topic_dataset(names), tokenizer)
    rng = np.random.default_rng(0)
    scores = rng.dirichlet(np.ones(4), size=len(TOPIC_ROWS))
    predictions = [{"id": f"test-{i}", "scores": s.tolist()} for i, s in enumerate(scores)]
    metrics, records = task.evaluate(predictions, "test")
    y_true = [names.index(y) for _, y in TOPIC_ROWS]
    y_pred = scores.argmax(axis=1)
    labels = list(range(4))
    assert metrics["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    assert metrics["f1_macro"] == pytest.approx(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0))
    assert metrics["f1_weighted"] == pytest.approx(f1_score(y_true, y_pred, labels=labels, average="weighted", zero_division=0))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    table = metrics["details"]["per_class"]
    assert [table[n]["f1"] for n in names] == pytest.approx(f.tolist())
    assert table["arts"]["support"] == 0 and metrics["details"]["classes_absent"] == ["arts"]
    assert sum(map(sum, metrics["details"]["confusion_matrix"])) == len(TOPIC_ROWS)
    assert [r["correct"] for r in records] == [a == b for a, b in zip(y_true, y_pred)]
    assert task.val_objective(metrics) == metrics["accuracy"] and task.val_mode == "max"


# ----------------------------------------------------------------------------- multilabel loss
def expected_pos_weight(spec) -> torch.Tensor:
    gold = np.array([[name in labels for name in EMOTIONS] for _, labels in EMOTION_ROWS], dtype=float)
    if spec is None:
        return torch.ones(4, dtype=torch.double)
    if spec == "balanced":  # negatives / positives per class
        return torch.tensor((len(gold) - gold.sum(0)) / gold.sum(0))
    return torch.tensor(np.broadcast_to(np.asarray(spec, dtype=float), (4,)).copy())


@pytest.mark.parametrize("loss_cfg", [{}, {"pos_weight": "balanced"}, {"pos_weight": [1.0, 2.0, 0.5, 3.0]},
                                      {"focal_gamma": 2.0}, {"focal_gamma": 2.0, "pos_weight": 2.0}])
def test_multilabel_loss_matches_hand_computation(tokenizer, backbone, loss_cfg):
    task = build_task("emotion", multilabel_cfg(loss=loss_cfg), emotion_dataset(), tokenizer)
    torch.manual_seed(0)
    module = task.build_module(backbone)
    batch = task.collate(task.examples("train"))
    loss = task.loss(backbone, module, batch)
    logits = hand_logits(backbone, module, batch).double()
    y = batch["label_matrix"].double()
    p = torch.sigmoid(logits)
    pw = expected_pos_weight(loss_cfg.get("pos_weight"))
    gamma = loss_cfg.get("focal_gamma", 0.0)
    per = -(pw * y * (1 - p) ** gamma * torch.log(p) + (1 - y) * p ** gamma * torch.log(1 - p))
    assert loss.item() == pytest.approx(per.mean().item(), rel=1e-5)


def test_multilabel_config_errors(tokenizer):
    for cfg, match in [(multilabel_cfg(loss={"class_weights": [1, 1, 1, 1]}), "class_weights"),
                       (multilabel_cfg(loss={"label_smoothing": 0.1}), "label_smoothing"),
                       (multilabel_cfg(threshold={"tune": "always"}), "threshold.tune"),
                       (multilabel_cfg(threshold={"tune": "global", "metric": "accuracy"}), "threshold.metric")]:
        with pytest.raises(LexilabError, match=match):
            build_task("emotion", cfg, emotion_dataset(), tokenizer)


# ----------------------------------------------------------------------------- multilabel evaluate
def _fake_scores(n, seed=0):
    return np.random.default_rng(seed).random((n, len(EMOTIONS)))


@pytest.mark.parametrize("thresholds", [None, 0.3, [0.2, 0.4, 0.6, 0.8], {"anger": 0.1}])
def test_multilabel_evaluate_matches_sklearn(tokenizer, thresholds):
    task = build_task("emotion", multilabel_cfg(threshold={"tune": "global", "default": 0.45}), emotion_dataset(), tokenizer)
    scores = _fake_scores(len(EMOTION_ROWS))
    predictions = [{"id": f"val-{i}", "scores": s.tolist()} for i, s in enumerate(scores)]
    metrics, records = task.evaluate(predictions, "val", thresholds=thresholds)
    if thresholds is None:
        expected_t = [0.45] * 4  # the configured default
    elif isinstance(thresholds, float):
        expected_t = [thresholds] * 4
    elif isinstance(thresholds, dict):
        expected_t = [thresholds.get(name, 0.45) for name in EMOTIONS]
    else:
        expected_t = thresholds
    gold = np.array([[name in labels for name in EMOTIONS] for _, labels in EMOTION_ROWS], dtype=int)
    pred = (scores >= np.array(expected_t)).astype(int)
    for avg in ("micro", "macro", "weighted", "samples"):
        assert metrics[f"f1_{avg}"] == pytest.approx(f1_score(gold, pred, average=avg, zero_division=0))
    assert metrics["details"]["thresholds"] == pytest.approx(expected_t)
    for i, record in enumerate(records):
        assert record["prediction"] == [n for j, n in enumerate(EMOTIONS) if pred[i, j]]
        assert record["reference"] == [n for n in EMOTIONS if n in EMOTION_ROWS[i][1]]
        assert record["f1"] == pytest.approx(f1_score(gold[i:i + 1], pred[i:i + 1], average="samples", zero_division=0))
        assert record["scores"] == pytest.approx(dict(zip(EMOTIONS, scores[i].tolist())))


def test_multilabel_threshold_tuning_then_frozen(tokenizer):
    from lexilab.metrics.thresholds import tune_global, tune_per_class

    task = build_task("emotion", multilabel_cfg(), emotion_dataset(), tokenizer)
    scores = _fake_scores(len(EMOTION_ROWS), seed=4)
    predictions = [{"id": f"calibration-{i}", "scores": s.tolist()} for i, s in enumerate(scores)]
    gold = np.array([[name in labels for name in EMOTIONS] for _, labels in EMOTION_ROWS], dtype=int)
    per_class = task.tune_thresholds(predictions, "per_class")
    assert per_class == tune_per_class(gold, scores)[0]
    single = task.tune_thresholds(predictions, "global", metric="f1_samples")
    assert single == [tune_global(gold, scores, "f1_samples")[0]] * 4
    assert task.tune_thresholds(predictions, "none") == [0.5] * 4
    # frozen thresholds applied on another split: per-class F1 at least as high on calibration itself
    tuned, _ = task.evaluate(predictions, "calibration", thresholds=per_class)
    default, _ = task.evaluate(predictions, "calibration")
    for name in EMOTIONS:
        assert tuned["details"]["per_class"][name]["f1"] >= default["details"]["per_class"][name]["f1"] - 1e-12
    assert task.val_mode == "max"
    hamming = build_task("emotion", multilabel_cfg(early_stopping_metric="hamming_loss"), emotion_dataset(), tokenizer)
    assert hamming.val_mode == "min" and hamming.val_objective(tuned) == tuned["hamming_loss"]


def test_multilabel_predict_scores_are_sigmoids(tokenizer, backbone):
    task = build_task("emotion", multilabel_cfg(), emotion_dataset(), tokenizer)
    torch.manual_seed(0)
    module = task.build_module(backbone)
    batch = task.collate(task.examples("test"))
    predictions = task.predict(backbone, module, batch)
    expected = torch.sigmoid(hand_logits(backbone, module, batch)).tolist()
    assert [p["id"] for p in predictions] == batch["ids"]
    np.testing.assert_allclose([p["scores"] for p in predictions], expected, rtol=1e-6)
    multiclass = build_task("topic", multiclass_cfg(), topic_dataset(), tokenizer)
    module = multiclass.build_module(backbone)
    batch = multiclass.collate(multiclass.examples("test"))
    expected = F.softmax(hand_logits(backbone, module, batch), dim=-1).tolist()
    np.testing.assert_allclose([p["scores"] for p in multiclass.predict(backbone, module, batch)], expected, rtol=1e-6)
