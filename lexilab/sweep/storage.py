"""Where a study lives: Optuna's journal file (default), or an RDB (PostgreSQL with heartbeats).

- Default: ``JournalStorage(JournalFileBackend(results/<name>/sweep.journal,
  JournalFileOpenLock))``: an append-only log guarded by an open(O_EXCL) lock, safe for
  parallel local workers and SLURM jobs on a shared (NFSv3+) filesystem, no server needed.
- ``postgresql://...``: Optuna's RDB storage (SQLAlchemy + psycopg 3) with heartbeats: each
  running trial's job records one every ``heartbeat_interval`` seconds; the sweep driver fails
  a trial whose heartbeat is older than ``grace_period`` and Optuna's
  ``RetryHeartbeatStaleTrialCallback`` enqueues it again (the driver reuses its run directories, so
  the rerun resumes from the checkpoint).
- ``sqlite:///path``: works, but SQLite is not for parallel workers (Optuna's FAQ): a warning
  when W > 1.
"""
from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lexilab.errors import LexilabError

JOURNAL_FILE = "sweep.journal"
STORAGE_ENV = "LEXILAB_SWEEP_STORAGE"  # the full storage URL (password included) for trial jobs
DEFAULT_HEARTBEAT_S = 30
DEFAULT_GRACE_S = 120
RDB_SCHEMES = ("postgresql", "postgresql+psycopg", "sqlite", "mysql", "mysql+pymysql")
STORAGE_KEYS = ("url", "heartbeat_interval", "grace_period", "max_retry")


@dataclass(frozen=True)
class StorageSpec:
    url: str | None = None  # None: the journal file under the results root
    heartbeat_interval: int = DEFAULT_HEARTBEAT_S
    grace_period: int = DEFAULT_GRACE_S
    max_retry: int = 1

    def resolved(self, results: Path, name: str) -> "StorageSpec":
        """The same storage with the journal file's absolute path spelled out (what run
        processes on other hosts open)."""
        url = self.url
        if url is None:
            url = f"journal:{(Path(results) / name / JOURNAL_FILE).resolve()}"
        elif kind_of(url) == "journal":
            url = f"journal:{Path(journal_path(url)).resolve()}"
        return StorageSpec(url, self.heartbeat_interval, self.grace_period, self.max_retry)


def kind_of(url: str) -> str:
    """``journal``, ``sqlite``, ``postgresql`` or ``rdb`` (another SQLAlchemy URL)."""
    if url.startswith("journal:") or (("://" not in url) and url.endswith((".journal", ".log"))):
        return "journal"
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme == "sqlite":
        return "sqlite"
    if scheme.startswith("postgresql") or scheme == "postgres":
        return "postgresql"
    if scheme in RDB_SCHEMES or scheme.startswith("mysql"):
        return "rdb"
    return "unknown"


def journal_path(url: str) -> str:
    return url[len("journal:"):].removeprefix("//") if url.startswith("journal:") else url


def redact(url: str) -> str:
    """The URL without its password (for messages and tables)."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def sqlalchemy_url(url: str) -> str:
    """postgresql://... uses psycopg 3 (the driver the project installs)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def read_storage(value: Any, report, where: str = "search.storage") -> StorageSpec | None:
    if value is None:
        return StorageSpec()
    if isinstance(value, str):
        value = {"url": value}
    if not isinstance(value, dict):
        report.add(where, f"expected a URL (postgresql://..., sqlite:///..., journal:PATH) or "
                   f"{{url, heartbeat_interval, grace_period, max_retry}}, found {value!r}")
        return None
    for key, item in value.items():
        if key not in STORAGE_KEYS:
            report.add(f"{where}.{key}", f"unknown key; allowed: {', '.join(STORAGE_KEYS)}")
            return None
        if key != "url" and (isinstance(item, bool) or not isinstance(item, int) or item < (0 if key == "max_retry" else 1)):
            report.add(f"{where}.{key}", f"expected a whole number of {'retries' if key == 'max_retry' else 'seconds'}, "
                       f"found {item!r}")
            return None
    url = value.get("url")
    if url is not None:
        problem = url_problem(url)
        if problem:
            report.add(f"{where}.url" if len(value) > 1 else where, problem)
            return None
    spec = StorageSpec(url, value.get("heartbeat_interval", DEFAULT_HEARTBEAT_S),
                       value.get("grace_period", DEFAULT_GRACE_S), value.get("max_retry", 1))
    if spec.grace_period <= spec.heartbeat_interval:
        report.add(f"{where}.grace_period", f"must exceed heartbeat_interval ({spec.heartbeat_interval} s), "
                   f"found {spec.grace_period}")
        return None
    return spec


def url_problem(url: Any) -> str | None:
    if not isinstance(url, str) or not url:
        return f"expected a storage URL, found {url!r}"
    if kind_of(url) == "unknown":
        return (f"{redact(url)!r}: unknown storage; use postgresql://USER@HOST:PORT/DB, sqlite:///PATH or "
                "journal:PATH (the default journal file needs no storage key)")
    return None


def check_reachable(storage: StorageSpec, where: str, workers: int) -> None:
    """Fail fast, in one line, before anything is written: the server answers, the folder exists."""
    url = storage.url
    kind = kind_of(url)
    if kind == "postgresql":
        import psycopg

        conninfo = sqlalchemy_url(url).replace("postgresql+psycopg://", "postgresql://", 1)
        try:
            psycopg.connect(conninfo, connect_timeout=3).close()
        except Exception as err:  # psycopg.OperationalError, bad URL parts, ...
            detail = " ".join(str(err).split())[:200] or type(err).__name__
            raise LexilabError(f"{where}: cannot reach PostgreSQL at {redact(url)}: {detail}") from None
    elif kind in ("sqlite", "journal"):
        path = Path(journal_path(url) if kind == "journal" else url.split(":///", 1)[-1])
        parent = path.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not os.access(parent, os.W_OK):
            raise LexilabError(f"{where}: {path}: its folder cannot be written")
        if kind == "sqlite" and workers > 1:
            print(f"warning: {where}: SQLite is not meant for parallel workers (Optuna's FAQ: concurrent "
                  f"writes lock the database); with --workers {workers} use the default journal file or "
                  "PostgreSQL", file=sys.stderr)


def with_password(url: str) -> str:
    """A URL from config.yaml (password redacted) with the full one from $LEXILAB_SWEEP_STORAGE
    when that names the same server and database."""
    full = os.environ.get(STORAGE_ENV)
    return full if full and "***" in url and redact(full) == url else url


def open_storage(storage: StorageSpec):
    """The Optuna storage object (journal or RDB with heartbeats)."""
    import optuna
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock, JournalStorage

    url = storage.url
    if url is None:
        raise ValueError("resolve the default storage first (StorageSpec.resolved)")
    if kind_of(url) == "journal":
        path = journal_path(url)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(path, lock_obj=JournalFileOpenLock(path)))
    import warnings

    with warnings.catch_warnings():  # heartbeat options are marked experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return RDBStorage(sqlalchemy_url(url), engine_kwargs={"pool_pre_ping": True},
                          heartbeat_interval=storage.heartbeat_interval, grace_period=storage.grace_period,
                          heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=storage.max_retry))


def uses_heartbeat(storage) -> bool:
    from optuna.storages._heartbeat import is_heartbeat_enabled

    return is_heartbeat_enabled(storage)
