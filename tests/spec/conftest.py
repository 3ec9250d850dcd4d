"""Fixtures for the spec / run-config / results-store tests: tiny specs written to tmp_path."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

# A tiny T5 given by its config fields (no checkpoint), as in experiments/quickstart.yaml.
TINY_T5 = {"d_model": 16, "d_kv": 4, "d_ff": 32, "num_layers": 2, "num_heads": 4, "vocab_size": 32128,
           "feed_forward_proj": "gated-gelu"}


def synthetic(task: str, n: int = 40) -> dict:
    return {"name": "synthetic", "task": task, "n": {"train": n, "val": n // 2, "calibration": n // 2, "test": n // 2}}


@pytest.fixture
def base_config(shared_data) -> dict:
    """A valid run config (base of a spec): one classification and one seq2seq synthetic task."""
    return {
        "data_root": str(shared_data),
        "backbone": {"name": dict(TINY_T5), "init": "random", "tokenizer": "data:flan_t5_tokenizer"},
        "tasks": {
            "colour": {"kind": "multiclass", "data": synthetic("shared_a"), "pooling": "mean", "max_length": 32},
            "keywords": {"kind": "seq2seq", "data": synthetic("seq2seq_keywords"), "max_length": 32,
                         "max_target_length": 16, "generation": {"num_beams": 1, "max_new_tokens": 8}},
        },
        "sampler": {"kind": "round_robin"},
        "optim": {"lr": 3.0e-3},
        "train": {"epochs": 1, "batch_size": 8, "device": "cpu"},
        "tracking": {"mlflow": False},
    }


@pytest.fixture
def write_spec(tmp_path):
    """write_spec(text_or_mapping, name="spec.yaml") -> Path of the written YAML file."""

    def write(content, name: str = "spec.yaml") -> Path:
        path = tmp_path / name
        text = content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False)
        path.write_text(textwrap.dedent(text) if isinstance(content, str) else text, encoding="utf-8")
        return path

    return write


@pytest.fixture
def make_spec(write_spec, base_config):
    """make_spec(**top_level) -> Path: a spec around ``base_config`` with the given keys."""

    def make(filename: str = "spec.yaml", **top) -> Path:
        document = {"name": "toy", "description": "a toy study", "base": base_config}
        document.update(top)
        return write_spec(document, filename)

    return make


@pytest.fixture
def cli(cli_of):
    """cli(*argv) -> (exit code, stdout, stderr) through lexilab.cli.main with run and status only."""
    return cli_of("lexilab.commands.run", "lexilab.commands.status")
