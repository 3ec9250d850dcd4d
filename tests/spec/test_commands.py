"""`run` and `status` through the real CLI entry point: dry-run output, refusal of malformed
specs with nothing written, writing run directories, re-run semantics, and the status table.
The dispatch layer is replaced by a recorder here; tests/spec/test_end_to_end.py runs for real."""
from __future__ import annotations

import json

import pytest
import yaml

from lexilab.runs import read_status, scan_experiment, update_status

POOLING = {"mean": {"tasks.colour.pooling": "mean"}, "attention": {"tasks.colour.pooling": "attention"}}


@pytest.fixture
def dispatched(monkeypatch):
    """Replace lexilab.dispatch.dispatch by a recorder (the dispatch helper owns the real one)."""
    import lexilab.dispatch

    calls = []

    def record(run_dirs, executor, **kwargs):
        calls.append({"run_dirs": list(run_dirs), "executor": executor, **kwargs})

    monkeypatch.setattr(lexilab.dispatch, "dispatch", record, raising=False)
    return calls


def test_dry_run_prints_plan_and_differences_and_writes_nothing(cli, make_spec, tmp_path, dispatched):
    spec = make_spec(factors={"pooling": POOLING}, seeds=2)
    results = tmp_path / "results"
    code, out, err = cli("run", spec, "--dry-run", "--results", results)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"experiment toy: 2 arms × 2 seeds = 4 runs → {results / 'toy'}"
    assert lines[1] == "  a toy study"
    table = [line.split() for line in lines if line.startswith(("arm ", "mean ", "attention "))]
    assert table[:3] == [["arm", "seed-0", "seed-1"], ["mean", "new", "new"], ["attention", "new", "new"]]
    assert "resolved differences between arms:" in out
    assert ["arm", "tasks.colour.pooling"] in table and ["attention", "attention"] in table
    assert out.rstrip().endswith("dry run: nothing written or submitted")
    assert not results.exists() and dispatched == []


def test_malformed_spec_one_line_per_problem_and_nothing_written(cli, make_spec, base_config, tmp_path, dispatched):
    base_config["optim"]["lr"] = "fast"
    base_config["tasks"]["colour"]["pooling"] = "avg"
    spec = make_spec(seeds=0)
    code, out, err = cli("run", spec, "--results", tmp_path / "results")
    assert code == 2 and out == ""
    lines = err.splitlines()
    assert len(lines) == 3 and all(line.startswith(f"lexilab: error: {spec}:") for line in lines)
    assert any("base.tasks.colour.pooling: unknown pooling 'avg'" in line for line in lines)
    assert not (tmp_path / "results").exists() and dispatched == []


def test_bad_only_and_bad_resources_stop_before_writing(cli, make_spec, tmp_path, dispatched):
    spec = make_spec(factors={"pooling": POOLING})
    code, _, err = cli("run", spec, "--only", "men", "--results", tmp_path / "r")
    assert code == 2 and "--only: unknown arm 'men' (did you mean 'mean'?)" in err
    code, _, err = cli("run", spec, "--time", "soon", "--results", tmp_path / "r")
    assert code == 2 and "time" in err and err.count("\n") == 1
    code, _, err = cli("run", spec, "--profile", "no_such_cluster", "--results", tmp_path / "r")
    assert code == 2 and "cluster profile not found" in err
    assert not (tmp_path / "r").exists() and dispatched == []


def test_run_writes_runs_dispatches_and_rerun_skips_done(cli, make_spec, tmp_path, dispatched):
    spec = make_spec(factors={"pooling": POOLING}, seeds=2, resources={"cpus": 2})
    results = tmp_path / "results"
    code, out, err = cli("run", spec, "--results", results, "--executor", "local", "--max-parallel", "3",
                         "--gpus", "1")
    assert code == 0, err
    (call,) = dispatched
    assert call["executor"] == "local" and call["max_parallel"] == 3 and call["wait"] is False
    assert call["resources"] == {"cpus_per_task": 2, "gpus_per_node": 1}
    assert call["log_dir"] == results / "toy" / ".submitit"
    assert sorted(str(p.relative_to(results)) for p in call["run_dirs"]) == [
        "toy/attention/seed-0", "toy/attention/seed-1", "toy/mean/seed-0", "toy/mean/seed-1"]
    run_dir = results / "toy" / "attention" / "seed-1"
    document = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert document["meta"] == {"experiment": "toy", "arm": "attention", "levels": {"pooling": "attention"},
                                "seed": 1, "spec": str(spec.resolve()),
                                # the planned grid and analysis, so `report` needs neither spec nor data
                                "grid": {"arms": {"attention": {"pooling": "attention"},
                                                  "mean": {"pooling": "mean"}}, "seeds": [0, 1]},
                                "report": {"baseline": None, "metrics": []}}
    assert document["seed"] == 1 and document["tasks"]["colour"]["pooling"] == "attention"
    assert read_status(run_dir)["state"] == "pending"
    assert "4 new, 0 to retry, 0 done" in out

    # two runs finish, one fails; re-running retries only the failure and leaves the rest alone
    for arm, seed in (("mean", 0), ("mean", 1), ("attention", 0)):
        update_status(results / "toy" / arm / f"seed-{seed}", state="done")
    update_status(run_dir, state="failed", error="RuntimeError: boom")
    before = (results / "toy" / "mean" / "seed-0" / "config.yaml").stat().st_mtime_ns
    code, out, err = cli("run", spec, "--results", results)
    # the recorder trains nothing, so the inline retry is left unfinished: `run` says so and fails
    assert code == 1 and len(dispatched) == 2 and "did not finish" in err
    assert dispatched[1]["run_dirs"] == [run_dir] and dispatched[1]["executor"] == "inline"
    assert "0 new, 1 to retry, 3 done" in out
    assert (results / "toy" / "mean" / "seed-0" / "config.yaml").stat().st_mtime_ns == before

    update_status(run_dir, state="done")
    code, out, _ = cli("run", spec, "--results", results)
    assert code == 0 and "nothing to run" in out and len(dispatched) == 2


def test_spec_change_moves_old_runs_aside_with_a_warning(cli, make_spec, base_config, tmp_path, dispatched):
    results = tmp_path / "results"
    spec = make_spec(seeds=1)
    # --executor local: the recorder never trains, and `run` with inline fails on runs left unfinished
    assert cli("run", spec, "--results", results, "--executor", "local")[0] == 0
    old = scan_experiment(results / "toy")[("base", 0)].config_hash
    update_status(results / "toy" / "base" / "seed-0", state="done")
    base_config["optim"]["lr"] = 1.0e-4
    spec = make_spec(seeds=1)
    code, out, _ = cli("status", spec, "--results", results)
    assert ["base", "done", "*"] in [line.split() for line in out.splitlines()] and "the spec has changed" in out
    code, out, err = cli("run", spec, "--dry-run", "--results", results)
    assert code == 0 and "changed" in out and f"moves to seed-0.{old}/" in out
    code, out, err = cli("run", spec, "--results", results, "--executor", "local")
    assert code == 0 and "the spec changed since this run was written" in err
    kept = results / "toy" / "base" / f"seed-0.{old}"
    assert read_status(kept)["state"] == "done"
    new = scan_experiment(results / "toy")[("base", 0)]
    assert new.config_hash != old and new.state == "pending" and len(dispatched) == 2


def test_status_table_from_name_and_from_spec(cli, make_spec, tmp_path, dispatched):
    results = tmp_path / "results"
    spec = make_spec(factors={"pooling": POOLING}, seeds=2)
    assert cli("run", spec, "--results", results, "--only", "mean", "--executor", "local")[0] == 0
    update_status(results / "toy" / "mean" / "seed-0", state="done")
    update_status(results / "toy" / "mean" / "seed-1", state="failed", job_id="4242",
                  error="ValueError: loss is nan", traceback="Traceback ...")
    code, out, _ = cli("status", "toy", "--results", results)
    assert code == 0
    rows = [line.split() for line in out.splitlines()]
    assert out.splitlines()[0] == f"experiment toy ({results / 'toy'}): 2 runs — done 1, failed 1"
    assert ["arm", "seed-0", "seed-1"] in rows and ["mean", "done", "failed", "4242"] in rows
    assert "  mean/seed-1: ValueError: loss is nan" in out
    # from the spec: arms not started yet are listed too
    code, out, _ = cli("status", spec, "--results", results)
    rows = [line.split() for line in out.splitlines()]
    assert ["attention", "—", "—"] in rows and "not started 2" in out.splitlines()[0]
    code, out, _ = cli("status", "toy", "--results", results, "--json")
    records = json.loads(out)
    assert [(r["arm"], r["seed"], r["state"]) for r in records] == [("mean", 0, "done"), ("mean", 1, "failed")]


def test_status_of_unknown_experiment(cli, tmp_path):
    (tmp_path / "results" / "pooling_ablation").mkdir(parents=True)
    code, _, err = cli("status", "pooling_ablaton", "--results", tmp_path / "results")
    assert code == 2 and "no such experiment (did you mean 'pooling_ablation'?)" in err


def test_results_root_from_environment(cli, make_spec, tmp_path, monkeypatch, dispatched):
    monkeypatch.setenv("LEXILAB_RESULTS", str(tmp_path / "elsewhere"))
    assert cli("run", make_spec(), "--seeds", "1", "--executor", "local")[0] == 0
    assert (tmp_path / "elsewhere" / "toy" / "base" / "seed-0" / "config.yaml").exists()
