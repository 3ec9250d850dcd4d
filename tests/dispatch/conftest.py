"""Fixtures for the dispatch tests: tiny real run directories and a real single-node SLURM.

The SLURM fixture starts Debian's slurmctld, slurmd, munge, slurmdbd and MariaDB in a temporary
folder once per session (tests marked ``slurm`` are skipped when the packages or root are
missing; .ci/install-slurm.sh installs them). MaxArraySize is kept low (3) so that submissions
of more runs are split into several arrays against the real daemons.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from lexilab.config import check_config
from lexilab.runs import config_hash, write_run

MAX_ARRAY_SIZE = 3
TINY_BACKBONE = {"d_model": 16, "d_kv": 8, "d_ff": 32, "num_layers": 1, "num_heads": 2,
                 "vocab_size": 32128, "feed_forward_proj": "gated-gelu"}


def tiny_base(data_root: Path, max_steps: int = 8, checkpoint_every: int = 4) -> dict:
    """A quickstart-shaped run config, small enough for a job to train in a few seconds."""
    n = {"train": 64, "val": 16, "calibration": 16, "test": 16}
    return {
        "data_root": str(data_root),
        "backbone": {"name": dict(TINY_BACKBONE), "init": "random", "tokenizer": "data:flan_t5_tokenizer"},
        "tasks": {"colour": {"kind": "multiclass", "data": {"name": "synthetic", "task": "shared_a", "n": n},
                             "pooling": "mean", "max_length": 24}},
        "sampler": {"kind": "round_robin"},
        "optim": {"lr": 3.0e-3},
        "train": {"epochs": 100, "max_steps": max_steps, "batch_size": 8, "eval_batch_size": 16,
                  "device": "cpu", "checkpoint_every": checkpoint_every,
                  "early_stopping": {"patience": 1000}},
        "tracking": {"mlflow": False},
    }


class RunFactory:
    """Writes run directories the way `python -m lexilab run` does (validated, resolved config)."""

    def __init__(self, root: Path, data_root: Path) -> None:
        self.root = root
        self.data_root = data_root

    def base(self, **kwargs) -> dict:
        return tiny_base(self.data_root, **kwargs)

    def write(self, arm: str, seed: int = 0, config: dict | None = None, experiment: str = "exp",
              check: bool = True) -> Path:
        raw = dict(config or self.base())
        raw["seed"] = seed
        if check:
            resolved, problems = check_config(raw, self.root)
            assert not problems, [p.line() if hasattr(p, "line") else str(p) for p in problems]
        else:
            resolved = raw
        run_dir = self.root / "results" / experiment / arm / f"seed-{seed}"
        write_run(run_dir, resolved, {"experiment": experiment, "arm": arm, "seed": seed}, config_hash(resolved))
        return run_dir

    def from_spec(self, spec: dict, seeds: int | None = None) -> list[Path]:
        from lexilab.spec import load_spec

        path = self.root / f"{spec['name']}.yaml"
        path.write_text(yaml.safe_dump(spec, sort_keys=False))
        loaded = load_spec(path)
        dirs = []
        for run in loaded.runs(seeds=seeds):
            run_dir = run.run_dir(self.root / "results")
            write_run(run_dir, run.config, {"experiment": run.experiment, "arm": run.arm, "seed": run.seed},
                      run.config_hash)
            dirs.append(run_dir)
        return dirs

    def broken(self, arm: str = "broken", seed: int = 0) -> Path:
        """A valid-looking run that fails inside the runner (its tokenizer folder does not exist)."""
        config, problems = check_config({**self.base(), "seed": seed}, self.root)
        assert not problems
        config["backbone"]["tokenizer"] = str(self.root / "no-such-tokenizer")
        return self.write(arm, seed, config, check=False)


@pytest.fixture
def runs(tmp_path: Path, shared_data: Path, monkeypatch) -> RunFactory:
    if not (shared_data / "flan_t5_tokenizer").is_dir():
        pytest.skip("the FLAN-T5 tokenizer is not in the shared data folder")
    # jobs started by the test (they inherit the environment) share 2 cores: one thread each
    # avoids OpenMP oversubscription, which slows tiny runs several-fold
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return RunFactory(tmp_path, shared_data)


def _wait_for(predicate, timeout: float, what: str, poll: float = 0.1):
    """Poll ``predicate`` until it returns something truthy; fail with ``what`` after ``timeout``."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture
def wait_for():
    """``wait_for(predicate, timeout, what, poll=0.1)``: poll until truthy, else fail naming ``what``."""
    return _wait_for


# ------------------------------------------------------------------------------ real SLURM
@pytest.fixture(scope="session")
def slurm_cluster():
    from lexilab.dispatch.localslurm import LocalSlurm, unavailable_reason

    reason = unavailable_reason()
    if reason:
        if os.environ.get("CI"):  # CI installs the packages (.ci/install-system.sh): never skip there
            pytest.fail(f"no local SLURM under CI: {reason}")
        pytest.skip(f"no local SLURM: {reason}")
    # short path: munge and MariaDB sockets live under it (unix socket paths are limited)
    root = Path(tempfile.mkdtemp(prefix="lexilab-slurm-", dir="/tmp"))
    root.chmod(0o755)  # munged and mariadbd run as their own users
    cluster = LocalSlurm(root / "cluster", cpus=8, gpus=0, max_array_size=MAX_ARRAY_SIZE)
    try:
        cluster.start()
    except RuntimeError as error:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"local SLURM did not start: {error}")
    yield cluster
    cluster.stop()
    shutil.rmtree(root, ignore_errors=True)


def _settle(cluster) -> None:
    """Wait until the queue is empty: a test's jobs must not run into the next test."""
    import subprocess

    def empty() -> bool:
        out = subprocess.run(["squeue", "-h", "-o", "%i"], env=cluster.env(), capture_output=True, text=True)
        return out.returncode == 0 and not out.stdout.strip()
    if not _wait_quietly(empty, 60):
        subprocess.run(["scancel", "--full", "--partition", "debug"], env=cluster.env(), capture_output=True)
        _wait_quietly(empty, 30)


def _wait_quietly(predicate, timeout: float) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


@pytest.fixture
def slurm(slurm_cluster, monkeypatch):
    """The session's cluster without GPUs; clients in this test find it through SLURM_CONF."""
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.conf))
    slurm_cluster.reconfigure(gpus=0)
    yield slurm_cluster
    _settle(slurm_cluster)


@pytest.fixture
def slurm_gpus(slurm_cluster, monkeypatch):
    """The session's cluster with two fake GPUs (character devices listed in gres.conf)."""
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.conf))
    slurm_cluster.reconfigure(gpus=2)
    yield slurm_cluster
    _settle(slurm_cluster)
    slurm_cluster.reconfigure(gpus=0)
