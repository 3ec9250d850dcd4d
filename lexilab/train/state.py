"""Full training state for exact resume: saved atomically, restored bit for bit.

Everything that decides what happens next is in here: model, optimizer, scheduler, grad
scaler, every RNG (python, numpy, torch CPU and CUDA), the task sampler, each task's data
iterator position, the weighting method, the step, and early-stopping state.
"""
from __future__ import annotations

import io
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lexilab.io import atomic_write_bytes

STATE_FILE = "state.pt"


def rng_state() -> dict[str, Any]:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.random.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.random.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    """Seed the global generators too: dropout draws from torch's global RNG."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def save_state(directory: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write ``state`` (with the RNG states added) to ``directory/state.pt`` atomically."""
    state = dict(state, rng=rng_state())
    buffer = io.BytesIO()
    torch.save(state, buffer)
    path = Path(directory) / STATE_FILE
    atomic_write_bytes(path, buffer.getvalue())
    return path


def load_state(directory: str | os.PathLike) -> dict[str, Any] | None:
    path = Path(directory) / STATE_FILE
    if not path.exists():
        return None
    # our own file; it holds numpy RNG tuples and python objects, hence weights_only=False
    return torch.load(path, map_location="cpu", weights_only=False)
