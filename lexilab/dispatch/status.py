"""Bring status.json up to date for runs whose job ended without saying so.

A job normally records its own outcome (the runner writes running -> done/failed). A job that
is cancelled, killed (out of memory, node failure) or times out without a requeue cannot; the
scheduler knows. `refresh_status` asks sacct (SLURM) or the process table about runs still
marked pending/running and records such endings as `cancelled` or `failed`. For every executor
but SLURM the processes a status names (the run's owner, the job, the launcher that queued it)
are checked by host, boot id, pid and start time: a run whose processes on this host are all
gone — an inline `run` killed with SIGKILL, a local job killed by the OOM killer — is recorded
as failed with an ``interrupted:`` error line, and `run` retries it from its checkpoint.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Iterable

from lexilab.dispatch.procs import pid_alive
from lexilab.dispatch.slurm import TERMINAL_STATES, job_states
from lexilab.runs import StatusUnreadable, processes_alive, read_status, update_status, update_status_if

OPEN_STATES = ("pending", "running")
FINISHED_STATES = ("done", "failed", "cancelled", "pruned")


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


def _ended(status: dict) -> bool:
    """Every process the status names on this host is gone (False when one lives or cannot
    be checked from here)."""
    if status.get("executor") == "local" and _ours(status.get("job_id")):
        return False  # the submitit job process, before its RunJob recorded itself
    return processes_alive(status) is False


def _refresh_processes(runs: dict[Path, dict], statuses: dict[Path, dict]) -> None:
    for run_dir, status in runs.items():
        if not _ended(status):
            continue
        host = status.get("host") or status.get("launcher_host") or "this host"
        if status.get("state") == "running":
            error = f"interrupted: process {status.get('pid')} on {host} ended without recording a result"
        else:
            error = (f"interrupted: the process that queued it ({status.get('launcher_pid')} on {host}) "
                     "ended without recording a result")
        # decided again under the status lock: the run may have ended or restarted meanwhile
        same = {key: status.get(key) for key in ("state", "pid", "pid_start", "job_pid", "launcher_pid", "attempts")}
        updated = update_status_if(run_dir, lambda now: (
            {"state": "failed", "finished": time.time(), "interrupted": True, "error": error}
            if all(now.get(k) == v for k, v in same.items()) and _ended(now) else None))
        statuses[run_dir] = updated or read_status(run_dir)


def refresh_status(run_dirs: Iterable[str | os.PathLike]) -> dict[Path, dict]:
    """Status of each run after checking unfinished submitted jobs with their scheduler."""
    statuses: dict[Path, dict] = {}
    for run_dir in map(Path, run_dirs):
        try:
            statuses[run_dir] = read_status(run_dir)
        except StatusUnreadable as err:  # reported by the scan (state unknown); the others go on
            statuses[run_dir] = {"state": "unknown", "error": str(err)}
    slurm_runs: dict[Path, dict] = {}
    process_runs: dict[Path, dict] = {}
    for run_dir, status in statuses.items():
        if status.get("state") not in OPEN_STATES:
            continue
        if status.get("executor") == "slurm":
            if status.get("job_id"):
                slurm_runs[run_dir] = status
        else:
            process_runs[run_dir] = status
    if slurm_runs:
        _refresh_slurm(slurm_runs, statuses)
    if process_runs:
        _refresh_processes(process_runs, statuses)
    return statuses
