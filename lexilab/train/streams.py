"""Endless, resumable streams of one task's training batches.

Each pass over a task's train split is a fresh shuffle drawn from the stream's own
``torch.Generator``; the state is (generator state at the start of the pass, position), so a
restored stream regenerates the same pass and continues at the same batch.
"""
from __future__ import annotations

import torch


class TaskStream:
    def __init__(self, task, batch_size: int, seed: int):
        self.task = task
        self.batch_size = batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.passes = 0
        self.position = 0
        self._pass_start = None
        self._batches: list[list[dict]] | None = None

    def _new_pass(self) -> None:
        self._pass_start = self.generator.get_state()
        self._batches = self.task.batches("train", self.batch_size, self.generator, shuffle=True)
        if not self._batches:
            raise RuntimeError(f"task {self.task.name}: the train split gave no batches")
        self.position = 0

    def next(self) -> list[dict]:
        if self._batches is None:
            self._new_pass()
        elif self.position >= len(self._batches):
            self.passes += 1
            self._new_pass()
        batch = self._batches[self.position]
        self.position += 1
        return batch

    def state_dict(self) -> dict:
        return {"passes": self.passes, "position": self.position, "pass_start": self._pass_start,
                "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.passes = state["passes"]
        if state["pass_start"] is None:
            self.generator.set_state(state["generator"])
            self._batches = None
            self.position = 0
            return
        self.generator.set_state(state["pass_start"])
        self._new_pass()
        self.position = state["position"]
