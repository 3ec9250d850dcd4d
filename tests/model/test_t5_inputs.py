"""Bad tensors given to the T5 backbone: one-line LexilabError naming what is wrong, before any
embedding lookup (an out-of-range id would otherwise be an opaque IndexError or a CUDA assert)."""
from __future__ import annotations

import pytest
import torch

from lexilab.errors import LexilabError
from lexilab.model import load_backbone

TINY = {"vocab_size": 64, "d_model": 32, "d_ff": 48, "num_layers": 2, "num_heads": 4, "d_kv": 8}


@pytest.fixture(scope="module")
def model():
    return load_backbone(TINY, init="random", seed=0)


def _raises(match, fn, *args, **kwargs):
    with pytest.raises(LexilabError, match=match) as err:
        fn(*args, **kwargs)
    assert "\n" not in str(err.value)


def test_token_ids_out_of_range(model):
    ids = torch.tensor([[5, 6, 64, 7]])
    _raises(r"input_ids: token id 64 is outside the vocabulary \[0, 64\)", model.encode, ids)
    _raises(r"input_ids: token id -3", model, torch.tensor([[5, -3]]), decoder_input_ids=torch.tensor([[0]]))
    _raises(r"decoder_input_ids: token id 99", model, torch.tensor([[5, 6]]), decoder_input_ids=torch.tensor([[0, 99]]))
    _raises(r"labels: token id 70", model, torch.tensor([[5, 6]]), labels=torch.tensor([[3, 70]]))
    _raises(r"input_ids: token id 64", model.generate, ids, max_new_tokens=2)
    model(torch.tensor([[5, 6]]), labels=torch.tensor([[3, -100]]))  # -100 is the ignore index, allowed


def test_shapes_and_types(model):
    ids = torch.tensor([[5, 6, 7], [8, 9, 0]])
    _raises(r"attention_mask: shape \(2, 2\) does not match input_ids shape \(2, 3\)",
            model.encode, ids, torch.ones(2, 2, dtype=torch.long))
    _raises(r"attention_mask: shape", model.generate, ids, torch.ones(3, 3, dtype=torch.long))
    _raises(r"input_ids: expected an integer tensor of shape \(batch, length\), got \(3,\)",
            model.encode, torch.tensor([5, 6, 7]))
    _raises(r"input_ids: expected an integer tensor", model.encode, torch.rand(2, 3))
    _raises(r"input_ids: empty sequences", model.encode, torch.zeros(2, 0, dtype=torch.long))
    _raises(r"decoder_input_ids: batch size 1 does not match input_ids batch size 2",
            model, ids, decoder_input_ids=torch.tensor([[0, 5]]))
    _raises(r"pass decoder_input_ids or labels", model, ids)
    _raises(r"pass input_ids or encoder_outputs", model, decoder_input_ids=torch.tensor([[0]]))
