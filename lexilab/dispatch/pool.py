"""The local executor's slot pool: one run per GPU (or `max_parallel` runs on CPU) at a time.

submitit's LocalExecutor starts every job at once and does not pin GPUs. Here each slot is one
CUDA_VISIBLE_DEVICES value ("" on CPU); a run gets a free slot, starts as a submitit local job
with that value exported, and the next queued run takes the slot when it ends.

Without --wait the pool runs in a detached launcher (`python -m lexilab.dispatch.pool --detach
FOLDER`): it forks into its own session, feeds the queue, and exits once every run has ended,
so the command that submitted returns at once and may exit.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
import traceback
from collections import deque
from pathlib import Path
from typing import Sequence

from lexilab.claim import process_alive
from lexilab.runs import update_status, update_status_if

PLAN_FILE = "plan.json"
LAUNCHER_PID_FILE = "launcher.pid"
GPU_ENV = "LEXILAB_VISIBLE_GPUS"  # e.g. "0,1": the GPUs the local executor may use
DEFAULT_TIMEOUT_MIN = 7 * 24 * 60  # submitit's local default (2 min) would kill real runs
FINISHED = ("done", "failed", "cancelled", "pruned")


def visible_gpus(explicit: Sequence[str] | None = None) -> list[str]:
    """GPU ids for the slots: explicit list > $LEXILAB_VISIBLE_GPUS > $CUDA_VISIBLE_DEVICES > torch."""
    if explicit is not None:
        return [str(g) for g in explicit]
    for name in (GPU_ENV, "CUDA_VISIBLE_DEVICES"):
        value = os.environ.get(name)
        if value is not None:
            ids = [g.strip() for g in value.split(",") if g.strip()]
            # "-1" (or a leading invalid id) hides every GPU from CUDA
            return [] if not ids or ids[0] in ("-1", "none", "NoDevFiles") else ids
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    except Exception:  # no torch CUDA runtime: CPU only
        return []


def make_slots(gpus: Sequence[str], max_parallel: int | None) -> list[str]:
    """One CUDA_VISIBLE_DEVICES value per slot."""
    if max_parallel is not None and max_parallel < 1:
        raise ValueError(f"max_parallel must be >= 1, got {max_parallel}")
    if gpus:
        return list(gpus)[:max_parallel] if max_parallel else list(gpus)
    return [""] * (max_parallel or 1)


def write_plan(folder: Path, run_dirs: Sequence[Path], slots: Sequence[str], timeout_min: int,
               setup: Sequence[str] = (), width: int = 1) -> Path:
    """``width``: slots per run (a train.distributed run: one process per slot)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / PLAN_FILE
    path.write_text(json.dumps({"run_dirs": [str(r) for r in run_dirs], "slots": list(slots),
                                "timeout_min": timeout_min, "setup": list(setup), "width": width}, indent=2))
    return path


def _job_ended(run_dir: str, job_id: str, exit_info: str) -> None:
    # the job process is gone: if the run did not record an outcome, say so — unless another
    # live process holds the run (this job then found the claim taken and left it alone)
    def decide(status: dict) -> dict | None:
        if status.get("state") in FINISHED or (status.get("state") == "running" and process_alive(status)):
            return None
        return {"state": "failed", "finished": time.time(),
                "error": f"local job {job_id} ended ({exit_info}) without recording a result"}
    update_status_if(run_dir, decide)


def _pin(device: str, setup: Sequence[str]) -> dict:
    """LocalExecutor parameters that give a job exactly CUDA_VISIBLE_DEVICES=device."""
    if device == "":
        return {"gpus_per_node": 0, "visible_gpus": (), "setup": list(setup)}  # submitit exports ""
    if device.isdigit():
        return {"gpus_per_node": 1, "visible_gpus": (int(device),), "setup": list(setup)}
    # UUIDs or MIG ids: exported by the job's shell (submitit only takes integer ids)
    return {"gpus_per_node": 0, "visible_gpus": (),
            "setup": [*setup, f"export CUDA_VISIBLE_DEVICES={shlex.quote(device)}"]}


def _pin_all(devices: Sequence[str], setup: Sequence[str]) -> dict:
    """LocalExecutor parameters for one run on several slots: one task (rank) per slot, every
    task seeing all the slots' GPUs (rank k uses the k-th)."""
    if len(devices) == 1:
        return _pin(devices[0], setup)
    params = {"tasks_per_node": len(devices), "setup": list(setup)}
    if all(d == "" for d in devices):
        return {**params, "gpus_per_node": 0, "visible_gpus": ()}
    if all(d.isdigit() for d in devices):
        return {**params, "gpus_per_node": len(devices), "visible_gpus": tuple(int(d) for d in devices)}
    return {**params, "gpus_per_node": 0, "visible_gpus": (),
            "setup": [*setup, f"export CUDA_VISIBLE_DEVICES={shlex.quote(','.join(devices))}"]}


def run_pool(folder: Path, poll_s: float = 0.2) -> None:
    """Feed the plan's runs through the slots until every run has ended."""
    import submitit

    from lexilab.dispatch.job import RunJob

    plan = json.loads((folder / PLAN_FILE).read_text())
    slots: list[str] = plan["slots"]
    queue = deque(plan["run_dirs"])
    free = deque(range(len(slots)))
    width = int(plan.get("width", 1))  # slots per run
    active: dict[int, tuple[object, str]] = {}
    taken: dict[int, list[int]] = {}
    executor = submitit.LocalExecutor(folder=folder / "jobs")
    try:
        while queue or active:
            while queue and len(free) >= width:
                run_slots, run_dir = [free.popleft() for _ in range(width)], queue.popleft()
                slot = run_slots[0]
                executor.update_parameters(timeout_min=plan["timeout_min"],
                                           **_pin_all([slots[s] for s in run_slots], plan["setup"]))
                job = executor.submit(RunJob(run_dir))
                gpus = ",".join(slots[s] for s in run_slots)
                update_status(run_dir, job_id=str(job.job_id), slot=slot if width == 1 else run_slots, gpu=gpus or None)
                active[slot], taken[slot] = (job, run_dir), run_slots
            for slot, (job, run_dir) in list(active.items()):
                if job.done():
                    del active[slot]
                    free.extend(taken.pop(slot))
                    code = job._process.poll() if getattr(job, "_process", None) else None
                    _job_ended(run_dir, job.job_id, f"exit code {code}")
            time.sleep(poll_s)
    except BaseException:
        for job, _ in active.values():
            job.cancel()
        raise


def start_detached(folder: Path) -> int:
    """Start the launcher in its own session; returns its PID once it has forked."""
    log = open(folder / "launcher.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "lexilab.dispatch.pool", "--detach", str(folder)],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=os.getcwd())
    log.close()
    if proc.wait(timeout=120) != 0:
        raise RuntimeError(f"local launcher failed to start; see {folder / 'launcher.log'}")
    return int((folder / LAUNCHER_PID_FILE).read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lexilab.dispatch.pool",
                                     description="Run a local slot pool plan (written by lexilab.dispatch).")
    parser.add_argument("folder", type=Path)
    parser.add_argument("--detach", action="store_true", help="fork into a new session and return at once")
    args = parser.parse_args(argv)
    folder = args.folder.resolve()
    if args.detach:
        pid = os.fork()
        if pid:
            # the parent reports the child's PID and exits: the submitter's wait() returns now
            (folder / LAUNCHER_PID_FILE).write_text(str(pid))
            os._exit(0)
        os.setsid()
    try:
        run_pool(folder)
    except Exception:
        traceback.print_exc()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
