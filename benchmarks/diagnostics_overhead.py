"""Overhead of gradient-conflict diagnostics in the real trainer (issue goal: <= 5%).

Trains the same run twice with ``lexilab.train.trainer.Trainer`` — diagnostics off, then every
``--every`` optimizer steps — on three synthetic tasks (seq2seq, multiclass, multilabel) over a
random T5 of the given size, and reports, as one JSON line (medians of interleaved repeats): the time spent in diagnostics
over the time spent in optimizer steps within the same runs (``overhead_direct``, the number to
read), and the ratio of whole ``fit()`` times against runs without diagnostics
(``overhead_whole_run``, noisier on a shared machine). The reference (diagnostics off) is measured in the same process.

    python benchmarks/diagnostics_overhead.py --d-model 128 --layers 4 --steps 300 --every 100
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from lexilab.train.trainer import Trainer


def config(args, every: int) -> dict:
    d = args.d_model
    n = {"train": 2000, "val": 64, "calibration": 64, "test": 64}
    task = lambda kind, name, **kw: {"kind": kind, "data": {"name": "synthetic", "task": name, "n": n},
                                     "max_length": 64, **kw}
    return {
        "seed": 0, "data_root": args.data_root,
        "backbone": {"name": {"d_model": d, "d_ff": 4 * d, "num_layers": args.layers, "num_heads": max(d // 32, 1),
                              "d_kv": 32, "vocab_size": 32128, "feed_forward_proj": "gated-gelu"},
                     "init": "random", "tokenizer": "data:flan_t5_tokenizer"},
        "tasks": {"summary": task("seq2seq", "seq2seq_keywords", max_target_length=16),
                  "topic": task("multiclass", "shared_a"), "emotion": task("multilabel", "multilabel")},
        "sampler": {"kind": "round_robin", "steps_per_epoch": args.steps},
        "optim": {"lr": 1e-3},
        "train": {"epochs": 1, "batch_size": args.batch, "checkpoint_every": None, "device": args.device,
                  "early_stopping": {"patience": None}},
        "diagnostics": {"grad_cosine_every": every},
        "tracking": {"mlflow": False},
    }


def timed_fit(args, every: int) -> dict:
    """Wall time of fit(), and inside it the time spent in optimizer steps and in diagnostics."""
    with tempfile.TemporaryDirectory() as folder:
        trainer = Trainer(config(args, every), Path(folder) / "e" / "a" / "seed-0", progress=False)
        spent = {"steps": 0.0, "diagnostics": 0.0}

        def timed(name, method):
            def wrapper(*a):
                start = time.perf_counter()
                result = method(*a)
                spent[name] += time.perf_counter() - start
                return result
            return wrapper

        trainer._run_window = timed("steps", trainer._run_window)  # what fit() calls per step
        trainer._diagnostics = timed("diagnostics", trainer._diagnostics)
        start = time.perf_counter()
        trainer.fit()
        return {"fit": time.perf_counter() - start, **spent}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3, help="off/on pairs, interleaved; medians reported")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--data-root", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    args = parser.parse_args()
    offs, ons = [], []
    for _ in range(args.repeats):  # interleaved, so drifting machine load hits both alike
        offs.append(timed_fit(args, 0))
        ons.append(timed_fit(args, args.every))
    off = statistics.median(r["fit"] for r in offs)
    on = statistics.median(r["fit"] for r in ons)
    # direct accounting inside the runs with diagnostics: their time over the training steps' time
    direct = statistics.median(r["diagnostics"] / r["steps"] for r in ons)
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or "cpu"
    print(json.dumps({"device": device, "threads": torch.get_num_threads(), "steps": args.steps,
                      "every": args.every, "d_model": args.d_model, "layers": args.layers,
                      "repeats": args.repeats, "fit_s_off": round(off, 2), "fit_s_on": round(on, 2),
                      "overhead_direct": round(direct, 4), "overhead_whole_run": round(on / off - 1.0, 4)}))


if __name__ == "__main__":
    main()
