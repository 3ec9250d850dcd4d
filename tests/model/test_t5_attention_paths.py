"""The T5's two attention paths (``T5Config.attention``: sdpa | flex) and its bucket-table cache.

flex on CPU runs forward only (eager FlexAttention; torch has no CPU backward for it): its encoder
states, teacher-forced logits, KV-cached decoding and generated ids are checked against
transformers' T5ForConditionalGeneration on padded batches, and against the sdpa path. On CUDA
(marked ``gpu``) flex runs compiled, forward and backward, and its gradients (the relative position
bias table included) are checked against the sdpa path in float32 and bfloat16. Training with flex
on a CPU is refused with one line.
"""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from lexilab.config import check_config, identity_hash
from lexilab.errors import LexilabError
from lexilab.model import load_backbone
from lexilab.model import t5 as t5_module

pytestmark = pytest.mark.filterwarnings("ignore:.*flex_attention called without torch.compile")


def _flex(directory, device="cpu", **overrides):
    return load_backbone(directory, config_overrides={"attention": "flex", **overrides}).to(device)


def _decoder_ids(vocab, batch=3, length=9, seed=3):
    ids = torch.randint(2, vocab, (batch, length), generator=torch.Generator().manual_seed(seed))
    ids[:, 0] = 0  # decoder start token
    return ids


@pytest.mark.parametrize("name", ["v1_0", "flan"])
def test_flex_forward_matches_transformers_and_sdpa(t5_reference, t5_padded_batch, name):
    directory, reference = t5_reference(name)
    flex, sdpa = _flex(directory), load_backbone(directory)
    ids, mask = t5_padded_batch(flex.config.vocab_size)  # rows of 25, 15 and 3 tokens; 25 > max_distance
    dec = _decoder_ids(flex.config.vocab_size)
    with torch.no_grad():
        expected = reference(input_ids=ids, attention_mask=mask, decoder_input_ids=dec)
        states, logits = flex.encode(ids, mask), flex(ids, mask, decoder_input_ids=dec)
        sdpa_states, sdpa_logits = sdpa.encode(ids, mask), sdpa(ids, mask, decoder_input_ids=dec)
    torch.testing.assert_close(states, expected.encoder_last_hidden_state, atol=1e-4, rtol=0)
    torch.testing.assert_close(logits, expected.logits, atol=1e-4, rtol=0)
    torch.testing.assert_close(states, sdpa_states, atol=1e-5, rtol=0)  # padded query rows included
    torch.testing.assert_close(logits, sdpa_logits, atol=1e-5, rtol=0)
    assert logits.abs().max() > 1.0


def test_flex_row_of_only_padding_behaves_as_sdpa_and_transformers(t5_reference, t5_padded_batch):
    """An all-zero attention_mask row: every logit is the mask's minimum there, so sdpa and
    transformers average all values uniformly; flex must too (its own default would give zeros)."""
    directory, reference = t5_reference("flan")
    flex, sdpa = _flex(directory), load_backbone(directory)
    ids, mask = t5_padded_batch(flex.config.vocab_size)
    mask[2] = 0
    dec = _decoder_ids(flex.config.vocab_size)
    with torch.no_grad():
        expected = reference(input_ids=ids, attention_mask=mask, decoder_input_ids=dec)
        states, logits = flex.encode(ids, mask), flex(ids, mask, decoder_input_ids=dec)
        sdpa_states = sdpa.encode(ids, mask)
    torch.testing.assert_close(states[2], expected.encoder_last_hidden_state[2], atol=1e-4, rtol=0)
    torch.testing.assert_close(states[2], sdpa_states[2], atol=1e-5, rtol=0)
    torch.testing.assert_close(logits, expected.logits, atol=1e-4, rtol=0)


def test_flex_cached_decoding_matches_transformers(t5_reference, t5_padded_batch):
    """The KV cache with an offset: chunks of 3, 1, 2 and 3 decoder tokens (queries at offsets 0, 3,
    4, 6) give transformers' teacher-forced logits of the whole prefix."""
    directory, reference = t5_reference("deep_decoder")  # 3 decoder layers, 2 encoder layers
    flex = _flex(directory)
    ids, mask = t5_padded_batch(flex.config.vocab_size)
    dec = _decoder_ids(flex.config.vocab_size)
    with torch.no_grad():
        expected = reference(input_ids=ids, attention_mask=mask, decoder_input_ids=dec, use_cache=False).logits
        cache = flex.new_cache(flex.encode(ids, mask), mask)
        steps, start = [], 0
        for size in (3, 1, 2, 3):
            steps.append(flex.decode(dec[:, start:start + size], cache=cache))
            start += size
    assert cache.length == 9
    torch.testing.assert_close(torch.cat(steps, dim=1), expected, atol=1e-4, rtol=0)


def test_flex_greedy_generation_matches_transformers(t5_reference, t5_padded_batch):
    directory, reference = t5_reference("v1_0")
    flex = _flex(directory)
    ids, mask = t5_padded_batch(flex.config.vocab_size, (12, 7, 3), seed=11)
    with torch.no_grad():
        expected = reference.generate(input_ids=ids, attention_mask=mask, max_new_tokens=6, do_sample=False,
                                      num_beams=1)
    assert flex.generate(ids, mask, max_new_tokens=6).tolist() == expected.tolist()


# ------------------------------------------------------------------ bucket table
def test_bucket_table_is_built_once_per_shape_and_equals_transformers(t5_reference, t5_padded_batch, monkeypatch):
    from transformers.models.t5.modeling_t5 import T5Attention

    directory, _ = t5_reference("flan")
    model = load_backbone(directory)
    built = []
    original = t5_module.Attention._build_buckets
    monkeypatch.setattr(t5_module.Attention, "_build_buckets",
                        lambda self, *args: built.append((self.bidirectional, *args[:3])) or original(self, *args))
    ids, mask = t5_padded_batch(model.config.vocab_size)
    dec = _decoder_ids(model.config.vocab_size)
    with torch.no_grad():
        first = model(ids, mask, decoder_input_ids=dec)
        again = model(ids, mask, decoder_input_ids=dec)
        model(ids[:, :20], mask[:, :20], decoder_input_ids=dec)  # a new encoder length
    assert torch.equal(first, again)
    assert built == [(True, 25, 25, 0), (False, 9, 9, 0), (True, 20, 20, 0)]
    with torch.inference_mode():
        model(ids[:, :7], mask[:, :7], decoder_input_ids=dec[:, :4])
    model(ids[:, :7], mask[:, :7], decoder_input_ids=dec[:, :4]).sum().backward()  # the cached tables serve autograd
    assert model.encoder.block[0].self_attn.relative_attention_bias.weight.grad.abs().sum() > 0
    for owner, bidirectional, shapes in ((model.encoder, True, 3), (model.decoder, False, 2)):
        attention = owner.block[0].self_attn
        assert len(attention.bucket_cache) == shapes  # encoder lengths 25, 20, 7; decoder 9, 4
        for (query_len, key_len, offset, _), table in attention.bucket_cache.items():
            relative = torch.arange(key_len)[None, :] - (torch.arange(query_len)[:, None] + offset)
            expected = T5Attention._relative_position_bucket(relative, bidirectional, attention.num_buckets,
                                                             attention.max_distance)
            assert torch.equal(table, expected)
    # decoding with the cache: one entry per (query_len, key_len, offset), kept to a bounded size
    decoder = model.decoder.block[0].self_attn
    decoder.bucket_cache.clear()
    for offset in range(t5_module.BUCKET_CACHE_SIZE + 5):
        decoder.buckets(1, offset + 1, offset)
    assert len(decoder.bucket_cache) == t5_module.BUCKET_CACHE_SIZE
    assert (1, 1, 0, torch.device("cpu")) not in decoder.bucket_cache  # the oldest went first


# ------------------------------------------------------------------ the option and its refusal on CPU
def test_attention_option_validation_and_default_hash(shared_data):
    raw = {"backbone": {"name": {"d_model": 32, "d_ff": 64, "num_layers": 1, "num_heads": 4, "d_kv": 8},
                        "init": "random", "tokenizer": "data:flan_t5_tokenizer"},
           "data_root": str(shared_data),
           "tasks": {"topic": {"kind": "multiclass", "data": {"name": "synthetic", "task": "shared_a"}}}}
    default, problems = check_config(raw)
    assert not problems and "attention" not in default["backbone"]  # no default entry: old hashes stay
    flex, problems = check_config({**raw, "backbone": {**raw["backbone"], "attention": "flex"}})
    assert not problems and flex["backbone"]["attention"] == "flex"
    assert identity_hash(flex) != identity_hash(default)
    _, problems = check_config({**raw, "backbone": {**raw["backbone"], "attention": "flash"}})
    assert [p.path for p in problems] == ["backbone.attention"] and "sdpa" in problems[0].message
    with pytest.raises(LexilabError, match="attention: 'flash' is not one of sdpa, flex"):
        load_backbone(raw["backbone"]["name"], init="random", config_overrides={"attention": "flash"})


def test_flex_training_on_cpu_is_refused_with_one_line(t5_reference, t5_padded_batch, shared_data, tmp_path):
    from lexilab.train.trainer import Trainer

    directory, _ = t5_reference("flan")
    flex = _flex(directory).train()
    ids, mask = t5_padded_batch(flex.config.vocab_size)
    with pytest.raises(LexilabError, match=r"^attention: flex: torch's FlexAttention has no backward pass on cpu"):
        flex(ids, mask, decoder_input_ids=_decoder_ids(flex.config.vocab_size))
    config, problems = check_config({
        "backbone": {"name": {"d_model": 32, "d_ff": 64, "num_layers": 1, "num_heads": 4, "d_kv": 8},
                     "init": "random", "tokenizer": "data:flan_t5_tokenizer", "attention": "flex"},
        "data_root": str(shared_data), "train": {"device": "cpu"}, "tracking": {"mlflow": False},
        "tasks": {"topic": {"kind": "multiclass", "data": {"name": "synthetic", "task": "shared_a",
                                                           "n": {"train": 8, "val": 4, "calibration": 4, "test": 4}}}}})
    assert not problems
    with pytest.raises(LexilabError) as refused:
        Trainer(config, tmp_path / "run", progress=False)
    assert str(refused.value) == ("config.yaml: backbone.attention: flex trains on CUDA only: torch's FlexAttention "
                                  "has no backward pass on cpu (use sdpa, the default, there)")
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------ CUDA: compiled flex, forward and backward
def _logits_and_grads(call, model, ids, mask, labels, dtype):
    """Logits of ``call`` (the model or its compiled form) and the gradients it leaves in ``model``."""
    model.zero_grad(set_to_none=True)
    with torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
        logits = call(ids, mask, labels=labels)
    F.cross_entropy(logits.float().flatten(0, 1), labels.flatten()).backward()
    return logits.detach().float(), {n: p.grad.float().clone() for n, p in model.named_parameters()}


def _cuda_pair(t5_reference, t5_padded_batch):
    directory, _ = t5_reference("wide_heads")  # d_kv 16: the smallest head size of the CUDA kernels
    sdpa = load_backbone(directory, config_overrides={"dropout_rate": 0.0}).cuda().train()
    flex = copy.deepcopy(sdpa)
    flex.config.attention = "flex"
    ids, mask = (t.cuda() for t in t5_padded_batch(sdpa.config.vocab_size))
    labels = torch.randint(2, sdpa.config.vocab_size, (3, 9), generator=torch.Generator().manual_seed(3)).cuda()
    return sdpa, flex, (ids, mask, labels)


@pytest.mark.gpu
@pytest.mark.parametrize("compiled", [False, True], ids=["flex-kernel", "whole-model-compiled"])
def test_flex_forward_and_backward_match_sdpa_on_cuda_fp32(t5_reference, t5_padded_batch, compiled):
    torch.backends.cuda.matmul.allow_tf32 = False
    sdpa, flex, batch = _cuda_pair(t5_reference, t5_padded_batch)
    expected_logits, expected = _logits_and_grads(sdpa, sdpa, *batch, torch.float32)
    call = torch.compile(flex, fullgraph=True, dynamic=True) if compiled else flex  # as train.compile does
    logits, grads = _logits_and_grads(call, flex, *batch, torch.float32)
    torch.testing.assert_close(logits, expected_logits, atol=1e-4, rtol=0)
    assert expected["encoder.block.0.self_attn.relative_attention_bias.weight"].abs().max() > 0
    for name, grad in expected.items():  # relative_attention_bias.weight of both stacks included
        torch.testing.assert_close(grads[name], grad, atol=1e-5, rtol=1e-4, msg=name)


@pytest.mark.gpu
def test_flex_backward_in_bf16_is_as_close_to_fp32_as_sdpa_on_cuda(t5_reference, t5_padded_batch):
    """bf16 autocast: flex's logits and gradients are no further from the float32 ones than sdpa's."""
    torch.backends.cuda.matmul.allow_tf32 = False
    sdpa, flex, batch = _cuda_pair(t5_reference, t5_padded_batch)
    exact_logits, exact = _logits_and_grads(sdpa, sdpa, *batch, torch.float32)
    sdpa_logits, sdpa_grads = _logits_and_grads(sdpa, sdpa, *batch, torch.bfloat16)
    flex_logits, flex_grads = _logits_and_grads(flex, flex, *batch, torch.bfloat16)
    error = lambda a, b: (a - b).abs().max().item()  # noqa: E731
    assert error(flex_logits, exact_logits) <= 2 * error(sdpa_logits, exact_logits) + 1e-3
    for name, grad in exact.items():
        scale = grad.abs().max().item()
        assert error(flex_grads[name], grad) <= 2 * error(sdpa_grads[name], grad) + 1e-3 * scale, name


@pytest.mark.gpu
def test_flex_generation_matches_transformers_on_cuda(t5_reference, t5_padded_batch):
    """Compiled flex with a new key length at every cached step (recompiles must stay correct)."""
    directory, reference = t5_reference("wide_heads")
    flex = _flex(directory, "cuda")
    ids, mask = (t.cuda() for t in t5_padded_batch(flex.config.vocab_size, (12, 7, 3), seed=11))
    with torch.no_grad():
        expected = copy.deepcopy(reference).cuda().generate(input_ids=ids, attention_mask=mask, max_new_tokens=8,
                                                            do_sample=False, num_beams=1)
    assert flex.generate(ids, mask, max_new_tokens=8).tolist() == expected.tolist()


def test_attention_benchmark_variants_compute_the_same_function(repo_root):
    """benchmarks/attention_bias.py times sdpa's float bias against flex's score_mod: on CPU (forward
    only) both give what transformers' T5 attention gives from the same bias table."""
    import sys

    sys.path.insert(0, str(repo_root / "benchmarks"))
    import attention_bias

    leaves, table, keep, buckets = attention_bias.inputs(2, 4, 40, 16, torch.device("cpu"), torch.float32)
    (q, k, v), table = (t.detach() for t in leaves), table.detach()  # torch: no CPU flex on grad leaves
    with torch.no_grad():
        sdpa = attention_bias.sdpa_float_bias(q, k, v, table, keep, buckets)
        flex = attention_bias.flex_bias(q, k, v, table, keep, buckets)
        scores = q @ k.transpose(-1, -2) + table[buckets].permute(2, 0, 1) \
            + torch.where(keep, 0.0, float("-inf"))[:, None, None, :]
        expected = scores.softmax(-1) @ v  # T5: no 1/sqrt(d) scaling
    torch.testing.assert_close(sdpa, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(flex, expected, atol=1e-5, rtol=0)


def test_flex_on_an_encoder_only_backbone_is_refused_with_one_line(tmp_path):
    from transformers import BertConfig, BertModel

    from lexilab.train.assembly import build_backbone

    BertModel(BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64,
                         vocab_size=100, max_position_embeddings=64)).save_pretrained(tmp_path / "bert")
    config = {"seed": 0, "backbone": {"name": str(tmp_path / "bert"), "init": "pretrained", "attention": "flex"}}
    with pytest.raises(LexilabError, match=r"^config.yaml: backbone.attention: flex is for the T5 backbone; "
                                           r".*bert is encoder-only$"):
        build_backbone(config, tmp_path)
