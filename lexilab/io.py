"""Atomic file writes and JSON-lines helpers: a crash never leaves half a file."""
from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

import yaml


def _umask() -> int:
    # /proc gives the umask without changing it (os.umask would, racing other threads)
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# atomic writes go through a temp file named ``.NAME.XXXXXXXX.tmp`` (mkstemp's 8 random
# characters) beside the target; a process killed mid-write leaves one behind
_TEMP_RE = re.compile(r"^\.(.+)\.[a-z0-9_]{8}\.tmp$")


def _fsync_path(path: str | os.PathLike, directory: bool = False) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0))
    except OSError:
        if directory:  # some filesystems cannot open a directory; the rename is still atomic
            return
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not directory:
            raise
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path beside ``path`` for a writer that wants a file name (safetensors, ...);
    when the block ends without error it is fsynced and renamed onto ``path``, otherwise removed.
    The file gets the usual mode (0666 less the umask), not mkstemp's private 0600: run
    directories are read by other users and jobs on shared cluster filesystems."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    mode = 0o666 & ~_umask()
    try:
        os.fchmod(fd, mode)
        os.close(fd)
        yield Path(tmp)
        os.chmod(tmp, mode)  # again: a writer may replace the file (safetensors writes it 0600)
        _fsync_path(tmp)
        os.replace(tmp, path)
        _fsync_path(path.parent, directory=True)  # the rename itself survives a power cut
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder, fsync, then rename."""
    with atomic_output(path) as tmp, open(tmp, "wb") as handle:
        handle.write(data)


def is_orphan_temp(name: str) -> bool:
    """Whether ``name`` is an atomic write's temp file (``.NAME.XXXXXXXX.tmp``)."""
    return _TEMP_RE.match(name) is not None


def remove_orphan_temps(directory: str | os.PathLike, min_age_s: float = 0.0) -> list[Path]:
    """Delete the temp files that killed atomic writes left under ``directory`` (recursively);
    ``min_age_s`` spares temps modified more recently, which another live process (a status
    update) may still be writing. Returns the removed paths."""
    removed: list[Path] = []
    cutoff = time.time() - min_age_s
    for folder, _, files in os.walk(directory):
        for name in files:
            if not is_orphan_temp(name):
                continue
            path = Path(folder) / name
            try:
                if min_age_s and path.stat().st_mtime > cutoff:
                    continue
                path.unlink()
            except FileNotFoundError:  # its writer finished or removed it meanwhile
                continue
            removed.append(path)
    return removed


# where a results tree must never go: the kernel's virtual filesystems (/dev/shm is storage)
SYSTEM_DIRS = ("/proc", "/sys", "/dev")
STORAGE_UNDER_SYSTEM_DIRS = ("/dev/shm",)


def check_output_dir(path: str | os.PathLike, what: str, writable: bool = True) -> Path:
    """Refuse, in one line and before anything is written, an output folder that is (or lies
    inside) something other than a directory, lies under /proc, /sys or /dev (but /dev/shm),
    or (``writable``) cannot be created or written. Creates nothing; returns the absolute path."""
    from lexilab.errors import LexilabError

    path = Path(path).expanduser()
    resolved = path.resolve()
    def under(folder: str) -> bool:
        return resolved == Path(folder) or Path(folder) in resolved.parents

    system = next((folder for folder in SYSTEM_DIRS if under(folder)), None)
    if system and not any(under(folder) for folder in STORAGE_UNDER_SYSTEM_DIRS):
        raise LexilabError(f"{path}: {what} is under {system} (a kernel filesystem, not storage)")
    probe = resolved
    while not probe.exists():  # the nearest existing ancestor decides whether it can be made
        probe = probe.parent
    if not probe.is_dir():
        raise LexilabError(f"{path}: {what} must be a directory; {probe} exists and is not one")
    if writable and not os.access(probe, os.W_OK | os.X_OK):
        raise LexilabError(f"{path}: {what} is not writable ({probe} does not allow this user to write)")
    return resolved


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> None:
    atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=True, default=_json_default) + "\n")


def atomic_write_yaml(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, yaml.safe_dump(obj, sort_keys=True, default_flow_style=False))


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def append_jsonl(path: str | os.PathLike, records: Iterable[dict]) -> None:
    """Append whole lines in one write. No fsync: these are per-step logs (history, gradient
    cosines); a crash can at most cut the last line, which ``read_jsonl`` skips, and resume
    rewrites the records after its checkpoint."""
    lines = "".join(json.dumps(r, sort_keys=True, default=_json_default) + "\n" for r in records)
    if not lines:
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(lines)


def write_jsonl(path: str | os.PathLike, records: Iterable[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, sort_keys=True, default=_json_default) + "\n" for r in records))


def read_jsonl(path: str | os.PathLike) -> Iterator[dict]:
    """Yield records; a truncated last line (a crash mid-append) is skipped, others must parse."""
    with open(path, encoding="utf-8") as handle:
        lines = handle.readlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines) and not line.endswith("\n"):
                return
            raise


def jsonable(obj: Any) -> Any:
    """Nested dicts with numpy integers (e.g. a numpy Generator's state) as plain JSON values."""
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if hasattr(obj, "item") and type(obj).__module__ == "numpy":
        return obj.item()
    return obj


def _json_default(obj: Any) -> Any:
    # numpy scalars/arrays and paths show up in metrics and configs
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
