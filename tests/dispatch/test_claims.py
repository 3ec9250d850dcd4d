"""Real `python -m lexilab run` processes against one results tree: concurrent commands train
each run exactly once, a SIGKILLed inline run is not shown as running, and a run whose status
cannot be written makes `run` exit non-zero."""
from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import lexilab.runs
from lexilab.claim import claim_run
from lexilab.runs import read_status, scan_experiment

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def cli(cli_of):
    """cli(*argv) -> (exit code, stdout, stderr) through lexilab's entry point, in this process."""
    return cli_of()


def _spec(runs, name: str, seeds: int, **base) -> Path:
    path = runs.root / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "base": runs.base(**base), "seeds": seeds}, sort_keys=False))
    return path


def _command(spec: Path, results: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "LEXILAB_PROGRESS": "0", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "lexilab", "run", str(spec), "--results", str(results), *extra],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _records(run_dir: Path) -> list[tuple]:
    """Each history record as (step, its keys): a record written twice shows up twice."""
    lines = (run_dir / "history.jsonl").read_text().splitlines()
    return [(r.get("step"), tuple(sorted(r))) for r in map(json.loads, lines)]


@pytest.mark.slow
@pytest.mark.parametrize("commands, staggered", [(2, False), (4, True)])
def test_concurrent_run_commands_train_every_run_once(runs, wait_for, commands, staggered):
    spec, results = _spec(runs, "race", seeds=3, max_steps=16), runs.root / "results"
    procs = [_command(spec, results)]
    if staggered:
        # the others start while the first trains: they find one run running and the rest
        # queued by a live process (the case that trained runs twice), and race each other
        wait_for(lambda: any(r.state == "running" for r in scan_experiment(results / "race").values()),
                 240, "the first command to start a run", 0.05)
    procs += [_command(spec, results) for _ in range(commands - 1)]
    outputs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0] * commands, [err[-2000:] for _, err in outputs]
    found = scan_experiment(results / "race")
    assert sorted(found) == [("base", s) for s in range(3)]
    assert {key: (info.state, info.status["attempts"]) for key, info in found.items()} == {
        key: ("done", 1) for key in found}
    records = {key: _records(info.path) for key, info in found.items()}
    for key, items in records.items():
        assert len(items) == len(set(items)), f"{key}: duplicate history records"
    assert len({len(items) for items in records.values()}) == 1  # same config: same records


@pytest.mark.slow
def test_a_sigkilled_inline_run_is_shown_as_interrupted_and_retried(runs, wait_for, cli):
    spec, results = _spec(runs, "killed", seeds=1, max_steps=100000, checkpoint_every=None), runs.root / "results"
    proc = _command(spec, results)
    run_dir = results / "killed" / "base" / "seed-0"
    wait_for(lambda: (run_dir / "status.json").exists() and read_status(run_dir)["state"] == "running",
             240, "the run to start", 0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert read_status(run_dir)["state"] == "running"  # what the killed process left behind
    code, out, _ = cli("status", "killed", "--results", results)
    assert code == 0
    assert ["base", "failed"] in [line.split() for line in out.splitlines()]
    assert f"interrupted: process {proc.pid} on" in out
    code, out, _ = cli("run", spec, "--results", results, "--dry-run")
    assert ["base", "retry"] in [line.split() for line in out.splitlines()]


def test_a_run_that_finds_its_claim_taken_leaves_it_alone(runs):
    from lexilab.runner import run_in_dir

    run_dir = runs.write("taken")
    before = read_status(run_dir)
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'a'); "
                               "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)",
                               str(run_dir / ".claim.lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert run_in_dir(run_dir) is None
        assert read_status(run_dir) == before and not (run_dir / "history.jsonl").exists()
    finally:
        holder.kill()
        holder.wait()
    with claim_run(run_dir) as claimed:  # the kernel released the dead holder's lock
        assert claimed


def test_a_status_that_cannot_be_written_makes_run_exit_nonzero(runs, cli, monkeypatch):
    spec, results = _spec(runs, "full", seeds=1), runs.root / "results"
    monkeypatch.setenv("LEXILAB_PROGRESS", "0")
    real_write = lexilab.runs.atomic_write_json

    def disk_full_at_the_end(path, obj, *args, **kwargs):
        if obj.get("state") in ("done", "failed"):  # the disk fills up while the run trains
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real_write(path, obj, *args, **kwargs)

    monkeypatch.setattr(lexilab.runs, "atomic_write_json", disk_full_at_the_end)
    code, out, err = cli("run", spec, "--results", results)
    run_dir = results / "full" / "base" / "seed-0"
    assert read_status(run_dir)["state"] == "running"  # the done record never reached the disk
    assert code != 0
    assert f"{run_dir}: did not finish (state running)" in err


def test_a_local_job_leaves_a_run_another_process_trains_alone(runs, monkeypatch):
    from lexilab.dispatch import dispatch, refresh_status

    monkeypatch.setenv("LEXILAB_VISIBLE_GPUS", "")
    run_dir = runs.write("held")
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom lexilab.claim import claim_run\n"
                               "from lexilab.runs import mark_running\nwith claim_run(sys.argv[1]):\n"
                               "    mark_running(sys.argv[1]); print('held', flush=True); time.sleep(120)",
                               str(run_dir)], stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert holder.stdout.readline().strip() == "held"
        dispatch([run_dir], "local", wait=True)  # its job finds the claim taken and returns at once
        status = read_status(run_dir)
        assert (status["state"], status["pid"], status["attempts"]) == ("running", holder.pid, 1)
        assert not (run_dir / "history.jsonl").exists()
    finally:
        holder.kill()
        holder.wait()
    status = refresh_status([run_dir])[run_dir]  # the holder is gone: interrupted
    assert status["state"] == "failed" and status["error"].startswith(f"interrupted: process {holder.pid} on ")
