"""Per-task-gradient methods without the T x |theta| Jacobian: torchjd's Gramian engine vs today's path.

Today (lexilab.train.weighting.aggregation) a gradient method takes one backward pass per task,
stacks the rows into a dense ``T x |theta_shared|`` float32 Jacobian J and hands it to the
aggregator. UPGrad (like MGDA, IMTL-G, DualProj, CAGrad, Aligned-MTL) needs only the Gramian
G = J J^T: with ``weighting: {kind: upgrad, engine: gramian}`` (lexilab.train.weighting.gramian)
torchjd's ``autogram.Engine`` (Quinton & Rey 2024, "Jacobian Descent for Multi-Objective
Optimization", Sec. 6 and Alg. 3) computes G module by module, the weights w = UPGrad's
weighting of G follow, and one backward of ``w . losses`` gives the update J^T w — no Jacobian is
ever stored. Both variants run lexilab's own weighting code (``engine: jacobian`` / ``gramian``).

Setting: a T5 encoder (FLAN-T5-base dims; tiny under --tiny) with T classification tasks, each its
own batch, mean pooling and linear head. Each path runs in a fresh process (peak memory: CUDA
max allocated, or the process's peak RSS on CPU); the two shared-parameter updates are compared
(relative difference of J^T w, the same UPGrad with lexilab's exact NNLS projector in both).

    python benchmarks/gramian_methods.py                 # CUDA, T = 3 and 8
    python benchmarks/gramian_methods.py --device cpu --tiny
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import emit, markdown_table, section_head, resolve_device, sync, t5_dims  # noqa: E402


def build(tasks: int, tiny: bool, device: torch.device, batch: int, length: int):
    from lexilab.model import load_backbone

    cfg = {**t5_dims(tiny), "dropout_rate": 0.0}
    backbone = load_backbone(cfg, init="random", seed=0).to(device).train()
    gen = torch.Generator().manual_seed(1)
    torch.manual_seed(1)  # the heads: the same in both processes
    heads = [torch.nn.Linear(cfg["d_model"], 4).to(device) for _ in range(tasks)]
    batches = []
    for _ in range(tasks):
        ids = torch.randint(2, cfg["vocab_size"], (batch, length), generator=gen)
        mask = (torch.arange(length)[None, :] < torch.randint(length // 2, length + 1, (batch, 1), generator=gen))
        batches.append((ids.masked_fill(~mask, 0).to(device), mask.long().to(device),
                        torch.randint(0, 4, (batch,), generator=gen).to(device)))
    return backbone, heads, batches


def task_losses(backbone, heads, batches) -> list[torch.Tensor]:
    losses = []
    for head, (ids, mask, labels) in zip(heads, batches):
        states = backbone.encode(ids, mask)
        keep = mask.unsqueeze(-1).to(states.dtype)
        losses.append(F.cross_entropy(head((states * keep).sum(1) / keep.sum(1)), labels))
    return losses


def run_variant(args) -> dict:
    """One path in this process: seconds per step (after one warm-up) and peak memory."""
    from lexilab.train.weighting import build_weighting, flat_params

    device = resolve_device(args.device)
    backbone, heads, batches = build(args.tasks, args.tiny, device, args.batch, args.length)
    names = [f"task{i}" for i in range(args.tasks)]
    groups = backbone.shared_parameter_groups()
    shared = flat_params(groups)
    # the real path of both engines: lexilab's UPGrad, weighting.engine jacobian or gramian
    method = build_weighting({"kind": "upgrad", "engine": args.variant}, names, groups, seed=0)
    method.attach(backbone)  # the Gramian engine hooks the backbone's modules (as the Trainer does)

    def step():
        for p in shared:
            p.grad = None
        losses = task_losses(backbone, heads, batches)
        method.accumulate(dict(zip(names, losses)), groups)
        method.finish(1)

    step()  # warm-up
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    sync(device)
    start = time.perf_counter()
    for _ in range(args.repeats):
        step()
    sync(device)
    seconds = (time.perf_counter() - start) / args.repeats
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else \
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    update = torch.cat([p.grad.flatten().float().cpu() for p in shared])
    torch.save(update, args.save)
    return {"seconds": seconds, "peak_bytes": peak, "params": update.numel()}


def main(argv=None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--tasks", type=int, nargs="+", default=[3, 8])
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--length", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--variant", choices=["jacobian", "gramian"], help=argparse.SUPPRESS)
    ap.add_argument("--save", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    for key, tiny, full in (("batch", 4, 16), ("length", 32, 256), ("repeats", 2, 3)):
        if getattr(args, key) is None:
            setattr(args, key, tiny if args.tiny else full)
    if args.variant:  # the child process
        args.tasks = args.tasks[0]
        print(json.dumps(run_variant(args)))
        return ""
    device = resolve_device(args.device)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for tasks in args.tasks:
            results = {}
            for variant in ("jacobian", "gramian"):
                save = str(Path(folder) / f"{variant}-{tasks}.pt")
                child = [sys.executable, __file__, "--variant", variant, "--save", save, "--device", str(device),
                         "--tasks", str(tasks), "--batch", str(args.batch), "--length", str(args.length),
                         "--repeats", str(args.repeats)] + (["--tiny"] if args.tiny else [])
                done = subprocess.run(child, capture_output=True, text=True)
                if done.returncode != 0:
                    raise SystemExit(f"{variant} T={tasks} failed: {done.stderr.strip().splitlines()[-1]}")
                results[variant] = json.loads(done.stdout.strip().splitlines()[-1])
                results[variant]["update"] = torch.load(save)
            a, b = results["jacobian"]["update"], results["gramian"]["update"]
            rel = ((a - b).norm() / a.norm()).item()
            if not rel < 1e-4:
                raise SystemExit(f"T={tasks}: the Gramian path's update differs from today's by {rel:.1e} (relative)")
            jac, gram = results["jacobian"], results["gramian"]
            n = jac["params"]
            rows.append([tasks, n, tasks * n * 4 / 2**30, jac["seconds"] * 1e3, gram["seconds"] * 1e3,
                         jac["seconds"] / gram["seconds"], jac["peak_bytes"] / 2**30, gram["peak_bytes"] / 2**30,
                         jac["peak_bytes"] / gram["peak_bytes"], f"{rel:.1e}"])
    memory = "CUDA max allocated" if device.type == "cuda" else "process peak RSS"
    text = "\n".join([
        *section_head("Gramian path for gradient methods", "gramian_methods.py", argv, device),
        f"UPGrad on a {'tiny' if args.tiny else 'FLAN-T5-base'} T5 encoder (shared: embeddings + encoder), "
        f"T classification tasks, batch {args.batch} × {args.length} each, float32, {args.repeats} timed steps "
        f"after a warm-up; peak memory = {memory}. Today = dense T × n Jacobian + torchjd UPGrad; "
        "Gramian = `weighting: {kind: upgrad, engine: gramian}` (torchjd autogram Engine, UPGrad's "
        "weighting of G, one weighted backward).", "",
        markdown_table(["T", "shared params n", "J size GiB", "today ms", "Gramian ms", "speed-up",
                        "today peak GiB", "Gramian peak GiB", "memory ratio", "update rel. diff"], rows), ""])
    return emit(text, args.out)


if __name__ == "__main__":
    main()
