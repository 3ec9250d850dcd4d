"""Dynamic padding and (bucketed) batch orders."""
from __future__ import annotations

import pytest
import torch

from lexilab.tasks.collate import batch_indices, pad_sequences


def test_pad_sequences_hand_case():
    ids, mask = pad_sequences([[5, 6, 7], [8], []], pad_value=0)
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0], [0, 0, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0], [0, 0, 0]]
    assert pad_sequences([[1], [2, 3]], -100)[0].tolist() == [[1, -100], [2, 3]]


def test_plain_batches():
    assert batch_indices([0] * 5, 2) == [[0, 1], [2, 3], [4]]
    one = batch_indices([0] * 9, 4, torch.Generator().manual_seed(5), shuffle=True)
    two = batch_indices([0] * 9, 4, torch.Generator().manual_seed(5), shuffle=True)
    other = batch_indices([0] * 9, 4, torch.Generator().manual_seed(6), shuffle=True)
    assert one == two != other
    assert [i for b in one for i in b] == torch.randperm(9, generator=torch.Generator().manual_seed(5)).tolist()


def test_bucketing_sorts_within_chunks_and_is_deterministic():
    lengths = [int(x) for x in torch.randint(1, 100, (50,), generator=torch.Generator().manual_seed(0))]
    bucketed = batch_indices(lengths, 5, torch.Generator().manual_seed(1), shuffle=True, bucket=True, chunk_batches=2)
    assert bucketed == batch_indices(lengths, 5, torch.Generator().manual_seed(1), shuffle=True, bucket=True,
                                     chunk_batches=2)
    assert sorted(i for b in bucketed for i in b) == list(range(50))
    # reference: the same permutation, chunks of 10 sorted longest-first, cut into 5s
    g = torch.Generator().manual_seed(1)
    order = torch.randperm(50, generator=g).tolist()
    expected = []
    for start in range(0, 50, 10):
        chunk = sorted(order[start:start + 10], key=lambda i: -lengths[i])
        expected += [chunk[:5], chunk[5:]]
    assert sorted(bucketed) == sorted(expected)
    padded = lambda batches: sum(max(lengths[i] for i in b) * len(b) for b in batches)  # noqa: E731
    plain = batch_indices(lengths, 5, torch.Generator().manual_seed(1), shuffle=True)
    assert padded(bucketed) < padded(plain)
    # no shuffle: one chunk, fully sorted
    assert [i for b in batch_indices(lengths, 5, bucket=True) for i in b] == sorted(range(50), key=lambda i: -lengths[i])


def test_errors():
    with pytest.raises(ValueError, match="Generator"):
        batch_indices([1, 2], 1, None, shuffle=True)
    with pytest.raises(ValueError, match="batch_size"):
        batch_indices([1, 2], 0)
