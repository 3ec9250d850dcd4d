"""Reference T5 checkpoints for the T5 tests: tiny random transformers models saved to disk.

Each reference is built by ``transformers.T5ForConditionalGeneration`` (seeded), written with its
``save_pretrained`` and then rewritten into the layout of the real checkpoints:
- v1.0 (t5-small): relu, tied embeddings, no ``tie_word_embeddings`` key (default true);
- v1.1 / FLAN-T5: gated-gelu, a distinct ``lm_head.weight`` in the safetensors and
  ``"tie_word_embeddings": false`` (transformers' save_pretrained alone always writes a tied model).
The reference model is that folder loaded back with ``from_pretrained``.

Random T5s almost never emit the end token, which would leave the finished-hypothesis logic of
beam search untested. The builders therefore point the end token's output row at the embeddings
of a quarter of the vocabulary (``eos_boost``): after such a token, ending becomes competitive.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

COMMON = dict(vocab_size=64, d_model=32, relative_attention_num_buckets=8, relative_attention_max_distance=20,
              dropout_rate=0.1, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
# name -> (T5Config fields, tied, init seed, eos_boost)
T5_REFERENCES = {
    "v1_0": (dict(feed_forward_proj="relu", d_ff=64, num_layers=2, num_heads=4, d_kv=8), True, 0, 0.8),
    "flan": (dict(feed_forward_proj="gated-gelu", d_ff=48, num_layers=2, num_heads=4, d_kv=8), False, 1, 0.6),
    "wide_heads": (dict(feed_forward_proj="gated-gelu", d_ff=48, num_layers=2, num_heads=6, d_kv=16),
                   False, 3, 0.8),
    "deep_decoder": (dict(feed_forward_proj="gated-gelu", d_ff=48, num_layers=2, num_decoder_layers=3,
                          num_heads=4, d_kv=8), False, 4, 0.6),
}


def build_reference(directory: Path, name: str):
    """Write the reference checkpoint ``name`` into ``directory``; return transformers' model of it."""
    from safetensors.torch import load_file, save_file
    from transformers import T5Config as HFConfig
    from transformers import T5ForConditionalGeneration

    fields, tied, seed, boost = T5_REFERENCES[name]
    config = HFConfig(**COMMON, **fields)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = T5ForConditionalGeneration(config)
    model.save_pretrained(directory)
    tensors = load_file(directory / "model.safetensors")
    generator = torch.Generator().manual_seed(1000 + seed)
    vocab = config.vocab_size
    ending = torch.randperm(vocab - 2, generator=generator)[: vocab // 4] + 2
    eos_row = boost * tensors["shared.weight"][ending].sum(0)
    if tied:
        tensors["shared.weight"][config.eos_token_id] = eos_row
    else:
        head = torch.randn(vocab, config.d_model, generator=generator)
        head[config.eos_token_id] = eos_row
        tensors["lm_head.weight"] = head
    save_file(tensors, directory / "model.safetensors", metadata={"format": "pt"})
    raw = json.loads((directory / "config.json").read_text())
    raw.pop("scale_decoder_outputs", None)  # a transformers-5 field; real checkpoints predate it
    if tied:
        raw.pop("tie_word_embeddings", None)
    else:
        raw["tie_word_embeddings"] = False
    (directory / "config.json").write_text(json.dumps(raw, indent=2))

    reference = T5ForConditionalGeneration.from_pretrained(directory).eval()
    if not tied:  # guard: the reference really is in the FLAN layout
        assert not torch.equal(reference.lm_head.weight, reference.shared.weight)
        assert not reference.config.scale_decoder_outputs
    return reference


@pytest.fixture(scope="session")
def t5_reference(tmp_path_factory):
    """``get(name) -> (checkpoint_dir, transformers model)``, built once per session."""
    built: dict[str, tuple[Path, object]] = {}

    def get(name: str):
        assert name in T5_REFERENCES, f"unknown reference {name}: the tests and conftest disagree"
        if name not in built:
            directory = tmp_path_factory.mktemp(f"t5_{name}")
            built[name] = (directory, build_reference(directory, name))
        return built[name]

    return get


def padded_batch(vocab: int, lengths=(25, 15, 3), seed: int = 7):
    """Random ids (never pad/eos) right-padded to the longest; the longest exceeds max_distance 20."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(2, vocab, (len(lengths), max(lengths)), generator=generator)
    mask = (torch.arange(max(lengths))[None, :] < torch.tensor(lengths)[:, None]).long()
    return ids.masked_fill(mask == 0, 0), mask


@pytest.fixture(scope="session")
def t5_padded_batch():
    """``make(vocab, lengths=(25, 15, 3), seed=7) -> (input_ids, attention_mask)``."""
    return padded_batch
