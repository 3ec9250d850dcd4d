"""Full training state for exact resume: saved atomically, restored bit for bit.

Everything that decides what happens next is in here: model, optimizer, scheduler, grad
scaler, every RNG (python, numpy, torch CPU and CUDA), the task sampler, each task's data
iterator position, the weighting method, the step, and early-stopping state.

The file holds only tensors and plain Python values, so it is read with
``torch.load(weights_only=True)``: a pickle planted in a run folder cannot run code on resume.
The previous checkpoint is kept (``state.prev.pt``) until the next one is complete, and an
unreadable (truncated, corrupt) last checkpoint falls back to it — or, with none left, the run
restarts from scratch — with a :class:`CheckpointWarning` naming the file.
"""
from __future__ import annotations

import io
import os
import pickle
import random
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lexilab.errors import LexilabError
from lexilab.io import atomic_write_bytes

STATE_FILE = "state.pt"
PREVIOUS_FILE = "state.prev.pt"
UNREADABLE_SUFFIX = ".unreadable"  # an unreadable checkpoint is moved aside under this name


class CheckpointWarning(UserWarning):
    """An unreadable checkpoint was skipped (resume fell back, or the run restarts)."""


class UnsafeCheckpoint(LexilabError):
    """A checkpoint holds objects other than tensors and plain values: refused, never run."""


def rng_state() -> dict[str, Any]:
    """Every global RNG as tensors and plain values (numpy's MT19937 key as an int64 tensor)."""
    legacy = np.random.get_state(legacy=False)
    state = {
        "python": random.getstate(),
        "numpy": {"key": torch.from_numpy(legacy["state"]["key"].astype(np.int64)),
                  "pos": int(legacy["state"]["pos"]), "has_gauss": int(legacy["has_gauss"]),
                  "gauss": float(legacy["gauss"])},
        "torch": torch.random.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    saved = state["numpy"]
    np.random.set_state({"bit_generator": "MT19937", "has_gauss": saved["has_gauss"], "gauss": saved["gauss"],
                         "state": {"key": saved["key"].numpy().astype(np.uint32), "pos": saved["pos"]}})
    torch.random.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    """Seed the global generators too: dropout draws from torch's global RNG."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _keep_previous(path: Path) -> None:
    """Make ``state.prev.pt`` the current checkpoint before a new one replaces it. A hard link
    keeps ``state.pt`` in place throughout; where links are unsupported a rename leaves only
    the previous file until the new one lands, which ``load_state`` handles the same way."""
    if not path.exists():
        return
    previous = path.with_name(PREVIOUS_FILE)
    staged = path.with_name(f".{PREVIOUS_FILE}.link")
    try:
        staged.unlink(missing_ok=True)
        os.link(path, staged)
        os.replace(staged, previous)
    except OSError:
        os.replace(path, previous)


def save_state(directory: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write ``state`` (with the RNG states added) to ``directory/state.pt`` atomically,
    keeping the one it replaces as ``state.prev.pt``."""
    state = dict(state, rng=rng_state())
    buffer = io.BytesIO()
    torch.save(state, buffer)
    path = Path(directory) / STATE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    _keep_previous(path)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def read_state_file(path: Path) -> dict[str, Any]:
    """One checkpoint with ``weights_only=True``. A file that needs any other global is an
    :class:`UnsafeCheckpoint`; a truncated or corrupt one raises ``ValueError`` (why)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"GLOBAL (\S+)", str(err))
        if found or "allowed global" in str(err):
            raise UnsafeCheckpoint(
                f"{path}: refused: it holds {found.group(1) if found else 'a Python object'}, not only tensors "
                "and plain values (lexilab never writes that); delete it to restart the run from scratch") from None
        raise ValueError(f"not a readable checkpoint ({str(err).strip().splitlines()[-1][:120]})") from None
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        text = str(err).strip().splitlines()[0][:120] if str(err).strip() else type(err).__name__
        raise ValueError(f"truncated or corrupt ({text})") from None
    if not isinstance(state, dict) or "step" not in state:
        raise ValueError("not a lexilab training state")
    return state


def load_state(directory: str | os.PathLike) -> dict[str, Any] | None:
    """The newest readable checkpoint in ``directory`` (``state.pt``, else ``state.prev.pt``),
    or None when there is none. An unreadable one is moved aside (``*.unreadable``) with a
    warning, so that the next save does not keep it as the previous checkpoint."""
    directory = Path(directory)
    candidates = [directory / name for name in (STATE_FILE, PREVIOUS_FILE) if (directory / name).exists()]
    for index, path in enumerate(candidates):
        try:
            return read_state_file(path)
        except ValueError as err:
            after = candidates[index + 1:]
            then = f"resuming from {after[0]} instead" if after else "restarting the run from scratch"
            warnings.warn(f"{path}: {err}; {then}", CheckpointWarning, stacklevel=2)
            os.replace(path, path.with_name(path.name + UNREADABLE_SUFFIX))
    return None


def discard_previous(directory: str | os.PathLike) -> None:
    """Drop ``state.prev.pt`` once a run has finished: nothing resumes from it any more, and it
    would double the run's disk use (gigabytes for a FLAN-T5-base state)."""
    (Path(directory) / PREVIOUS_FILE).unlink(missing_ok=True)
