"""Checkpoints under faults: a planted pickle never runs, an unreadable last checkpoint falls
back to the previous one (or restarts the run, saying so) with results identical to a run
that never stopped, orphan temp files of killed writes are removed on resume, and the best
weights get the same file mode as every other run file."""
from __future__ import annotations

import os

import pytest
import torch
from safetensors.torch import load_file

from lexilab.errors import LexilabError
from lexilab.io import read_jsonl
from lexilab.train.state import PREVIOUS_FILE, STATE_FILE, CheckpointWarning
from lexilab.train.trainer import Trainer, train_run


class Crash(Exception):
    """Stands in for a kill after a given step (the checkpoints on disk are what a kill leaves)."""


def _config(make_config):
    # checkpoints at steps 2 and 4 of 6; the one evaluation is at the end
    return make_config(("topic",), train__max_steps=6, train__checkpoint_every=2, train__device="cpu")


def _crash_after(config, run_dir, step):
    def hook(trainer):
        if trainer.step == step:
            raise Crash
    with pytest.raises(Crash):
        Trainer(config, run_dir, progress=False).fit(on_step=hook)


def _history(run_dir):
    return [{k: v for k, v in r.items() if k != "examples_per_s"} for r in read_jsonl(run_dir / "history.jsonl")]


def _weights(run_dir):
    return load_file(run_dir / "checkpoints" / "best" / "model.safetensors")


@pytest.fixture(scope="module")
def reference(make_config, tmp_path_factory):
    old = os.umask(0o022)
    try:
        run_dir = tmp_path_factory.mktemp("ref") / "e" / "a" / "seed-0"
        metrics = train_run(_config(make_config), run_dir, progress=False)
    finally:
        os.umask(old)
    return run_dir, metrics


def _same_run(run_dir, reference):
    ref_dir, _ = reference
    a, b = _weights(ref_dir), _weights(run_dir)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert _history(run_dir) == _history(ref_dir)


class _Planted:
    """A pickle whose loading creates a file (what an attacker would plant)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_planted_pickle_payload_is_refused_and_never_runs(make_config, tmp_path):
    run_dir = tmp_path / "e" / "a" / "seed-0"
    marker = tmp_path / "payload-ran"
    planted = run_dir / "checkpoints" / "last" / STATE_FILE
    planted.parent.mkdir(parents=True)
    torch.save({"step": 2, "model": _Planted(marker)}, planted)
    with pytest.raises(LexilabError) as info:
        train_run(_config(make_config), run_dir, progress=False)
    message = str(info.value)
    assert message.startswith(f"{planted}: refused") and "open" in message and "\n" not in message
    assert not marker.exists()
    # the file really is a payload: an unrestricted load runs it
    torch.load(planted, weights_only=False)["model"].close()
    assert marker.exists()


def test_truncated_last_checkpoint_falls_back_to_the_previous_one(make_config, tmp_path, reference):
    config = _config(make_config)
    run_dir = tmp_path / "e" / "a" / "seed-0"
    _crash_after(config, run_dir, 5)
    last = run_dir / "checkpoints" / "last"
    assert torch.load(last / PREVIOUS_FILE, weights_only=True)["step"] == 2  # kept while step 4 was written
    data = (last / STATE_FILE).read_bytes()
    (last / STATE_FILE).write_bytes(data[: len(data) // 2])
    with pytest.warns(CheckpointWarning, match=rf"{last / STATE_FILE}: truncated or corrupt .*resuming from "
                                               rf"{last / PREVIOUS_FILE}"):
        metrics = train_run(config, run_dir, progress=False)
    assert metrics == reference[1]
    _same_run(run_dir, reference)
    assert (last / (STATE_FILE + ".unreadable")).exists()  # moved aside, not kept as "previous"
    assert torch.load(last / STATE_FILE, weights_only=True)["step"] == 6


def test_unreadable_only_checkpoint_restarts_and_orphan_temps_are_removed(make_config, tmp_path, reference):
    config = _config(make_config)
    run_dir = tmp_path / "e" / "a" / "seed-0"
    _crash_after(config, run_dir, 3)
    last = run_dir / "checkpoints" / "last"
    assert not (last / PREVIOUS_FILE).exists()
    (last / STATE_FILE).write_bytes(b"")  # e.g. a copy cut short
    # what kills inside atomic writes leave: a partial state, a partial status update
    orphans = [last / ".state.pt.k3x9q2ab.tmp", run_dir / ".status.json.a1b2c3d4.tmp"]
    for orphan in orphans:
        orphan.write_bytes(b"\0" * 4096)
        os.utime(orphan, (0, 0))  # long ago
    live = run_dir / ".status.json.zz9yy8xx.tmp"  # being written right now by another process
    live.write_bytes(b"{")
    unrelated = run_dir / "notes.tmp"
    unrelated.write_text("mine")
    with pytest.warns(CheckpointWarning, match=rf"{last / STATE_FILE}: truncated or corrupt .*restarting the run from scratch"):
        metrics = train_run(config, run_dir, progress=False)
    assert metrics == reference[1]
    _same_run(run_dir, reference)
    assert not any(orphan.exists() for orphan in orphans)
    assert live.exists() and unrelated.read_text() == "mine"


def test_best_weights_have_the_mode_of_every_other_run_file(reference):
    run_dir, _ = reference
    modes = {str(p.relative_to(run_dir)): p.stat().st_mode & 0o777 for p in run_dir.rglob("*") if p.is_file()}
    assert modes["checkpoints/best/model.safetensors"] == 0o644
    assert set(modes.values()) == {0o644}, modes


def test_state_file_holds_only_tensors_and_plain_values(reference):
    """Readable by the restricted unpickler alone: nothing in it needs a Python global."""
    run_dir, _ = reference
    state = torch.load(run_dir / "checkpoints" / "last" / STATE_FILE, weights_only=True)
    assert state["step"] == 6 and isinstance(state["rng"]["numpy"]["key"], torch.Tensor)
    assert not (run_dir / "checkpoints" / "last" / PREVIOUS_FILE).exists()  # a finished run keeps one state
