"""Moving a collated batch to the model's device: unchanged on the CPU; to CUDA through pinned
memory with non-blocking copies, so the host never waits on the GPU stream for a batch."""
from __future__ import annotations

import pytest
import torch

from lexilab.tasks.base import Task


def _batch() -> dict:
    return {"input_ids": torch.tensor([[5, 6, 7], [8, 0, 0]]), "attention_mask": torch.tensor([[1, 1, 1], [1, 0, 0]]),
            "label_matrix": torch.tensor([[1.0, 0.0], [0.0, 1.0]]), "ids": ["a", "b"]}


@pytest.mark.parametrize("device", ["cpu", torch.device("cpu")])
def test_cpu_batches_are_returned_as_they_are(device):
    batch = _batch()
    moved = Task.to_device(batch, device)
    assert moved.keys() == batch.keys() and moved["ids"] is batch["ids"]
    for key in ("input_ids", "attention_mask", "label_matrix"):
        assert moved[key] is batch[key]  # no copy, no pinning on the CPU
        assert not batch[key].is_pinned()


@pytest.mark.gpu
def test_cuda_copies_are_pinned_and_do_not_synchronise():
    batch = _batch()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")  # any synchronising CUDA call raises
    try:
        moved = Task.to_device(batch, torch.device("cuda"))
        again = Task.to_device(moved, torch.device("cuda"))  # already there: nothing moves
        with pytest.raises(RuntimeError, match="synchroniz"):  # what a plain .to() does: the check can fail
            batch["input_ids"].to("cuda")
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.cuda.synchronize()
    assert moved["ids"] is batch["ids"]
    for key in ("input_ids", "attention_mask", "label_matrix"):
        assert moved[key].is_cuda and again[key] is moved[key]
        assert torch.equal(moved[key].cpu(), batch[key]) and moved[key].dtype == batch[key].dtype
        assert not batch[key].is_pinned()  # the caller's tensors are left alone
