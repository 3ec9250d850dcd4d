"""Encoder-only (BERT family) backbone: parity with transformers, parameter groups, errors."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from transformers import AutoConfig, AutoModel, BertConfig, BertModel

from lexilab.errors import LexilabError
from lexilab.model.encoder_only import (
    ENCODER_ONLY_MODEL_TYPES,
    EncoderOnlyBackbone,
    load_encoder_only,
)

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
            vocab_size=100, max_position_embeddings=64)


def tiny_config(model_type: str):
    if model_type == "distilbert":
        return AutoConfig.for_model(model_type, dim=32, n_layers=2, n_heads=4, hidden_dim=64,
                                    vocab_size=100, max_position_embeddings=64)
    if model_type == "electra":
        return AutoConfig.for_model(model_type, embedding_size=16, **TINY)
    if model_type == "deberta-v2":
        return AutoConfig.for_model(model_type, relative_attention=True, pos_att_type=["p2c", "c2p"],
                                    norm_rel_ebd="layer_norm", position_buckets=8, conv_kernel_size=3,
                                    **TINY)
    return AutoConfig.for_model(model_type, **TINY)


def save_random(model_type: str, directory: Path, seed: int = 0) -> torch.nn.Module:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = AutoModel.from_config(tiny_config(model_type))
    model.save_pretrained(directory)
    return model.eval()


def padded_batch(vocab=100, seed=0, lo=3):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(lo, vocab, (3, 9), generator=g)
    mask = torch.ones(3, 9, dtype=torch.long)
    mask[1, 6:] = 0
    mask[2, 2:] = 0
    return ids, mask


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tiny_bert")
    with torch.random.fork_rng():
        torch.manual_seed(0)
        reference = BertModel(BertConfig(**TINY)).eval()
    reference.save_pretrained(directory)
    return directory, reference


def test_encode_equals_transformers_bert(bert_dir):
    directory, reference = bert_dir
    backbone = load_encoder_only(directory)
    assert isinstance(backbone, EncoderOnlyBackbone)
    ids, mask = padded_batch()
    with torch.no_grad():
        ours = backbone.encode(ids, mask)
        theirs = reference(input_ids=ids, attention_mask=mask).last_hidden_state
    assert ours.shape == (3, 9, 32)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)


def test_contract_attributes(bert_dir):
    directory, _ = bert_dir
    backbone = load_encoder_only(directory)
    assert backbone.d_model == 32
    assert backbone.is_encoder_decoder is False
    assert backbone.pad_token_id == 0
    assert backbone.max_positions == 64
    assert not hasattr(backbone, "generate")
    assert not backbone.training  # eval mode, as from_pretrained returns models
    assert all(p.dtype == torch.float32 for p in backbone.parameters())


def test_groups_cover_every_encoder_parameter_once_without_pooler(bert_dir):
    directory, reference = bert_dir
    backbone = load_encoder_only(directory)
    groups = backbone.shared_parameter_groups()
    assert list(groups) == ["embeddings", "encoder.layer.0", "encoder.layer.1"]
    ours = {id(p): name for name, p in backbone.model.named_parameters()}
    grouped = [ours[id(p)] for params in groups.values() for p in params]
    assert len(grouped) == len(set(grouped))
    expected = {n for n, _ in reference.named_parameters() if not n.startswith("pooler.")}
    assert set(grouped) == expected
    assert all(n.startswith("encoder.layer.1.") for n in (ours[id(p)] for p in groups["encoder.layer.1"]))
    # The pooler is gone, so every parameter of the backbone is one the encoder uses.
    assert {ours[id(p)] for p in backbone.parameters()} == expected


def test_freezable_layers_and_embedding_modules(bert_dir):
    directory, _ = bert_dir
    backbone = load_encoder_only(directory)
    layers = backbone.freezable_layers()
    assert len(layers) == 2 and layers[0] is backbone.model.encoder.layer[0]
    assert backbone.embedding_modules() == [backbone.model.embeddings]


def test_decoder_style_calls_are_errors(bert_dir):
    directory, _ = bert_dir
    backbone = load_encoder_only(directory)
    ids, mask = padded_batch()
    with pytest.raises(LexilabError, match="has no decoder; seq2seq tasks need an encoder-decoder"):
        backbone(ids, mask, labels=ids)
    with pytest.raises(LexilabError, match="has no decoder"):
        backbone(input_ids=ids, attention_mask=mask, decoder_input_ids=ids)
    with torch.no_grad():
        torch.testing.assert_close(backbone(ids, mask), backbone.encode(ids, mask))


def test_bad_inputs_are_one_line_errors(bert_dir):
    directory, _ = bert_dir
    backbone = load_encoder_only(directory)
    ids, mask = padded_batch()
    with pytest.raises(LexilabError, match=r"token ids out of range \[0, 100\).*max 100"):
        backbone.encode(ids.clone().fill_(100), mask)
    with pytest.raises(LexilabError, match=r"attention_mask \(3, 8\) does not match input_ids \(3, 9\)"):
        backbone.encode(ids, mask[:, :8])
    with pytest.raises(LexilabError, match="sequence length 65 exceeds the 64 positions"):
        backbone.encode(torch.ones(1, 65, dtype=torch.long), torch.ones(1, 65, dtype=torch.long))


def test_save_pretrained_round_trips_without_pooler(bert_dir, tmp_path):
    directory, _ = bert_dir
    backbone = load_encoder_only(directory)
    with torch.no_grad():
        for p in backbone.parameters():  # make the saved weights differ from the original ones
            p.add_(0.01)
    out = tmp_path / "saved"
    backbone.save_pretrained(out)
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    assert [p.name for p in tmp_path.iterdir()] == ["saved"]  # no temporary folder left behind
    with safe_open(str(out / "model.safetensors"), framework="pt") as f:
        assert not any(k.startswith("pooler") for k in f.keys())
    again = load_encoder_only(out)
    ids, mask = padded_batch(seed=1)
    with torch.no_grad():
        assert torch.equal(again.encode(ids, mask), backbone.encode(ids, mask))


def test_random_init_keeps_architecture_but_not_weights(bert_dir):
    directory, _ = bert_dir
    pretrained = load_encoder_only(directory)
    random = load_encoder_only(directory, init="random")
    a, b = dict(pretrained.model.named_parameters()), dict(random.model.named_parameters())
    assert {k: v.shape for k, v in a.items()} == {k: v.shape for k, v in b.items()}
    assert not torch.equal(a["encoder.layer.0.attention.self.query.weight"],
                           b["encoder.layer.0.attention.self.query.weight"])


def test_seeded_random_init_is_reproducible_and_leaves_global_rng_alone(bert_dir):
    directory, _ = bert_dir
    before = torch.random.get_rng_state()
    a = load_encoder_only(directory, init="random", seed=3).state_dict()
    b = load_encoder_only(directory, init="random", seed=3).state_dict()
    c = load_encoder_only(directory, init="random", seed=4).state_dict()
    assert torch.equal(torch.random.get_rng_state(), before)
    key = "model.encoder.layer.0.attention.self.query.weight"
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a[key], c[key])


def test_overrides_and_dtype(bert_dir):
    directory, _ = bert_dir
    backbone = load_encoder_only(directory, config_overrides={"dropout_rate": 0.3}, dtype=torch.bfloat16)
    assert backbone.hf_config.hidden_dropout_prob == 0.3
    assert backbone.hf_config.attention_probs_dropout_prob == 0.3
    assert all(p.dtype == torch.bfloat16 for p in backbone.parameters())
    ids, mask = padded_batch()
    with torch.no_grad():
        assert backbone.encode(ids, mask).dtype == torch.bfloat16
    with pytest.raises(LexilabError, match="config_overrides: bert config has no field 'dropout'"):
        load_encoder_only(directory, config_overrides={"dropout": 0.3})


def test_bf16_autocast_encode_runs(bert_dir):
    directory, _ = bert_dir
    backbone = load_encoder_only(directory)
    ids, mask = padded_batch()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        states = backbone.encode(ids, mask)
    assert torch.isfinite(states.float()).all()
    torch.testing.assert_close(states.float(), backbone.encode(ids, mask), atol=0.15, rtol=0.1)


@pytest.mark.parametrize("model_type", sorted(ENCODER_ONLY_MODEL_TYPES))
def test_every_supported_family_matches_transformers_and_groups_cover_it(model_type, tmp_path):
    reference = save_random(model_type, tmp_path)
    backbone = load_encoder_only(tmp_path)
    assert backbone.model_type == model_type and backbone.d_model == 32
    ids, mask = padded_batch()
    with torch.no_grad():
        torch.testing.assert_close(
            backbone.encode(ids, mask),
            reference(input_ids=ids, attention_mask=mask).last_hidden_state,
            atol=1e-5, rtol=0,
        )
    groups = backbone.shared_parameter_groups()
    names = list(groups)
    assert names[0] == "embeddings" and names[-2:] == ["encoder.layer.0", "encoder.layer.1"]
    ours = {id(p): n for n, p in backbone.model.named_parameters()}
    grouped = [ours[id(p)] for params in groups.values() for p in params]
    assert len(grouped) == len(set(grouped))
    assert set(grouped) == {n for n, _ in reference.named_parameters() if not n.startswith("pooler.")}
    assert len(backbone.freezable_layers()) == 2
    assert backbone.pad_token_id == reference.config.pad_token_id


def test_shared_group_holds_relative_position_tables(tmp_path):
    save_random("mpnet", tmp_path)
    groups = load_encoder_only(tmp_path).shared_parameter_groups()
    assert list(groups)[:2] == ["embeddings", "encoder.shared"]
    assert [tuple(p.shape) for p in groups["encoder.shared"]] == [(32, 4)]  # buckets x heads


def test_electra_embedding_projection_counts_as_embeddings(tmp_path):
    save_random("electra", tmp_path)
    backbone = load_encoder_only(tmp_path)
    assert backbone.embedding_modules() == [backbone.model.embeddings, backbone.model.embeddings_project]


# ---- loading errors ---------------------------------------------------------------------------

def test_missing_directory(tmp_path):
    with pytest.raises(LexilabError, match="no such model directory"):
        load_encoder_only(tmp_path / "nope")


def test_directory_without_config(tmp_path):
    with pytest.raises(LexilabError, match="no config.json"):
        load_encoder_only(tmp_path)


def test_file_instead_of_directory(tmp_path):
    (tmp_path / "model.bin").write_text("x")
    with pytest.raises(LexilabError, match="not a directory"):
        load_encoder_only(tmp_path / "model.bin")


def test_unsupported_model_type(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "t5", "d_model": 8}))
    with pytest.raises(LexilabError, match=r"config.json: model_type: 't5' is not an encoder-only type"):
        load_encoder_only(tmp_path)


def test_unreadable_config(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(LexilabError, match="config.json: not readable JSON"):
        load_encoder_only(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(LexilabError, match="config.json: model_type: missing"):
        load_encoder_only(tmp_path)


def test_missing_weights(tmp_path):
    BertConfig(**TINY).save_pretrained(tmp_path)
    with pytest.raises(LexilabError, match="cannot load weights") as info:
        load_encoder_only(tmp_path)
    assert "\n" not in str(info.value)


def test_missing_encoder_weights_are_refused(tmp_path):
    from safetensors.torch import load_file, save_file

    save_random("bert", tmp_path)
    weights = load_file(str(tmp_path / "model.safetensors"))
    del weights["encoder.layer.1.output.dense.weight"]
    save_file(weights, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(LexilabError, match=r"missing keys: encoder\.layer\.1\.output\.dense\.weight"):
        load_encoder_only(tmp_path)


def test_task_head_weights_in_the_checkpoint_are_ignored(tmp_path):
    from safetensors.torch import load_file, save_file

    reference = save_random("bert", tmp_path)
    weights = load_file(str(tmp_path / "model.safetensors"))
    weights["cls.predictions.bias"] = torch.zeros(100)  # as in a BertForPreTraining checkpoint
    save_file(weights, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    backbone = load_encoder_only(tmp_path)
    ids, mask = padded_batch()
    with torch.no_grad():
        torch.testing.assert_close(backbone.encode(ids, mask),
                                   reference(input_ids=ids, attention_mask=mask).last_hidden_state)


def test_bad_init(bert_dir):
    with pytest.raises(LexilabError, match="backbone.init: must be 'pretrained' or 'random'"):
        load_encoder_only(bert_dir[0], init="scratch")


def test_offline_hub_id_fails_fast_with_one_line():
    from huggingface_hub import constants

    if not constants.HF_HUB_OFFLINE:
        pytest.skip("needs HF_HUB_OFFLINE=1 (the suite's default) to stay fast without internet")
    with pytest.raises(LexilabError, match="not fetchable from the Hugging Face hub") as info:
        load_encoder_only("lexilab-tests/no-such-encoder")
    assert "\n" not in str(info.value)


@pytest.mark.gpu
def test_cuda_encode_matches_cpu(bert_dir):
    directory, reference = bert_dir
    backbone = load_encoder_only(directory).to("cuda")
    ids, mask = padded_batch()
    with torch.no_grad():
        out = backbone.encode(ids.to("cuda"), mask.to("cuda"))
        expected = reference(input_ids=ids, attention_mask=mask).last_hidden_state
    torch.testing.assert_close(out.cpu(), expected, atol=1e-4, rtol=1e-4)
