"""lexilab's T5 is the same function as transformers' T5ForConditionalGeneration.

Reference checkpoints: tests/model/conftest.py (v1.0 relu/tied, FLAN gated-gelu/untied,
num_heads*d_kv != d_model, num_decoder_layers != num_layers). Float32, eval mode, padded batches
whose longest row exceeds relative_attention_max_distance.
"""
from __future__ import annotations

import copy

import pytest
import torch

from lexilab.model import load_backbone

ALL = ["v1_0", "flan", "wide_heads", "deep_decoder"]  # the references of conftest.py
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]


def _pair(t5_reference, name, device):
    directory, reference = t5_reference(name)
    if device != "cpu":
        reference = copy.deepcopy(reference).to(device)
    return load_backbone(directory).to(device), reference


def _decoder_ids(vocab, batch=3, length=9, seed=3):
    ids = torch.randint(2, vocab, (batch, length), generator=torch.Generator().manual_seed(seed))
    ids[:, 0] = 0  # decoder start token
    return ids


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ALL)
def test_encoder_states_and_logits_match_transformers(t5_reference, t5_padded_batch, name, device):
    model, reference = _pair(t5_reference, name, device)
    ids, mask = (t.to(device) for t in t5_padded_batch(model.config.vocab_size))
    dec = _decoder_ids(model.config.vocab_size).to(device)
    with torch.no_grad():
        expected = reference(input_ids=ids, attention_mask=mask, decoder_input_ids=dec)
        states = model.encode(ids, mask)
        logits = model(input_ids=ids, attention_mask=mask, decoder_input_ids=dec)
        reused = model(attention_mask=mask, decoder_input_ids=dec, encoder_outputs=states)
    assert logits.shape == (3, 9, model.config.vocab_size)
    torch.testing.assert_close(states, expected.encoder_last_hidden_state, atol=1e-4, rtol=0)
    torch.testing.assert_close(logits, expected.logits, atol=1e-4, rtol=0)
    torch.testing.assert_close(reused, logits, atol=0, rtol=0)
    assert logits.abs().max() > 1.0  # the comparison is not between near-zero tensors


@pytest.mark.parametrize("name", ["v1_0", "flan"])
def test_labels_are_shifted_right_like_transformers(t5_reference, t5_padded_batch, name):
    model, reference = _pair(t5_reference, name, "cpu")
    ids, mask = t5_padded_batch(model.config.vocab_size)
    labels = _decoder_ids(model.config.vocab_size, seed=5)
    labels[1, 6:] = -100  # ignored positions become pad in the decoder input
    with torch.no_grad():
        expected = reference(input_ids=ids, attention_mask=mask, labels=labels).logits
        logits = model(input_ids=ids, attention_mask=mask, labels=labels)
    torch.testing.assert_close(logits, expected, atol=1e-4, rtol=0)
    shifted = model.shift_right(labels)
    assert shifted[:, 0].tolist() == [0, 0, 0] and shifted[1, 7:].tolist() == [0, 0]
    assert torch.equal(shifted[:, 1:6], labels[:, :5])


def test_padding_does_not_change_valid_positions(t5_reference, t5_padded_batch):
    """The same sentence alone and inside a padded batch gives the same states and logits."""
    model, _ = _pair(t5_reference, "flan", "cpu")
    ids, mask = t5_padded_batch(model.config.vocab_size)
    dec = _decoder_ids(model.config.vocab_size)
    with torch.no_grad():
        batch_states = model.encode(ids, mask)
        alone = model.encode(ids[1:2, :15], mask[1:2, :15])
        batch_logits = model(ids, mask, decoder_input_ids=dec)
        alone_logits = model(ids[1:2, :15], mask[1:2, :15], decoder_input_ids=dec[1:2])
    torch.testing.assert_close(batch_states[1:2, :15], alone, atol=1e-5, rtol=0)
    torch.testing.assert_close(batch_logits[1:2], alone_logits, atol=1e-5, rtol=0)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ALL)
def test_kv_cached_decoding_equals_full_decoding(t5_reference, t5_padded_batch, name, device):
    model, _ = _pair(t5_reference, name, device)
    ids, mask = (t.to(device) for t in t5_padded_batch(model.config.vocab_size))
    dec = _decoder_ids(model.config.vocab_size, length=12).to(device)
    with torch.no_grad():
        full = model(ids, mask, decoder_input_ids=dec)
        states = model.encode(ids, mask)
        cache = model.new_cache(states, mask)
        steps = [model.decode(dec[:, :3], cache=cache)]  # a multi-token prefix, then one at a time
        steps += [model.decode(dec[:, t:t + 1], cache=cache) for t in range(3, 12)]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-4, rtol=0)

    # reordering the cache (what beam search does) moves whole rows consistently
    order = torch.tensor([2, 0, 2], device=device)
    with torch.no_grad():
        cache = model.new_cache(states, mask)
        model.decode(dec[:, :5], cache=cache)
        cache.reorder(order)
        tail = torch.cat([model.decode(dec[order, t:t + 1], cache=cache) for t in range(5, 12)], dim=1)
    torch.testing.assert_close(tail, full[order, 5:], atol=1e-4, rtol=0)


def test_dropout_is_active_in_training_only(t5_reference, t5_padded_batch):
    model, _ = _pair(t5_reference, "flan", "cpu")
    ids, mask = t5_padded_batch(model.config.vocab_size)
    dec = _decoder_ids(model.config.vocab_size)
    with torch.no_grad():
        eval_a, eval_b = model(ids, mask, decoder_input_ids=dec), model(ids, mask, decoder_input_ids=dec)
        model.train()
        train_a, train_b = model(ids, mask, decoder_input_ids=dec), model(ids, mask, decoder_input_ids=dec)
    assert torch.equal(eval_a, eval_b)
    assert not torch.allclose(train_a, train_b)


def test_gradients_reach_every_parameter(t5_reference, t5_padded_batch):
    model, _ = _pair(t5_reference, "deep_decoder", "cpu")
    ids, mask = t5_padded_batch(model.config.vocab_size)
    labels = _decoder_ids(model.config.vocab_size, seed=9)
    logits = model(ids, mask, labels=labels)
    torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten()).backward()
    without = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert without == []


def test_bf16_cpu_autocast_runs_and_stays_close(t5_reference, t5_padded_batch):
    model, _ = _pair(t5_reference, "flan", "cpu")
    ids, mask = t5_padded_batch(model.config.vocab_size)
    dec = _decoder_ids(model.config.vocab_size)
    with torch.no_grad():
        exact = model(ids, mask, decoder_input_ids=dec)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = model(ids, mask, decoder_input_ids=dec)
            out = model.generate(ids, mask, max_new_tokens=4, num_beams=2)
    assert logits.dtype == torch.bfloat16 and torch.isfinite(logits).all()
    assert (logits.float() - exact).abs().max() < 0.1 * exact.abs().max()
    assert out.shape[0] == 3
    bf16_model = load_backbone(t5_reference("flan")[0], dtype="bfloat16")
    with torch.no_grad():
        assert torch.isfinite(bf16_model(ids, mask, decoder_input_ids=dec).float()).all()


def test_fully_padded_row_under_autocast_is_finite(t5_reference, t5_padded_batch):
    """A row of padding only has every key masked: no NaN (the mask stays finite in bfloat16)."""
    model, _ = _pair(t5_reference, "flan", "cpu")
    ids, mask = t5_padded_batch(model.config.vocab_size)
    mask[2] = 0
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.isfinite(model.encode(ids, mask)).all()


@pytest.mark.gpu
def test_bf16_cuda_smoke(t5_reference, t5_padded_batch):
    model, _ = _pair(t5_reference, "flan", "cuda")
    ids, mask = (t.cuda() for t in t5_padded_batch(model.config.vocab_size))
    dec = _decoder_ids(model.config.vocab_size).cuda()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        logits = model(ids, mask, decoder_input_ids=dec)
        loss = logits.float().logsumexp(-1).mean()
        out = model.generate(ids, mask, max_new_tokens=5, num_beams=4)
    loss.backward()
    assert torch.isfinite(logits).all() and out.shape[0] == 3
    assert all(p.grad is not None for p in model.parameters())
