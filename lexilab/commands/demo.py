"""`python -m lexilab demo`: a tiny random T5 end to end (tokenize, forward, greedy and beam search).

Needs no download: the model is random (seeded) and the tokenizer is the FLAN-T5 tokenizer from
``../shared/data/flan_t5_tokenizer`` beside the repository (or ``--tokenizer``); without one the
demo feeds raw token ids.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TOKENIZER = REPO_ROOT.parent / "shared" / "data" / "flan_t5_tokenizer"
SENTENCES = ["summarize: The quick brown fox jumps over the lazy dog.",
             "translate English to German: The house is wonderful."]
# FLAN-T5's vocabulary and special tokens; everything else tiny so the demo runs in seconds on a CPU
TINY_T5 = {"vocab_size": 32128, "d_model": 64, "d_ff": 128, "d_kv": 16, "num_heads": 4, "num_layers": 2,
           "num_decoder_layers": 2, "feed_forward_proj": "gated-gelu", "tie_word_embeddings": False,
           "dropout_rate": 0.0}


def register(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="run a tiny random T5: forward, greedy and beam search",
                                   description="Run a tiny random T5 end to end (tokenize, forward, greedy and "
                                               "beam search); needs no download.")
    parser.add_argument("--tokenizer", default=None,
                        help=f"tokenizer folder or hub id (default: {DEFAULT_TOKENIZER} if present)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random initialisation")
    parser.add_argument("--max-new-tokens", type=int, default=8)
    parser.add_argument("--num-beams", type=int, default=4)
    parser.set_defaults(func=run)


def _tokenize(tokenizer_arg: str | None):
    import torch

    from lexilab.model import load_tokenizer

    source = tokenizer_arg or (str(DEFAULT_TOKENIZER) if DEFAULT_TOKENIZER.is_dir() else None)
    if source is None:
        print("tokenizer: none found, feeding raw token ids")
        ids = torch.tensor([[100, 200, 300, 400, 500, 1], [600, 700, 800, 1, 0, 0]])
        return None, ids, (ids != 0).long()
    tokenizer = load_tokenizer(source)
    batch = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    print(f"tokenizer: {source} ({type(tokenizer).__name__}, {len(tokenizer)} tokens)")
    return tokenizer, batch["input_ids"], batch["attention_mask"]


def run(args: argparse.Namespace) -> int:
    import torch

    from lexilab.model import load_backbone

    start = time.perf_counter()
    model = load_backbone(TINY_T5, init="random", seed=args.seed)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: random T5 (seed {args.seed}), {n_params / 1e6:.2f}M parameters, "
          f"built in {time.perf_counter() - start:.2f} s")
    tokenizer, input_ids, attention_mask = _tokenize(args.tokenizer)
    print(f"input_ids {tuple(input_ids.shape)}: {input_ids.tolist()}")

    with torch.no_grad():
        start = time.perf_counter()
        states = model.encode(input_ids, attention_mask)
        logits = model(input_ids, attention_mask, decoder_input_ids=input_ids[:, :4])
        print(f"encode -> {tuple(states.shape)}; forward(decoder 4 tokens) -> logits {tuple(logits.shape)} "
              f"in {time.perf_counter() - start:.3f} s")
        for label, beams in (("greedy", 1), (f"beam search ({args.num_beams} beams)", args.num_beams)):
            start = time.perf_counter()
            out = model.generate(input_ids, attention_mask, max_new_tokens=args.max_new_tokens, num_beams=beams)
            print(f"{label}: {tuple(out.shape)} in {time.perf_counter() - start:.3f} s")
            for row in out.tolist():
                text = f"  -> {tokenizer.decode(row, skip_special_tokens=True)!r}" if tokenizer else ""
                print(f"  {row}{text}")
    print("(random weights: the generated text is meaningless; the point is that every path runs)")
    return 0
