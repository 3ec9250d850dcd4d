"""Executors: how a list of run directories gets trained (inline, debug, local GPU pool, SLURM).

Each executor is registered in EXECUTORS and called by `dispatch`; every one of them runs the same
job (`lexilab.dispatch.job.RunJob` -> `lexilab.runner.run_in_dir`), so the only difference
between runs is their config.
"""
from __future__ import annotations

import difflib
import logging
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from lexilab.dispatch import slurm
from lexilab.dispatch.job import RunJob
from lexilab.dispatch.resources import merge_resources, slurm_parameters
from lexilab.dispatch.status import FINISHED_STATES, refresh_status
from lexilab.errors import LexilabError
from lexilab.claim import identity, wait_released
from lexilab.runs import CONFIG_FILE, queue_run, read_status, update_status

log = logging.getLogger("lexilab.dispatch")
# status.json fields the launcher sets (restored if a submission is refused)
QUEUE_FIELDS = ("state", "error", "traceback", "executor", "job_id", "submitit_folder", "submitted")


@dataclass
class RunHandle:
    """One submitted run: its directory and the scheduler's job id (None where there is none yet)."""

    run_dir: Path
    executor: str
    job_id: str | None
    job: Any = field(default=None, repr=False, compare=False)  # the submitit Job, in this process


@dataclass
class DispatchResult:
    executor: str
    handles: list[RunHandle]
    folder: Path | None = None  # submitit folder of this submission (logs, pickles)
    launcher_pid: int | None = None  # local executor without --wait: the detached pool

    @property
    def run_dirs(self) -> list[Path]:
        return [h.run_dir for h in self.handles]

    @property
    def job_ids(self) -> list[str | None]:
        return [h.job_id for h in self.handles]

    def states(self) -> dict[Path, str]:
        return {run_dir: s.get("state", "pending") for run_dir, s in refresh_status(self.run_dirs).items()}

    def wait(self, timeout: float | None = None, poll_s: float = 1.0) -> dict[Path, str]:
        """Block until every run is done, failed or cancelled; returns their states."""
        deadline = None if timeout is None else time.time() + timeout
        while True:
            states = self.states()
            if all(state in FINISHED_STATES for state in states.values()):
                return states
            if deadline is not None and time.time() > deadline:
                waiting = sorted(str(r) for r, s in states.items() if s not in FINISHED_STATES)
                raise TimeoutError(f"runs still unfinished after {timeout} s: {', '.join(waiting)}")
            time.sleep(poll_s)


Executor = Callable[..., DispatchResult]
EXECUTORS: dict[str, Executor] = {}


def register(name: str) -> Callable[[Executor], Executor]:
    def decorate(fn: Executor) -> Executor:
        EXECUTORS[name] = fn
        return fn
    return decorate


def _mark_queued(run_dirs: Sequence[Path], executor: str, folder: Path | None,
                 launcher: dict | None = None) -> dict[Path, dict]:
    """Set every run pending before anything starts (no race with the job); returns the old
    fields of the runs queued. A run that is done, or that a live process on this host trains
    (another `run` command got there first), is left out. ``launcher``: the process that will
    start the runs (inline/debug: this one), recorded so that a dead launcher is noticed."""
    previous = {}
    for run_dir in run_dirs:
        old = read_status(run_dir)
        fields = {key: old.get(key) for key in QUEUE_FIELDS}
        if queue_run(run_dir, error=None, traceback=None, executor=executor, job_id=None,
                     submitit_folder=str(folder) if folder else None, submitted=time.time(),
                     job_host=None, job_pid=None, job_pid_start=None, job_boot_id=None,
                     **(launcher or _NO_LAUNCHER)):
            previous[run_dir] = fields
        else:
            log.warning("%s: left alone: it is done or another process trains it", run_dir)
    return previous


# a submission without a launcher process of ours (slurm; local fills it in after the start)
_NO_LAUNCHER = {"launcher_host": None, "launcher_pid": None, "launcher_pid_start": None, "launcher_boot_id": None}


def _wait_for_others(run_dirs: Sequence[Path]) -> None:
    """Runs another process trains: wait until it lets go of them (inline returns when all ended)."""
    for run_dir in run_dirs:
        if read_status(run_dir).get("state") not in FINISHED_STATES:
            log.warning("%s: another process trains this run; waiting for it to end", run_dir)
            wait_released(run_dir)


def _restore(previous: dict[Path, dict]) -> None:
    for run_dir, fields in previous.items():
        update_status(run_dir, **fields)


@register("inline")
def run_inline(run_dirs: Sequence[Path], *, resources: dict, max_parallel: int | None, wait: bool,
               folder: Path) -> DispatchResult:
    """One run after another in this process; a failure is recorded and the next run starts.
    A run another process trains is left to it, and waited for at the end."""
    queued = _mark_queued(run_dirs, "inline", None, identity(prefix="launcher_"))
    handles, elsewhere = [], [r for r in run_dirs if r not in queued]
    for run_dir in queued:
        try:
            if RunJob(run_dir, progress=None, cancel_on_interrupt=False)() is None:
                elsewhere.append(run_dir)
        except Exception as err:  # recorded in status.json by the runner / RunJob
            log.warning("%s: failed: %s", run_dir, str(err).splitlines()[0] if str(err) else type(err).__name__)
        handles.append(RunHandle(run_dir, "inline", None))
    _wait_for_others(elsewhere)
    return DispatchResult("inline", handles)


@register("debug")
def run_debug(run_dirs: Sequence[Path], *, resources: dict, max_parallel: int | None, wait: bool,
              folder: Path) -> DispatchResult:
    """submitit's debug executor: runs in this process, one after another."""
    import submitit

    queued = _mark_queued(run_dirs, "debug", folder, identity(prefix="launcher_"))
    executor = submitit.AutoExecutor(folder=folder, cluster="debug")
    handles = []
    for run_dir in queued:
        job = executor.submit(RunJob(run_dir, progress=None, cancel_on_interrupt=False))
        update_status(run_dir, job_id=job.job_id)
        # exception() runs the job and returns its error; result() would open pdb on failure
        error = job.exception()
        if error is not None:
            log.warning("%s: failed: %s", run_dir, str(error).splitlines()[0] if str(error) else type(error).__name__)
        handles.append(RunHandle(run_dir, "debug", job.job_id, job))
    _wait_for_others(run_dirs)
    return DispatchResult("debug", handles, folder)


@register("local")
def run_local(run_dirs: Sequence[Path], *, resources: dict, max_parallel: int | None, wait: bool,
              folder: Path) -> DispatchResult:
    """Slot pool: one run per visible GPU (or max_parallel on CPU); the rest queue for a free slot."""
    # imported here: `python -m lexilab.dispatch.pool` (the launcher) must not find it loaded
    from lexilab.dispatch import pool

    from lexilab.train.ddp_run import distributed_runs

    slots = pool.make_slots(pool.visible_gpus(resources.get("visible_gpus")), max_parallel)
    # a train.distributed run takes several slots: one process (rank) per GPU, or per CPU slot
    width = int(resources.get("tasks_per_node") or resources.get("gpus_per_node") or 1) \
        if distributed_runs(run_dirs) else 1
    if width > len(slots):  # refused before any run is queued
        raise LexilabError(f"resources: tasks_per_node: a train.distributed run needs {width} slots; the pool has "
                           f"{len(slots)} (one per visible GPU; on CPU, --max-parallel)")
    queued = list(_mark_queued(run_dirs, "local", folder, identity(prefix="launcher_") if wait else None))
    pool.write_plan(folder, queued, slots, resources.get("time", pool.DEFAULT_TIMEOUT_MIN),
                    resources.get("setup", ()), width=width)
    if not queued:
        launcher = None
    elif wait:
        pool.run_pool(folder)
        launcher = None
    else:
        launcher = pool.start_detached(folder)
        record = identity(launcher, "launcher_")
        for run_dir in queued:
            update_status(run_dir, **record)
    handles = [RunHandle(r, "local", read_status(r).get("job_id")) for r in queued]
    return DispatchResult("local", handles, folder, launcher)


@register("slurm")
def run_slurm(run_dirs: Sequence[Path], *, resources: dict, max_parallel: int | None, wait: bool,
              folder: Path) -> DispatchResult:
    """Job arrays (chunked below MaxArraySize) through submitit; returns once submitted unless wait."""
    resources = dict(resources)
    resources.setdefault("job_name", f"lexilab-{run_dirs[0].parents[1].name}")
    ctor, params = slurm_parameters(resources)
    from lexilab.train.ddp_run import distributed_runs

    if distributed_runs(run_dirs):  # train.distributed: one task (one rank) per GPU of each node
        params.setdefault("tasks_per_node", max(1, int(params.get("gpus_per_node") or 1)))
    if max_parallel is not None:
        params["slurm_array_parallelism"] = max_parallel
    previous = _mark_queued(run_dirs, "slurm", folder)
    run_dirs = list(previous)
    if not run_dirs:
        return DispatchResult("slurm", [], folder)
    try:
        jobs = slurm.submit(run_dirs, folder, ctor, params, make_job=RunJob)
    except LexilabError as error:
        submitted = getattr(error, "submitted", [])
        _restore({r: f for r, f in list(previous.items())[len(submitted):]})
        for run_dir, job in zip(run_dirs, submitted):
            update_status(run_dir, job_id=job.job_id)
        raise
    handles = []
    for run_dir, job in zip(run_dirs, jobs):
        update_status(run_dir, job_id=job.job_id)
        handles.append(RunHandle(run_dir, "slurm", job.job_id, job))
    result = DispatchResult("slurm", handles, folder)
    if wait:
        result.wait()
    return result


def dispatch(run_dirs: Sequence[str | os.PathLike], executor: str, *, resources: dict | None = None,
             max_parallel: int | None = None, wait: bool = False, profile: str | None = None,
             log_dir: str | os.PathLike | None = None) -> DispatchResult:
    """Train ``run_dirs`` (each holding config.yaml) with ``executor``.

    resources: overrides of the cluster profile (see RESOURCE_KEYS); profile: a name in
    slurm/profiles/ or a YAML path; max_parallel: concurrent runs (local: CPU slots or a cap on
    GPUs; slurm: array parallelism); wait: block until every run has ended (inline and debug
    always do); log_dir: where a fresh submitit folder is made for this submission (default:
    results/<experiment>/.submitit). Job ids go into each run's status.json.
    """
    if executor not in EXECUTORS:
        close = difflib.get_close_matches(str(executor), list(EXECUTORS), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise LexilabError(f"--executor: {executor!r}: unknown executor{hint}; allowed: {', '.join(EXECUTORS)}")
    if max_parallel is not None and (isinstance(max_parallel, bool) or not isinstance(max_parallel, int)
                                     or max_parallel < 1):
        raise LexilabError(f"--max-parallel: found {max_parallel!r}; allowed: an integer >= 1")
    dirs = [Path(r).resolve() for r in run_dirs]
    if not dirs:
        return DispatchResult(executor, [])
    for run_dir in dirs:
        if not (run_dir / CONFIG_FILE).is_file():
            raise LexilabError(f"{run_dir / CONFIG_FILE}: missing (write the run directories before dispatching)")
    merged = merge_resources(profile, resources)
    base = Path(log_dir) if log_dir is not None else dirs[0].parents[1] / ".submitit"
    # a fresh folder per submission: job ids restart on a new cluster and would find stale results
    folder = (base / f"{executor}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return EXECUTORS[executor](dirs, resources=merged, max_parallel=max_parallel, wait=wait, folder=folder)
