"""One T5 attention, forward + backward, with the relative-position-bias gradient (issue #13).

B32 · H12 · S512 · D64 (FLAN-T5-base encoder self-attention; --tiny: B4 · H4 · S64 · D16), bf16,
a quarter of the keys padding, T5's bucketed bias (32 buckets, max distance 128) from a learnable
(32, H) table. Variants, each timed in this run:

- sdpa, float bias: lexilab's ``attention: sdpa`` path, the bias gathered into (1, H, S, S) plus the
  padding mask as SDPA's float ``attn_mask`` (no flash kernel; a B×H×S×S bias gradient);
- flex, bias in score_mod: lexilab's ``attention: flex`` path (lexilab.model.t5_flex), compiled:
  ``table[bucket[q, k], h]`` read in the kernel, padding as a block mask;
- flex, no bias: the same kernel without the score_mod (what the bias costs flex);
- flash, no bias: SDPA's flash kernel with neither bias nor mask (the floor; not the same function).

The first two are checked to agree (output and every gradient, table included) before timing;
every time is also a ratio to the sdpa float-bias one. CUDA only: FlexAttention has no backward on
CPU, where the section says so.

    python benchmarks/attention_bias.py            # CUDA
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_common import emit, environment_line, markdown_table, resolve_device, timed  # noqa: E402

FULL = dict(batch=32, heads=12, length=512, head_dim=64)
TINY = dict(batch=4, heads=4, length=64, head_dim=16)
NOT_RUN = "not run (CPU: flex has no backward)"


def inputs(batch: int, heads: int, length: int, head_dim: int, device: torch.device, dtype: torch.dtype):
    """q, k, v (B, H, S, D) and the (32, H) bias table, all leaves requiring grad; keep (B, S) bool
    with row lengths spread over [S/2, S]; the encoder's (S, S) buckets."""
    from lexilab.model.t5 import relative_position_bucket

    gen = torch.Generator(device="cpu").manual_seed(0)
    qkv = [torch.randn(batch, heads, length, head_dim, generator=gen).to(device, dtype).requires_grad_()
           for _ in range(3)]
    table = (torch.randn(32, heads, generator=gen) * 768 ** -0.5).to(device).requires_grad_()
    lengths = torch.linspace(length // 2, length, batch).round().long()
    keep = (torch.arange(length)[None, :] < lengths[:, None]).to(device)
    position = torch.arange(length, device=device)
    buckets = relative_position_bucket(position[None, :] - position[:, None], True, 32, 128)
    return qkv, table, keep, buckets


def sdpa_float_bias(q, k, v, table, keep, buckets):
    """As lexilab's sdpa path: gathered bias + additive padding mask, in the compute dtype."""
    bias = table[buckets].permute(2, 0, 1).unsqueeze(0).to(q.dtype)
    mask = torch.zeros(keep.shape, dtype=q.dtype, device=q.device).masked_fill(~keep, torch.finfo(q.dtype).min)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=bias + mask[:, None, None, :], scale=1.0)


def flex_bias(q, k, v, table, keep, buckets):
    from lexilab.model.t5_flex import flex_attend, stack_mask

    mask = stack_mask(q.shape[2], k.shape[2], q.device, key_keep=keep, bias_table=table, buckets=buckets)
    return flex_attend(q, k, v, mask)


def flex_no_bias(q, k, v, table, keep, buckets):
    from lexilab.model.t5_flex import flex_attend, stack_mask

    return flex_attend(q, k, v, stack_mask(q.shape[2], k.shape[2], q.device, key_keep=keep))


def flash_no_bias(q, k, v, table, keep, buckets):
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        return F.scaled_dot_product_attention(q, k, v, scale=1.0)


VARIANTS = [("sdpa, float bias", sdpa_float_bias), ("flex, bias in score_mod", flex_bias),
            ("flex, no bias", flex_no_bias), ("flash, no bias", flash_no_bias)]


def fwd_bwd(attend, leaves, table, keep, buckets, grad_out):
    def step():
        for leaf in (*leaves, table):
            leaf.grad = None
        attend(*leaves, table, keep, buckets).backward(grad_out)

    return step


def agreement(leaves, table, keep, buckets, grad_out) -> float:
    """Largest difference between sdpa's and flex's output and gradients (q, k, v, table), each
    relative to the largest value of sdpa's; float32 leaves (the bf16 rounding would dominate)."""
    worst = 0.0
    results = []
    for attend in (sdpa_float_bias, flex_bias):
        f32 = [t.detach().float().requires_grad_() for t in leaves]
        tab = table.detach().clone().requires_grad_()
        out = attend(*f32, tab, keep, buckets)
        out.backward(grad_out.float())
        results.append([out.detach(), *(t.grad for t in f32), tab.grad])
    for a, b in zip(*results):
        worst = max(worst, ((a - b).abs().max() / a.abs().max()).item())
    return worst


def run(args) -> tuple[list[list], float | None]:
    device = resolve_device(args.device)
    dims = TINY if args.tiny else FULL
    if device.type != "cuda":
        return [], None
    dtype = torch.bfloat16
    leaves, table, keep, buckets = inputs(**dims, device=device, dtype=dtype)
    grad_out = torch.randn_like(leaves[0])
    rel = agreement(leaves, table, keep, buckets, grad_out)
    if not rel < 1e-3:
        raise SystemExit(f"flex and sdpa disagree: relative difference {rel:.2e} > 1e-3")
    rows, base = [], None
    for name, attend in VARIANTS:
        seconds = timed(fwd_bwd(attend, leaves, table, keep, buckets, grad_out), device, args.warmup, args.steps)
        base = base or seconds
        rows.append([name, seconds * 1e3, base / seconds])
    return rows, rel


def section(args, command: str | None = None, level: str = "###") -> str:
    """The Markdown section; ``level`` its heading level (train_step.py includes it under its own)."""
    rows, rel = run(args)
    dims = TINY if args.tiny else FULL
    shape = f"B{dims['batch']} · H{dims['heads']} · S{dims['length']} · D{dims['head_dim']}"
    device = resolve_device(args.device)
    agree = f" flex and sdpa agree to {rel:.1e} (output and gradients, float32)." if rel is not None else ""
    return "\n".join([
        f"{level} Attention with the relative position bias, forward + backward ({device.type})", "",
        *([f"`{command}`", ""] if command else []), environment_line(device), "",
        f"{shape}, bf16, a quarter of the keys padding, T5's bucketed bias from a learnable (32, H) table; "
        f"{args.warmup} warm-up + {args.steps} timed calls.{agree}", "",
        markdown_table(["variant", "ms fwd+bwd", "× sdpa float bias"], rows) if rows else NOT_RUN.capitalize() + ".",
        ""])


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--device", default="auto")
    ap.add_argument("--tiny", action="store_true", help="tiny shapes")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--steps", type=int, default=20)


def main(argv=None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(ap)
    ap.add_argument("--out", type=Path, default=None, help="also write the Markdown section here")
    args = ap.parse_args(argv)
    command = "python benchmarks/attention_bias.py " + " ".join(argv if argv is not None else sys.argv[1:])
    return emit(section(args, command.strip()), args.out)


if __name__ == "__main__":
    main()
