"""Data-parallel scaling on this machine and the communication volume of each method family.

    python benchmarks/ddp_scaling.py [--steps 12] [--batch 16] [--kinds equal,upgrad] [--world 2]

Timing: the same global batch and steps (``--batch`` examples per step) on one process, and on
``--world`` gloo processes with ``batch / world`` each (``lexilab.train.ddp_spawn``); the
training loop alone (no evaluation), tiny T5 (d_model 64, 2 layers), two classification tasks,
one thread per process. Reference in the same run: the one-process loop. Speed-up =
t1 / tW, efficiency = speed-up / W.

Volume: floats each rank averages per optimizer step (``lexilab.train.distributed``), from the
parameter counts of the benchmark's model and of FLAN-T5 small/base/large (built on the meta
device: no weights), with the bytes a ring all-reduce sends per rank, 2(W−1)/W × 4 bytes.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lexilab.train import ddp_spawn  # noqa: E402

TASKS = 2
FLAN_T5 = {"flan-t5-small": (512, 1024, 8, 6), "flan-t5-base": (768, 2048, 12, 12), "flan-t5-large": (1024, 2816, 24, 16)}


def run_config(data_root: str, kind: str, batch: int, steps: int) -> dict:
    n = {"train": 256, "val": 8, "calibration": 8, "test": 8}
    return {
        "seed": 0, "data_root": data_root,
        "backbone": {"name": {"d_model": 64, "d_ff": 128, "num_layers": 2, "num_decoder_layers": 2, "num_heads": 4,
                              "d_kv": 16, "vocab_size": 32128, "feed_forward_proj": "gated-gelu",
                              "dropout_rate": 0.0},
                     "init": "random", "tokenizer": "data:flan_t5_tokenizer"},
        "tasks": {"topic": {"kind": "multiclass", "data": {"name": "synthetic", "task": "shared_a", "n": n},
                            "max_length": 32},
                  "aligned": {"kind": "multiclass", "data": {"name": "synthetic", "task": "shared_b", "n": n},
                              "max_length": 32}},
        "sampler": {"kind": "round_robin", "steps_per_epoch": steps},
        "weighting": {"kind": kind}, "optim": {"lr": 1e-3},
        "train": {"epochs": 1, "batch_size": batch, "checkpoint_every": None, "device": "cpu",
                  "distributed": {"enabled": True, "backend": "gloo", "timeout_s": 300}},
        "tracking": {"mlflow": False},
    }


def volumes(n_model: int, n_shared: int, n_last: int, tasks: int, world: int) -> dict[str, int]:
    """Floats averaged per optimizer step of one micro-batch, per method family."""
    losses = world * tasks  # the all-gathered per-task losses
    return {"loss weightings (equal, fixed, uncertainty, dwa)": n_model + losses,
            "gradient aggregators (upgrad, pcgrad, cagrad, mgda, ...)": tasks * n_shared + (n_model - n_shared) + losses,
            "gradnorm": n_model + tasks * n_last + tasks + losses}


def flan_counts(d_model: int, d_ff: int, layers: int, heads: int) -> tuple[int, int, int]:
    from transformers import T5Config, T5ForConditionalGeneration

    config = T5Config(d_model=d_model, d_ff=d_ff, num_layers=layers, num_heads=heads, d_kv=64, vocab_size=32128,
                      feed_forward_proj="gated-gelu", tie_word_embeddings=False)
    with torch.device("meta"):
        model = T5ForConditionalGeneration(config)
    total = sum(p.numel() for p in model.parameters())
    shared = sum(p.numel() for p in model.encoder.parameters())  # embeddings + encoder blocks
    return total, shared, d_ff * d_model  # GradNorm's W: the last encoder block's wo


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch", type=int, default=16, help="global batch (examples per step)")
    parser.add_argument("--world", type=int, default=2)
    parser.add_argument("--kinds", default="equal,upgrad")
    parser.add_argument("--data-root", default=str(REPO.parent / "shared" / "data"))
    args = parser.parse_args()
    print(f"device: cpu, {os.cpu_count()} cores, OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}, "
          f"load average {os.getloadavg()[0]:.1f}, torch {torch.__version__}")
    kinds = args.kinds.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)

        def jobs(world: int):
            return [(run_config(args.data_root, kind, args.batch // world, args.steps),
                     str(root / f"w{world}" / kind / "a" / "seed-0")) for kind in kinds]

        ddp_spawn.train_runs(jobs(1), steps_only=True)
        ddp_spawn.spawn(ddp_spawn.train_runs, args.world, jobs(args.world), True)
        print(f"\n{args.steps} steps of {args.batch} examples (2 tasks, tiny T5 d_model 64), training loop only")
        print(f"{'method':10} {'1 process':>10} {f'{args.world} processes':>12} {'speed-up':>9} {'efficiency':>11}")
        for kind in kinds:
            one = torch.load(root / "w1" / kind / "a" / "seed-0" / ddp_spawn.FINAL_FILE)["seconds"]
            many = torch.load(root / f"w{args.world}" / kind / "a" / "seed-0" / ddp_spawn.FINAL_FILE)["seconds"]
            print(f"{kind:10} {one:9.2f}s {many:11.2f}s {one / many:8.2f}× {one / many / args.world:10.0%}")

        from lexilab.train.trainer import Trainer
        from lexilab.train.weighting import flat_params

        trainer = Trainer(run_config(args.data_root, "gradnorm", 8, 1), root / "probe" / "a" / "seed-0", progress=False)
        n_model = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
        n_shared = sum(p.numel() for p in flat_params(trainer.shared_groups))
        n_last = trainer.weighting._last_layer(trainer.shared_groups)[0].numel()
    models = {"benchmark tiny T5": (n_model, n_shared, n_last)}
    models.update({name: flan_counts(*dims) for name, dims in FLAN_T5.items()})
    ring = 2 * (args.world - 1) / args.world * 4
    print(f"\nfloats averaged per optimizer step ({TASKS} tasks, W = {args.world}; MB sent per rank by a ring all-reduce)")
    for name, (total, shared, last) in models.items():
        print(f"{name}: {total:,} parameters, {shared:,} shared")
        for family, floats in volumes(total, shared, last, TASKS, args.world).items():
            print(f"  {family:58} {floats:>14,}  {floats * ring / 2**20:9.1f} MB  ({floats / (total + TASKS * args.world):.2f}× DDP)")


if __name__ == "__main__":
    main()
