"""Tiny multi-task configs over the known-answer synthetic tasks (seconds on 2 CPU cores)."""
from __future__ import annotations

import copy

import pytest

TINY_T5 = {"d_model": 32, "d_ff": 64, "num_layers": 2, "num_decoder_layers": 2, "num_heads": 4, "d_kv": 8,
           "vocab_size": 32128, "feed_forward_proj": "gated-gelu", "dropout_rate": 0.1}
SIZES = {"train": 48, "val": 16, "calibration": 16, "test": 16}


def synthetic(task: str, sizes=None) -> dict:
    return {"name": "synthetic", "task": task, "n": dict(sizes or SIZES)}


def tiny_config(data_root, tasks=("topic", "emotion", "summary"), **overrides) -> dict:
    every = {
        "topic": {"kind": "multiclass", "data": synthetic("shared_a"), "max_length": 32},
        "emotion": {"kind": "multilabel", "data": synthetic("multilabel"), "pooling": "attention", "max_length": 32},
        "summary": {"kind": "seq2seq", "data": synthetic("seq2seq_keywords"), "max_length": 32,
                    "max_target_length": 12, "generation": {"num_beams": 2, "max_new_tokens": 8}},
        "aligned": {"kind": "multiclass", "data": synthetic("shared_b"), "max_length": 32},
    }
    config = {
        "seed": 0,
        "data_root": str(data_root),
        "backbone": {"name": dict(TINY_T5), "init": "random", "tokenizer": "data:flan_t5_tokenizer"},
        "tasks": {name: copy.deepcopy(every[name]) for name in tasks},
        "sampler": {"kind": "round_robin", "steps_per_epoch": 6},
        "optim": {"lr": 1e-3, "warmup_steps": 1},
        "train": {"epochs": 1, "batch_size": 8, "eval_batch_size": 16, "checkpoint_every": 2},
        "tracking": {"mlflow": False},
    }
    for dotted, value in overrides.items():
        node = config
        keys = dotted.split("__")
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
    return config


@pytest.fixture(scope="session")
def make_config(shared_data):
    def make(tasks=("topic", "emotion", "summary"), **overrides):
        return tiny_config(shared_data, tasks, **overrides)

    return make
