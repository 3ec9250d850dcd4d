"""The T5 under torch.compile, and the properties the fast training step relies on: no graph break
(fullgraph), no data-dependent host read of the ids off the CPU, the position bias computed once per
stack and forward pass (T5's design: block 0 owns it, every layer adds the same tensor)."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from lexilab.errors import LexilabError
from lexilab.model import load_backbone
from lexilab.model.t5 import Attention


def _inputs(vocab, t5_padded_batch):
    ids, mask = t5_padded_batch(vocab)
    labels = torch.randint(2, vocab, (3, 9), generator=torch.Generator().manual_seed(3))
    return ids, mask, labels


def _loss_and_grads(call, model, ids, mask, labels):
    """Logits of ``call`` (the model or its compiled form) and the gradients it leaves in ``model``."""
    model.zero_grad(set_to_none=True)
    logits = call(ids, mask, labels=labels)
    F.cross_entropy(logits.flatten(0, 1), labels.flatten()).backward()
    return logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


def _check_compiled(t5_reference, t5_padded_batch, backend: str, device: str):
    directory, reference = t5_reference("flan")
    model = load_backbone(directory, config_overrides={"dropout_rate": 0.0}).to(device).train()
    ids, mask, labels = (t.to(device) for t in _inputs(model.config.vocab_size, t5_padded_batch))
    eager_logits, eager_grads = _loss_and_grads(model, model, ids, mask, labels)
    compiled = torch.compile(model, backend=backend, fullgraph=True)  # a graph break is an error
    logits, grads = _loss_and_grads(compiled, model, ids, mask, labels)
    with torch.no_grad():
        expected = copy.deepcopy(reference).to(device)(input_ids=ids, attention_mask=mask, labels=labels).logits
    torch.testing.assert_close(logits, expected, atol=1e-4, rtol=0)
    torch.testing.assert_close(logits, eager_logits, atol=1e-5, rtol=0)
    for name, grad in eager_grads.items():
        torch.testing.assert_close(grads[name], grad, atol=1e-5, rtol=1e-4, msg=name)


@pytest.mark.slow  # tracing takes ~30 s on 2 shared cores
def test_compiled_forward_and_backward_match_eager_and_transformers(t5_reference, t5_padded_batch):
    """AOT-autograd graphs on CPU (inductor's C++ build takes minutes here; it runs on CUDA below)."""
    _check_compiled(t5_reference, t5_padded_batch, "aot_eager", "cpu")


@pytest.mark.gpu
def test_inductor_compiled_step_matches_on_cuda(t5_reference, t5_padded_batch):
    torch.backends.cuda.matmul.allow_tf32 = False
    _check_compiled(t5_reference, t5_padded_batch, "inductor", "cuda")


def test_id_range_check_reads_no_data_off_the_cpu():
    """On an accelerator the range check would be a host synchronisation per forward; a meta tensor
    (no data at all) shows that only metadata is read there. On the CPU bad ids still raise."""
    model = load_backbone({"vocab_size": 64, "d_model": 32, "d_ff": 48, "num_layers": 1, "num_heads": 4,
                           "d_kv": 8}, init="random", seed=0)
    model.check_ids(torch.empty(2, 5, dtype=torch.long, device="meta"), "input_ids")
    with pytest.raises(LexilabError, match="outside the vocabulary"):
        model.check_ids(torch.tensor([[3, 64]]), "input_ids")
    model.check_ids(torch.tensor([[3, -100]]), "labels", allow_ignore=True)


def test_position_bias_is_computed_once_per_stack_and_forward(t5_reference, t5_padded_batch, monkeypatch):
    directory, _ = t5_reference("deep_decoder")  # 2 encoder + 3 decoder layers
    model = load_backbone(directory)
    calls = []
    original = Attention.position_bias

    def spy(self, *args, **kwargs):
        calls.append(self.bidirectional)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Attention, "position_bias", spy)
    ids, mask, labels = _inputs(model.config.vocab_size, t5_padded_batch)
    with torch.no_grad():
        model(ids, mask, labels=labels)
    assert calls == [True, False]  # one encoder (bidirectional) and one decoder (causal) computation
    owners = [name for name, _ in model.named_modules() if name.endswith("relative_attention_bias")]
    assert owners == ["encoder.block.0.self_attn.relative_attention_bias",
                      "decoder.block.0.self_attn.relative_attention_bias"]
