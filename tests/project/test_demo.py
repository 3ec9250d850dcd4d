"""`make demo` writes only git-ignored files: its numbers differ from machine to machine, so it
must never rewrite a committed file (paper/figures/quickstart-*, paper/tables/quickstart.tex)."""
from __future__ import annotations

import shlex
import shutil
import subprocess

import pytest

# lexilab command → {option naming where it writes: its default}; {}: writes nothing
WRITES = {"run": {"--results": "results"}, "report": {"--out": "paper"}, "paper": {"--out": "paper"},
          "sweep run": {"--results": "results"}, "sweep report": {"--out": "paper"},
          "sweep export": {"--out": "experiments"}, "status": {}, "sweep status": {}, "predict": {}}


def command_name(words: list[str]) -> str:
    if words[0] == "sweep":  # `sweep SPEC` runs; `sweep status|report|export SPEC` read or write
        return f"sweep {words[1]}" if len(words) > 2 and words[1] in ("status", "report", "export") else "sweep run"
    return words[0]


def targets(words: list[str]) -> list[str]:
    """Where a command writes: its defaults, overridden by the options given, plus any
    --out / --results given."""
    paths = dict(WRITES[command_name(words)])
    for option in ("--out", "--results", *paths):
        if option in words:
            paths[option] = words[words.index(option) + 1]
    return list(paths.values())


def demo_commands(repo_root) -> list[list[str]]:
    """The lexilab command lines of the demo recipe, as make would run them (dry run)."""
    proc = subprocess.run(["make", "-n", "--no-print-directory", "demo"], cwd=repo_root, capture_output=True,
                          text=True, check=True)
    lines = [shlex.split(line) for line in proc.stdout.splitlines() if " -m lexilab " in line]
    return [words[words.index("lexilab") + 1:] for words in lines]


def ignored(repo_root, path: str) -> bool:
    probe = f"{path.rstrip('/')}/figures/x.png"  # a file the command would write there
    return subprocess.run(["git", "check-ignore", "-q", probe], cwd=repo_root).returncode == 0


@pytest.mark.skipif(shutil.which("make") is None or shutil.which("git") is None, reason="needs make and git")
def test_every_demo_command_writes_only_ignored_paths(repo_root):
    if subprocess.run(["git", "rev-parse", "--git-dir"], cwd=repo_root, capture_output=True).returncode:
        pytest.skip("not a git checkout: nothing is tracked")
    commands = demo_commands(repo_root)
    assert {"run", "report"} <= {c[0] for c in commands}  # the quickstart is trained and reported
    for words in commands:
        assert command_name(words) in WRITES, f"make demo runs `lexilab {words[0]}`: add what it writes to WRITES"
        for target in targets(words):
            assert ignored(repo_root, target), f"`lexilab {' '.join(words)}` writes to {target}, which git tracks"
    assert not ignored(repo_root, "paper")  # the check can fail: the paper's folder is tracked


def test_the_check_reads_defaults_and_options():
    assert targets(["report", "quickstart"]) == ["paper"]
    assert targets(["report", "quickstart", "--out", "results/report"]) == ["results/report"]
    assert targets(["run", "experiments/quickstart.yaml", "--seeds", "3"]) == ["results"]
    assert targets(["sweep", "report", "experiments/quickstart_sweep.yaml"]) == ["paper"]
    assert targets(["sweep", "experiments/quickstart_sweep.yaml", "--results", "r"]) == ["r"]
    assert targets(["status", "quickstart"]) == []
