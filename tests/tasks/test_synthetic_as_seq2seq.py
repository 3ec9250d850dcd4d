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
