"""Bring status.json up to date for runs whose job ended without saying so.

A job normally records its own outcome (the runner writes running -> done/failed). A job that
is cancelled, killed (out of memory, node failure) or times out without a requeue cannot; the
scheduler knows. `refresh_status` asks sacct (SLURM) or the process table (local pool) about
runs still marked pending/running and records such endings as `cancelled` or `failed`.
"""
from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Iterable

from lexilab.dispatch.procs import pid_alive
from lexilab.dispatch.slurm import TERMINAL_STATES, job_states
from lexilab.runs import read_status, update_status

OPEN_STATES = ("pending", "running")
FINISHED_STATES = ("done", "failed", "cancelled")


def _ours(pid: object) -> bool:
    """Is ``pid`` a live lexilab/submitit process? (guards against PID reuse)"""
    try:
        pid = int(pid)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    if not pid_alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False
    return "submitit" in cmdline or "lexilab" in cmdline


def _refresh_slurm(runs: dict[Path, dict], statuses: dict[Path, dict]) -> None:
    states = job_states([str(s["job_id"]) for s in runs.values()])
    if states is None:  # no sacct here (or no accounting): leave the files as they are
        return
    for run_dir, status in runs.items():
        job_id = str(status["job_id"])
        scheduler = states.get(job_id)
        if scheduler not in TERMINAL_STATES:  # queued, running, requeued, preempted, unknown
            continue
        # read again after asking sacct: the job writes its outcome before it ends
        current = read_status(run_dir)
        if current.get("state") not in OPEN_STATES or str(current.get("job_id")) != job_id:
            statuses[run_dir] = current
            continue
        if scheduler == "CANCELLED":
            fields = {"state": "cancelled", "error": f"SLURM job {job_id} was cancelled"}
        else:
            fields = {"state": "failed",
                      "error": f"SLURM job {job_id} ended {scheduler} without the run recording a result"}
        statuses[run_dir] = update_status(run_dir, finished=time.time(), slurm_state=scheduler, **fields)


def _refresh_local(runs: dict[Path, dict], statuses: dict[Path, dict]) -> None:
    host = socket.gethostname()
    for run_dir, status in runs.items():
        if status.get("launcher_host") not in (None, host):
            continue  # PIDs of another machine mean nothing here
        pids = (status.get("launcher_pid"), status.get("job_id"), status.get("job_pid"))
        if any(_ours(pid) for pid in pids):
            continue
        current = read_status(run_dir)  # after the PID check: see _refresh_slurm
        if current.get("state") not in OPEN_STATES:
            statuses[run_dir] = current
            continue
        statuses[run_dir] = update_status(
            run_dir, state="failed", finished=time.time(),
            error="local job ended without recording a result (its processes are gone)")


def refresh_status(run_dirs: Iterable[str | os.PathLike]) -> dict[Path, dict]:
    """Status of each run after checking unfinished submitted jobs with their scheduler."""
    statuses = {Path(r): read_status(r) for r in run_dirs}
    slurm_runs: dict[Path, dict] = {}
    local_runs: dict[Path, dict] = {}
    for run_dir, status in statuses.items():
        if status.get("state") not in OPEN_STATES:
            continue
        if status.get("executor") == "slurm" and status.get("job_id"):
            slurm_runs[run_dir] = status
        elif status.get("executor") == "local" and status.get("launcher_pid"):
            local_runs[run_dir] = status
    if slurm_runs:
        _refresh_slurm(slurm_runs, statuses)
    if local_runs:
        _refresh_local(local_runs, statuses)
    return statuses
