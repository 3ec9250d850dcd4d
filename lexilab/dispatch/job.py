"""The job every executor runs: `lexilab.runner.run_in_dir` made checkpointable for submitit.

Requeue semantics. The trainer saves its full state to checkpoints/last every
`train.checkpoint_every` steps and resumes from it exactly (model, optimizer, scheduler, RNGs,
sampler and data positions). So when SLURM announces preemption or the time limit (USR2, sent
`signal_delay_s` before the end), submitit calls `RunJob.checkpoint()`, which only counts the
requeue and hands back the same job for the same run directory; submitit requeues it and exits.
The requeued job calls `run_in_dir` again, which resumes from the latest checkpoint and replays
the steps after it deterministically, so the final metrics equal those of an uninterrupted run.
A trainer that opts in (lexilab.dispatch.preemption) saves at the next step boundary instead.
"""
from __future__ import annotations

import logging
import os
import time
import traceback
from pathlib import Path
from typing import Any

from submitit.helpers import Checkpointable, DelayedSubmission

from lexilab.claim import claim_run, identity
from lexilab.runs import read_status, update_status, update_status_if

log = logging.getLogger("lexilab.dispatch")
CHECKPOINT = Path("checkpoints") / "last" / "state.pt"  # the trainer's full state (train/state.py)


def record_failure(run_dir: str, err: BaseException) -> None:
    """Mark the run failed with ``err``'s traceback unless the runner already did."""
    if read_status(run_dir).get("state") == "failed":
        return
    message = str(err).splitlines()[0] if str(err) else type(err).__name__
    update_status(run_dir, state="failed", finished=time.time(), error=f"{type(err).__name__}: {message}",
                  traceback="".join(traceback.format_exception(err)))


class RunJob(Checkpointable):
    """Callable submitted to submitit: trains (or resumes) the run in ``run_dir``.

    ``progress`` is passed to the runner (None: its default, from LEXILAB_PROGRESS).
    ``cancel_on_interrupt``: a KeyboardInterrupt (how submitit's local executor cancels a job)
    marks the run cancelled. ``requeued``: this job is the resubmission that ``checkpoint()``
    handed to submitit; it counts the requeue when it starts, because submitit calls
    ``checkpoint()`` even when it then refuses to requeue (``max_requeues`` used up).
    """

    def __init__(self, run_dir: str | os.PathLike, progress: bool | None = False,
                 cancel_on_interrupt: bool = True, requeued: bool = False) -> None:
        self.run_dir = str(run_dir)
        self.progress = progress
        self.cancel_on_interrupt = cancel_on_interrupt
        self.requeued = requeued

    def __call__(self) -> dict[str, Any] | None:
        from lexilab.runner import run_claimed
        from lexilab.train.distributed import launch_env

        env = launch_env()
        if env is not None:  # one SLURM task (rank) of a train.distributed run: rank 0 claims it
            from lexilab.train.ddp_run import run_rank

            if env.rank == 0:
                update_status(self.run_dir, cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"),
                              **identity(prefix="job_"), world_size=env.world_size)
            return run_rank(Path(self.run_dir).resolve(), env, self.progress)

        # the claim first: a job that finds another process training its run leaves it alone
        # (a requeued attempt waits longer: the previous attempt's process may still be exiting)
        with claim_run(self.run_dir, patience_s=30.0 if getattr(self, "requeued", False) else 0.5) as claimed:
            if not claimed:
                log.warning("%s: another process trains this run; this job leaves it alone", self.run_dir)
                return None
            return self._train(run_claimed)

    def _train(self, run_claimed) -> dict[str, Any]:
        if getattr(self, "requeued", False):  # pickles of older versions lack the attribute
            update_status_if(self.run_dir, lambda status: {"requeues": int(status.get("requeues") or 0) + 1,
                                                           "requeued": time.time()})
        # which device the scheduler gave us, and whether this attempt can resume from a
        # checkpoint (a requeued job should): `status` and the tests read them
        update_status(self.run_dir, cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"),
                      **identity(prefix="job_"),
                      started_with_checkpoint=(Path(self.run_dir) / CHECKPOINT).exists())
        from submitit.core.job_environment import JobEnvironment

        from lexilab.dispatch import preemption

        deferrable = preemption.install(JobEnvironment._usr_sig())
        try:
            return run_claimed(Path(self.run_dir).resolve(), progress=self.progress)
        except KeyboardInterrupt:
            if self.cancel_on_interrupt:
                update_status(self.run_dir, state="cancelled", finished=time.time(),
                              error="cancelled: the job was interrupted")
            raise
        except Exception as err:
            record_failure(self.run_dir, err)
            raise
        finally:
            if deferrable:
                preemption.uninstall()

    def checkpoint(self, *args: Any, **kwargs: Any) -> DelayedSubmission:
        """Called by submitit on preemption/time limit: requeue the same run (it resumes exactly).
        Nothing is counted here: submitit may still decide not to requeue."""
        return DelayedSubmission(RunJob(self.run_dir, self.progress, self.cancel_on_interrupt, requeued=True))

    def __repr__(self) -> str:
        return f"RunJob({self.run_dir!r})"
