"""Sweep machinery overhead per trial, training excluded (issue goal: ≤ 1 s per trial).

Runs a real sweep (journal storage, TPE, task weights on the simplex and a learning rate) of
tiny synthetic runs with the inline executor, timing every call of the trainer's
``train_run`` (model and data set-up, training, final evaluation: the "training"). The
overhead per trial is (whole sweep − time inside ``train_run``) / trials: validation of the
space, Optuna ask/tell and the journal file, run directories, status files, dispatch and the
objective read-back. The reference in the same run is the mean ``train_run`` time per trial;
the script prints both and their ratio as one JSON line.

    python benchmarks/sweep_overhead.py --trials 20
    python benchmarks/sweep_overhead.py --trials 6 --executor local   # + process start per trial
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import yaml


def spec(data_root: str, steps: int) -> dict:
    n = {"train": 64, "val": 32, "calibration": 16, "test": 16}
    task = lambda name: {"kind": "multiclass", "data": {"name": "synthetic", "task": name, "n": n}, "max_length": 24}
    return {"name": "overhead", "base": {
        "data_root": data_root,
        "backbone": {"name": {"d_model": 16, "d_kv": 8, "d_ff": 32, "num_layers": 1, "num_heads": 2,
                              "vocab_size": 32128, "feed_forward_proj": "gated-gelu"},
                     "init": "random", "tokenizer": "data:flan_t5_tokenizer"},
        "tasks": {"colour": task("shared_a"), "animal": task("disjoint_b")},
        "sampler": {"kind": "round_robin"}, "optim": {"lr": 1e-2},
        "train": {"epochs": 100, "max_steps": steps, "batch_size": 16, "device": "cpu", "checkpoint_every": 1000,
                  "early_stopping": {"patience": 1000}},
        "tracking": {"mlflow": False}},
        "search": {"params": {"optim.lr": {"type": "float", "low": 1e-3, "high": 3e-2, "log": True}},
                   "task_weights": {"space": "simplex", "low": 0.05}, "objectives": "animal/accuracy"}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--steps", type=int, default=4, help="training steps per run")
    parser.add_argument("--executor", choices=("inline", "local"), default="inline")
    parser.add_argument("--data-root", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ["LEXILAB_PROGRESS"] = "0"

    import lexilab.train.trainer as trainer_module
    from lexilab.runs import read_status
    from lexilab.sweep.driver import Driver
    from lexilab.sweep.study import load_sweep

    inside: list[float] = []
    original = trainer_module.train_run

    def timed(*a, **k):
        started = time.perf_counter()
        try:
            return original(*a, **k)
        finally:
            inside.append(time.perf_counter() - started)

    trainer_module.train_run = timed  # the runner imports it at call time
    with tempfile.TemporaryDirectory() as tmp:
        document = spec(args.data_root, args.steps)
        document["search"]["trials"] = args.trials
        path = Path(tmp) / "overhead.yaml"
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        started = time.perf_counter()
        sweep = load_sweep(str(path), str(Path(tmp) / "results"), None)
        driver = Driver(sweep.spec, sweep.root, sweep.storage, executor=args.executor, poll_s=0.05,
                        out=open(os.devnull, "w"))
        driver.open_study()
        counts = driver.run()
        whole = time.perf_counter() - started
        if args.executor == "local":  # train_run ran in the job processes: read its time from each run
            inside = [float(read_status(p)["seconds"]) for p in (Path(tmp) / "results" / "overhead").glob("trial-*/seed-0")]
    training = sum(inside)
    overhead = (whole - training) / args.trials
    print(json.dumps({"trials": args.trials, "states": counts, "executor": args.executor,
                      "device": f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)",
                      "whole_s": round(whole, 2), "training_s_per_trial": round(training / args.trials, 3),
                      "overhead_s_per_trial": round(overhead, 3),
                      "overhead_over_training": round(overhead / (training / args.trials), 3),
                      "goal_s": 1.0, "met": overhead <= 1.0}))


if __name__ == "__main__":
    main()
