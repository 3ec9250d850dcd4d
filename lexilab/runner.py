"""The job entry point: ``run_in_dir(run_dir)`` trains (or resumes, or skips) one run.

Every executor (inline, local GPUs, SLURM) calls this same function with a run directory that
holds config.yaml. It is idempotent: a finished run returns its metrics without training, an
interrupted one resumes from checkpoints/last, a failed one is retried from its checkpoint.
"""
from __future__ import annotations

import logging
import os
import time
import traceback
from pathlib import Path

import yaml

from lexilab.errors import LexilabError
from lexilab.io import read_json
from lexilab.runs import CONFIG_FILE, METRICS_FILE, mark_running, read_status, update_status

log = logging.getLogger("lexilab.runner")
# keys config.yaml carries beside the resolved run config (identity and provenance)
META_KEYS = ("config_hash", "meta")


def read_run_config(run_dir: str | os.PathLike) -> tuple[dict, dict]:
    """(resolved run config, meta) from ``run_dir/config.yaml``."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.exists():
        raise LexilabError(f"{path}: missing (not a lexilab run directory)")
    with open(path, encoding="utf-8") as handle:
        document = yaml.safe_load(handle) or {}
    meta = {key: document.pop(key) for key in META_KEYS if key in document}
    return document, meta


def run_identity(run_dir: Path, config: dict, meta: dict) -> dict:
    info = dict(meta.get("meta") or {})
    info.setdefault("experiment", run_dir.parents[1].name)
    info.setdefault("arm", run_dir.parent.name)
    info.setdefault("seed", config.get("seed"))
    info["config_hash"] = meta.get("config_hash")
    return info


def run_in_dir(run_dir: str | os.PathLike, progress: bool | None = None) -> dict | None:
    """Train the run in ``run_dir`` while holding its claim (lexilab.claim); None, without
    touching anything, when another process holds it (that process trains the run)."""
    from lexilab.claim import claim_run

    run_dir = Path(run_dir).resolve()
    if not (run_dir / CONFIG_FILE).is_file():  # before the claim creates a file there
        read_run_config(run_dir)  # raises, naming the file
    from lexilab.train.distributed import launch_env

    env = launch_env()
    if env is not None:  # one rank of a data-parallel run (torchrun, or SLURM tasks): rank 0 claims it
        from lexilab.train.ddp_run import run_rank

        return run_rank(run_dir, env, progress)
    with claim_run(run_dir) as claimed:
        if not claimed:
            log.info("%s: another process trains this run; left alone", run_dir)
            return None
        return run_claimed(run_dir, progress)


def run_claimed(run_dir: Path, progress: bool | None = None) -> dict:
    """The body of :func:`run_in_dir`, for a caller that holds the run's claim."""
    from lexilab import tracking
    from lexilab.envinfo import git_sha
    from lexilab.train.trainer import train_run

    if read_status(run_dir).get("state") == "done" and (run_dir / METRICS_FILE).exists():
        return read_json(run_dir / METRICS_FILE)
    config, meta = read_run_config(run_dir)
    identity = run_identity(run_dir, config, meta)
    if progress is None:
        progress = os.environ.get("LEXILAB_PROGRESS", "1") != "0"
    mark_running(run_dir)
    started = time.time()
    from lexilab.sweep.hook import RunPruned, trial_hook

    try:
        with trial_hook(meta) as on_evaluate:  # a sweep trial's run reports each evaluation to Optuna
            metrics = train_run(config, run_dir, progress=progress, on_evaluate=on_evaluate)
    except RunPruned as pruned:  # stopped by the sweep's pruner: kept, not a failure
        update_status(run_dir, state="pruned", finished=time.time(), seconds=time.time() - started,
                      pruned_step=pruned.step, error=None, interrupted=False)
        return {}
    except (KeyboardInterrupt, SystemExit) as interrupt:
        # preempted / requeued / stopped by the user: resumable, not a failure
        update_status(run_dir, state="pending", interrupted=True, error=f"interrupted: {type(interrupt).__name__}")
        raise
    except BaseException as err:
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        update_status(run_dir, state="failed", finished=time.time(), error=f"{type(err).__name__}: {message}",
                      traceback=traceback.format_exc())
        try:
            tracking.mirror_run(run_dir, config, "failed", None, {**identity, "git_sha": git_sha()})
        except Exception:  # the mirror never hides the real error
            pass
        raise
    mlflow_run = None
    try:
        mlflow_run = tracking.mirror_run(run_dir, config, "done", metrics, {**identity, "git_sha": git_sha()})
    except Exception as err:  # tracking is a mirror: the run's files are already complete
        update_status(run_dir, tracking_error=f"{type(err).__name__}: {err}")
    update_status(run_dir, state="done", finished=time.time(), seconds=time.time() - started,
                  mlflow_run_id=mlflow_run, interrupted=False)
    return metrics


def main(argv: list[str] | None = None) -> int:
    """``python -m lexilab.runner RUN_DIR``: what torchrun and SLURM tasks start (one rank each)."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m lexilab.runner", description="Train (or resume) one run directory.")
    parser.add_argument("run_dir", type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        run_in_dir(args.run_dir)
    except LexilabError as err:
        print(f"lexilab.runner: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
