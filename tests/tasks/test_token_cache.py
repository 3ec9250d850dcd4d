"""Each text is tokenised once per task: the cached ids equal the real FLAN-T5 tokenizer's on
every call, and the tokenizer sees only texts it has not seen (so collation on later passes over
a split is padding only)."""
from __future__ import annotations

import torch

from lexilab.data.registry import SPLITS, Dataset
from lexilab.tasks import build_task

TEXTS = [
    ("the match ended in a late goal after a long and tiring evening", "late goal"),
    ("voters chose a new mayor", "new mayor"),
    ("cells divide", "cells divide"),
]


class CountingTokenizer:
    """The real tokenizer, with a record of every text it was asked to tokenise."""

    def __init__(self, inner):
        self.inner, self.seen = inner, []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def __call__(self, text=None, text_target=None, **kwargs):
        self.seen.extend(text if text is not None else text_target)
        return self.inner(text=text, text_target=text_target, **kwargs)


def summary_task(tokenizer):
    rows = [{"id": str(i), "text": t, "target": s} for i, (t, s) in enumerate(TEXTS)]
    data = Dataset("cache", "seq2seq", {split: list(rows) for split in SPLITS}, None, ["text", "target"])
    return build_task("summ", {"kind": "seq2seq", "max_length": 8, "max_target_length": 4}, data, tokenizer)


def test_cached_ids_equal_the_tokenizer_and_each_text_is_tokenised_once(tokenizer):
    counting = CountingTokenizer(tokenizer)
    task = summary_task(counting)
    examples = task.examples("train")
    first = task.collate(examples)
    assert len(counting.seen) == 2 * len(TEXTS)  # every source and every target, once
    again = task.collate(list(reversed(examples)) + examples[:1])  # a later pass, another order
    assert len(counting.seen) == 2 * len(TEXTS)
    fresh = summary_task(tokenizer).collate(list(reversed(examples)) + examples[:1])
    for key in ("input_ids", "attention_mask", "labels"):
        assert torch.equal(again[key], fresh[key]), key
    # the independent truth: the tokenizer itself, truncated to max_length
    expected = tokenizer(text=[t for t, _ in TEXTS], truncation=True, max_length=8)["input_ids"]
    for row, ids in enumerate(expected):
        assert first["input_ids"][row, : len(ids)].tolist() == ids
        assert first["attention_mask"][row].sum() == len(ids)


def test_a_text_is_cached_per_length_limit_and_side(tokenizer):
    counting = CountingTokenizer(tokenizer)
    task = summary_task(counting)
    text = TEXTS[0][0]
    short, long_ = task.tokenize([text], 4), task.tokenize([text], 64)
    assert len(short[0]) == 4 < len(long_[0])
    assert long_ == tokenizer(text=[text], truncation=True, max_length=64)["input_ids"]
    task.tokenize([text], 64, target=True)
    assert counting.seen == [text, text, text]  # three different (limit, side) keys
    task.tokenize([text, text], 64)
    assert len(counting.seen) == 3
