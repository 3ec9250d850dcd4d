"""The requeue counter counts requeues that happened, against submitit's own requeue logic
(its local executor: the same SignalHandler, checkpoint() and max_num_timeout as on SLURM)."""
from __future__ import annotations

import os
import signal

import pytest

from lexilab.dispatch.job import RunJob
from lexilab.runs import read_status


@pytest.mark.slow
@pytest.mark.parametrize("max_requeues, requeued", [(0, False), (1, True)])
def test_requeues_counts_only_requeues_submitit_made(runs, wait_for, tmp_path, max_requeues, requeued):
    import submitit

    run_dir = runs.write("limited", config=runs.base(max_steps=40, checkpoint_every=5))
    executor = submitit.LocalExecutor(folder=tmp_path / "jobs", max_num_timeout=max_requeues)
    # a 10-minute limit: submitit takes every signal for the time limit (it counts against max_requeues)
    executor.update_parameters(timeout_min=10)
    job = executor.submit(RunJob(run_dir))
    wait_for((run_dir / "checkpoints" / "last" / "state.pt").exists, 240, "the first checkpoint", 0.05)
    # USR2 to the job's process, as SLURM sends it `signal_delay_s` before the time limit
    # (LocalJob._interrupt signals the controller, which USR2 kills)
    os.kill(read_status(run_dir)["job_pid"], signal.SIGUSR2)
    wait_for(lambda: job.done(), 240, "the job to end", 0.2)
    status = read_status(run_dir)
    if requeued:
        assert (status["state"], status["requeues"], status["attempts"]) == ("done", 1, 2)
    else:  # max_requeues used up: submitit calls checkpoint() and then refuses to requeue
        assert status["state"] == "failed" and "not requeued" in status["error"]
        assert (status.get("requeues", 0), status["attempts"]) == (0, 1)
