"""Array chunking, MaxArraySize, sacct parsing, refused submissions, and status refresh.

refresh_status is checked against a stand-in `sacct` on PATH that prints fixed, hand-written
output (the real daemons are exercised in test_slurm.py).
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from lexilab.dispatch.slurm import chunks, max_array_size, parse_sacct, sbatch_error
from lexilab.dispatch.status import refresh_status
from lexilab.runs import read_status, update_status

CONFIG_TEXT = """\
AccountingStorageType   = accounting_storage/slurmdbd
MaxArraySize            = 40
MaxJobCount             = 10000
"""


def test_max_array_size_from_scontrol_text():
    assert max_array_size(CONFIG_TEXT) == 40
    assert max_array_size("MaxJobCount = 10\n") == 1001  # SLURM's default when the line is absent


@pytest.mark.parametrize("n, limit, sizes", [(7, 3, [3, 3, 1]), (3, 3, [3]), (0, 5, []), (1001, 1001, [1001]),
                                            (2500, 1001, [1001, 1001, 498])])
def test_chunks_cover_every_run_once_in_order(n, limit, sizes):
    parts = list(chunks(list(range(n)), limit))
    assert [len(p) for p in parts] == sizes
    assert [x for p in parts for x in p] == list(range(n))
    # indices 0..size-1 of each array stay below MaxArraySize
    assert all(len(p) - 1 < limit for p in parts)


def test_parse_sacct_expands_pending_array_ranges():
    text = "12|COMPLETED\n13_[0-2,5]|PENDING\n13_3|RUNNING\n14|CANCELLED by 0\n15_1|OUT_OF_MEMORY\n14.batch|CANCELLED\n"
    assert parse_sacct(text) == {"12": "COMPLETED", "13_0": "PENDING", "13_1": "PENDING", "13_2": "PENDING",
                                 "13_5": "PENDING", "13_3": "RUNNING", "14": "CANCELLED", "15_1": "OUT_OF_MEMORY"}


def test_refused_gpu_request_is_one_clear_line():
    error = subprocess.CalledProcessError(1, ["sbatch"], output=b"",
                                          stderr=b"sbatch: error: Invalid generic resource (gres) specification\n")
    text = str(sbatch_error(RuntimeError(f"Command failed\n{error.stderr.decode()}"), {"gpus_per_node": 1}))
    assert "\n" not in text
    assert text.startswith("slurm: gpus_per_node=1: no node in the default partition has that many GPUs")
    assert "Invalid generic resource" in text


@pytest.fixture
def fake_sacct(tmp_path, monkeypatch):
    """A `sacct` that prints the contents of a file (and logs its arguments)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    output = tmp_path / "sacct.out"
    calls = tmp_path / "sacct.calls"
    script = bin_dir / "sacct"
    script.write_text(f"#!/bin/sh\necho \"$@\" >> {calls}\ncat {output}\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")

    def set_output(text: str):
        output.write_text(text)
        return calls
    return set_output


def _run(tmp_path, name, **status):
    run_dir = tmp_path / "results" / "exp" / name / "seed-0"
    update_status(run_dir, **status)
    return run_dir


def test_refresh_records_jobs_that_ended_without_a_result(tmp_path, fake_sacct):
    cancelled = _run(tmp_path, "cancelled", state="running", executor="slurm", job_id="12")
    oom = _run(tmp_path, "oom", state="running", executor="slurm", job_id="13_1")
    queued = _run(tmp_path, "queued", state="pending", executor="slurm", job_id="13_2")
    running = _run(tmp_path, "running", state="running", executor="slurm", job_id="14")
    done = _run(tmp_path, "done", state="done", executor="slurm", job_id="15")
    vanished = _run(tmp_path, "vanished", state="running", executor="slurm", job_id="16")
    inline = _run(tmp_path, "inline", state="running", executor="inline", job_id=None)
    preempted = _run(tmp_path, "preempted", state="running", executor="slurm", job_id="17")
    calls = fake_sacct("12|CANCELLED by 0\n13_1|OUT_OF_MEMORY\n13_[2-4]|PENDING\n14|RUNNING\n15|COMPLETED\n16|COMPLETED\n"
                       "17|PREEMPTED\n")
    statuses = refresh_status([cancelled, oom, queued, running, done, vanished, inline, preempted])
    assert statuses[cancelled]["state"] == "cancelled" and "12" in statuses[cancelled]["error"]
    assert statuses[oom]["state"] == "failed" and "OUT_OF_MEMORY" in statuses[oom]["error"]
    assert statuses[vanished]["state"] == "failed" and "COMPLETED" in statuses[vanished]["error"]
    assert statuses[queued]["state"] == "pending" and statuses[running]["state"] == "running"
    assert statuses[done]["state"] == "done" and statuses[inline]["state"] == "running"
    assert statuses[preempted]["state"] == "running"  # it may be requeued: not an ending
    # written to the run directories, and sacct asked once, only about unfinished slurm jobs
    assert read_status(cancelled)["state"] == "cancelled" and read_status(oom)["state"] == "failed"
    asked = calls.read_text().splitlines()
    assert len(asked) == 1 and set(asked[0].split()[-1].split(",")) == {"12", "13_1", "13_2", "14", "16", "17"}


def test_refresh_leaves_runs_alone_when_sacct_cannot_answer(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sacct at all
    run_dir = _run(tmp_path, "a", state="running", executor="slurm", job_id="7")
    assert refresh_status([run_dir])[run_dir]["state"] == "running"


def test_refresh_local_runs_by_their_processes(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    # a live process whose command line names lexilab, like the pool launcher
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "lexilab"])
    try:
        gone = _run(tmp_path, "gone", state="running", executor="local", launcher_pid=dead.pid, job_id=str(dead.pid))
        alive = _run(tmp_path, "alive", state="pending", executor="local", launcher_pid=live.pid, job_id=None)
        finished = _run(tmp_path, "finished", state="done", executor="local", launcher_pid=dead.pid)
        statuses = refresh_status([gone, alive, finished])
        assert statuses[gone]["state"] == "failed" and "without recording a result" in statuses[gone]["error"]
        assert statuses[alive]["state"] == "pending"
        assert statuses[finished]["state"] == "done"
    finally:
        live.kill()
        live.wait()
    # once the launcher is gone too, the queued run is recorded as failed
    time.sleep(0.05)
    assert refresh_status([alive])[alive]["state"] == "failed"
