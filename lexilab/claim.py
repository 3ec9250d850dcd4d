"""Who trains a run, and whether the process recorded for a run still exists.

A run is trained by the process that holds its claim: an exclusive ``flock`` on
``<run>/.claim.lock``, taken without waiting and held for the run's whole life. The kernel
releases it when the process ends, however it ends (SIGKILL included), so a second `run`
command, a requeued job or a stray local job that finds the claim taken leaves the run alone:
exactly one process trains a run, whichever executor started it.

Processes are recorded by host, boot id, pid and the process's start time (field 22 of
``/proc/<pid>/stat``, in clock ticks since boot), so a pid reused by another process after the
owner died is not taken for the owner.
"""
from __future__ import annotations

import errno
import fcntl
import logging
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

log = logging.getLogger("lexilab.claim")
CLAIM_FILE = ".claim.lock"
# flock on a filesystem without lock support (e.g. Lustre mounted without -o flock)
UNSUPPORTED = {errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL}


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the parenthesised command name (state first)."""
    try:
        with open(f"/proc/{int(pid)}/stat", encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except (OSError, ValueError):
        return None
    return text.rsplit(")", 1)[1].split()


def pid_alive(pid: int) -> bool:
    """True when ``pid`` runs and is not a zombie (``kill -0`` succeeds on zombies)."""
    fields = _stat(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def process_start(pid: int) -> int | None:
    """When ``pid`` started, in clock ticks since boot (``/proc/<pid>/stat`` field 22)."""
    fields = _stat(pid)
    return int(fields[19]) if fields is not None else None


def boot_id() -> str | None:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as handle:
            return handle.read().strip()
    except OSError:
        return None


def identity(pid: int | None = None, prefix: str = "") -> dict:
    """``{host, pid, pid_start, boot_id}`` of ``pid`` (default: this process), keys prefixed."""
    pid = os.getpid() if pid is None else int(pid)
    return {f"{prefix}host": socket.gethostname(), f"{prefix}pid": pid,
            f"{prefix}pid_start": process_start(pid), f"{prefix}boot_id": boot_id()}


def process_alive(record: dict, prefix: str = "") -> bool | None:
    """Is the process recorded under ``prefix`` (by :func:`identity`) still running?

    None when it cannot be told from here (another host, or no pid recorded). A record without
    a start time (written by an older lexilab) is checked by pid alone."""
    pid, host = record.get(f"{prefix}pid"), record.get(f"{prefix}host")
    if pid in (None, "") or host not in (None, socket.gethostname()):
        return None
    try:
        pid = int(pid)
    except (TypeError, ValueError):
        return None
    recorded_boot = record.get(f"{prefix}boot_id")
    if recorded_boot and boot_id() and recorded_boot != boot_id():
        return False  # the machine rebooted since
    if not pid_alive(pid):
        return False
    start = record.get(f"{prefix}pid_start")
    return start is None or process_start(pid) == int(start)


def _take(fd: int, patience_s: float) -> bool:
    # a waiter (wait_released) holds the lock for microseconds: retry briefly before concluding
    # that an owner holds it
    deadline = time.monotonic() + patience_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)


@contextmanager
def claim_run(run_dir: str | os.PathLike, patience_s: float = 0.5) -> Iterator[bool]:
    """Hold the run's claim for the ``with`` block: yields True when this process holds it,
    False when another process does (then the run must be left alone)."""
    path = Path(run_dir) / CLAIM_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            if not _take(fd, patience_s):
                yield False
                return
        except OSError as err:
            if err.errno not in UNSUPPORTED:
                raise
            log.warning("%s: this filesystem has no file locks; the run is not protected against a "
                        "second process training it", path)
        yield True
    finally:
        os.close(fd)  # releases the lock


def wait_released(run_dir: str | os.PathLike, poll_s: float = 0.5, timeout: float | None = None) -> bool:
    """Wait until no process holds the run's claim; False after ``timeout`` seconds."""
    deadline = None if timeout is None else time.monotonic() + timeout
    path = Path(run_dir) / CLAIM_FILE
    while True:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return True
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            pass
        except OSError as err:
            if err.errno in UNSUPPORTED:
                return True
            raise
        finally:
            os.close(fd)
        if deadline is not None and time.monotonic() > deadline:
            return False
        time.sleep(poll_s)
