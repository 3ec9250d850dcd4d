"""Greedy and beam search against transformers.

Greedy: token-identical to the reference model re-run on the growing prefix (no cache), for every
reference config, including num_decoder_layers != num_layers where transformers' generate() fails.
Beam search: token-identical to ``T5ForConditionalGeneration.generate(num_beams=4, ...)`` on the
symmetric configs under several length_penalty / early_stopping / min_new_tokens settings, and
equal to a cache-free re-run of our own beam search on every config.
"""
from __future__ import annotations

import copy

import pytest
import torch

from lexilab.errors import LexilabError
from lexilab.model import load_backbone

ALL = ["v1_0", "flan", "wide_heads", "deep_decoder"]  # the references of conftest.py
SYMMETRIC = ["v1_0", "flan", "wide_heads"]  # transformers' generate() fails on deep_decoder
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]
LENGTHS = (12, 7, 3, 10, 5, 9)
MAX_NEW = 10
BEAM_SETTINGS = [  # (length_penalty, early_stopping, min_new_tokens)
    (1.0, True, 0), (1.0, False, 0), (2.0, False, 0), (0.0, "never", 0), (1.5, "never", 0),
    (-1.0, True, 2), (1.0, False, 3), (0.5, "never", 4),
]


def _setup(t5_reference, t5_padded_batch, name, device="cpu"):
    directory, reference = t5_reference(name)
    if device != "cpu":
        reference = copy.deepcopy(reference).to(device)
    ids, mask = t5_padded_batch(64, LENGTHS, seed=11)
    return load_backbone(directory).to(device), reference, ids.to(device), mask.to(device)


def reference_greedy(reference, ids, mask, max_new_tokens, min_new_tokens=0):
    """Independent greedy decode: the full transformers model on the whole prefix at every step."""
    cfg = reference.config
    seq = torch.full((ids.shape[0], 1), cfg.decoder_start_token_id, dtype=torch.long, device=ids.device)
    running = torch.ones(ids.shape[0], dtype=torch.bool, device=ids.device)
    for step in range(max_new_tokens):
        with torch.no_grad():
            logits = reference(input_ids=ids, attention_mask=mask, decoder_input_ids=seq, use_cache=False).logits
        logits = logits[:, -1]
        if step < min_new_tokens:
            logits[:, cfg.eos_token_id] = -float("inf")
        nxt = torch.where(running, logits.argmax(-1), cfg.pad_token_id)
        seq = torch.cat([seq, nxt[:, None]], dim=1)
        running &= nxt != cfg.eos_token_id
        if not running.any():
            break
    return seq


def after_eos_to_pad(seq, eos=1, pad=0):
    """Positions after a row's first end token -> pad (transformers' beam search fills them with eos)."""
    gen = seq[:, 1:]
    ended_before = (gen == eos).long().cumsum(1) - (gen == eos).long() > 0
    return torch.cat([seq[:, :1], gen.masked_fill(ended_before, pad)], dim=1)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("min_new", [0, 3])
@pytest.mark.parametrize("name", ALL)
def test_greedy_matches_reference_decode(t5_reference, t5_padded_batch, name, min_new, device):
    model, reference, ids, mask = _setup(t5_reference, t5_padded_batch, name, device)
    expected = reference_greedy(reference, ids, mask, MAX_NEW, min_new)
    out = model.generate(ids, mask, max_new_tokens=MAX_NEW, min_new_tokens=min_new)
    assert out.tolist() == expected.tolist()
    assert (out[:, 1:min_new + 1] != 1).all()


@pytest.mark.parametrize("name", SYMMETRIC)
def test_greedy_matches_transformers_generate(t5_reference, t5_padded_batch, name):
    model, reference, ids, mask = _setup(t5_reference, t5_padded_batch, name)
    expected = reference.generate(input_ids=ids, attention_mask=mask, max_new_tokens=MAX_NEW, do_sample=False,
                                  num_beams=1)
    assert model.generate(ids, mask, max_new_tokens=MAX_NEW).tolist() == expected.tolist()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("setting", BEAM_SETTINGS, ids=str)
@pytest.mark.parametrize("name", SYMMETRIC)
def test_beam_search_matches_transformers(t5_reference, t5_padded_batch, name, setting, device):
    length_penalty, early_stopping, min_new = setting
    model, reference, ids, mask = _setup(t5_reference, t5_padded_batch, name, device)
    kwargs = dict(max_new_tokens=MAX_NEW, num_beams=4, length_penalty=length_penalty,
                  early_stopping=early_stopping, min_new_tokens=min_new)
    with torch.no_grad():
        expected = reference.generate(input_ids=ids, attention_mask=mask, do_sample=False, **kwargs)
    out = model.generate(ids, mask, **kwargs)
    assert out.shape == expected.shape
    assert out.tolist() == after_eos_to_pad(expected).tolist()


@pytest.mark.parametrize("name", SYMMETRIC)
def test_beam_settings_exercise_finished_hypotheses(t5_reference, t5_padded_batch, name):
    """Guard against a vacuous comparison: hypotheses end early, and the settings change results."""
    model, _, ids, mask = _setup(t5_reference, t5_padded_batch, name)
    outs = [model.generate(ids, mask, max_new_tokens=MAX_NEW, num_beams=4, length_penalty=lp,
                           early_stopping=es, min_new_tokens=mn).tolist() for lp, es, mn in BEAM_SETTINGS]
    ended_early = [row.index(1) < MAX_NEW for out in outs for row in out if 1 in row]
    assert any(ended_early)
    assert len({str(out) for out in outs}) >= 3


class _NoCache:
    """Our model with the KV cache disabled: every step re-decodes the whole prefix."""

    def __init__(self, model):
        self.model, self.config, self.training = model, model.config, False

    def new_cache(self, states, mask):
        outer = self

        class Prefix:
            def __init__(self):
                self.states, self.mask, self.tokens = states, mask, None

            def reorder(self, index, same_encoder_rows=False):
                self.states, self.mask = self.states[index], self.mask[index]
                self.tokens = self.tokens[index]

        outer.last = Prefix()
        return outer.last

    def decode(self, tokens, cache):
        cache.tokens = tokens if cache.tokens is None else torch.cat([cache.tokens, tokens], dim=1)
        return self.model.decode(cache.tokens, cache.states, cache.mask)[:, -tokens.shape[1]:]


@pytest.mark.parametrize("name", ALL)
def test_cached_search_equals_search_without_cache(t5_reference, t5_padded_batch, name):
    from lexilab.model.generation import beam_search, greedy_search

    model, _, ids, mask = _setup(t5_reference, t5_padded_batch, name)
    with torch.no_grad():
        states = model.encode(ids, mask)
        for length_penalty, early_stopping, min_new in BEAM_SETTINGS[:4]:
            cached = beam_search(model, states, mask, 4, MAX_NEW, min_new, length_penalty, early_stopping)
            fresh = beam_search(_NoCache(model), states, mask, 4, MAX_NEW, min_new, length_penalty, early_stopping)
            assert cached.tolist() == fresh.tolist()
        assert greedy_search(model, states, mask, MAX_NEW).tolist() == \
            greedy_search(_NoCache(model), states, mask, MAX_NEW).tolist()


def test_one_beam_is_greedy_and_rows_are_independent(t5_reference, t5_padded_batch):
    model, _, ids, mask = _setup(t5_reference, t5_padded_batch, "flan")
    batch = model.generate(ids, mask, max_new_tokens=MAX_NEW, num_beams=4, early_stopping=False)
    for row in range(ids.shape[0]):
        width = int(mask[row].sum())
        alone = model.generate(ids[row:row + 1, :width], mask[row:row + 1, :width], max_new_tokens=MAX_NEW,
                               num_beams=4, early_stopping=False)[0].tolist()
        assert batch[row].tolist()[:len(alone)] == alone
        assert set(batch[row].tolist()[len(alone):]) <= {0}


def test_generate_restores_training_mode_and_checks_arguments(t5_reference, t5_padded_batch):
    model, _, ids, mask = _setup(t5_reference, t5_padded_batch, "flan")
    model.train()
    first = model.generate(ids, mask, max_new_tokens=4)
    assert model.training and torch.equal(first, model.generate(ids, mask, max_new_tokens=4))  # no dropout
    for bad in (dict(max_new_tokens=0), dict(num_beams=0), dict(min_new_tokens=-1),
                dict(early_stopping="sometimes"), dict(length_penalty="long")):
        with pytest.raises(LexilabError, match=next(iter(bad))):
            model.generate(ids, mask, **bad)
