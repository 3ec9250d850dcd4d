"""Known-answer synthetic tasks: determinism, the documented rules, noise = Bayes error, learnability."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
import torch

import lexilab.data.synthetic as syn
from lexilab.data.registry import SPLITS, load_dataset
from lexilab.errors import LexilabError

# The documented rules, written out independently of the module (z = dict feature -> 0/1).
RULES = {
    "shared_a": lambda z: "yes" if z["A"] else "no",
    "shared_b": lambda z: "yes" if z["A"] else "no",
    "disjoint_a": lambda z: "yes" if z["B"] else "no",
    "disjoint_b": lambda z: "yes" if z["C"] else "no",
    "conflict_a": lambda z: "yes" if z["D"] else "no",
    "conflict_b": lambda z: "no" if z["D"] else "yes",
    "multiclass4": lambda z: f"B{z['B']}C{z['C']}",
    "multilabel": lambda z: [f for f in "ABCD" if z[f]],
}


def brute_force_z(text: str, signal_words: int = 1) -> dict:
    """Count the words of every documented group; each feature must show exactly one group."""
    counts = Counter(text.split())
    z = {}
    for feature, groups in syn.SIGNAL_WORDS.items():
        hits = {value: sum(counts[w] for w in words) for value, words in groups.items()}
        assert sorted(hits.values()) == [0, signal_words], (text, feature, hits)
        z[feature] = max(hits, key=hits.get)
    return z


def digest(task: str, seed: int) -> str:
    data = syn.load_synthetic(task=task, n=50, seed=seed, noise=0.0 if task.startswith("seq2seq") else 0.2)
    return hashlib.sha256(json.dumps(data.splits, sort_keys=True).encode()).hexdigest()


def test_identical_across_processes():
    code = ("import lexilab.data.synthetic as s, hashlib, json\n"
            "for t in ('shared_a', 'multilabel', 'seq2seq_keywords'):\n"
            "    d = s.load_synthetic(task=t, n=50, seed=7, noise=0.0 if t.startswith('seq2seq') else 0.2)\n"
            "    print(hashlib.sha256(json.dumps(d.splits, sort_keys=True).encode()).hexdigest())\n")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == [digest(t, 7) for t in ("shared_a", "multilabel", "seq2seq_keywords")]
    assert digest("shared_a", 7) != digest("shared_a", 8)


def test_prefix_stable_shared_texts_and_disjoint_splits():
    small = syn.load_synthetic(task="multilabel", n={"train": 10}, seed=3)
    large = syn.load_synthetic(task="shared_a", n={"train": 300}, seed=3)
    assert [e["text"] for e in small.splits["train"]] == [e["text"] for e in large.splits["train"][:10]]
    assert [e["id"] for e in small.splits["train"]] == [e["id"] for e in large.splits["train"][:10]]
    texts = {split: {e["text"] for e in large.splits[split]} for split in SPLITS}
    assert all(not (texts[a] & texts[b]) for a in SPLITS for b in SPLITS if a < b)
    assert len({e["id"] for split in SPLITS for e in large.splits[split]}) == sum(map(len, large.splits.values()))


@pytest.mark.parametrize("signal_words", [1, 3])
def test_noise_free_labels_follow_the_documented_rules(signal_words):
    for task, rule in RULES.items():
        data = syn.load_synthetic(task=task, n=100, seed=1, noise=0.0, signal_words=signal_words)
        for split in SPLITS:
            for example in data.splits[split]:
                z = brute_force_z(example["text"], signal_words)
                got = example["label"] if "label" in example else example["labels"]
                assert got == rule(z), (task, example)
                n_words = len(example["text"].split())
                assert 4 * signal_words + 6 <= n_words <= 4 * signal_words + 14
    seq = syn.load_synthetic(task="seq2seq_keywords", n=30, seed=1)
    for example in seq.splits["test"]:
        signal = [w for w in example["text"].split() if w in syn.WORD_FEATURE]
        assert example["target"] == " ".join(signal)
        assert example["domain"] == ("up" if brute_force_z(example["text"])["D"] else "down")


def test_noise_rates_equal_the_bayes_error():
    n, noise = 20000, 0.2
    sd = np.sqrt(noise * (1 - noise) / n)
    sizes = {"train": n, "val": 0, "calibration": 0, "test": 0}
    zs = None  # every task of one seed labels the same texts: recover z once
    for task in ("shared_a", "conflict_b", "multiclass4", "multilabel"):
        rows = syn.load_synthetic(task=task, n=sizes, seed=2, noise=noise).splits["train"]
        zs = zs or [brute_force_z(e["text"]) for e in rows]
        if task == "multilabel":
            cells = np.array([[(f in e["labels"]) != bool(z[f]) for f in "ABCD"] for e, z in zip(rows, zs)])
            assert np.all(np.abs(cells.mean(axis=0) - noise) < 4 * sd)
            assert abs(np.corrcoef(cells[:, 0], cells[:, 1])[0, 1]) < 0.05  # independent flips
            continue
        clean = [RULES[task](z) for z in zs]
        bayes = np.mean([c == e["label"] for c, e in zip(clean, rows)])
        assert abs(bayes - (1 - noise)) < 4 * sd, task
        assert syn.bayes_accuracy(task, noise) == pytest.approx(1 - noise)
        if task == "multiclass4":  # wrong labels spread evenly over the 3 other classes
            wrong = Counter((c, e["label"]) for c, e in zip(clean, rows) if c != e["label"])
            for c in syn.MULTICLASS4:
                counts = [wrong[(c, other)] for other in syn.MULTICLASS4 if other != c]
                assert max(counts) - min(counts) < 0.25 * np.mean(counts)


def test_features_are_balanced_and_independent_across_tasks():
    a = syn.load_synthetic(task="conflict_a", n={"train": 4000}, seed=4, noise=0.1).splits["train"]
    b = syn.load_synthetic(task="conflict_b", n={"train": 4000}, seed=4, noise=0.1).splits["train"]
    z = np.array([[brute_force_z(e["text"])[f] for f in "ABCD"] for e in a])
    assert np.all(np.abs(z.mean(axis=0) - 0.5) < 0.05)
    assert np.all(np.abs(np.corrcoef(z.T) - np.eye(4)) < 0.06)
    assert [e["text"] for e in a] == [e["text"] for e in b]  # same seed: the same texts
    agree = np.mean([x["label"] == y["label"] for x, y in zip(a, b)])
    assert abs(agree - 2 * 0.1 * 0.9) < 0.03  # opposite rules agree only when exactly one is flipped


def test_bag_of_words_logistic_regression_is_near_bayes():
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    sizes = {"train": 2000, "val": 0, "calibration": 0, "test": 2000}
    for task in ("shared_a", "disjoint_b", "conflict_b", "multiclass4", "multilabel"):
        data = syn.load_synthetic(task=task, n=sizes, seed=5, noise=0.1)
        vec = CountVectorizer(token_pattern=r"\S+")
        x_train = vec.fit_transform([e["text"] for e in data.splits["train"]])
        x_test = vec.transform([e["text"] for e in data.splits["test"]])
        if task == "multilabel":
            y = lambda rows: np.array([[f in e["labels"] for f in "ABCD"] for e in rows], dtype=int)  # noqa: E731
            model = OneVsRestClassifier(LogisticRegression(max_iter=1000)).fit(x_train, y(data.splits["train"]))
            accuracy = (model.predict(x_test) == y(data.splits["test"])).mean()
        else:
            model = LogisticRegression(max_iter=1000).fit(x_train, [e["label"] for e in data.splits["train"]])
            accuracy = model.score(x_test, [e["label"] for e in data.splits["test"]])
        assert accuracy >= syn.bayes_accuracy(task, 0.1) - 0.03, task


def test_oracle_rouge_is_one_and_registry_loading(tmp_path):
    from lexilab.metrics.rouge import rouge_per_example

    data = load_dataset({"name": "synthetic", "task": "seq2seq_keywords", "n": 20, "seed": 0}, tmp_path)
    assert data.kind == "seq2seq" and data.label_names is None and data.text_fields == ["text", "target"]
    rows = data.splits["val"]
    scores = rouge_per_example([e["target"] for e in rows], [e["target"] for e in rows])
    assert all(s["rougeL"] == 1.0 for s in scores) and syn.bayes_accuracy("seq2seq_keywords", 0.0) == 1.0
    ml = load_dataset({"name": "synthetic", "task": "multilabel"}, tmp_path)
    assert ml.kind == "multilabel" and ml.label_names == ["A", "B", "C", "D"]
    assert {k: len(v) for k, v in ml.splits.items()} == syn.DEFAULT_N
    assert [syn.load_synthetic.kind_for(task=t, n=3) for t in ("conflict_b", "multilabel", "seq2seq_keywords")] == [
        "multiclass", "multilabel", "seq2seq"]


@pytest.mark.parametrize("options, match", [
    ({"task": "shared_c"}, "unknown task 'shared_c'"), ({"noise": 0.7}, "noise"), ({"n": {"dev": 3}}, "unknown split"),
    ({"seed": -1}, "seed"), ({"signal_words": 0}, "signal_words"), ({"n": "many"}, "n:"),
    ({"task": "seq2seq_keywords", "noise": 0.1}, "no label noise"),
])
def test_option_errors(options, match):
    with pytest.raises(LexilabError, match=match):
        syn.load_synthetic(**options)


def test_every_word_is_one_t5_token(tokenizer):
    for word in syn.VOCAB:
        assert len(tokenizer(word, add_special_tokens=False)["input_ids"]) == 1, word


def test_tied_head_gradient_cosine_signs(tokenizer, backbone):
    """The designed relations on a shared encoder read through one head: conflicting tasks pull
    the encoder apart (cos < 0), aligned tasks together (cos > 0)."""
    from lexilab.tasks import build_task

    cfg = {"kind": "multiclass", "pooling": "mean", "head": {"kind": "linear"}, "max_length": 64}
    params = [p for p in backbone.encoder.parameters()]

    def grad(task_name):
        task = build_task(task_name, cfg, syn.load_synthetic(task=task_name, n=64, seed=0, noise=0.0), tokenizer)
        loss = task.loss(backbone, module, task.collate(task.examples("train")))
        return torch.cat([g.flatten() for g in torch.autograd.grad(loss, params)])

    torch.manual_seed(0)
    module = build_task("shared_a", cfg, syn.load_synthetic(task="shared_a", n=4), tokenizer).build_module(backbone)
    cos = lambda a, b: torch.cosine_similarity(grad(a), grad(b), dim=0).item()  # noqa: E731
    assert cos("conflict_a", "conflict_b") < -0.3
    assert cos("shared_a", "shared_b") > 0.3
