"""What a run ran on: package versions, git SHA, device, dataset sha256s (env.json)."""
from __future__ import annotations

import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

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
