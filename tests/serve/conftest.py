"""A tiny trained study for the serve tests, trained once per session the way `run` trains one.

Quickstart-shaped (a tiny random T5 from config fields, synthetic known-answer tasks) but with
one task of each kind, so every output the server draws is exercised: ``mtl`` trains a
multiclass, a multi-label and a seq2seq task together; ``topic_only`` the multiclass task alone.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lexilab.runner import run_in_dir
from lexilab.runs import write_run
from lexilab.spec import load_spec

N = {"train": 48, "val": 16, "calibration": 16, "test": 16}
BACKBONE = {"d_model": 32, "d_kv": 8, "d_ff": 64, "num_layers": 2, "num_heads": 4, "vocab_size": 32128,
            "feed_forward_proj": "gated-gelu"}


def serve_spec(data_root: Path) -> dict:
    return {
        "name": "servetiny",
        "description": "one task of each kind on a tiny random T5, together and the multiclass task alone",
        "base": {
            "data_root": str(data_root),
            "backbone": {"name": dict(BACKBONE), "init": "random", "tokenizer": "data:flan_t5_tokenizer"},
            "tasks": {
                "topic": {"kind": "multiclass", "data": {"name": "synthetic", "task": "shared_a", "n": N},
                          "max_length": 32},
                "emotion": {"kind": "multilabel", "data": {"name": "synthetic", "task": "multilabel", "n": N},
                            "max_length": 32},
                "summary": {"kind": "seq2seq", "data": {"name": "synthetic", "task": "seq2seq_keywords", "n": N},
                            "max_length": 32, "max_target_length": 12,
                            "generation": {"num_beams": 2, "max_new_tokens": 6}},
            },
            "sampler": {"kind": "round_robin", "steps_per_epoch": 6},
            "optim": {"lr": 3.0e-3, "warmup_steps": 1},
            "train": {"epochs": 1, "batch_size": 8, "eval_batch_size": 16, "device": "cpu", "checkpoint_every": 6},
            "tracking": {"mlflow": False},
        },
        "factors": {"tasks": {"mtl": {}, "topic_only": {"tasks.emotion": None, "tasks.summary": None}}},
        "seeds": 1,
    }


@pytest.fixture(scope="session")
def trained_study(tmp_path_factory, shared_data) -> dict[str, Path]:
    """arm -> finished run directory (results/servetiny/<arm>/seed-0)."""
    root = tmp_path_factory.mktemp("serve")
    spec_path = root / "servetiny.yaml"
    spec_path.write_text(yaml.safe_dump(serve_spec(shared_data), sort_keys=False))
    dirs = {}
    for run in load_spec(spec_path).runs():
        run_dir = run.run_dir(root / "results")
        write_run(run_dir, run.config, {"experiment": run.experiment, "arm": run.arm, "seed": run.seed},
                  run.config_hash)
        run_in_dir(run_dir, progress=False)
        dirs[run.arm] = run_dir
    return dirs


@pytest.fixture(scope="session")
def predictors(trained_study):
    """Independent predictors (the reference the server's answers are checked against)."""
    from lexilab.inference import load_predictor

    return {f"{arm}/seed-0": load_predictor(path, "cpu") for arm, path in trained_study.items()}
