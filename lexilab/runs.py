"""The run directory: layout, status and identity (the contract between training, dispatch and
analysis; see README "How it works").

    results/<experiment>/<arm>/seed-<n>/
      config.yaml  status.json  env.json  history.jsonl  gradcos.jsonl  metrics.json
      predictions/<split>/<task>.jsonl  thresholds.json  checkpoints/{last,best}/
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lexilab.claim import identity, process_alive
from lexilab.errors import LexilabError
from lexilab.io import atomic_write_json, atomic_write_text

STATES = ("pending", "running", "done", "failed", "cancelled", "pruned")  # pruned: stopped by a sweep's pruner
STATUS_FILE = "status.json"
CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.json"


def config_hash(config: dict) -> str:
    """Stable identity of a resolved run config: sha256 of its canonical JSON (first 12 hex)."""
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]


def run_dir_for(results: str | os.PathLike, experiment: str, arm: str, seed: int) -> Path:
    return Path(results) / experiment / arm / f"seed-{seed}"


class StatusUnreadable(LexilabError):
    """A status.json that is not a JSON object (damaged by hand or by another tool)."""


def read_status(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The run's status; a run directory without status.json is ``pending``; a damaged file
    raises :class:`StatusUnreadable` naming it."""
    path = Path(run_dir) / STATUS_FILE
    status = _read_json_or_none(path)
    if status is None:
        return {"state": "pending", "attempts": 0}
    if isinstance(status, StatusUnreadable):
        raise status
    return status


@contextmanager
def _status_lock(run_dir: Path):
    # status.json is updated by the launcher (job id) and by the job (state) concurrently.
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / ".status.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def update_status(run_dir: str | os.PathLike, **fields: Any) -> dict[str, Any]:
    """Merge ``fields`` into status.json atomically (read-modify-write under a file lock)."""
    return update_status_if(run_dir, lambda status: fields)  # type: ignore[return-value]


def update_status_if(run_dir: str | os.PathLike, decide) -> dict[str, Any] | None:
    """Read-modify-write under the status lock: ``decide(status)`` returns the fields to merge,
    or None to leave the file as it is (then None is returned)."""
    run_dir = Path(run_dir)
    with _status_lock(run_dir):
        status = read_status(run_dir)
        fields = decide(dict(status))
        if fields is None:
            return None
        state = fields.get("state")
        if state is not None and state not in STATES:
            raise ValueError(f"unknown run state {state!r}")
        status.update(fields)
        status["updated"] = time.time()
        atomic_write_json(run_dir / STATUS_FILE, status)
    return status


def mark_running(run_dir: str | os.PathLike) -> dict[str, Any]:
    """Record this process as the run's owner (host, boot id, pid and its start time)."""
    return update_status_if(run_dir, lambda status: {
        "state": "running",
        "attempts": int(status.get("attempts", 0)) + 1,
        "started": time.time(),
        **identity(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "error": None,
        "traceback": None,
        "interrupted": False,
    })


def queue_run(run_dir: str | os.PathLike, **fields: Any) -> bool:
    """Set the run ``pending`` with ``fields`` unless it is done or a live process on this host
    trains it (another `run` command may have got there since this one planned); True when
    queued."""
    def decide(status: dict[str, Any]) -> dict[str, Any] | None:
        if status.get("state") == "done":
            return None
        if status.get("state") == "running" and process_alive(status):
            return None
        return {**fields, "state": "pending"}
    return update_status_if(run_dir, decide) is not None


# --------------------------------------------------------------------------- the results tree
SEED_DIR = re.compile(r"^seed-(\d+)$")  # a moved-aside old run is seed-<n>.<oldhash>: not matched


@dataclass
class RunInfo:
    """What the results tree says about one run directory (read without parsing YAML)."""

    arm: str
    seed: int
    path: Path
    status: dict[str, Any]
    config_hash: str | None

    @property
    def state(self) -> str:
        return self.status.get("state", "pending")


def _read_json_or_none(path: Path) -> Any:
    """The JSON object in ``path``; None when there is no file; a :class:`StatusUnreadable`
    (returned, not raised) when it is damaged, so that a scan reports it and goes on."""
    try:
        with open(path, encoding="utf-8") as handle:
            value = json.load(handle)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (ValueError, OSError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return StatusUnreadable(f"{path}: unreadable ({type(err).__name__}: {str(err).splitlines()[0]})")
    if not isinstance(value, dict) or value.get("state", "pending") not in STATES:
        return StatusUnreadable(f"{path}: unreadable (not a lexilab status: no known 'state')")
    return value


def stored_hash(run_dir: str | os.PathLike) -> str | None:
    """The config hash on the first line of config.yaml (read without parsing the YAML)."""
    try:
        with open(Path(run_dir) / CONFIG_FILE, encoding="utf-8") as handle:
            first = handle.readline()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return first.split(":", 1)[1].strip() or None if first.startswith("config_hash:") else None


def scan_experiment(experiment_dir: str | os.PathLike) -> dict[tuple[str, int], RunInfo]:
    """Every run directory ``<arm>/seed-<n>/`` under an experiment folder → :class:`RunInfo`.

    Reads status.json and the first line of config.yaml per run and nothing else, so a tree of
    thousands of runs is scanned in well under a second. Folders starting with ``.`` (logs)
    and moved-aside old runs (``seed-<n>.<hash>``) are skipped."""
    root = Path(experiment_dir)
    found: dict[tuple[str, int], RunInfo] = {}
    if not root.is_dir():
        return found
    with os.scandir(root) as arms:
        for arm in arms:
            if arm.name.startswith(".") or not arm.is_dir():
                continue
            with os.scandir(arm.path) as seeds:
                for entry in seeds:
                    match = SEED_DIR.match(entry.name)
                    if not match or not entry.is_dir():
                        continue
                    path = Path(entry.path)
                    status = _read_json_or_none(path / STATUS_FILE)
                    if status is None:
                        status = {"state": "pending", "attempts": 0}
                    elif isinstance(status, StatusUnreadable):
                        status = {"state": "unknown", "error": str(status)}
                    seed = int(match.group(1))
                    found[(arm.name, seed)] = RunInfo(arm.name, seed, path, status, stored_hash(path))
    return found


def write_run(run_dir: str | os.PathLike, config: dict, meta: dict[str, Any], config_hash: str) -> bool:
    """Write a new run's config.yaml — ``config_hash`` on its first line, then ``meta``
    (experiment, arm, factor levels, seed, spec), then the resolved config — and status
    ``pending``, each atomically. A run another `run` command wrote meanwhile (same hash, a
    status already there) is left as it is: False."""
    run_dir = Path(run_dir)
    head = yaml.safe_dump({"config_hash": config_hash, "meta": meta}, sort_keys=False, allow_unicode=True)
    body = yaml.safe_dump(config, sort_keys=False, default_flow_style=False, allow_unicode=True)

    def decide(status: dict[str, Any]) -> dict[str, Any] | None:
        if (run_dir / STATUS_FILE).exists() and stored_hash(run_dir) == config_hash:
            return None
        atomic_write_text(run_dir / CONFIG_FILE, head + body)
        return {"state": "pending", "attempts": 0, "config_hash": config_hash, "created": time.time(),
                "error": None, "traceback": None}
    return update_status_if(run_dir, decide) is not None


def move_aside(run_dir: str | os.PathLike, old_hash: str | None) -> Path:
    """Rename a run whose config changed to ``seed-<n>.<oldhash>`` (kept, never deleted)."""
    run_dir = Path(run_dir)
    target = run_dir.with_name(f"{run_dir.name}.{old_hash or 'unknown'}")
    index = 1
    while target.exists():
        target = run_dir.with_name(f"{run_dir.name}.{old_hash or 'unknown'}.{index}")
        index += 1
    os.rename(run_dir, target)
    return target


def job_id(status: dict[str, Any]) -> str | None:
    value = status.get("slurm_job_id") or status.get("job_id")
    return str(value) if value not in (None, "") else None


# the processes a status may name: the run's owner (written when it starts), the submitted
# job's process (RunJob) and the launcher that queued it (inline/debug/local executors)
PROCESS_PREFIXES = ("", "job_", "launcher_")
LAUNCHERS = ("inline", "debug", "local")


def processes_alive(status: dict[str, Any]) -> bool | None:
    """True when a process the status names (owner, job, launcher) is alive on this host; False
    when every one named is on this host and gone; None when none is named or one cannot be
    checked from here (another host)."""
    prefixes = PROCESS_PREFIXES if status.get("state") == "running" else PROCESS_PREFIXES[1:]
    answers = [process_alive(status, p) for p in prefixes if status.get(f"{p}pid") not in (None, "")]
    if any(answers):
        return True
    return False if answers and all(a is False for a in answers) else None


def liveness(status: dict[str, Any]) -> str:
    """``alive`` | ``dead`` | ``unknown`` for a run whose status says running or queued.

    A SLURM job is asked with ``squeue`` when it is on the PATH; otherwise the processes the
    status names are checked by host, boot id, pid and start time (a reused pid is not taken
    for the owner); anything on another host without a scheduler we can ask is unknown."""
    job = job_id(status)
    if status.get("executor") == "slurm" or status.get("slurm_job_id") or (
            job and status.get("executor") not in LAUNCHERS and not status.get("pid")):
        if job and shutil.which("squeue"):
            out = subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True, text=True)
            return "alive" if out.returncode == 0 and out.stdout.strip() else "dead"
        return "unknown"
    alive = processes_alive(status)
    if alive is not None:
        return "alive" if alive else "dead"
    if status.get("state") == "pending" and not job and not status.get("launcher_host"):
        return "dead"  # written by `run` but never handed to an executor
    return "unknown"


@dataclass
class Action:
    """What ``run`` does with one planned run: new | skip | retry | active | changed | blocked |
    unreadable (its status.json is damaged: reported, left alone)."""

    run: Any  # a lexilab.spec.PlannedRun
    path: Path
    kind: str
    info: RunInfo | None = None
    note: str = ""


def plan_runs(planned: list, results: str | os.PathLike, retry_running: bool = False) -> list[Action]:
    """Compare planned runs with the results tree (one scan per experiment).

    Same config hash: ``done`` → skip; ``failed``/``cancelled`` or a running/queued run whose
    process or job is gone → retry (the runner resumes from checkpoints/last); a run that is
    still running or queued (or cannot be checked, unless ``retry_running``) → left alone.
    Different hash (the spec changed under an existing arm name): the old run is moved aside
    to ``seed-<n>.<oldhash>`` and a new one starts — unless it is still running (blocked)."""
    scans: dict[str, dict] = {}
    actions = []
    for run in planned:
        if run.experiment not in scans:
            scans[run.experiment] = scan_experiment(Path(results) / run.experiment)
        path = run.run_dir(results)
        info = scans[run.experiment].get((run.arm, run.seed))
        if info is None or (info.config_hash is None and not any(path.iterdir())):
            actions.append(Action(run, path, "new", info))
            continue
        live = liveness(info.status) if info.state in ("running", "pending") else "dead"
        busy = live == "alive" or (live == "unknown" and not retry_running)
        where = _where(info.status)
        if info.config_hash != run.config_hash:
            if busy and info.state in ("running", "pending"):
                actions.append(Action(run, path, "blocked", info, f"its config changed ({info.config_hash} → "
                                      f"{run.config_hash}) but the old run is still {info.state}{where}; cancel it first"))
            else:
                actions.append(Action(run, path, "changed", info, f"config changed ({info.config_hash} → "
                                      f"{run.config_hash}); the old {info.state} run moves to "
                                      f"{path.name}.{info.config_hash or 'unknown'}/"))
        elif info.state == "unknown":
            actions.append(Action(run, path, "unreadable", info, f"{info.status.get('error')}; left alone "
                                  f"(repair or delete it to run this run again)"))
        elif info.state == "done":
            actions.append(Action(run, path, "skip", info))
        elif info.state in ("running", "pending") and busy:
            hint = "" if live == "alive" else " (cannot check it from here; --retry-running resubmits it)"
            actions.append(Action(run, path, "active", info, f"{info.state}{where}{hint}"))
        else:
            actions.append(Action(run, path, "retry", info, f"was {info.state}"
                                  + (" (interrupted)" if info.state in ("running", "pending") else "")))
    return actions


def _where(status: dict[str, Any]) -> str:
    job = job_id(status)
    parts = ([f"job {job}"] if job else []) + ([f"on {status['host']}"] if status.get("host") else [])
    return f" ({', '.join(parts)})" if parts else ""
