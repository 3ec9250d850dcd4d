"""The package installs and describes itself; pyproject and environment.yml agree."""
from __future__ import annotations

import re
import subprocess
import sys
import tomllib

import yaml

import lexilab

# conda-forge names that differ from the PyPI names in pyproject.toml
CONDA_NAMES = {"torch": "pytorch", "huggingface-hub": "huggingface_hub"}


def _split(requirement: str) -> tuple[str, str]:
    match = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", requirement)
    return match.group(1).lower(), match.group(2).replace(" ", "")


def test_environment_yml_matches_pyproject(repo_root):
    pyproject = tomllib.loads((repo_root / "pyproject.toml").read_text())
    env = yaml.safe_load((repo_root / "environment.yml").read_text())
    wanted = dict(_split(r) for r in pyproject["project"]["dependencies"])
    conda, pip = {}, {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            pip.update(_split(r) for r in dep["pip"])
        else:
            name, spec = _split(dep.replace("=", "==", 1) if re.match(r"^[\w\-.]+=[^=]", dep) else dep)
            conda[name] = spec
    found = {}
    for name, spec in wanted.items():
        key = CONDA_NAMES.get(name, name)
        if key in conda:
            found[name] = conda[key]
        elif name in pip:
            found[name] = pip[name]
    assert found == wanted, "environment.yml and pyproject.toml list different packages or versions"
    extra = set(conda) - {CONDA_NAMES.get(n, n) for n in wanted} - {"python", "pip"}
    assert not extra, f"environment.yml has packages pyproject.toml lacks: {sorted(extra)}"
    assert env["dependencies"][0].startswith("python=3.11")


def test_lock_pins_every_dependency_but_torch(repo_root):
    lock = (repo_root / "requirements.lock").read_text()
    pinned = {m.group(1).lower() for m in re.finditer(r"^([A-Za-z0-9_.\-]+)==", lock, re.M)}
    pyproject = tomllib.loads((repo_root / "pyproject.toml").read_text())
    names = {_split(r)[0] for r in pyproject["project"]["dependencies"]}
    normal = {n.replace("_", "-") for n in pinned}
    assert names - {"torch"} <= normal
    assert "torch" not in normal, "torch must stay out of the lock (GPU machines keep their CUDA build)"
    assert not any(n.startswith("nvidia-") for n in normal), "CUDA wheels must never be in the lock"


def test_version_and_help():
    out = subprocess.run([sys.executable, "-m", "lexilab", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == f"lexilab {lexilab.__version__}"
    out = subprocess.run([sys.executable, "-m", "lexilab", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    from lexilab.cli import COMMAND_MODULES

    for module in COMMAND_MODULES:
        assert module.rsplit(".", 1)[1] in out.stdout
