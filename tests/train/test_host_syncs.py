"""Host synchronisations of a training step: a window reads the device a fixed number of times,
whatever grad_accum, and the history values are the ones the losses give by hand.

On the CPU nothing waits, so the test counts the reads lexilab asks for: every call of a tensor
method that copies a value to the host (``item``, ``tolist``, ``bool``/``float``/``int``, ...)
made from lexilab's code. Left out are the reads of tensors that live on the host in every run:
the model's token-id range check (it runs on CPU tensors only and is skipped on an accelerator,
tests/model/test_t5_compiled.py) and the data order (sampler draws and shuffles from CPU
generators). On CUDA the same window runs under torch's sync debug mode, which counts the
synchronisations the GPU really makes."""
from __future__ import annotations

import math
import sys
import warnings
from pathlib import Path

import pytest
import torch

from lexilab.train.trainer import Trainer

LEXILAB = str(Path(__import__("lexilab").__file__).resolve().parent)
HOST_SIDE = {("t5.py", "check_ids"), ("collate.py", "*"), ("samplers.py", "*"), ("streams.py", "*")}
HOST_READS = ("item", "tolist", "__bool__", "__float__", "__int__", "__index__", "nonzero", "cpu", "numpy")
TASKS = ("topic", "emotion", "summary")  # multiclass, multilabel, seq2seq


class HostReads:
    """Counts host reads made from lexilab's code (not torch's own CPU-side bookkeeping)."""

    def __init__(self, monkeypatch):
        self.calls: list[str] = []
        self.counting = False
        for name in HOST_READS:
            monkeypatch.setattr(torch.Tensor, name, self._wrap(getattr(torch.Tensor, name)))

    def _wrap(self, original):
        def counted(tensor, *args, **kwargs):
            if self.counting:
                caller = sys._getframe(1)
                where, function = caller.f_code.co_filename, caller.f_code.co_name
                name = Path(where).name
                if where.startswith(LEXILAB) and not HOST_SIDE & {(name, function), (name, "*")}:
                    self.calls.append(f"{name}:{caller.f_lineno} {function}")
            return original(tensor, *args, **kwargs)

        return counted

    def during(self, call):
        self.calls, self.counting = [], True
        try:
            return call()
        finally:
            self.counting = False


def _trainer(make_config, tmp_path, name, accum, **overrides) -> Trainer:
    config = make_config(TASKS, train__grad_accum=accum, sampler={"kind": "round_robin", "steps_per_epoch": 8},
                         optim={"lr": 1e-3, "clip_norm": 1.0}, **overrides)
    return Trainer(config, tmp_path / name / "a" / "seed-0", progress=False)


def _spy_losses(trainer) -> list[tuple[str, torch.Tensor]]:
    """Every task loss the window computes, in order (kept on the device: no read here)."""
    seen = []
    original = trainer._loss

    def spy(name, batch):
        loss = original(name, batch)
        seen.append((name, loss.detach().clone()))
        return loss

    trainer._loss = spy
    return seen


@pytest.mark.parametrize("accum", [1, 4])
def test_a_window_reads_the_device_once_whatever_grad_accum(make_config, tmp_path, monkeypatch, accum):
    """Policy fail: one read of the window's losses (then checked, before the optimizer step),
    and the clipped gradient norm when the record is written. Before: per micro-batch one
    ``bool(isfinite)`` and two ``loss.item()``, and ``float(grad_norm)`` per window (13 at 4)."""
    trainer = _trainer(make_config, tmp_path, f"fail{accum}", accum)
    losses = _spy_losses(trainer)
    reads = HostReads(monkeypatch)
    record, deferred = reads.during(lambda: trainer._run_window(accum))
    assert len(reads.calls) == 1, reads.calls
    assert set(deferred) == {"grad_norm"}
    record = reads.during(lambda: trainer._resolved(record, deferred))
    assert len(reads.calls) == 1, reads.calls

    # the record and the epoch sums, by hand from the same losses
    assert [name for name, _ in losses] == ["topic", "emotion", "summary", "topic"][:accum]  # round robin
    by_task: dict[str, list[float]] = {}
    for name, loss in losses:
        by_task.setdefault(name, []).append(float(loss))
    assert {k: v for k, v in record.items() if k.startswith("loss/")} == \
        {f"loss/{name}": sum(values) / len(values) for name, values in by_task.items()}
    # plain values, as state.pt's weights-only load and DWA's epoch means need them
    assert trainer.epoch_losses == {name: [sum(values), len(values)] for name, values in by_task.items()}
    assert all(type(total) is float and type(count) is int for total, count in trainer.epoch_losses.values())
    assert type(record["grad_norm"]) is float and math.isfinite(record["grad_norm"])  # value: test_step_semantics
    assert record["examples"] == 8 * accum


def test_skip_policy_reads_once_per_micro_batch(make_config, tmp_path, monkeypatch):
    """Policy skip decides before each backward, so it reads each micro-batch's losses: 4 reads
    for 4 micro-batches, none more at the window's end."""
    trainer = _trainer(make_config, tmp_path, "skip", 4, train__on_nonfinite="skip")
    reads = HostReads(monkeypatch)
    reads.during(lambda: trainer._run_window(4))
    assert len(reads.calls) == 4, reads.calls


def test_fail_policy_still_raises_before_the_optimizer_step(make_config, tmp_path, monkeypatch):
    """The third of four micro-batches is NaN: the check at the window's end names step and
    task, and no parameter has moved."""
    from lexilab.train.trainer import NonFiniteLoss

    trainer = _trainer(make_config, tmp_path, "nan", 4)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    original, calls = trainer._loss, []

    def third_is_nan(name, batch):
        calls.append(name)
        loss = original(name, batch)
        return loss * float("nan") if len(calls) == 3 else loss

    trainer._loss = third_is_nan
    with pytest.raises(NonFiniteLoss) as err:
        trainer._window(4)
    assert str(err.value) == f"non-finite loss (nan) at step 0 in task {calls[2]!r}"
    assert all(torch.equal(before[k], v) for k, v in trainer.model.state_dict().items())


@pytest.mark.gpu
def test_a_cuda_window_synchronises_at_most_twice(make_config, tmp_path):
    """The real count: torch warns on every synchronising CUDA call in sync debug mode."""
    trainer = _trainer(make_config, tmp_path, "cuda", 4, train__device="cuda")
    trainer._window(4)  # first window: lazy initialisation (cuBLAS handles, allocator) out of the count
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            trainer._window(4)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    syncs = [str(w.message) for w in caught if "synchroniz" in str(w.message)]
    assert len(syncs) <= 2, syncs  # the losses' read, the gradient norm's read
