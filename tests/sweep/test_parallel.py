"""Parallel sweeps with the local executor (one CPU process per trial), on the journal file and
on a real PostgreSQL; SIGKILL of the driver mid-sweep; a trial whose job vanished under
PostgreSQL heartbeats."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml

from lexilab.runs import read_status
from lexilab.sweep.study import load_study, load_sweep

SPACE = {"params": {"optim.lr": {"type": "float", "low": 1e-3, "high": 3e-2, "log": True}},
         "task_weights": {"space": "log_uniform", "low": 0.1, "high": 10.0},
         "objectives": "val_loss"}


def _study(path, results, storage=None):
    return load_study(load_sweep(str(path), str(results), storage))


def _config(run_dir: Path) -> dict:
    return yaml.safe_load((run_dir / "config.yaml").read_text())


def _check_trials_match_runs(study, results: Path, name: str, total: int) -> None:
    trials = study.trials
    assert sorted(t.number for t in trials) == list(range(total))  # none lost, none duplicated
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials), [t.state for t in trials]
    dirs = sorted(p.name for p in (results / name).glob("trial-*"))
    assert dirs == sorted(f"trial-{n}" for n in range(total))
    for t in trials:
        run_dir = results / name / f"trial-{t.number}" / "seed-0"
        config = _config(run_dir)
        assert config["optim"]["lr"] == pytest.approx(t.params["optim.lr"])
        assert config["tasks"]["animal"]["weight"] == pytest.approx(t.params["weight.animal"])
        assert config["tasks"]["colour"]["weight"] == 1.0 and config["weighting"]["kind"] == "fixed"
        assert config["meta"]["trial"] == t.number and config["meta"]["sweep"] == name
        assert read_status(run_dir)["state"] == "done"


def _overlapped(results: Path, name: str) -> bool:
    spans = sorted((s["started"], s["finished"]) for s in
                   (read_status(p) for p in (results / name).glob("trial-*/seed-0")))
    return any(b[0] < a[1] for a, b in zip(spans, spans[1:]))


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["journal", "postgresql"])
def test_parallel_sweep_three_local_workers(backend, sweep_spec, cli, results, request):
    storage = request.getfixturevalue("fresh_db") if backend == "postgresql" else None
    path = sweep_spec({**SPACE, "trials": 6})
    extra = ["--storage", storage] if storage else []
    code, out, err = cli("sweep", path, "--executor", "local", "--workers", "3", *extra)
    assert code == 0, err
    study = _study(path, results, storage)
    _check_trials_match_runs(study, results, "tiny_sweep", 6)
    assert _overlapped(results, "tiny_sweep"), "trials ran one after another"


def _sweep_process(path: Path, results: Path, trials: int, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "LEXILAB_RESULTS": str(results), "LEXILAB_PROGRESS": "0"}
    return subprocess.Popen([sys.executable, "-m", "lexilab", "sweep", str(path), "--executor", "local",
                             "--workers", "2", "--trials", str(trials), *extra], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _wait(predicate, timeout: float, what: str):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _states(results: Path, name: str) -> list[str]:
    return [read_status(p).get("state") for p in (results / name).glob("trial-*/seed-*")]


@pytest.mark.slow
def test_sigkill_driver_mid_sweep_then_rerun_continues_to_n_trials_training_nothing_twice(sweep_spec, cli, results):
    path = sweep_spec({**SPACE, "trials": 4}, base=None)
    driver = _sweep_process(path, results, 4)
    try:
        _wait(lambda: "done" in _states(results, "tiny_sweep") and len(_states(results, "tiny_sweep")) < 4
              or driver.poll() is not None, 300, "a finished trial while others are still to come")
    finally:
        driver.send_signal(signal.SIGKILL)  # the driver only: its local launchers keep training
        driver.wait()
    assert len(_states(results, "tiny_sweep")) < 4, "the sweep ended before it could be killed"
    code, out, err = cli("sweep", path, "--executor", "local", "--workers", "2")
    assert code == 0, err
    study = _study(path, results)
    _check_trials_match_runs(study, results, "tiny_sweep", 4)
    for run_dir in (results / "tiny_sweep").glob("trial-*/seed-0"):
        assert read_status(run_dir)["attempts"] == 1, run_dir  # nothing trained twice
    code, out, err = cli("sweep", path, "--executor", "local", "--workers", "2")  # finished: trains nothing
    assert code == 0 and len(_study(path, results).trials) == 4


@pytest.mark.slow
def test_postgresql_heartbeat_fails_a_vanished_trial_and_it_is_retried(sweep_spec, cli, results, fresh_db):
    """The trial's job is SIGKILLed with its driver: no heartbeat arrives any more, so the next
    driver fails the trial once the grace period has passed and Optuna's retry runs it again."""
    path = sweep_spec({**SPACE, "trials": 1, "storage": {"url": fresh_db, "heartbeat_interval": 1,
                                                        "grace_period": 3, "max_retry": 1}}, base=None)
    doc = yaml.safe_load(path.read_text())
    doc["base"]["train"].update({"max_steps": 400, "checkpoint_every": 1000})  # long enough to be caught training
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    driver = _sweep_process(path, results, 1)
    run_dir = results / "tiny_sweep" / "trial-0" / "seed-0"
    try:
        _wait(lambda: read_status(run_dir).get("state") == "running" and read_status(run_dir).get("job_pid")
              or driver.poll() is not None, 300, "the trial's run to start training")
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    status = read_status(run_dir)
    for key in ("launcher_pid", "job_pid", "pid"):  # the job vanishes: launcher and training process
        try:
            os.kill(int(status[key]), signal.SIGKILL)
        except (KeyError, TypeError, ProcessLookupError):
            pass
    time.sleep(4)  # past the grace period
    doc["base"]["train"].update({"max_steps": 4})
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    code, out, err = cli("sweep", path, "--executor", "local", "--workers", "2")
    assert code == 0, err
    study = _study(path, results)
    states = {t.number: t.state for t in study.trials}
    assert states[0] == optuna.trial.TrialState.FAIL
    retry = [t for t in study.trials if t.system_attrs.get("failed_trial") == 0]
    assert len(retry) == 1 and retry[0].state == optuna.trial.TrialState.COMPLETE
    assert retry[0].params == study.trials[0].params
    assert not [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]


@pytest.mark.slow
def test_local_workers_get_one_gpu_each(sweep_spec, cli, results, monkeypatch):
    """With GPUs visible (here named through LEXILAB_VISIBLE_GPUS; the runs train on CPU), each
    trial in flight is pinned to its own GPU: CUDA_VISIBLE_DEVICES differs between overlapping trials."""
    monkeypatch.setenv("LEXILAB_VISIBLE_GPUS", "0,1")
    path = sweep_spec({**SPACE, "trials": 2})
    code, out, err = cli("sweep", path, "--executor", "local", "--workers", "2")
    assert code == 0, err
    seen = [read_status(results / "tiny_sweep" / f"trial-{n}" / "seed-0").get("cuda_visible_devices") for n in (0, 1)]
    assert sorted(seen) == ["0", "1"], seen
