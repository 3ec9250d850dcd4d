"""``as_seq2seq``: a synthetic multiclass task as seq2seq, its label word as the target."""
from __future__ import annotations

import pytest

import lexilab.data.synthetic as syn
from lexilab.errors import LexilabError


def test_as_seq2seq_targets_are_the_documented_label_words():
    up = syn.load_synthetic(task="conflict_a", n=40, noise=0.0, as_seq2seq=True)
    down = syn.load_synthetic(task="conflict_b", n=40, noise=0.0, as_seq2seq=True)
    assert up.kind == "seq2seq" and up.label_names is None and up.text_fields == ["text", "target"]
    assert syn.load_synthetic.kind_for(task="conflict_a", as_seq2seq=True) == "seq2seq"
    directions = {"north": 1, "up": 1, "high": 1, "top": 1, "south": 0, "down": 0, "low": 0, "bottom": 0}
    for a, b in zip(up.splits["train"], down.splits["train"]):
        words = [directions[w] for w in a["text"].split() if w in directions]
        assert a["text"] == b["text"] and len(words) == 1  # identical inputs, one direction word
        assert (a["target"], b["target"]) == (("yes", "no") if words[0] else ("no", "yes"))
    noisy = syn.load_synthetic(task="conflict_a", n=400, noise=0.2, as_seq2seq=True).splits["train"]
    labels = syn.load_synthetic(task="conflict_a", n=400, noise=0.2).splits["train"]
    assert [e["target"] for e in noisy] == [e["label"] for e in labels]  # the same noisy labels, as words
    for options, match in (({"task": "multilabel"}, "only multiclass"), ({"task": "shared_a", "as_seq2seq": 1}, "true or false")):
        with pytest.raises(LexilabError, match=match):
            syn.load_synthetic(**{"as_seq2seq": True, **options})


def test_opposite_targets_conflict_on_the_shared_encoder(tokenizer, backbone):
    """Through the shared decoder and LM head, opposite target words for the same texts give
    opposite encoder gradients once the joint optimum (p(yes) = p(no) = 1/2) is near: the cosine,
    computed by hand from torch.autograd.grad, is close to -1, and the diagnostics agree."""
    import torch

    from lexilab.tasks import build_task
    from lexilab.train.diagnostics import gradient_cosines

    cfg = {"kind": "seq2seq", "max_length": 32, "max_target_length": 4}
    tasks = {name: build_task(name, cfg, syn.load_synthetic(task=name, n=32, noise=0.0, as_seq2seq=True), tokenizer)
             for name in ("conflict_a", "conflict_b")}
    batches = {name: task.collate(task.examples("train")) for name, task in tasks.items()}  # the same texts
    assert batches["conflict_a"]["input_ids"].equal(batches["conflict_b"]["input_ids"])
    optimizer = torch.optim.Adam(backbone.parameters(), lr=3e-2)
    for _ in range(25):  # learn the shared output format (a label word, then the end token)
        optimizer.zero_grad()
        sum(task.loss(backbone, None, batches[name]) for name, task in tasks.items()).backward()
        optimizer.step()
    groups = {k: v for k, v in backbone.shared_parameter_groups().items() if k != "embeddings"}
    params = [p for group in groups.values() for p in group]
    losses = {name: task.loss(backbone, None, batches[name]) for name, task in tasks.items()}
    flat = {name: torch.cat([g.flatten() for g in torch.autograd.grad(loss, params, retain_graph=True)])
            for name, loss in losses.items()}
    by_hand = torch.cosine_similarity(flat["conflict_a"], flat["conflict_b"], dim=0).item()
    assert by_hand < -0.8, by_hand  # (after 12 steps the shared format still dominates: about +0.6)
    record = gradient_cosines(losses, groups, step=0)[0]
    assert record["group"] == "all" and abs(record["cosine"] - by_hand) < 1e-5
