"""One rank of a data-parallel run: ``torchrun --nproc-per-node N -m lexilab.runner RUN_DIR``,
or N SLURM tasks each running ``python -m lexilab.runner RUN_DIR``.

Every rank joins the process group first; rank 0 then takes the run's claim and the status
file exactly as a one-process run does (``lexilab.runner.run_claimed``) and tells the others
whether to train (not when the run is done or another process holds it). The other ranks
train without touching the run directory. A rank's failure reaches rank 0 through the
rendezvous store, so status.json names that rank's error; a rank that dies without a word
(SIGKILL) breaks rank 0's next collective, or torchrun's agent stops rank 0 (SIGTERM), and the
run is marked failed either way — a re-run resumes from the last checkpoint.
"""
from __future__ import annotations

import logging
import signal
from pathlib import Path

from lexilab.errors import LexilabError
from lexilab.train import distributed

log = logging.getLogger("lexilab.runner")


def _on_term(signum, frame) -> None:
    if distributed.current().failing:  # already failing (a broken collective): let it record that
        return
    raise distributed.Terminated(f"stopped by signal {signum} (the launcher ends the run: a rank failed)")


def run_rank(run_dir: Path, env: distributed.LaunchEnv, progress: bool | None = None) -> dict | None:
    from lexilab.claim import claim_run
    from lexilab.runner import read_run_config, run_claimed
    from lexilab.runs import CONFIG_FILE, METRICS_FILE, read_status

    config, _meta = read_run_config(run_dir)
    cfg = distributed.distributed_config(config)
    if not cfg["enabled"]:
        raise LexilabError(f"{run_dir / CONFIG_FILE}: train.distributed.enabled is false, but this process is "
                           f"rank {env.rank} of {env.world_size} ({env.source}); enable it or start one process")
    group = distributed.setup(env, cfg["backend"], cfg["timeout_s"], (config.get("train") or {}).get("device"))
    previous = signal.signal(signal.SIGTERM, _on_term)
    try:
        if group.is_main:
            with claim_run(run_dir) as claimed:
                done = read_status(run_dir).get("state") == "done" and (run_dir / METRICS_FILE).exists()
                group.broadcast(bool(claimed) and not done)
                if not claimed:
                    log.info("%s: another process trains this run; left alone", run_dir)
                    return None
                return run_claimed(run_dir, progress)
        if not group.broadcast(None):
            return None
        from lexilab.sweep.hook import RunPruned
        from lexilab.train.trainer import train_run

        try:
            return train_run(config, run_dir, progress=False)
        except RunPruned:  # rank 0 recorded it (a sweep's pruner stopped the run): not a failure
            return {}
    finally:
        signal.signal(signal.SIGTERM, previous)
        distributed.teardown()


def distributed_runs(run_dirs) -> bool:
    """Whether the runs enable ``train.distributed`` (the SLURM executor then starts one task
    per GPU); a submission mixing both kinds is refused in one line."""
    from lexilab.runner import read_run_config

    flags = {Path(r): distributed.distributed_config(read_run_config(r)[0])["enabled"] for r in run_dirs}
    if len(set(flags.values())) > 1:
        some = next(r for r, on in flags.items() if on)
        other = next(r for r, on in flags.items() if not on)
        raise LexilabError(f"{some}: train.distributed.enabled differs from {other}: submit distributed and "
                           "one-process runs separately (they need different task counts)")
    return any(flags.values())
