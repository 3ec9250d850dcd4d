"""Dispatch runs to executors through submitit: inline, debug, local GPU slot pool, SLURM.

    from lexilab.dispatch import dispatch, refresh_status
    result = dispatch(run_dirs, "slurm", resources={"time": "02:00:00"}, max_parallel=None,
                      wait=False, profile="example-cluster", log_dir=results / ".submitit")
    result.job_ids            # also written to each run's status.json (job_id, executor)
    refresh_status(run_dirs)  # records jobs that died without writing their status
"""
from lexilab.dispatch.executors import EXECUTORS, DispatchResult, RunHandle, dispatch, register
from lexilab.dispatch.job import RunJob
from lexilab.dispatch.resources import RESOURCE_KEYS, load_profile, merge_resources
from lexilab.dispatch.status import refresh_status

__all__ = [
    "EXECUTORS",
    "DispatchResult",
    "RESOURCE_KEYS",
    "RunHandle",
    "RunJob",
    "dispatch",
    "load_profile",
    "merge_resources",
    "refresh_status",
    "register",
]
