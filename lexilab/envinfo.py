"""What a run ran on: package versions, git SHA, device, dataset sha256s (env.json).

The data files' sha256s are those of the run's first start: a resume, a retry or a re-run
after a data file changed is refused naming the file, unless the change is accepted
(``run --accept-data-change``), which env.json then records under ``data_changes``."""
from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from lexilab.errors import LexilabError
from lexilab.io import atomic_write_json, read_json

if TYPE_CHECKING:  # torch is imported where a device is described: `run` plans without it
    import torch

PACKAGES = ("lexilab", "torch", "transformers", "tokenizers", "numpy", "scipy", "scikit-learn",
            "rouge-score", "torchjd", "submitit", "mlflow", "pandas")


def git_sha() -> str | None:
    """The commit of the lexilab checkout in use (None for an installed copy outside git)."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, timeout=5).stdout.strip()
    return out.stdout.strip() + ("-dirty" if dirty else "")


def device_info(device: torch.device) -> dict:
    import torch

    info = {"device": str(device), "torch_threads": torch.get_num_threads(), "cpu": platform.processor()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    return info


def environment(device: torch.device, datasets: dict) -> dict:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": versions,
        "git_sha": git_sha(),
        **device_info(device),
        "datasets": {task: {"name": d.name, "files": d.files, "report": d.report,
                            "rows": {s: len(r) for s, r in d.splits.items()}}
                     for task, d in datasets.items()},
    }


# --------------------------------------------------------------------------- data integrity
ENV_FILE = "env.json"
ACCEPT_FLAG = "--accept-data-change"


class DataChanged(LexilabError):
    """A data file differs from the one the run started on (and the change was not accepted)."""


@dataclass(frozen=True)
class DataChange:
    file: str  # where the file is now (the recorded path, moved under the current data root)
    recorded: str  # sha256 the run started on (or last accepted)
    found: str | None  # sha256 now; None: the file is gone

    def line(self) -> str:
        now = f"{self.found[:12]}…" if self.found else "missing"
        return f"{self.file}: changed since the run started (sha256 {self.recorded[:12]}… → {now})"


def _current_path(recorded: str, recorded_root: str | None, data_root: str | None) -> Path:
    """A recorded data file, followed to the current data root when the run started under
    another one (moving the data keeps a run's identity; see ``config.identity_hash``)."""
    path = Path(recorded)
    if not path.is_absolute():  # named datasets record paths relative to the data root
        return Path(data_root or recorded_root or ".") / path
    if recorded_root and data_root and path.is_relative_to(recorded_root):
        return Path(data_root) / path.relative_to(recorded_root)
    return path


def expected_hashes(env: dict) -> dict[str, str | None]:
    """Recorded file → the sha256 it must have: from the first start, then each accepted change."""
    expected = {file: sha for block in (env.get("datasets") or {}).values()
                for file, sha in (block.get("files") or {}).items()}
    for change in env.get("data_changes") or []:
        expected[change["recorded_file"]] = change["found"]
    return expected


def data_changes(env: dict, data_root: str | None) -> list[DataChange]:
    """Recorded data files whose bytes differ now (sha256 of the file on disk)."""
    from lexilab.data.manifests import sha256_file

    changes = []
    for recorded, sha in expected_hashes(env).items():
        path = _current_path(recorded, env.get("data_root"), data_root)
        found = sha256_file(path) if path.is_file() else None
        if found != sha:
            changes.append(DataChange(str(path), sha or "missing", found))
    return changes


def read_env(run_dir: str | os.PathLike) -> dict | None:
    """``env.json`` of a run (None before its first start); unreadable is a one-line error."""
    path = Path(run_dir) / ENV_FILE
    if not path.exists():
        return None
    try:
        env = read_json(path)
    except (ValueError, UnicodeDecodeError) as err:
        raise LexilabError(f"{path}: not valid JSON ({err}); it records the data this run started on") from None
    if not isinstance(env, dict):
        raise LexilabError(f"{path}: expected a JSON object, found {type(env).__name__}")
    return env


def accept_data_changes(run_dir: str | os.PathLike, changes: list[DataChange], data_root: str | None) -> None:
    """Record in env.json that the run goes on with ``changes`` (``--accept-data-change``)."""
    env = read_env(run_dir) or {}
    by_path = {str(_current_path(r, env.get("data_root"), data_root)): r for r in expected_hashes(env)}
    accepted = list(env.get("data_changes") or [])
    for change in changes:
        accepted.append({"recorded_file": by_path.get(change.file, change.file), "file": change.file,
                         "recorded": change.recorded, "found": change.found, "accepted": time.time(),
                         "how": ACCEPT_FLAG})
    atomic_write_json(Path(run_dir) / ENV_FILE, {**env, "data_changes": accepted})


def record_environment(run_dir: str | os.PathLike, device: torch.device, datasets: dict,
                       data_root: str | None) -> dict:
    """Write env.json for this start. The data files' sha256s are recorded at the first start
    and kept; on any later start (resume, retry) a file that differs from them (or from an
    accepted change) is a :class:`DataChanged` error naming it, before anything is written."""
    env = dict(environment(device, datasets), data_root=data_root)
    first = read_env(run_dir)
    if first is not None and "datasets" in first:
        changes = data_changes(first, data_root)
        if changes:
            raise DataChanged(f"{changes[0].line()}{f' (and {len(changes) - 1} more files)' if len(changes) > 1 else ''}; "
                              f"{Path(run_dir) / ENV_FILE} records the data it started on; restore the file, or "
                              f"re-run with {ACCEPT_FLAG} to continue on the new data")
        env.update(datasets=first["datasets"], data_root=first.get("data_root"),
                   data_changes=first.get("data_changes") or [])
    atomic_write_json(Path(run_dir) / ENV_FILE, env)
    return env


def changed_runs(runs: list[tuple[Path, str | None]]) -> dict[Path, tuple[str | None, list[DataChange]]]:
    """For existing runs ``(run_dir, current data root)``: those whose recorded data files differ now."""
    changed = {}
    for run_dir, data_root in runs:
        env = read_env(run_dir)
        if env is not None and "datasets" in env:
            changes = data_changes(env, data_root)
            if changes:
                changed[run_dir] = (data_root, changes)
    return changed


def changed_runs_lines(changed: dict[Path, tuple[str | None, list[DataChange]]]) -> list[str]:
    """One line per changed file (and version), naming the runs that started on the old one."""
    groups: dict[DataChange, list[Path]] = {}
    for run_dir, (_, changes) in changed.items():
        for change in changes:
            groups.setdefault(change, []).append(run_dir)
    lines = []
    for change, run_dirs in groups.items():
        names = ", ".join("/".join(p.parts[-3:]) for p in run_dirs[:3]) + (f" and {len(run_dirs) - 3} more"
                                                                          if len(run_dirs) > 3 else "")
        lines.append(f"{change.line()}, which {len(run_dirs)} run{'s' * (len(run_dirs) != 1)} started on "
                     f"({names}); restore the file, or re-run with {ACCEPT_FLAG} to go on with the new data")
    return lines


def accept_changed_runs(changed: dict[Path, tuple[str | None, list[DataChange]]]) -> None:
    for run_dir, (data_root, changes) in changed.items():
        accept_data_changes(run_dir, changes, data_root)
