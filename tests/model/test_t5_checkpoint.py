"""Loading and saving Hugging Face-layout T5 checkpoints, and the loader's one-line errors."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from lexilab.errors import LexilabError
from lexilab.model import T5Model, load_backbone
from lexilab.model.checkpoint import hf_name

TINY = {"vocab_size": 64, "d_model": 32, "d_ff": 48, "num_layers": 2, "num_heads": 4, "d_kv": 8,
        "relative_attention_num_buckets": 8, "relative_attention_max_distance": 20,
        "feed_forward_proj": "gated-gelu", "tie_word_embeddings": False}


def _copy(t5_reference, name, tmp_path) -> tuple[Path, object]:
    directory, reference = t5_reference(name)
    target = tmp_path / name
    shutil.copytree(directory, target)
    return target, reference


def _rewrite(directory: Path, edit) -> None:
    tensors = load_file(directory / "model.safetensors")
    edit(tensors)
    save_file(tensors, directory / "model.safetensors")


def _logits(model, t5_padded_batch):
    ids, mask = t5_padded_batch(64)
    dec = torch.tensor([[0, 5, 9, 13]] * 3)
    with torch.no_grad():
        if isinstance(model, T5Model):
            return model(ids, mask, decoder_input_ids=dec)
        return model(input_ids=ids, attention_mask=mask, decoder_input_ids=dec).logits


def test_every_hf_tensor_maps_to_one_of_our_parameters(t5_reference):
    for name in ("v1_0", "flan", "deep_decoder"):
        directory, reference = t5_reference(name)
        model = load_backbone(directory)
        ours = {hf_name(n) for n, _ in model.named_parameters()}
        assert len(ours) == len(list(model.parameters()))
        stored = set(load_file(directory / "model.safetensors"))
        assert ours == stored
        assert ("lm_head.weight" in ours) == (name != "v1_0")
        assert sum(".relative_attention_bias." in key for key in ours) == 2  # block 0 of each stack only


@pytest.mark.parametrize("name", ["v1_0", "flan"])
def test_save_load_round_trip_and_transformers_reads_our_files(t5_reference, t5_padded_batch, tmp_path, name):
    from transformers import T5ForConditionalGeneration

    directory, reference = t5_reference(name)
    model = load_backbone(directory)
    model.save_pretrained(tmp_path / "ours")
    again = load_backbone(tmp_path / "ours")
    for (key, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), key
    assert again.config == model.config
    theirs = T5ForConditionalGeneration.from_pretrained(tmp_path / "ours").eval()
    torch.testing.assert_close(_logits(theirs, t5_padded_batch), _logits(reference, t5_padded_batch),
                               atol=1e-5, rtol=0)


def test_transformers5_saved_flan_loads_untied(t5_reference, t5_padded_batch, tmp_path):
    """transformers 5 writes a FLAN model as tie_word_embeddings: true + scale_decoder_outputs: false
    + a distinct lm_head.weight; it must load untied and unscaled."""
    _, reference = t5_reference("flan")
    reference.save_pretrained(tmp_path / "hf5")
    raw = json.loads((tmp_path / "hf5" / "config.json").read_text())
    assert raw["tie_word_embeddings"] is True and raw["scale_decoder_outputs"] is False
    model = load_backbone(tmp_path / "hf5")
    assert not model.config.tie_word_embeddings and not model.config.scale_decoder_outputs
    torch.testing.assert_close(_logits(model, t5_padded_batch), _logits(reference, t5_padded_batch),
                               atol=1e-4, rtol=0)


@pytest.mark.parametrize("tie_key, scale_key", [(None, None), (True, None), (False, None), (None, False),
                                                (True, False), (False, True)])
def test_lm_head_and_scaling_follow_transformers(t5_reference, t5_padded_batch, tmp_path, tie_key, scale_key):
    """A distinct lm_head.weight is used whatever tie_word_embeddings says (absent included), and the
    output scaling follows scale_decoder_outputs, else tie_word_embeddings != false — as transformers'
    from_pretrained does. Each variant is checked against transformers' logits on the same folder."""
    from transformers import T5ForConditionalGeneration

    directory, _ = _copy(t5_reference, "v1_0", tmp_path)
    head = torch.randn(64, 32, generator=torch.Generator().manual_seed(5))
    _rewrite(directory, lambda tensors: tensors.__setitem__("lm_head.weight", head))
    raw = json.loads((directory / "config.json").read_text())
    for key, value in (("tie_word_embeddings", tie_key), ("scale_decoder_outputs", scale_key)):
        raw.pop(key, None)
        if value is not None:
            raw[key] = value
    (directory / "config.json").write_text(json.dumps(raw))
    theirs = T5ForConditionalGeneration.from_pretrained(directory).eval()
    assert torch.equal(theirs.lm_head.weight, head)  # guard: transformers keeps the distinct head
    model = load_backbone(directory)
    assert torch.equal(model.lm_head.weight, head)
    assert model.config.scale_decoder_outputs == theirs.config.scale_decoder_outputs
    torch.testing.assert_close(_logits(model, t5_padded_batch), _logits(theirs, t5_padded_batch), atol=1e-4, rtol=0)


def test_lm_head_equal_to_or_missing_beside_the_embedding_is_tied(t5_reference, t5_padded_batch, tmp_path):
    """transformers ties a missing lm_head, or one equal to shared.weight, even under tie_word_embeddings:
    false (then without output scaling)."""
    from transformers import T5ForConditionalGeneration

    for case in ("equal", "missing"):
        directory, _ = _copy(t5_reference, "v1_0", tmp_path / case)
        if case == "equal":
            _rewrite(directory, lambda t: t.__setitem__("lm_head.weight", t["shared.weight"].clone()))
        raw = json.loads((directory / "config.json").read_text())
        (directory / "config.json").write_text(json.dumps({**raw, "tie_word_embeddings": False}))
        theirs = T5ForConditionalGeneration.from_pretrained(directory).eval()
        model = load_backbone(directory)
        assert model.config.tie_word_embeddings and not hasattr(model, "lm_head")
        assert not model.config.scale_decoder_outputs and not theirs.config.scale_decoder_outputs
        torch.testing.assert_close(_logits(model, t5_padded_batch), _logits(theirs, t5_padded_batch),
                                   atol=1e-4, rtol=0)


def test_legacy_pytorch_bin_loads_like_transformers(t5_reference, t5_padded_batch, tmp_path):
    """A pre-zip torch.save file (torch < 1.6 format) cannot be memory-mapped; it is read whole."""
    import zipfile

    from transformers import T5ForConditionalGeneration

    directory, _ = t5_reference("flan")
    target = tmp_path / "legacy"
    target.mkdir()
    shutil.copy(directory / "config.json", target)
    torch.save(load_file(directory / "model.safetensors"), target / "pytorch_model.bin",
               _use_new_zipfile_serialization=False)
    assert not zipfile.is_zipfile(target / "pytorch_model.bin")
    theirs = T5ForConditionalGeneration.from_pretrained(target).eval()
    torch.testing.assert_close(_logits(load_backbone(target), t5_padded_batch), _logits(theirs, t5_padded_batch),
                               atol=1e-4, rtol=0)


def test_sharded_safetensors_and_pytorch_bin(t5_reference, t5_padded_batch, tmp_path):
    directory, reference = t5_reference("flan")
    expected = _logits(reference, t5_padded_batch)
    tensors = load_file(directory / "model.safetensors")
    keys = sorted(tensors)
    shards = {"model-00001-of-00002.safetensors": keys[: len(keys) // 2],
              "model-00002-of-00002.safetensors": keys[len(keys) // 2:]}
    for layout in ("safetensors-index", "bin", "bin-index"):
        target = tmp_path / layout
        target.mkdir()
        shutil.copy(directory / "config.json", target)
        if layout == "safetensors-index":
            for shard, names in shards.items():
                save_file({k: tensors[k] for k in names}, target / shard)
            index = {k: shard for shard, names in shards.items() for k in names}
            (target / "model.safetensors.index.json").write_text(json.dumps({"weight_map": index}))
        elif layout == "bin":
            torch.save(tensors, target / "pytorch_model.bin")
        else:
            torch.save({k: tensors[k] for k in keys[:10]}, target / "pytorch_model-00001-of-00002.bin")
            torch.save({k: tensors[k] for k in keys[10:]}, target / "pytorch_model-00002-of-00002.bin")
            index = {k: f"pytorch_model-0000{1 if i < 10 else 2}-of-00002.bin" for i, k in enumerate(keys)}
            (target / "pytorch_model.bin.index.json").write_text(json.dumps({"weight_map": index}))
        torch.testing.assert_close(_logits(load_backbone(target), t5_padded_batch), expected, atol=1e-4, rtol=0)


def test_embedding_aliases_and_unused_cross_bias_are_accepted(t5_reference, t5_padded_batch, tmp_path):
    directory, reference = _copy(t5_reference, "v1_0", tmp_path)

    def old_layout(tensors):  # like t5-small: per-stack embedding copies, no "shared", a cross-attn bias
        shared = tensors.pop("shared.weight")
        tensors["encoder.embed_tokens.weight"] = shared
        tensors["decoder.embed_tokens.weight"] = shared.clone()
        tensors["decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight"] = torch.zeros(8, 4)
        tensors["lm_head.weight"] = shared.clone()

    _rewrite(directory, old_layout)
    torch.testing.assert_close(_logits(load_backbone(directory), t5_padded_batch),
                               _logits(reference, t5_padded_batch), atol=1e-4, rtol=0)


def test_missing_unexpected_and_misshaped_keys_are_listed(t5_reference, tmp_path):
    directory, _ = _copy(t5_reference, "flan", tmp_path)

    def damage(tensors):
        del tensors["encoder.block.1.layer.1.DenseReluDense.wi_0.weight"]
        del tensors["lm_head.weight"]
        tensors["encoder.block.7.layer.0.SelfAttention.q.weight"] = torch.zeros(32, 32)
        tensors["decoder.final_layer_norm.weight"] = torch.ones(31)

    _rewrite(directory, damage)
    with pytest.raises(LexilabError) as err:
        load_backbone(directory)
    message = str(err.value)
    assert "\n" not in message and str(directory) in message
    # a missing lm_head is not listed: like transformers, the output projection is then the embedding
    assert "missing keys [encoder.block.1.layer.1.DenseReluDense.wi_0.weight]" in message
    assert "unexpected keys [encoder.block.7.layer.0.SelfAttention.q.weight]" in message
    assert "decoder.final_layer_norm.weight (31,) vs (32,)" in message


def test_config_that_disagrees_with_the_weights_is_refused(t5_reference, tmp_path):
    directory, _ = _copy(t5_reference, "flan", tmp_path)
    raw = json.loads((directory / "config.json").read_text())
    (directory / "config.json").write_text(json.dumps({**raw, "num_layers": 3, "feed_forward_proj": "relu"}))
    with pytest.raises(LexilabError, match=r"missing keys \[.*encoder\.block\.2\..*DenseReluDense\.wi\.weight"):
        load_backbone(directory)


def test_non_t5_checkpoints(tmp_path, monkeypatch):
    (tmp_path / "gpt2").mkdir()
    (tmp_path / "gpt2" / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(LexilabError, match=r"config.json: model_type: 'gpt2' is not a T5 checkpoint"):
        load_backbone(tmp_path / "gpt2")

    import lexilab.model.encoder_only as encoder_only

    calls = []
    monkeypatch.setattr(encoder_only, "load_encoder_only", lambda path, **kw: calls.append((path, kw)) or "bert")
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    assert load_backbone(tmp_path / "bert", config_overrides={"dropout_rate": 0.0}) == "bert"
    assert calls == [(tmp_path / "bert", {"init": "pretrained", "config_overrides": {"dropout_rate": 0.0},
                                          "dtype": None})]


def test_bad_locations_are_one_line_errors(tmp_path):
    cases = {
        str(tmp_path / "nowhere"): "checkpoint path does not exist",
        "./relative/nowhere": "checkpoint path does not exist",
        str(tmp_path): "no config.json in this directory",
    }
    (tmp_path / "file.txt").write_text("x")
    cases[str(tmp_path / "file.txt")] = "not a directory"
    (tmp_path / "noweights").mkdir()
    (tmp_path / "noweights" / "config.json").write_text(json.dumps({"model_type": "t5", **TINY}))
    cases[str(tmp_path / "noweights")] = "no weights found"
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{not json")
    cases[str(tmp_path / "broken")] = "cannot read JSON"
    for path, expected in cases.items():
        with pytest.raises(LexilabError) as err:
            load_backbone(path)
        assert expected in str(err.value) and "\n" not in str(err.value), path


def test_offline_hub_id_fails_fast_with_one_line(tmp_path):
    """A fresh process with an empty cache: the lookup itself (not the imports) must take < 10 s."""
    code = ("import sys, time\nfrom lexilab.errors import LexilabError\nfrom lexilab.model import load_backbone\n"
            "start = time.monotonic()\ntry:\n    load_backbone('google/flan-t5-small')\n"
            "except LexilabError as err:\n    print(f'{time.monotonic() - start:.3f}')\n    print(err)\n"
            "    sys.exit(3)\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf-home")}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 3, done.stderr
    elapsed, *lines = done.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("google/flan-t5-small: ") and "HF_HUB_OFFLINE is set" in lines[0]
    assert float(elapsed) < 10


def test_random_init_from_a_checkpoint_needs_only_its_config(t5_reference, tmp_path):
    directory, _ = t5_reference("flan")
    (tmp_path / "cfg").mkdir()
    shutil.copy(directory / "config.json", tmp_path / "cfg")
    model = load_backbone(tmp_path / "cfg", init="random", seed=3)
    same = load_backbone(directory, init="random", seed=3)
    assert model.config == same.config and not model.config.tie_word_embeddings
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), same.parameters()))
    pretrained = load_backbone(directory)
    assert not torch.equal(model.shared.weight, pretrained.shared.weight)


def test_config_dicts_and_overrides():
    model = load_backbone(TINY, init="random", config_overrides={"dropout_rate": 0.0})
    assert model.config.dropout_rate == 0.0 and model.config.num_decoder_layers == 2
    assert model.d_model == 32 and model.pad_token_id == 0 and model.eos_token_id == 1
    assert model.decoder_start_token_id == 0 and model.is_encoder_decoder
    assert not model.training
    for kwargs, expected in (
        (dict(name_or_path=TINY), "use init: random"),
        (dict(name_or_path={**TINY, "hidden_size": 3}, init="random"), "unknown T5 config keys ['hidden_size']"),
        (dict(name_or_path=TINY, init="random", config_overrides={"dropout": 0.1}), "unknown T5 config keys"),
        (dict(name_or_path={**TINY, "feed_forward_proj": "swiglu"}, init="random"), "feed_forward_proj"),
        (dict(name_or_path={**TINY, "num_heads": 0}, init="random"), "num_heads: must be a positive integer"),
        (dict(name_or_path=TINY, init="scratch"), "init: 'scratch'"),
        (dict(name_or_path=TINY, init="random", dtype="float8"), "dtype"),
    ):
        with pytest.raises(LexilabError, match=expected.replace("[", r"\[").replace("]", r"\]")):
            load_backbone(**kwargs)
    assert load_backbone(TINY, init="random", dtype="bfloat16").shared.weight.dtype == torch.bfloat16


def test_parameter_groups_follow_the_encoder_bottom_to_top():
    model = load_backbone(TINY, init="random", seed=0)
    groups = model.shared_parameter_groups()
    assert list(groups) == ["embeddings", "encoder.block.0", "encoder.block.1", "encoder.final_norm"]
    assert groups["embeddings"][0] is model.shared.weight
    assert groups["encoder.block.0"][0] is model.encoder.block[0].self_attn_norm.weight
    grouped = {id(p) for params in groups.values() for p in params}
    encoder = {id(p) for p in model.encoder.parameters()} | {id(model.shared.weight)}
    assert grouped == encoder
    assert model.freezable_layers() == list(model.encoder.block)
    assert model.embedding_modules() == [model.shared]


def test_hub_ids_resolve_through_the_hugging_face_cache(t5_reference, t5_padded_batch, tmp_path):
    """A hub id goes through huggingface_hub: here an offline cache laid out like a real download."""
    directory, reference = t5_reference("flan")
    for repo, files in (("lexilab-test/tiny-flan", ["config.json", "model.safetensors"]),
                        ("lexilab-test/config-only", ["config.json"])):
        repo_dir = tmp_path / "hf-home" / "hub" / f"models--{repo.replace('/', '--')}"
        snapshot = repo_dir / "snapshots" / ("0" * 40)
        snapshot.mkdir(parents=True)
        (repo_dir / "refs").mkdir()
        (repo_dir / "refs" / "main").write_text("0" * 40)
        for name in files:
            shutil.copy(directory / name, snapshot / name)
    code = (
        "import torch\nfrom lexilab.errors import LexilabError\nfrom lexilab.model import load_backbone\n"
        "ids = torch.tensor([[5, 6, 7, 1]]); dec = torch.tensor([[0, 9, 4]])\n"
        "print(load_backbone('lexilab-test/tiny-flan')(ids, decoder_input_ids=dec).flatten().tolist())\n"
        "print(load_backbone('lexilab-test/config-only', init='random', seed=0).config.d_ff)\n"
        "try:\n    load_backbone('lexilab-test/config-only')\nexcept LexilabError as err:\n    print(err)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf-home")}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    logits, d_ff, error = done.stdout.strip().splitlines()
    with torch.no_grad():
        expected = reference(input_ids=torch.tensor([[5, 6, 7, 1]]), decoder_input_ids=torch.tensor([[0, 9, 4]]))
    torch.testing.assert_close(torch.tensor(json.loads(logits)), expected.logits.flatten(), atol=1e-4, rtol=0)
    assert d_ff == "48"
    assert error == ("lexilab-test/config-only: the config is cached but not the weights: "
                     "HF_HUB_OFFLINE is set and the files are not in the local cache")
