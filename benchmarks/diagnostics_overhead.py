"""Overhead of gradient-conflict diagnostics relative to training steps.

A random T5 backbone (size from the command line) with one seq2seq task (the decoder) and two
classification tasks (mean pooling + linear head). A training step = one sampled task's
forward + backward + AdamW step (round robin); a diagnostics call = a probe forward of every
task + ``gradient_cosines`` over the encoder groups. Reports the mean times and the overhead
``t_diag / (K · t_step)`` at ``--every K`` as one JSON line.

    python benchmarks/diagnostics_overhead.py --d-model 256 --layers 4 --every 100
"""
from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

from lexilab.model import load_backbone
from lexilab.train.diagnostics import gradient_cosines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--length", type=int, default=128)
    ap.add_argument("--target-length", type=int, default=64)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--every", type=int, default=100, help="diagnostics frequency K (steps)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    torch.manual_seed(0)
    device = torch.device(args.device)
    d = args.d_model
    backbone = load_backbone({"d_model": d, "d_ff": 4 * d, "num_layers": args.layers,
                              "num_heads": max(d // 64, 1), "d_kv": min(d, 64), "vocab_size": 32128,
                              "feed_forward_proj": "gated-gelu"}, init="random").to(device)
    heads = torch.nn.ModuleDict({"emotion": torch.nn.Linear(d, 28), "topic": torch.nn.Linear(d, 7)}).to(device)
    ids = torch.randint(0, 32128, (args.batch, args.length), device=device)
    mask = torch.ones_like(ids)
    labels = torch.randint(0, 32128, (args.batch, args.target_length), device=device)
    targets = {"emotion": torch.randint(0, 2, (args.batch, 28), device=device).float(),
               "topic": torch.randint(0, 7, (args.batch,), device=device)}

    def loss(task: str) -> torch.Tensor:
        if task == "summary":
            logits = backbone(ids, mask, labels=labels)
            return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))
        pooled = backbone.encode(ids, mask).mean(1)
        out = heads[task](pooled)
        if task == "emotion":
            return F.binary_cross_entropy_with_logits(out, targets[task])
        return F.cross_entropy(out, targets[task])

    tasks = ["summary", "emotion", "topic"]
    optimizer = torch.optim.AdamW(list(backbone.parameters()) + list(heads.parameters()), lr=1e-4)
    groups = {k: v for k, v in backbone.shared_parameter_groups().items() if k != "embeddings"}

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    def train_step(i: int) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss(tasks[i % len(tasks)]).backward()
        optimizer.step()

    def diagnostics(i: int) -> None:
        gradient_cosines({t: loss(t) for t in tasks}, groups, i)

    timings = {}
    for name, fn in (("step", train_step), ("diagnostics", diagnostics)):
        for i in range(3):  # warm-up
            fn(i)
        sync()
        start = time.perf_counter()
        for i in range(args.steps):
            fn(i)
        sync()
        timings[name] = (time.perf_counter() - start) / args.steps
    overhead = timings["diagnostics"] / (args.every * timings["step"])
    print(json.dumps({"device": str(device), "d_model": d, "layers": args.layers, "batch": args.batch,
                      "step_s": timings["step"], "diagnostics_s": timings["diagnostics"],
                      "every": args.every, "overhead": overhead, "goal": 0.05}))


if __name__ == "__main__":
    main()
