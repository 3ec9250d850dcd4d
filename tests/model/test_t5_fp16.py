"""float16 T5 as transformers runs it: ``wo`` kept in float32 and inf states clamped after each sub-layer.

FLAN-T5's feed-forward activations overflow float16 (the known fp16 failure); transformers' T5 keeps
``wo`` in float32 (``_keep_in_fp32_modules``) and clamps. The reference is
``T5ForConditionalGeneration.from_pretrained(dtype=torch.float16)`` on the same folder.
"""
from __future__ import annotations

import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from lexilab.model import load_backbone

# weights scaled so that float16 overflows: the first encoder attention output (clamped, not in fp32)
# and feed-forward outputs (kept in fp32 by transformers)
OVERFLOW = {"encoder.block.0.layer.0.SelfAttention.o.weight": 1e5,
            "encoder.block.1.layer.1.DenseReluDense.wo.weight": 1e5,
            "decoder.block.0.layer.2.DenseReluDense.wo.weight": 1e5}


@pytest.mark.parametrize("overflow", [False, True])
def test_float16_matches_transformers_float16(t5_reference, t5_padded_batch, tmp_path, overflow):
    from transformers import T5ForConditionalGeneration

    source, _ = t5_reference("flan")
    directory = tmp_path / "flan"
    shutil.copytree(source, directory)
    if overflow:
        tensors = load_file(directory / "model.safetensors")
        for key, factor in OVERFLOW.items():
            tensors[key] = tensors[key] * factor
        save_file(tensors, directory / "model.safetensors")
    theirs = T5ForConditionalGeneration.from_pretrained(directory, dtype=torch.float16).eval()
    model = load_backbone(directory, dtype="float16")
    wo = [m.wo.weight.dtype for m in model.modules() if hasattr(m, "wo")]
    assert wo and set(wo) == {torch.float32} and model.shared.weight.dtype == torch.float16
    ids, mask = t5_padded_batch(64)
    dec = torch.tensor([[0, 5, 9, 13]] * 3)
    with torch.no_grad():
        expected = theirs(input_ids=ids, attention_mask=mask, decoder_input_ids=dec).logits.float()
        exact = T5ForConditionalGeneration.from_pretrained(directory).eval()(
            input_ids=ids, attention_mask=mask, decoder_input_ids=dec).logits
        logits = model(ids, mask, decoder_input_ids=dec)
    assert logits.dtype == torch.float16 and torch.isfinite(logits).all()
    torch.testing.assert_close(logits.float(), expected, atol=0.1, rtol=0)
    if overflow:  # guard: the clamp really fired (float16 then differs from float32 a lot)
        assert (expected - exact).abs().max() > 1.0

