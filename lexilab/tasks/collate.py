"""Collation helpers: dynamic padding and (optionally length-bucketed) batch orders.

Padding goes to the longest sequence of the batch, never to a fixed length (LexiMind padded
~20-token GoEmotions comments to 256), optionally rounded up to a multiple of N (a task's
``pad_to_multiple_of``): ``torch.compile`` then sees a few lengths instead of one per batch, and
tensor cores get aligned shapes; padded positions are masked, so they change nothing. Length bucketing sorts examples by length inside
shuffled chunks of ``chunk_batches`` batches, so a batch holds similar lengths while the order
stays random; everything is drawn from the caller's ``torch.Generator`` (no global RNG).
"""
from __future__ import annotations

from typing import Sequence

import torch

IGNORE_INDEX = -100  # positions the seq2seq loss skips (PyTorch's cross_entropy default)
DEFAULT_CHUNK_BATCHES = 50


def pad_sequences(sequences: Sequence[Sequence[int]], pad_value: int,
                  multiple_of: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, L) LongTensor padded on the right with ``pad_value``, and its 0/1 mask; L is the
    longest length rounded up to a multiple of ``multiple_of``."""
    if isinstance(multiple_of, bool) or not isinstance(multiple_of, int) or multiple_of < 1:
        raise ValueError(f"multiple_of must be an integer >= 1, got {multiple_of!r}")
    longest = -(-max((len(s) for s in sequences), default=0) // multiple_of) * multiple_of
    ids = torch.full((len(sequences), longest), pad_value, dtype=torch.long)
    mask = torch.zeros((len(sequences), longest), dtype=torch.long)
    for row, seq in enumerate(sequences):
        if len(seq):
            ids[row, : len(seq)] = torch.as_tensor(list(seq), dtype=torch.long)
            mask[row, : len(seq)] = 1
    return ids, mask


def _order(n: int, generator: torch.Generator | None, shuffle: bool) -> list[int]:
    if not shuffle:
        return list(range(n))
    if generator is None:
        raise ValueError("shuffle=True needs an explicit torch.Generator (no global RNG)")
    return torch.randperm(n, generator=generator).tolist()


def batch_indices(
    lengths: Sequence[int],
    batch_size: int,
    generator: torch.Generator | None = None,
    shuffle: bool = False,
    bucket: bool = False,
    chunk_batches: int = DEFAULT_CHUNK_BATCHES,
) -> list[list[int]]:
    """Index batches over ``len(lengths)`` examples; the last batch may be smaller.

    Without bucketing: a permutation (or identity) cut into consecutive batches.
    With bucketing: the permutation is cut into chunks of ``chunk_batches * batch_size``;
    each chunk is sorted by length (longest first, stable) and cut into batches; when
    shuffling, the order of all batches is then permuted with the same generator.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = _order(len(lengths), generator, shuffle)
    if not bucket:
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    chunk = max(1, int(chunk_batches)) * batch_size
    batches: list[list[int]] = []
    for start in range(0, len(order), chunk):
        piece = sorted(order[start : start + chunk], key=lambda i: -lengths[i])
        batches.extend(piece[i : i + batch_size] for i in range(0, len(piece), batch_size))
    if shuffle:
        batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
    return batches
