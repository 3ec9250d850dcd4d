"""Runs the suite's expensive artefact commands one after another, in the background.

`python tests/prefetch.py PLAN.json`, started by tests/conftest.py when collection ends. A
pytest process trains on one core (OMP_NUM_THREADS=1) and leaves the CI machine's second core
idle for most of the suite, so the commands whose outputs several tests read (the README
quickstart, the report's tiny experiment, the GPU suite's CPU mode, ...) run here, beside the
tests, and the tests that read them run last. Each job's folder gets `stdout`, `stderr`, then
`returncode`, written last and atomically: its presence means the job has ended. pytest stops
the runner's process group when it ends early; a runner whose pytest was killed outright starts
no further job.

PLAN.json: a list of {"name", "argv", "cwd", "env", "timeout", "folder"}.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

TIMED_OUT = 124  # the returncode written for a job killed at its timeout, as timeout(1) does


def run_job(job: dict) -> int:
    folder = Path(job["folder"])
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "stdout", "w") as out, open(folder / "stderr", "w") as err:
        try:
            code = subprocess.run(job["argv"], cwd=job["cwd"], env=job["env"], stdout=out, stderr=err,
                                  stdin=subprocess.DEVNULL, timeout=job["timeout"]).returncode
        except subprocess.TimeoutExpired:
            err.write(f"\nprefetch: {job['name']} killed after its {job['timeout']} s timeout\n")
            code = TIMED_OUT
    tmp = folder / "returncode.tmp"
    tmp.write_text(str(code))
    os.replace(tmp, folder / "returncode")
    return code


def main(plan: str) -> int:
    parent = os.getppid()
    for job in json.loads(Path(plan).read_text()):
        if os.getppid() != parent:  # pytest was killed without its clean-up: nobody reads the rest
            return 1
        run_job(job)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
