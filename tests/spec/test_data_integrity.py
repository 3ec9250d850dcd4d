"""Changed data is noticed: a run records its data files' sha256 at its first start; resuming it
or re-running it after a file changed stops with one line naming the file, and
``--accept-data-change`` goes on and records the acceptance in the run's env.json."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap

import pytest

from lexilab.envinfo import DataChanged
from lexilab.io import read_json
from lexilab.runs import read_status

COLOURS = ["red", "green", "blue"]
# `run SPEC --results DIR` in a child that SIGKILLs itself right after the first checkpoint
KILLED_AFTER_FIRST_CHECKPOINT = textwrap.dedent("""
    import os, signal, sys
    import lexilab.cli
    from lexilab.train.trainer import Trainer
    save = Trainer.save_checkpoint
    def save_then_die(self):
        save(self)
        os.kill(os.getpid(), signal.SIGKILL)
    Trainer.save_checkpoint = save_then_die
    lexilab.cli.COMMAND_MODULES = ["lexilab.commands.run"]
    lexilab.cli.main(["run", sys.argv[1], "--results", sys.argv[2]])
""")


@pytest.fixture
def data_file(tmp_path):
    path = tmp_path / "data" / "colours.jsonl"
    path.parent.mkdir()
    rows = [{"text": f"the {c} thing number {i}", "label": c} for i in range(20) for c in COLOURS]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def spec(make_spec, base_config, data_file):
    tasks = base_config["tasks"]
    tasks.pop("keywords")
    tasks["colour"]["data"] = {"name": "file", "path": str(data_file), "kind": "multiclass",
                               "fields": {"text": "text", "label": "label"}}
    base_config["backbone"]["name"].update(num_layers=1)
    base_config["train"]["checkpoint_every"] = 2
    return make_spec()


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _change(path) -> None:
    text = path.read_text()
    path.write_text(text.replace("the red thing number 3", "the red thing number 3 (edited)"))


def test_finished_run_after_its_data_changed(cli, spec, data_file, tmp_path, monkeypatch):
    monkeypatch.setenv("LEXILAB_PROGRESS", "0")
    results = tmp_path / "results"
    code, _, err = cli("run", spec, "--results", results)
    assert code == 0, err
    run_dir = results / "toy" / "base" / "seed-0"
    original = _sha(data_file)
    assert read_json(run_dir / "env.json")["datasets"]["colour"]["files"] == {str(data_file): original}
    metrics = (run_dir / "metrics.json").read_bytes()

    _change(data_file)
    code, out, err = cli("run", spec, "--results", results)
    lines = err.splitlines()
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith(f"lexilab: error: {data_file}: changed since the run started (sha256 "
                               f"{original[:12]}… → {_sha(data_file)[:12]}…)")
    assert "toy/base/seed-0" in lines[0] and "--accept-data-change" in lines[0]
    assert "data_changes" not in read_json(run_dir / "env.json")  # nothing written

    code, out, err = cli("run", spec, "--results", results, "--accept-data-change")
    assert code == 0 and "1 done" in out and "nothing to run" in out, err
    env = read_json(run_dir / "env.json")
    (accepted,) = env["data_changes"]
    assert accepted["file"] == str(data_file) and accepted["recorded"] == original
    assert accepted["found"] == _sha(data_file) and accepted["how"] == "--accept-data-change"
    assert env["datasets"]["colour"]["files"] == {str(data_file): original}  # the first start's record stays
    assert (run_dir / "metrics.json").read_bytes() == metrics
    code, _, err = cli("run", spec, "--results", results)  # accepted once: no longer an error
    assert code == 0, err


def test_killed_run_resumed_after_its_data_changed(cli, spec, data_file, tmp_path, monkeypatch):
    monkeypatch.setenv("LEXILAB_PROGRESS", "0")
    results = tmp_path / "results"
    run_dir = results / "toy" / "base" / "seed-0"
    child = subprocess.run([sys.executable, "-c", KILLED_AFTER_FIRST_CHECKPOINT, str(spec), str(results)],
                           env=dict(os.environ, PYTHONPATH=os.getcwd()), capture_output=True, text=True, timeout=600)
    assert child.returncode == -9, child.stderr[-2000:]
    assert (run_dir / "checkpoints" / "last" / "state.pt").exists()
    original = _sha(data_file)
    history = (run_dir / "history.jsonl").read_bytes()

    _change(data_file)
    # the job itself refuses too (a requeued SLURM job resumes without the `run` command)
    from lexilab.runner import read_run_config
    from lexilab.train.trainer import train_run

    config, _ = read_run_config(run_dir)
    with pytest.raises(DataChanged, match=rf"^{data_file}: changed since the run started .*--accept-data-change"):
        train_run(config, run_dir, progress=False)
    assert read_json(run_dir / "env.json")["datasets"]["colour"]["files"] == {str(data_file): original}

    code, out, err = cli("run", spec, "--results", results)
    assert code == 2 and len(err.splitlines()) == 1 and f"{data_file}: changed since the run started" in err, (out, err)
    assert (run_dir / "history.jsonl").read_bytes() == history  # nothing trained
    assert read_status(run_dir)["state"] != "done"

    code, out, err = cli("run", spec, "--results", results, "--accept-data-change")
    assert code == 0 and "1 to retry" in out, err
    assert read_status(run_dir)["state"] == "done"
    (accepted,) = read_json(run_dir / "env.json")["data_changes"]
    assert accepted["recorded"] == original and accepted["found"] == _sha(data_file)
