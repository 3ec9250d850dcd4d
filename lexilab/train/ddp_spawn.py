"""Data parallel on one machine without a launcher: W processes in one process group.

``spawn(fn, W, *args)`` starts W processes with ``torch.multiprocessing.spawn``, joins them to a
gloo (or NCCL) group on a free localhost port, runs ``fn(*args)`` in each and tears the group
down; an exception in any rank is raised here. The tests (exactness against a one-process run)
and ``benchmarks/ddp_scaling.py`` use it with :func:`train_runs`; real runs start through
torchrun or SLURM (``python -m lexilab.runner RUN_DIR``).
"""
from __future__ import annotations

import socket
from pathlib import Path
from typing import Any, Callable

import torch

from lexilab.train import distributed

FINAL_FILE = "final.pt"  # what train_runs leaves in each run directory (rank 0)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _entry(rank: int, world: int, port: int, backend: str, timeout_s: int, fn: Callable, args: tuple) -> None:
    env = distributed.LaunchEnv(rank, world, rank, "127.0.0.1", port, "spawn")
    distributed.setup(env, backend, timeout_s, device_name="cpu" if backend == "gloo" else None)
    try:
        fn(*args)
    finally:
        distributed.teardown()


def spawn(fn: Callable, world_size: int, *args: Any, backend: str = "gloo", timeout_s: int = 120) -> None:
    """Run ``fn(*args)`` on ``world_size`` processes of one process group (``fn`` importable)."""
    torch.multiprocessing.spawn(_entry, args=(world_size, free_port(), backend, timeout_s, fn, args),
                                nprocs=world_size, join=True)


class _Interrupted(Exception):
    pass


def _interrupt_after(step: int):
    def hook(trainer) -> None:
        if trainer.step == step:
            raise _Interrupted
    return hook


def _record_examples(trainer, path: Path) -> None:
    """Log (step, task, example ids) of every shard this rank trains on to ``path``."""
    import json

    loss = trainer._loss

    def spy(name, batch):
        if not trainer.model.training:  # evaluation batches are not training shards
            return loss(name, batch)
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"step": trainer.step, "task": name, "ids": [e["id"] for e in batch]}) + "\n")
        return loss(name, batch)
    trainer._loss = spy


def _inject(trainer, rank: int, step: int, what: str) -> None:
    """Make rank ``rank``'s loss at ``step`` raise (``what = "raise"``) or be NaN (the tests'
    stand-in for a failing rank)."""
    loss = trainer._loss

    def faulty(name, batch):
        value = loss(name, batch)
        if trainer.dist.rank == rank and trainer.step == step and trainer.model.training:
            if what == "raise":
                raise ValueError(f"injected failure on rank {rank} at step {step}")
            return value * float("nan")
        return value
    trainer._loss = faulty


def _prune_at(step: int):
    def hook(trainer, record) -> None:
        from lexilab.sweep.hook import RunPruned

        if trainer.step >= step:
            raise RunPruned(trainer.step)
    return hook


class _compile_with:
    """Within the block, ``Module.compile`` uses ``backend`` (None: leave torch's default) and
    counts its calls, so a test can compile on CPU without inductor's minutes-long C++ build."""

    def __init__(self, backend: str | None):
        self.backend, self.calls, self._original = backend, 0, None

    def __enter__(self):
        if self.backend:
            self._original = original = torch.nn.Module.compile

            def compile_(module, *args, **kwargs):
                self.calls += 1
                return original(module, *args, **{**kwargs, "backend": self.backend})
            torch.nn.Module.compile = compile_
        return self

    def __exit__(self, *exc):
        if self._original is not None:
            torch.nn.Module.compile = self._original


def train_runs(jobs: list[tuple], steps_only: bool = False) -> None:
    """Train each ``(config, run_dir[, options])`` in turn with this process's group (a world of
    one when none is set up); rank 0 saves the final model and weighting state to
    ``run_dir/final.pt`` with the wall time of the training loop. ``steps_only``: the optimizer
    steps alone (no evaluation, checkpoint or test), as the benchmark times them. Options (for
    the tests): ``interrupt_after: N`` stops after step N and resumes in a fresh Trainer;
    ``record_examples: DIR`` logs each rank's example ids to ``DIR/examples-<rank>.jsonl``;
    ``compile_backend: NAME`` compiles (when ``train.compile``) with that backend;
    ``inject: [rank, step, "raise" | "nan"]`` makes one rank fail, ``prune_at_step: N`` gives
    rank 0 a sweep hook that prunes at the first evaluation from step N; every rank's error (as
    ``train_run`` would raise it) goes to ``run_dir/error-<rank>.txt``."""
    import time

    from lexilab.train.trainer import Trainer

    for config, run_dir, *more in jobs:
        options = more[0] if more else {}
        if options.get("interrupt_after"):
            first = Trainer(config, run_dir, progress=False)
            first.maybe_resume()
            try:
                first.fit(on_step=_interrupt_after(int(options["interrupt_after"])))
            except _Interrupted:
                pass
        compiled = _compile_with(options.get("compile_backend"))
        with compiled:
            trainer = Trainer(config, run_dir, progress=False)
        if options.get("record_examples"):
            _record_examples(trainer, Path(options["record_examples"]) / f"examples-{trainer.dist.rank}.jsonl")
        if options.get("prune_at_step") and trainer.dist.is_main:  # as a sweep's hook: rank 0 only
            trainer.on_evaluate = _prune_at(int(options["prune_at_step"]))
        if options.get("inject") or options.get("prune_at_step"):
            if options.get("inject"):
                _inject(trainer, *options["inject"])
            try:
                try:
                    trainer.maybe_resume()
                    trainer.fit()
                except BaseException as err:
                    distributed.current().raise_failure(err)
                    raise
            except Exception as err:  # noqa: BLE001 - recorded for the test, as status.json would
                Path(run_dir).mkdir(parents=True, exist_ok=True)
                (Path(run_dir) / f"error-{trainer.dist.rank}.txt").write_text(f"{type(err).__name__}: {err}")
            continue
        trainer.maybe_resume()
        started = time.perf_counter()
        if steps_only:
            accum = int(trainer.train_cfg.get("grad_accum", 1))
            for _ in range(trainer.total_steps):
                trainer._window(accum)
                trainer.step += 1
        else:
            trainer.fit()
        seconds = time.perf_counter() - started
        if trainer.dist.is_main:
            Path(run_dir).mkdir(parents=True, exist_ok=True)
            torch.save({"model": trainer.model.state_dict(),
                        "weighting_params": [p.detach().clone() for p in trainer.weighting.parameters()],
                        "weighting": trainer.weighting.state_dict(), "seconds": seconds,
                        "compiled": compiled.calls,
                        "world_size": trainer.dist.world_size}, Path(run_dir) / FINAL_FILE)
