"""`run` for real with the inline executor (the lead's runner and the dispatch layer): runs
finish with results, and running the same command again trains nothing."""
from __future__ import annotations

import json

import pytest

from lexilab.runs import read_status, scan_experiment


def test_inline_run_then_rerun_trains_nothing(cli, make_spec, base_config, tmp_path, monkeypatch):
    monkeypatch.setenv("LEXILAB_PROGRESS", "0")
    base_config["backbone"]["name"].update(d_model=16, num_layers=1)
    tasks = base_config["tasks"]
    tasks["colour"]["data"]["n"] = 24
    tasks["animal"] = {**tasks.pop("keywords"), "kind": "multiclass",
                       "data": {"name": "synthetic", "task": "disjoint_b", "n": 24}, "pooling": "first"}
    for key in ("generation", "max_target_length"):
        tasks["animal"].pop(key)
    spec = make_spec(factors={"tasks": {"both": {}, "colour_only": {"tasks.animal": None}}}, seeds=1)
    results = tmp_path / "results"
    code, out, err = cli("run", spec, "--results", results)
    assert code == 0, err
    runs = scan_experiment(results / "toy")
    assert sorted(runs) == [("both", 0), ("colour_only", 0)] and all(r.state == "done" for r in runs.values())
    metrics = json.loads((results / "toy" / "both" / "seed-0" / "metrics.json").read_text())
    assert set(metrics["test"]) == {"colour", "animal"} and 0.0 <= metrics["test"]["colour"]["accuracy"] <= 1.0
    assert set(json.loads((results / "toy" / "colour_only" / "seed-0" / "metrics.json").read_text())["test"]) == {"colour"}
    assert "both         done" in out
    history = {k: (r.path / "history.jsonl").read_bytes() for k, r in runs.items()}
    attempts = {k: read_status(r.path)["attempts"] for k, r in runs.items()}

    code, out, err = cli("run", spec, "--results", results)
    assert code == 0 and "0 new, 0 to retry, 2 done" in out and "nothing to run" in out
    again = scan_experiment(results / "toy")
    assert {k: (r.path / "history.jsonl").read_bytes() for k, r in again.items()} == history
    assert {k: read_status(r.path)["attempts"] for k, r in again.items()} == attempts


@pytest.mark.slow
def test_readme_quickstart_command(readme_quickstart):
    """The README's main command, in a fresh process, from the repository root (tests/conftest.py
    runs it once; tests/report/test_quickstart.py reports on the same runs)."""
    done, results = readme_quickstart
    assert done.returncode == 0, done.stderr[-2000:]
    runs = scan_experiment(results / "quickstart")
    assert len(runs) == 9 and all(r.state == "done" for r in runs.values())
