"""Speed and agreement of lexilab's T5 against transformers' T5ForConditionalGeneration.

A random FLAN-T5-shaped model (base size by default: 12+12 layers, d_model 768, gated-gelu,
untied) is saved once and loaded by both implementations. Reports the mean forward time, the
beam-search time, the largest logit difference and whether the beam outputs agree, as one JSON line.

    python benchmarks/t5_vs_transformers.py --threads 1
    python benchmarks/t5_vs_transformers.py --device cuda --batch 16
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch


def _timed(fn, repeats: int, device: str) -> float:
    fn()  # warm-up
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    from transformers import T5ForConditionalGeneration

    from lexilab.model import load_backbone

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--d-model", type=int, default=768)
    ap.add_argument("--d-ff", type=int, default=2048)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--length", type=int, default=128)
    ap.add_argument("--target-length", type=int, default=32)
    ap.add_argument("--new-tokens", type=int, default=16)
    ap.add_argument("--beams", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    cfg = {"vocab_size": 32128, "d_model": args.d_model, "d_ff": args.d_ff, "num_layers": args.layers,
           "num_heads": args.heads, "d_kv": args.d_model // args.heads, "feed_forward_proj": "gated-gelu",
           "tie_word_embeddings": False, "dropout_rate": 0.0}
    ours = load_backbone(cfg, init="random", seed=0)
    with tempfile.TemporaryDirectory() as folder:
        ours.save_pretrained(folder)
        theirs = T5ForConditionalGeneration.from_pretrained(folder).eval().to(args.device)
    ours = ours.to(args.device)
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(2, 32000, (args.batch, args.length), generator=gen).to(args.device)
    mask = torch.ones_like(ids)
    mask[0, args.length * 3 // 4:] = 0
    dec = torch.randint(2, 32000, (args.batch, args.target_length), generator=gen).to(args.device)
    dec[:, 0] = 0
    beam = dict(max_new_tokens=args.new_tokens, num_beams=args.beams)
    with torch.no_grad():
        ours_logits = ours(ids, mask, decoder_input_ids=dec)
        theirs_logits = theirs(input_ids=ids, attention_mask=mask, decoder_input_ids=dec).logits
        ours_beam = ours.generate(ids, mask, **beam)
        theirs_beam = theirs.generate(input_ids=ids, attention_mask=mask, do_sample=False, **beam)
        result = {
            "device": args.device, "threads": torch.get_num_threads(), "config": cfg, "batch": args.batch,
            "length": args.length,
            "forward_s": {"lexilab": _timed(lambda: ours(ids, mask, decoder_input_ids=dec), args.repeats, args.device),
                          "transformers": _timed(lambda: theirs(input_ids=ids, attention_mask=mask,
                                                                decoder_input_ids=dec), args.repeats, args.device)},
            "beam_search_s": {"lexilab": _timed(lambda: ours.generate(ids, mask, **beam), 1, args.device),
                              "transformers": _timed(lambda: theirs.generate(input_ids=ids, attention_mask=mask,
                                                                             do_sample=False, **beam), 1, args.device)},
            "max_abs_logit_diff": (ours_logits - theirs_logits).abs().max().item(),
            "max_abs_logit": theirs_logits.abs().max().item(),
            # transformers fills positions after the end token with the end id, lexilab with pad
            "beam_tokens_equal": ours_beam.shape == theirs_beam.shape and bool(
                ((ours_beam == theirs_beam) | ((ours_beam == 0) & (theirs_beam == 1))).all()),
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
