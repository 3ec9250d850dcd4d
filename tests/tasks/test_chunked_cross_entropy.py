"""Chunked linear cross-entropy (lexilab.tasks.chunked_ce) against F.cross_entropy on the full logits,
through the seq2seq task against transformers' T5 loss, under retained-graph and T-batched backward
passes, under torch.compile, and its peak memory (live tensor bytes, benchmarks/live_memory.py)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from lexilab.config import check_config
from lexilab.errors import LexilabError
from lexilab.tasks import build_task
from lexilab.tasks.chunked_ce import linear_cross_entropy

from .test_seq2seq_task import cfg, summary_dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from live_memory import LiveTensorBytes  # noqa: E402


def problem(n: int = 23, d: int = 12, vocab: int = 97, dtype=torch.float32, seed: int = 0):
    """hidden (2, n, d), weight (V, d), labels with rows 5..11 of the flattened tokens ignored
    (with chunks of 7 tokens: one whole chunk) and a few ignored elsewhere."""
    gen = torch.Generator().manual_seed(seed)
    hidden = torch.randn(2, n, d, generator=gen, dtype=dtype).requires_grad_()
    weight = torch.randn(vocab, d, generator=gen, dtype=dtype).requires_grad_()
    labels = torch.randint(0, vocab, (2, n), generator=gen)
    flat = labels.view(-1)
    flat[7:14] = -100
    flat[[0, 30, 45]] = -100
    return hidden, weight, labels


def reference(hidden, weight, labels, smoothing=0.0):
    logits = F.linear(hidden, weight)
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))  # half -> float32, as the task does
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100,
                           label_smoothing=smoothing)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("chunk", [1, 7, 10, 1000])  # one token, whole-chunk ignored, not dividing 46, one chunk
def test_value_and_gradients_equal_full_cross_entropy(smoothing, chunk):
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 2e-6)):
        hidden, weight, labels = problem(dtype=dtype)
        ref = reference(hidden, weight, labels, smoothing)
        ref_grads = torch.autograd.grad(ref, (hidden, weight))
        out = linear_cross_entropy(hidden, weight, labels, label_smoothing=smoothing, chunk_tokens=chunk)
        grads = torch.autograd.grad(out, (hidden, weight))
        assert out.dtype == ref.dtype
        torch.testing.assert_close(out, ref, rtol=tol, atol=tol)
        for got, want in zip(grads, ref_grads):
            assert got.dtype == want.dtype and got.shape == want.shape
            torch.testing.assert_close(got, want, rtol=tol, atol=tol)


def test_all_ignored_is_nan_with_zero_gradients_like_torch():
    hidden, weight, labels = problem()
    labels = torch.full_like(labels, -100)
    ref = reference(hidden, weight, labels)
    ref_grads = torch.autograd.grad(ref, (hidden, weight))
    out = linear_cross_entropy(hidden, weight, labels, chunk_tokens=5)
    grads = torch.autograd.grad(out, (hidden, weight))
    assert torch.isnan(ref) and torch.isnan(out)
    for got, want in zip(grads, ref_grads):
        assert torch.equal(got, want) and not got.any()


def test_retained_graph_backward_repeats_and_scales_with_the_upstream_gradient():
    """What the gradient methods do: one torch.autograd.grad per task with retain_graph=True, each
    with its own upstream factor (a task weight, an fp16 loss scale), then a last backward."""
    hidden, weight, labels = problem(dtype=torch.float64)
    states = torch.tanh(hidden) * 2  # a graph below the loss, shared by both passes
    out = linear_cross_entropy(states, weight, labels, label_smoothing=0.1, chunk_tokens=7)
    ref = reference(torch.tanh(hidden) * 2, weight, labels, 0.1)
    want = torch.autograd.grad(ref, (hidden, weight))
    first = torch.autograd.grad(out * 3.0, (hidden, weight), retain_graph=True)
    second = torch.autograd.grad(out, (hidden, weight), retain_graph=True)
    (out * 0.5).backward()
    for a, b, c, w in zip(first, second, (hidden.grad, weight.grad), want):
        torch.testing.assert_close(a, 3.0 * w, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(b, w, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(c, 0.5 * w, rtol=1e-12, atol=1e-12)
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        out.backward()  # freed after the last pass, as any other node


def test_task_batched_backward_as_in_the_gramian_engine():
    """torchjd's Gramian engine runs one backward with a batch of upstream gradients
    (is_grads_batched): each row must be that task's own gradient."""
    hidden, weight, labels = problem(dtype=torch.float64)
    other = (hidden ** 2).mean()
    ours = torch.stack([linear_cross_entropy(hidden, weight, labels, chunk_tokens=7), other])
    full = torch.stack([reference(hidden, weight, labels), other])
    rows = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, -1.0]], dtype=torch.float64)
    got = torch.autograd.grad(ours, (hidden, weight), rows, is_grads_batched=True, retain_graph=True)
    want = torch.autograd.grad(full, (hidden, weight), rows, is_grads_batched=True)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_matches_the_full_path(dtype):
    """Autocast (bf16) and a half-precision model (fp16 weights, no autocast): the projection in
    half precision, softmax in float32, gradients in the inputs' dtypes."""
    hidden, weight, labels = problem(n=40, d=16, vocab=300)
    autocast = dtype == torch.bfloat16
    if not autocast:
        hidden = hidden.detach().to(dtype).requires_grad_()
        weight = weight.detach().to(dtype).requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        ref = reference(hidden, weight, labels, 0.1)
        out = linear_cross_entropy(hidden, weight, labels, label_smoothing=0.1, chunk_tokens=16)
    assert out.dtype == torch.float32
    ref_grads = torch.autograd.grad(ref * 1024.0, (hidden, weight))  # 1024: a loss scale
    grads = torch.autograd.grad(out * 1024.0, (hidden, weight))
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)  # same half-precision logits, float32 softmax
    for got, want in zip(grads, ref_grads):
        assert got.dtype == want.dtype
        assert ((got.float() - want.float()).norm() / want.float().norm()) < 1e-2


@pytest.mark.slow  # ~15 s on 2 shared cores, nearly all of it importing and setting up dynamo / AOTAutograd
def test_compiles_in_one_graph_and_stays_exact():
    hidden, weight, labels = problem()
    torch._dynamo.reset()
    compiled = torch.compile(lambda h, w, y: linear_cross_entropy(h * 2, w, y, label_smoothing=0.1, chunk_tokens=20),
                             backend="aot_eager", fullgraph=True)
    out = compiled(hidden, weight, labels)
    ref = reference(hidden * 2, weight, labels, 0.1)
    torch.testing.assert_close(out, ref)
    for got, want in zip(torch.autograd.grad(out, (hidden, weight)), torch.autograd.grad(ref, (hidden, weight))):
        torch.testing.assert_close(got, want)


def test_live_tensor_bytes_counts_what_a_block_holds():
    before = torch.ones(1000, 250)  # 1 MB made before the block: never counted
    with LiveTensorBytes() as mem:
        a = torch.zeros(1000, 500)  # 2 MB
        b = a * 2  # 2 MB: 4 MB live
        view = b[:10]
        b.add_(before.sum())  # in place on b, and a reduction of 4 bytes
        del a  # 2 MB live
        c = torch.ones(1000, 250)  # 3 MB live
    assert mem.peak == 4_000_000 + 4 and mem.live == 3_000_000  # the 4-byte sum was a temporary
    del view, b, c
    assert mem.live == 0


def test_peak_memory_is_a_fraction_of_the_full_logits():
    """1024 tokens × 8192 classes: every float32 N×V tensor of the full path is 32 MiB; the chunked
    path holds one 128-token chunk (4 MiB) at a time beside the gradients (hidden 128 KiB, weight 1 MiB)."""
    gen = torch.Generator().manual_seed(0)
    hidden = torch.randn(1024, 32, generator=gen).requires_grad_()
    weight = torch.randn(8192, 32, generator=gen).requires_grad_()
    labels = torch.randint(0, 8192, (1024,), generator=gen)

    def peak(loss_fn) -> int:
        hidden.grad = weight.grad = None
        with LiveTensorBytes() as mem:
            loss_fn().backward()
        return mem.peak

    full = peak(lambda: reference(hidden, weight, labels))
    chunked = peak(lambda: linear_cross_entropy(hidden, weight, labels, chunk_tokens=128))
    logits_bytes = 1024 * 8192 * 4
    assert full >= 2 * logits_bytes  # the log-softmax it saves and its gradient, at least
    assert chunked < logits_bytes / 4 and chunked * 16 < full  # measured: 5.2 MiB against 96 MiB


# ------------------------------------------------------------ through the seq2seq task and its config
def _task_loss_and_grads(task, backbone, batch):
    backbone.zero_grad(set_to_none=True)
    loss = task.loss(backbone, None, batch)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in backbone.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("tied", [False, True])
def test_seq2seq_loss_chunked_equals_full_and_transformers(tokenizer, tmp_path, tied):
    """Every parameter's gradient (the tied embedding through both of its uses) equals the full
    path's; the value equals transformers' T5ForConditionalGeneration loss on the same weights."""
    from transformers import T5ForConditionalGeneration

    from lexilab.model import load_backbone

    from .conftest import TINY_T5

    backbone = load_backbone({**TINY_T5, "tie_word_embeddings": tied}, init="random", seed=0)
    assert backbone.config.scale_decoder_outputs == tied
    data = summary_dataset()
    chunked = build_task("summ", cfg(loss={"chunked": 7}), data, tokenizer)
    full = build_task("summ", cfg(loss={"chunked": False}), data, tokenizer)
    batch = chunked.collate(chunked.examples("train"))
    assert batch["labels"].numel() % 7 and (batch["labels"] == -100).any()
    loss, grads = _task_loss_and_grads(chunked, backbone, batch)
    full_loss, full_grads = _task_loss_and_grads(full, backbone, batch)
    torch.testing.assert_close(loss, full_loss, rtol=1e-6, atol=1e-6)
    assert grads.keys() == full_grads.keys() and "shared.weight" in grads
    for name, grad in grads.items():
        torch.testing.assert_close(grad, full_grads[name], rtol=1e-5, atol=1e-6, msg=name)

    backbone.save_pretrained(tmp_path)
    theirs = T5ForConditionalGeneration.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        hf_loss = theirs(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                         labels=batch["labels"]).loss
        ours_no_grad = chunked.loss(backbone, None, batch)
    torch.testing.assert_close(loss, hf_loss, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours_no_grad, loss)


@pytest.mark.parametrize("kind", ["upgrad", "pcgrad"])
def test_gradient_methods_get_the_same_update_as_the_full_path(tokenizer, backbone, kind):
    """The trainer's per-task gradient path (one torch.autograd.grad per task with retain_graph,
    then the aggregated update): two seq2seq tasks sharing the tiny T5, chunked vs full logits. Its
    embedding is tied: a shared parameter that is also the output projection inside the chunked loss."""
    from lexilab.train.weighting import build_weighting

    data = summary_dataset()

    def update(chunked):
        tasks = {name: build_task(name, cfg(loss={"chunked": chunked, "label_smoothing": smoothing}), data, tokenizer)
                 for name, smoothing in (("plain", 0.0), ("smoothed", 0.1))}
        backbone.zero_grad(set_to_none=True)
        groups = backbone.shared_parameter_groups()
        method = build_weighting({"kind": kind}, list(tasks), groups, seed=3)
        losses = {name: task.loss(backbone, None, task.collate(task.examples(split)))
                  for (name, task), split in zip(tasks.items(), ("train", "val"))}
        method.accumulate(losses, groups)
        method.finish(1)
        return {n: p.grad.clone() for n, p in backbone.named_parameters() if p.grad is not None}

    chunked, full = update(6), update(False)
    assert chunked.keys() == full.keys() and backbone.config.tie_word_embeddings and "shared.weight" in chunked
    for name, grad in full.items():
        torch.testing.assert_close(chunked[name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_unset_chunks_only_batches_larger_than_one_chunk(tokenizer, backbone, monkeypatch):
    import lexilab.tasks.seq2seq as seq2seq

    calls = []
    original = seq2seq.linear_cross_entropy
    monkeypatch.setattr(seq2seq, "linear_cross_entropy", lambda *a, **k: calls.append(k) or original(*a, **k))
    task = build_task("summ", cfg(), summary_dataset(), tokenizer)
    batch = task.collate(task.examples("train"))
    small = task.loss(backbone, None, batch)
    assert calls == []  # fewer target tokens than one chunk of 1024: the full path
    monkeypatch.setattr(task, "chunk_tokens", batch["labels"].numel() - 1)
    large = task.loss(backbone, None, batch)
    assert calls and calls[0]["chunk_tokens"] == batch["labels"].numel() - 1
    torch.testing.assert_close(large, small)


def test_chunked_config_errors_name_the_key_and_keep_hashes(tokenizer):
    for bad in (0, -3, "yes", 2.5):
        with pytest.raises(LexilabError) as err:
            build_task("summ", cfg(loss={"chunked": bad}), summary_dataset(), tokenizer)
        message = str(err.value)
        assert message.startswith("config.yaml: tasks.summ.loss.chunked: ") and "\n" not in message

    def tasks(block):
        return {"seed": 0, "backbone": {"name": "google/flan-t5-small"}, "tasks": {"t": block}}

    config, problems = check_config(tasks({"kind": "seq2seq", "data": "summaries_mixed"}))
    assert not problems and "chunked" not in config["tasks"]["t"]["loss"]  # unset stays unset: same hash
    config, problems = check_config(tasks({"kind": "seq2seq", "data": "summaries_mixed", "loss": {"chunked": 256}}))
    assert not problems and config["tasks"]["t"]["loss"]["chunked"] == 256
    _, problems = check_config(tasks({"kind": "seq2seq", "data": "summaries_mixed", "loss": {"chunked": 0}}))
    assert [p.path for p in problems] == ["tasks.t.loss.chunked"]
    _, problems = check_config(tasks({"kind": "multiclass", "data": "ag_news", "loss": {"chunked": True}}))
    assert [p.path for p in problems] == ["tasks.t.loss.chunked"]
