"""inline, debug and local executors with lexilab's real job function on tiny runs.

The local pool is checked with fake GPU ids (LEXILAB_VISIBLE_GPUS): every run must see exactly
one id in CUDA_VISIBLE_DEVICES, and two runs that overlap in time never share one.
"""
from __future__ import annotations

import itertools
import time

import pytest

from lexilab.dispatch import dispatch, refresh_status
from lexilab.dispatch.pool import make_slots, visible_gpus
from lexilab.dispatch.procs import pid_alive
from lexilab.errors import LexilabError
from lexilab.io import read_json
from lexilab.runs import read_status


def test_visible_gpus_sources(monkeypatch):
    monkeypatch.setenv("LEXILAB_VISIBLE_GPUS", "2,5")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    assert visible_gpus() == ["2", "5"]  # the lexilab variable wins
    assert visible_gpus(["7"]) == ["7"]  # an explicit list wins over both
    monkeypatch.delenv("LEXILAB_VISIBLE_GPUS")
    assert visible_gpus() == ["0"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible_gpus() == []
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert visible_gpus() == []


def test_slots_one_per_gpu_or_max_parallel_on_cpu():
    assert make_slots(["0", "1", "2"], None) == ["0", "1", "2"]
    assert make_slots(["0", "1", "2"], 2) == ["0", "1"]
    assert make_slots([], None) == [""]
    assert make_slots([], 3) == ["", "", ""]


def test_bad_arguments_are_one_line(tmp_path):
    run_dir = tmp_path / "results" / "exp" / "a" / "seed-0"
    run_dir.mkdir(parents=True)
    with pytest.raises(LexilabError, match=r"config.yaml: missing"):
        dispatch([run_dir], "inline")
    (run_dir / "config.yaml").write_text("seed: 0\n")
    with pytest.raises(LexilabError, match=r"^--executor: 'slurmm': unknown executor \(did you mean slurm\?\)"):
        dispatch([run_dir], "slurmm")
    with pytest.raises(LexilabError, match=r"^--max-parallel: found 0"):
        dispatch([run_dir], "local", max_parallel=0)
    assert dispatch([], "local").handles == []


def _intervals(run_dirs):
    return {r: (read_status(r)["started"], read_status(r)["finished"]) for r in run_dirs}


def _overlap(a, b) -> bool:
    return a[0] < b[1] and b[0] < a[1]


@pytest.mark.slow
def test_inline_records_a_failure_and_runs_the_rest(runs):
    good = runs.write("good")
    bad = runs.broken()
    result = dispatch([bad, good], "inline")
    assert [h.run_dir for h in result.handles] == [bad.resolve(), good.resolve()]
    failed = read_status(bad)
    assert failed["state"] == "failed" and "Traceback" in failed["traceback"]
    assert str(runs.root / "no-such-tokenizer") in failed["traceback"]
    assert read_status(good)["state"] == "done" and read_status(good)["executor"] == "inline"
    assert "test" in read_json(good / "metrics.json")


@pytest.mark.slow
def test_debug_executor_records_failure_without_pdb(runs, monkeypatch):
    import pdb

    def no_debugger(*args, **kwargs):
        raise AssertionError("pdb.post_mortem must not be called")
    monkeypatch.setattr(pdb, "post_mortem", no_debugger)
    bad = runs.broken()
    result = dispatch([bad], "debug")
    status = read_status(bad)
    assert status["state"] == "failed" and "no-such-tokenizer" in status["traceback"]
    assert status["job_id"] == result.job_ids[0] and result.job_ids[0].startswith("DEBUG_")


@pytest.mark.slow
def test_local_pool_pins_one_gpu_per_concurrent_run(runs, monkeypatch):
    monkeypatch.setenv("LEXILAB_VISIBLE_GPUS", "0,1")  # two fake GPUs: ids only, nothing uses CUDA
    dirs = [runs.write(f"arm{i}") for i in range(3)]
    result = dispatch(dirs, "local", wait=True)
    statuses = {r: read_status(r) for r in dirs}
    assert all(s["state"] == "done" for s in statuses.values()), statuses
    devices = {r: s["cuda_visible_devices"] for r, s in statuses.items()}
    assert set(devices.values()) <= {"0", "1"}
    spans = _intervals(dirs)
    overlapping = [(a, b) for a, b in itertools.combinations(dirs, 2) if _overlap(spans[a], spans[b])]
    for a, b in overlapping:
        assert devices[a] != devices[b], (devices, spans)
    # two slots: never three runs at once
    assert not any(all(_overlap(spans[x], spans[y]) for x, y in itertools.combinations(trio, 2))
                   for trio in itertools.combinations(dirs, 3))
    assert all(s["executor"] == "local" and s["job_id"] for s in statuses.values())
    assert result.launcher_pid is None  # waited in this process


@pytest.mark.slow
def test_local_without_wait_returns_at_once_and_the_launcher_drains_the_queue(runs, monkeypatch, wait_for):
    monkeypatch.setenv("LEXILAB_VISIBLE_GPUS", "")  # CPU only: max_parallel slots
    dirs = [runs.write("first"), runs.write("second")]
    started = time.time()
    result = dispatch(dirs, "local", max_parallel=1, wait=False)
    assert time.time() - started < 15  # returned before the runs (each takes longer than that)
    assert pid_alive(result.launcher_pid)
    assert {read_status(r)["state"] for r in dirs} <= {"pending", "running"}
    wait_for(lambda: all(read_status(r)["state"] in ("done", "failed") for r in dirs), 240, "both runs to end", 0.5)
    assert [read_status(r)["state"] for r in dirs] == ["done", "done"]
    spans = _intervals(dirs)
    assert not _overlap(spans[dirs[0]], spans[dirs[1]])  # one slot: one after the other
    assert all(read_status(r)["cuda_visible_devices"] == "" for r in dirs)  # CPU slots hide GPUs
    wait_for(lambda: not pid_alive(result.launcher_pid), 30, "the launcher to exit")
    assert all(s["state"] == "done" for s in refresh_status(dirs).values())


@pytest.mark.parametrize("device", ["", "3", "GPU-5f1c2d3e-0000-1111-2222-333344445555"])
def test_pool_pinning_reaches_the_job_environment(tmp_path, device):
    """What a submitit local job started with the pool's parameters sees in CUDA_VISIBLE_DEVICES."""
    import os

    import submitit

    from lexilab.dispatch.pool import _pin

    executor = submitit.LocalExecutor(folder=tmp_path)
    executor.update_parameters(timeout_min=2, **_pin(device, []))
    job = executor.submit(os.getenv, "CUDA_VISIBLE_DEVICES")
    assert job.result() == device
