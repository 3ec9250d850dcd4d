"""The results tree: writing run directories, scanning 1,000 runs fast, and the re-run plan
(skip done, retry failed/interrupted, leave running alone, move changed runs aside)."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from lexilab.runs import (
    config_hash,
    liveness,
    move_aside,
    plan_runs,
    read_status,
    scan_experiment,
    stored_hash,
    update_status,
    write_run,
)


@dataclass
class Planned:  # the fields plan_runs uses from lexilab.spec.PlannedRun
    experiment: str
    arm: str
    seed: int
    config_hash: str

    def run_dir(self, results) -> Path:
        return Path(results) / self.experiment / self.arm / f"seed-{self.seed}"


def _fake_run(root: Path, arm: str, seed: int, digest: str, status: dict | None) -> Path:
    path = root / "exp" / arm / f"seed-{seed}"
    path.mkdir(parents=True)
    (path / "config.yaml").write_text(f"config_hash: {digest}\nseed: {seed}\noptim: {{lr: 0.001}}\n")
    if status is not None:
        (path / "status.json").write_text(json.dumps(status))
    return path


def test_write_run_round_trips_through_the_runner_reader(tmp_path):
    from lexilab.runner import read_run_config

    config = {"seed": 2, "optim": {"lr": 1e-3, "betas": [0.9, 0.98]}, "tasks": {"b": {"kind": "seq2seq"}, "a": {}}}
    meta = {"experiment": "exp", "arm": "x", "seed": 2, "levels": {"f": "x"}}
    run_dir = tmp_path / "exp" / "x" / "seed-2"
    write_run(run_dir, config, meta, "abc123def456")
    assert (run_dir / "config.yaml").read_text().splitlines()[0] == "config_hash: abc123def456"
    assert stored_hash(run_dir) == "abc123def456"
    loaded, extra = read_run_config(run_dir)
    assert loaded == config and list(loaded["tasks"]) == ["b", "a"]  # task order kept
    assert extra == {"config_hash": "abc123def456", "meta": meta}
    assert read_status(run_dir)["state"] == "pending" and read_status(run_dir)["config_hash"] == "abc123def456"
    assert not [p for p in run_dir.iterdir() if p.name.endswith(".tmp")]  # atomic writes leave no temp files


def test_scan_reads_state_and_hash_and_skips_logs_and_moved_runs(tmp_path):
    _fake_run(tmp_path, "a", 0, "h0", {"state": "done"})
    _fake_run(tmp_path, "a", 1, "h1", None)
    _fake_run(tmp_path, "b", 0, "h2", {"state": "failed", "error": "ValueError: boom"})
    (tmp_path / "exp" / "a" / "seed-0.oldhash").mkdir()
    (tmp_path / "exp" / ".logs" / "seed-0").mkdir(parents=True)
    (tmp_path / "exp" / "mlflow.db").write_text("")
    (tmp_path / "exp" / "a" / "seed-x").mkdir()
    found = scan_experiment(tmp_path / "exp")
    assert sorted(found) == [("a", 0), ("a", 1), ("b", 0)]
    assert found[("a", 0)].state == "done" and found[("a", 1)].state == "pending"
    assert found[("b", 0)].config_hash == "h2" and found[("b", 0)].status["error"] == "ValueError: boom"
    assert scan_experiment(tmp_path / "missing") == {}


def test_scan_of_1000_runs_takes_under_a_second(tmp_path):
    states = ["done", "failed", "running", "pending", "cancelled"]
    for arm in range(10):
        for seed in range(100):
            _fake_run(tmp_path, f"arm{arm}", seed, f"{arm:02d}{seed:04d}", {"state": states[seed % 5], "attempts": 1})
    planned = [Planned("exp", f"arm{a}", s, f"{a:02d}{s:04d}") for a in range(10) for s in range(100)]
    best_scan = best_plan = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        found = scan_experiment(tmp_path / "exp")
        best_scan = min(best_scan, time.perf_counter() - start)
        start = time.perf_counter()
        actions = plan_runs([p for p in planned if (p.seed % 5) in (0, 1, 4)], tmp_path)
        best_plan = min(best_plan, time.perf_counter() - start)
    assert len(found) == 1000 and sum(r.state == "done" for r in found.values()) == 200
    assert best_scan < 1.0, f"scanning 1,000 runs took {best_scan:.2f} s"
    assert best_plan < 1.0, f"planning against 1,000 runs took {best_plan:.2f} s"
    assert {a.kind for a in actions} == {"skip", "retry"}


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_liveness_by_pid_on_this_host_and_unknown_elsewhere():
    host = socket.gethostname()
    assert liveness({"state": "running", "host": host, "pid": os.getpid()}) == "alive"
    assert liveness({"state": "running", "host": host, "pid": _dead_pid()}) == "dead"
    assert liveness({"state": "running", "host": "some-other-node", "pid": 1}) == "unknown"
    assert liveness({"state": "pending"}) == "dead"  # written by `run`, never handed to an executor


def test_plan_skips_done_retries_failed_and_interrupted_leaves_running(tmp_path):
    host = socket.gethostname()
    _fake_run(tmp_path, "a", 0, "h", {"state": "done"})
    _fake_run(tmp_path, "a", 1, "h", {"state": "failed", "error": "boom"})
    _fake_run(tmp_path, "a", 2, "h", {"state": "running", "host": host, "pid": _dead_pid()})
    _fake_run(tmp_path, "a", 3, "h", {"state": "running", "host": host, "pid": os.getpid()})
    _fake_run(tmp_path, "a", 4, "h", {"state": "cancelled"})
    _fake_run(tmp_path, "a", 5, "h", {"state": "running", "host": "node7", "pid": 12})
    planned = [Planned("exp", "a", s, "h") for s in range(7)]
    kinds = [a.kind for a in plan_runs(planned, tmp_path)]
    assert kinds == ["skip", "retry", "retry", "active", "retry", "active", "new"]
    assert [a.kind for a in plan_runs(planned, tmp_path, retry_running=True)][5] == "retry"


def test_changed_config_moves_the_old_run_aside_unless_it_is_running(tmp_path):
    _fake_run(tmp_path, "a", 0, "old", {"state": "done"})
    _fake_run(tmp_path, "a", 1, "old", {"state": "running", "host": socket.gethostname(), "pid": os.getpid()})
    actions = plan_runs([Planned("exp", "a", 0, "new"), Planned("exp", "a", 1, "new")], tmp_path)
    assert [a.kind for a in actions] == ["changed", "blocked"]
    assert "old → new" in actions[0].note and "seed-0.old/" in actions[0].note
    assert "still running" in actions[1].note
    moved = move_aside(actions[0].path, "old")
    assert moved == tmp_path / "exp" / "a" / "seed-0.old" and (moved / "config.yaml").exists()
    assert not actions[0].path.exists()
    _fake_run(tmp_path, "a", 0, "old", {"state": "failed"})
    assert move_aside(actions[0].path, "old").name == "seed-0.old.1"  # never overwrites a kept run
    assert sorted(scan_experiment(tmp_path / "exp")) == [("a", 1)]


def test_status_updates_merge_under_concurrent_writers(tmp_path):
    run_dir = tmp_path / "run"
    code = ("import sys; from lexilab.runs import update_status\n"
            "for i in range(30): update_status(sys.argv[1], **{f'k{sys.argv[2]}_{i}': i})")
    workers = [subprocess.Popen([sys.executable, "-c", code, str(run_dir), str(w)]) for w in range(3)]
    assert all(w.wait() == 0 for w in workers)
    status = read_status(run_dir)
    assert all(f"k{w}_{i}" in status for w in range(3) for i in range(30))


def test_config_hash_of_runs_module_is_key_order_independent():
    a = {"x": 1, "y": {"b": [1, 2], "a": None}}
    b = yaml.safe_load("y: {a: null, b: [1, 2]}\nx: 1\n")
    assert config_hash(a) == config_hash(b) and len(config_hash(a)) == 12
    update = {"x": 2, "y": a["y"]}
    assert config_hash(update) != config_hash(a)


def test_update_status_rejects_unknown_states(tmp_path):
    import pytest

    with pytest.raises(ValueError):
        update_status(tmp_path, state="finished")


def test_liveness_does_not_take_a_reused_pid_for_the_owner():
    from lexilab.claim import identity

    me = identity()
    assert liveness({"state": "running", **me}) == "alive"
    # same pid and host, another start time: the owner died and its pid went to a new process
    assert liveness({"state": "running", **me, "pid_start": me["pid_start"] - 1}) == "dead"
    assert liveness({"state": "running", **me, "boot_id": "another-boot"}) == "dead"
    # queued by a live inline/local launcher: not taken for dead (a second `run` leaves it alone)
    launcher = identity(prefix="launcher_")
    assert liveness({"state": "pending", "executor": "inline", **launcher}) == "alive"
    assert liveness({"state": "pending", "executor": "inline", **launcher, "launcher_pid": _dead_pid()}) == "dead"


def test_a_garbage_status_json_is_reported_and_the_other_runs_go_on(cli, make_spec, tmp_path, monkeypatch):
    import lexilab.dispatch

    dispatched = []
    monkeypatch.setattr(lexilab.dispatch, "dispatch", lambda run_dirs, executor, **kw: dispatched.append(run_dirs))
    spec, results = make_spec(seeds=3), tmp_path / "results"
    assert cli("run", spec, "--results", results, "--executor", "local")[0] == 0
    garbage = results / "toy" / "base" / "seed-1" / "status.json"
    garbage.write_text('{"state": "runn')  # cut short by another tool
    update_status(results / "toy" / "base" / "seed-2", state="failed", error="boom")
    code, out, err = cli("run", spec, "--results", results, "--executor", "local")
    assert code == 0, err
    lines = [line for line in out.splitlines() if str(garbage) in line]
    assert len(lines) == 1 and "base/seed-1: unreadable:" in lines[0] and "JSONDecodeError" in lines[0]
    # the others went on: seed-0 queued again (its job never ran), seed-2 retried
    assert sorted(p.name for p in dispatched[-1]) == ["seed-0", "seed-2"]
    assert garbage.read_text() == '{"state": "runn'  # left as it was
    code, out, _ = cli("status", spec, "--results", results)
    assert code == 0 and ["base", "pending", "unknown", "pending"] in [line.split() for line in out.splitlines()]
    assert f"base/seed-1: {garbage}: unreadable (JSONDecodeError" in out


def test_an_mlflow_failure_at_start_is_a_warning_and_the_runs_go_on(cli, make_spec, tmp_path, monkeypatch):
    import lexilab.dispatch
    import lexilab.tracking

    def broken_store(*args, **kwargs):
        raise RuntimeError("(sqlite3.OperationalError) table experiments already exists")

    dispatched = []
    monkeypatch.setattr(lexilab.tracking, "ensure_experiment", broken_store)
    monkeypatch.setattr(lexilab.dispatch, "dispatch", lambda run_dirs, executor, **kw: dispatched.append(run_dirs))
    code, out, err = cli("run", make_spec(seeds=2), "--results", tmp_path / "results", "--executor", "local")
    assert code == 0 and len(dispatched) == 1 and len(dispatched[0]) == 2
    assert "warning: MLflow: RuntimeError: (sqlite3.OperationalError) table experiments already exists" in err
