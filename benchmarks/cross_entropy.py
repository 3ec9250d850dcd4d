"""The seq2seq loss over the 32k vocabulary: full logits vs lexilab's chunked linear cross-entropy.

Full = what ``Seq2SeqTask.loss`` did before (and does with ``loss.chunked: false``): the B×T×V logits
of the output projection, ``.float()``, ``F.cross_entropy``. Chunked = ``lexilab.tasks.chunked_ce.
linear_cross_entropy`` at a few chunk sizes. FLAN-T5-base dims (d 768, V 32,128), batch 32 × 128
target tokens (a quarter of them padding, ignored), forward + backward to the decoder states and the
output projection. Reports ms per fwd+bwd, peak memory above the inputs (CUDA max allocated; on CPU
the peak of live tensor bytes, benchmarks/live_memory.py) and both as a ratio to the full path in the
same run; the loss and both gradients are checked against the full path first.

    python benchmarks/cross_entropy.py                     # CUDA, bf16 autocast
    python benchmarks/cross_entropy.py --device cpu --tiny # CPU, float32, batch 4 × 64
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import emit, markdown_table, resolve_device, section_head, sync, timed  # noqa: E402
from live_memory import LiveTensorBytes  # noqa: E402

from lexilab.tasks.chunked_ce import DEFAULT_CHUNK_TOKENS, linear_cross_entropy  # noqa: E402


def full_loss(hidden, weight, labels, smoothing):
    logits = F.linear(hidden, weight)
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1),
                           ignore_index=-100, label_smoothing=smoothing)


def inputs(batch: int, length: int, d: int, vocab: int, device: torch.device, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    # decoder states after the final RMSNorm are O(1) per coordinate; lm_head ~ N(0, 1) (T5 init),
    # scaled so that the logits have unit variance, as after training
    hidden = torch.randn(batch, length, d, generator=gen).to(device).requires_grad_()
    weight = (torch.randn(vocab, d, generator=gen) * d ** -0.5).to(device).requires_grad_()
    labels = torch.randint(0, vocab, (batch, length), generator=gen)
    keep = torch.arange(length)[None, :] < torch.randint(length // 2, length + 1, (batch, 1), generator=gen)
    return hidden, weight, labels.masked_fill(~keep, -100).to(device)


def main(argv=None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--tiny", action="store_true", help="batch 4 x 64 tokens (CPU in seconds)")
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--length", type=int, default=None)
    ap.add_argument("--d-model", type=int, default=768)
    ap.add_argument("--vocab", type=int, default=32128)
    ap.add_argument("--chunks", type=int, nargs="+", default=None, help="chunk sizes in tokens")
    ap.add_argument("--precision", choices=["fp32", "bf16"], default=None, help="default: bf16 on CUDA, fp32 on CPU")
    ap.add_argument("--label-smoothing", type=float, default=0.0)
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    device = resolve_device(args.device)
    for key, tiny, full in (("batch", 4, 32), ("length", 64, 128), ("repeats", 3, 10)):
        if getattr(args, key) is None:
            setattr(args, key, tiny if args.tiny else full)
    tokens = args.batch * args.length
    args.chunks = args.chunks or sorted({c for c in (256, DEFAULT_CHUNK_TOKENS, 4096) if c < tokens} | {min(tokens, 4096)})
    precision = args.precision or ("bf16" if device.type == "cuda" else "fp32")
    autocast = dict(device_type=device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    hidden, weight, labels = inputs(args.batch, args.length, args.d_model, args.vocab, device)

    variants = [("full logits + F.cross_entropy", lambda: full_loss(hidden, weight, labels, args.label_smoothing))]
    for chunk in args.chunks:
        variants.append((f"chunked, {chunk} tokens", lambda chunk=chunk: linear_cross_entropy(
            hidden, weight, labels, label_smoothing=args.label_smoothing, chunk_tokens=chunk)))

    def step(loss_fn):
        hidden.grad = weight.grad = None
        with torch.autocast(**autocast):
            loss = loss_fn()
        loss.backward()
        return loss

    results = []
    for label, loss_fn in variants:  # the values, then the peak memory of one more step
        loss = step(loss_fn).detach()
        grads = hidden.grad.float(), weight.grad.float()
        hidden.grad = weight.grad = None
        sync(device)
        if device.type == "cuda":
            torch.cuda.empty_cache()
            before = torch.cuda.memory_allocated(device)
            torch.cuda.reset_peak_memory_stats(device)
            step(loss_fn)
            peak = torch.cuda.max_memory_allocated(device) - before
        else:
            with LiveTensorBytes() as mem:
                step(loss_fn)
            peak = mem.peak
        hidden.grad = weight.grad = None
        results.append([label, loss, grads, None, peak])
    # timing: the variants take turns, each repeat, and the median counts (the load of a shared
    # machine drifts; a variant timed all in one go would carry it)
    times = [[] for _ in variants]
    for _ in range(args.repeats):
        for (_, loss_fn), spent in zip(variants, times):
            spent.append(timed(lambda: step(loss_fn), device, warmup=0, repeats=1))
    for result, spent in zip(results, times):
        result[3] = statistics.median(spent)

    _, ref_loss, (ref_gh, ref_gw), ref_s, ref_peak = results[0]
    tol = 1e-5 if precision == "fp32" else 2e-2
    rows = []
    for label, loss, (gh, gw), seconds, peak in results:
        diffs = [(loss - ref_loss).abs().item() / ref_loss.abs().item(),
                 ((gh - ref_gh).norm() / ref_gh.norm()).item(), ((gw - ref_gw).norm() / ref_gw.norm()).item()]
        if not max(diffs) <= tol:
            raise SystemExit(f"{label}: loss / gradients differ from the full path by {max(diffs):.1e} (relative)")
        rows.append([label, seconds * 1e3, ref_s / seconds, peak / 2**20, ref_peak / peak,
                     f"{max(diffs):.1e}"])
    memory = "CUDA max allocated above the inputs" if device.type == "cuda" else "peak live tensor bytes (TorchDispatchMode)"
    text = "\n".join([
        *section_head("Chunked cross-entropy over the vocabulary", "cross_entropy.py", argv, device),
        f"d {args.d_model}, V {args.vocab:,}, batch {args.batch} × {args.length} target tokens (a quarter padding, "
        f"ignored), {precision}{' autocast' if precision == 'bf16' else ''}, label smoothing {args.label_smoothing}; "
        f"forward + backward to the decoder states and the output projection, median of {args.repeats} (the "
        f"variants take turns) after a warm-up; peak memory = {memory}. The chunked loss and gradients are "
        f"checked against the full path (largest relative difference shown).", "",
        markdown_table(["variant", "ms fwd+bwd", "× full speed", "peak MiB", "× less memory", "rel. diff"], rows), ""])
    return emit(text, args.out)


if __name__ == "__main__":
    main()
