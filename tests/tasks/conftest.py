"""Fixtures of the task tests: the FLAN-T5 tokenizer and a tiny random T5 backbone."""
from __future__ import annotations

import copy

import pytest

TINY_T5 = {"d_model": 32, "d_ff": 64, "num_layers": 2, "num_heads": 4, "d_kv": 8, "vocab_size": 32128,
           "feed_forward_proj": "gated-gelu", "dropout_rate": 0.0}


@pytest.fixture(scope="session")
def tokenizer(flan_tokenizer_dir):
    from lexilab.model import load_tokenizer

    return load_tokenizer(flan_tokenizer_dir)


@pytest.fixture(scope="session")
def _tiny_t5():
    from lexilab.model import load_backbone

    return load_backbone(dict(TINY_T5), init="random", seed=0)


@pytest.fixture()
def backbone(_tiny_t5):
    """A fresh copy of the tiny T5 per test (tests may spy on or train it)."""
    return copy.deepcopy(_tiny_t5)
