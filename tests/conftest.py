"""Suite-wide fixtures: offline Hugging Face, the shared data folder, GPU skipping."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

# Tests never reach the hub; a missing model then fails in seconds, not a minute.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Tiny test models gain nothing from intra-op threads, and OpenMP threads spin-wait when the
# cores are shared (pytest + SLURM jobs + executors): one thread per process is ~10x faster here.
# Set before torch is imported; inherited by the subprocesses and jobs the tests start.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} not present (tests read the shared data beside the repo)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def flan_tokenizer_dir(shared_data: Path) -> Path:
    return shared_data / "flan_t5_tokenizer"


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)
