"""Data-parallel runs on the CPU machine: W gloo processes vs one process with the W-fold batch.

The run configs are the trainer tests' tiny multi-task configs (tests/train/conftest.py, loaded
by path: test folders are not packages), with dropout off so that both sides run the same
forward passes, and distributed training on."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("train_conftest", Path(__file__).parents[1] / "train" / "conftest.py")
train_conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(train_conftest)
WORLD = 2


def ddp_config(data_root, kind: str, batch: int, tasks=("topic", "emotion"), train_n: int = 19, **overrides) -> dict:
    """A tiny run of ``kind`` with per-process batch ``batch``: 3 epochs of one optimizer step
    (DWA's weights move in the third), train splits of ``train_n`` examples (a short, unevenly
    sharded last batch at global batch 8)."""
    sizes = dict(train_conftest.SIZES, train=train_n, val=8)
    overrides.setdefault("sampler", {"kind": "round_robin", "steps_per_epoch": 1})
    config = train_conftest.tiny_config(
        data_root, tasks, backbone__name__dropout_rate=0.0,
        train__epochs=3, train__batch_size=batch, train__eval_batch_size=8, train__checkpoint_every=None,
        train__device="cpu", train__distributed={"enabled": True, "backend": "gloo", "timeout_s": 120}, **overrides)
    for task in config["tasks"].values():
        task["data"] = train_conftest.synthetic(task["data"]["task"], sizes)
    config["weighting"] = {"kind": kind}
    return config


def assert_metrics_close(got: dict, expected: dict) -> None:
    """metrics.json of a data-parallel run against a one-process run's ({split: {task: ...}})."""
    for split, tasks in expected.items():
        for task, metrics in tasks.items():
            for name, value in metrics.items():
                if isinstance(value, float):
                    assert got[split][task][name] == pytest.approx(value, rel=1e-4, abs=1e-6), (split, task, name)


@pytest.fixture(scope="session")
def metrics_close():
    return assert_metrics_close


@pytest.fixture(scope="session")
def make_ddp_config():
    return ddp_config


@pytest.fixture(scope="session")
def data_root(shared_data):
    if not (shared_data / "flan_t5_tokenizer").is_dir():
        pytest.skip("the FLAN-T5 tokenizer is not in the shared data folder")
    return shared_data
