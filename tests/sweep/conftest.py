"""Fixtures for the sweep tests: tiny sweep specs on synthetic tasks, the CLI, a real PostgreSQL."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import yaml


TINY_BACKBONE = {"d_model": 16, "d_kv": 8, "d_ff": 32, "num_layers": 1, "num_heads": 2, "vocab_size": 32128,
                 "feed_forward_proj": "gated-gelu"}
PG_BIN = Path("/usr/lib/postgresql/15/bin")


def synthetic(task: str, train: int = 64, val: int = 32) -> dict:
    return {"name": "synthetic", "task": task, "n": {"train": train, "val": val, "calibration": 16, "test": 16}}


def tiny_base(data_root: Path, max_steps: int = 4) -> dict:
    """Two synthetic classification tasks on a one-layer random T5: a run trains in ~1 s."""
    return {
        "data_root": str(data_root),
        "backbone": {"name": dict(TINY_BACKBONE), "init": "random", "tokenizer": "data:flan_t5_tokenizer"},
        "tasks": {"colour": {"kind": "multiclass", "data": synthetic("shared_a"), "max_length": 24},
                  "animal": {"kind": "multiclass", "data": synthetic("disjoint_b"), "max_length": 24}},
        "sampler": {"kind": "round_robin"},
        "optim": {"lr": 1.0e-2},
        "train": {"epochs": 50, "max_steps": max_steps, "batch_size": 16, "eval_batch_size": 32, "device": "cpu",
                  "checkpoint_every": 2, "early_stopping": {"patience": 1000}},
        "tracking": {"mlflow": False},
    }


@pytest.fixture(scope="session")
def make_base(shared_data):
    """make_base(max_steps=4) -> a fresh tiny two-task run config (the base of a sweep spec)."""
    return lambda max_steps=4: tiny_base(shared_data, max_steps)


@pytest.fixture
def sweep_spec(tmp_path, shared_data):
    """sweep_spec(search=..., name=..., base=..., filename=...) -> Path of a written sweep spec."""

    def make(search: dict, name: str = "tiny_sweep", base: dict | None = None, filename: str = "sweep.yaml",
             **top) -> Path:
        document = {"name": name, "base": base or tiny_base(shared_data), "search": search, **top}
        path = tmp_path / filename
        path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
        return path

    return make


@pytest.fixture
def results(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "results"
    monkeypatch.setenv("LEXILAB_RESULTS", str(root))
    monkeypatch.setenv("LEXILAB_PROGRESS", "0")
    return root


@pytest.fixture
def cli(cli_of):
    """cli(*argv) -> (exit code, stdout, stderr) through lexilab.cli.main with run and sweep only."""
    return cli_of("lexilab.commands.run", "lexilab.commands.sweep")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_postgres(args: list[str]) -> list[str]:
    return args if os.geteuid() != 0 else ["runuser", "-u", "postgres", "--", *args]


@pytest.fixture(scope="session")
def postgres_url():
    """A real PostgreSQL 15 (Debian's binaries) in a temp folder on a free port, stopped by its PID.

    Skipped only where the binaries are missing and CI is not set (.ci/install-system.sh
    installs them in CI)."""
    if not (PG_BIN / "initdb").exists():
        if os.environ.get("CI"):
            pytest.fail(f"{PG_BIN}/initdb missing in CI (.ci/install-system.sh installs postgresql)")
        pytest.skip(f"PostgreSQL binaries not found in {PG_BIN}")
    folder = Path(tempfile.mkdtemp(prefix="lexilab-pg-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
    port = _free_port()
    data = folder / "data"
    subprocess.run(_as_postgres([str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "lexilab", "--no-sync"]),
                   check=True, capture_output=True)
    subprocess.run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(folder / "log"), "-w", "-o",
                                 f"-k {folder} -c listen_addresses=127.0.0.1 -p {port} -c max_connections=200"
                                 # a throwaway server: no flushes to disk (CREATE DATABASE, commits)
                                 " -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
                                 "start"]), check=True, capture_output=True)
    pid = int((data / "postmaster.pid").read_text().split()[0])
    try:
        yield f"postgresql://lexilab@127.0.0.1:{port}/postgres"
    finally:
        os.kill(pid, signal.SIGINT)  # fast shutdown, by its own PID (never by name)
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            stat = Path(f"/proc/{pid}/stat")
            if stat.exists() and stat.read_text().split()[2] == "Z":
                break
            time.sleep(0.1)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def fresh_db(postgres_url):
    """A fresh database on the session's server per test (studies of different tests never meet)."""
    import psycopg

    name = f"t{os.getpid()}_{int(time.time() * 1000) % 10**9}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return postgres_url.rsplit("/", 1)[0] + f"/{name}"
