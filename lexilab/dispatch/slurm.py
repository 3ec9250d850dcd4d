"""SLURM through submitit: job arrays chunked below MaxArraySize, and job states from sacct."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, Iterator, Sequence

from lexilab.errors import LexilabError

DEFAULT_MAX_ARRAY_SIZE = 1001  # SLURM's own default
# sacct states after which the job will not run again. PREEMPTED is left out on purpose: with
# PreemptMode=REQUEUE the job comes back, and calling it failed would let `run` resubmit a
# second job for the same run directory.
TERMINAL_STATES = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL",
                   "BOOT_FAIL", "DEADLINE", "REVOKED"}


def max_array_size(config_text: str | None = None) -> int:
    """The cluster's MaxArraySize (from ``scontrol show config``; 1001 when it cannot be read)."""
    if config_text is None:
        try:
            config_text = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True,
                                         timeout=60).stdout
        except (OSError, subprocess.SubprocessError):
            return DEFAULT_MAX_ARRAY_SIZE
    match = re.search(r"^\s*MaxArraySize\s*=\s*(\d+)", config_text, flags=re.MULTILINE)
    return int(match.group(1)) if match else DEFAULT_MAX_ARRAY_SIZE


def chunks(items: Sequence[Any], limit: int) -> Iterator[list[Any]]:
    """Consecutive slices of at most ``limit`` items: array indices 0..limit-1 stay below MaxArraySize."""
    if limit < 1:
        raise ValueError(f"array chunk size must be >= 1, got {limit}")
    for start in range(0, len(items), limit):
        yield list(items[start:start + limit])


def sbatch_error(error: BaseException, params: dict[str, Any]) -> LexilabError:
    """One line for a refused submission (the sbatch message, plus what it means where known)."""
    text = str(error)
    lines = [l.strip() for l in text.splitlines() if "error" in l.lower() and "sbatch" in l.lower()]
    detail = lines[-1] if lines else (text.strip().splitlines() or ["sbatch failed"])[-1].strip()
    gpus = params.get("gpus_per_node") or params.get("slurm_gres")
    lowered = detail.lower()
    # no GRES on the cluster: "Invalid generic resource"; GRES but not on these nodes:
    # "Requested node configuration is not available"
    if gpus and ("generic resource" in lowered or "gres" in lowered or "node configuration" in lowered):
        partition = params.get("slurm_partition")
        where = f"partition {partition!r}" if partition else "the default partition"
        return LexilabError(f"slurm: gpus_per_node={gpus}: no node in {where} has that many GPUs ({detail})")
    return LexilabError(f"slurm: sbatch refused the submission: {detail}")


def submit(run_dirs: Sequence[Path], folder: Path, ctor: dict[str, Any], params: dict[str, Any],
           make_job, array_limit: int | None = None) -> list[Any]:
    """Submit one job per run dir as arrays of at most MaxArraySize tasks; returns submitit jobs.

    ``make_job(run_dir)`` builds the callable. A refused submission raises LexilabError (runs
    of earlier chunks stay submitted; their jobs are in the error's ``submitted`` attribute).
    """
    import submitit
    from submitit.core.utils import FailedJobError

    if shutil.which("sbatch") is None:
        raise LexilabError("slurm: sbatch not found on PATH (is this a SLURM login node?)")
    executor = submitit.AutoExecutor(folder=folder, cluster="slurm", **ctor)
    executor.update_parameters(**params)
    limit = array_limit or max_array_size()
    jobs: list[Any] = []
    for chunk in chunks(list(run_dirs), limit):
        try:
            with executor.batch():
                delayed = [executor.submit(make_job(run_dir)) for run_dir in chunk]
        except (FailedJobError, subprocess.CalledProcessError) as error:
            problem = sbatch_error(error, params)
            problem.submitted = jobs  # type: ignore[attr-defined]
            raise problem from None
        jobs.extend(delayed)  # leaving the batch promoted them to real jobs
    return jobs


def parse_sacct(text: str) -> dict[str, str]:
    """``sacct -X -P -n -o JobID,State`` output -> {job id: STATE}; array ranges are expanded."""
    states: dict[str, str] = {}
    for line in text.splitlines():
        if "|" not in line:
            continue
        job_id, state = line.split("|")[:2]
        job_id = job_id.strip()
        state = state.strip().split(" ")[0].upper()  # "CANCELLED by 0" -> CANCELLED
        if not job_id or "." in job_id:
            continue
        match = re.fullmatch(r"(\d+)_\[([0-9,\-]+)(?:%\d+)?\]", job_id)
        if match:
            main, ranges = match.groups()
            for part in ranges.split(","):
                low, _, high = part.partition("-")
                for index in range(int(low), int(high or low) + 1):
                    states[f"{main}_{index}"] = state
        else:
            states[job_id] = state
    return states


def job_states(job_ids: Sequence[str], batch: int = 200) -> dict[str, str] | None:
    """Current SLURM state of each job id via sacct (None when sacct cannot answer)."""
    if not job_ids:
        return {}
    if shutil.which("sacct") is None:
        return None
    states: dict[str, str] = {}
    ids = sorted(set(job_ids))
    for start in range(0, len(ids), batch):
        part = ids[start:start + batch]
        try:
            result = subprocess.run(["sacct", "-X", "-P", "-n", "-o", "JobID,State", "-j", ",".join(part)],
                                    capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.SubprocessError):
            return None
        if result.returncode != 0:
            return None
        states.update(parse_sacct(result.stdout))
    return states
