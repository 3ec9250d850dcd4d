"""Peak bytes of live tensor storage on any device (CPU included), counted op by op.

CUDA has ``torch.cuda.max_memory_allocated``; the CPU allocator keeps no such count and a process's
peak RSS mixes in the allocator's caching and everything else the process did. ``LiveTensorBytes``
is a ``TorchDispatchMode``: every storage an operator creates inside the block (forward and
backward) is counted from its creation until it is freed (a weak-reference callback), so ``peak``
is the most tensor memory the block ever held at once, beyond what existed before it.
"""
from __future__ import annotations

import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves


class LiveTensorBytes(TorchDispatchMode):
    """``with LiveTensorBytes() as mem: ...`` then ``mem.peak`` (bytes) and ``mem.live`` (still held)."""

    def __init__(self) -> None:
        super().__init__()
        self.live = self.peak = 0
        self._tracked: dict[int, weakref.ref] = {}  # data pointer of a counted storage -> weak reference

    def _release(self, key: int, size: int) -> None:
        self._tracked.pop(key, None)
        self.live -= size

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        # a view or an in-place result shares an input's storage: counted already, or made before the block
        inputs = {t.untyped_storage().data_ptr() for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)}
        for tensor in tree_leaves(out):
            if not isinstance(tensor, torch.Tensor) or tensor.device.type == "meta":
                continue
            storage = tensor.untyped_storage()
            key, size = storage.data_ptr(), storage.nbytes()
            if size == 0 or key in inputs or key in self._tracked:
                continue
            self._tracked[key] = weakref.ref(storage, lambda _, key=key, size=size: self._release(key, size))
            self.live += size
            self.peak = max(self.peak, self.live)
        return out
