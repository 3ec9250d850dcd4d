"""Generation throughput of lexilab's T5 against transformers' ``generate`` on the same weights.

FLAN-T5-base dimensions (tiny under --tiny), random weights saved by lexilab and loaded by
transformers (sdpa). Greedy and beam search (4 beams), ``min_new_tokens = max_new_tokens`` so both
produce the same number of tokens; bf16 autocast on a GPU, float32 on CPU. Reports new tokens per
second, the ratio to transformers, and whether the token ids agree (transformers writes the end id
after a finished row, lexilab pad: both count as agreeing).

    python benchmarks/generate.py
    python benchmarks/generate.py --device cpu --tiny
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import (emit, markdown_table, paired_models, resolve_device, section_head,  # noqa: E402
                          t5_dims, timed)
from train_step import synthetic_batch  # noqa: E402


def agree(ours: torch.Tensor, theirs: torch.Tensor, pad: int = 0, eos: int = 1) -> bool:
    return ours.shape == theirs.shape and bool(((ours == theirs) | ((ours == pad) & (theirs == eos))).all())


def main(argv=None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--source", type=int, default=None)
    ap.add_argument("--new-tokens", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    device = resolve_device(args.device)
    for key, tiny, full in (("batch", 2, 32), ("source", 32, 512), ("new_tokens", 8, 64), ("repeats", 1, 3)):
        if getattr(args, key) is None:
            setattr(args, key, tiny if args.tiny else full)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    cfg = {**t5_dims(args.tiny), "dropout_rate": 0.0}
    with tempfile.TemporaryDirectory() as folder:
        ours, reference = paired_models(cfg, folder)
        theirs = reference("sdpa").to(device)
    ours = ours.to(device)
    batch = synthetic_batch(cfg["vocab_size"], args.batch, args.source, 1, device)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    rows = []
    for label, beams in (("greedy", 1), ("beam search, 4 beams", 4)):
        settings = dict(max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, num_beams=beams)
        with torch.no_grad(), torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            run_ours = lambda: ours.generate(ids, mask, **settings)  # noqa: E731
            run_theirs = lambda: theirs.generate(input_ids=ids, attention_mask=mask, do_sample=False,  # noqa: E731
                                                 **settings)
            same = agree(run_ours(), run_theirs())
            t_theirs = timed(run_theirs, device, warmup=1, repeats=args.repeats)
            t_ours = timed(run_ours, device, warmup=1, repeats=args.repeats)
        new = args.batch * args.new_tokens
        rows.append([f"{label}: transformers", t_theirs * 1e3, new / t_theirs, 1.0, None])
        rows.append([f"{label}: lexilab", t_ours * 1e3, new / t_ours, t_theirs / t_ours, "yes" if same else "no"])
    text = "\n".join([
        *section_head("Generation", "generate.py", argv, device),
        f"{'tiny' if args.tiny else 'FLAN-T5-base'} dims, batch {args.batch} × source {args.source} (a quarter "
        f"padding), {args.new_tokens} new tokens, {str(dtype).removeprefix('torch.')}, KV cache in both.", "",
        markdown_table(["variant", "ms/call", "new tokens/s", "× transformers", "same ids"], rows), ""])
    return emit(text, args.out)


if __name__ == "__main__":
    main()
