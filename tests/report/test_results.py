"""lexilab.results reads run directories into tidy frames; nothing is dropped silently."""
from __future__ import annotations

import math

import pytest

from lexilab import results
from lexilab.errors import LexilabError

from .conftest import KNOWN


def test_tidy_frame_has_known_values(known_results):
    frame = results.load("pooling", results=known_results)
    assert list(frame.columns) == ["experiment", "arm", "pooling", "seed", "split", "task", "metric", "value",
                                   "run_id", "state"]
    done = frame[(frame["state"] == "done") & (frame["split"] == "test") & (frame["metric"] == "accuracy")]
    for arm, values in KNOWN.items():
        got = done[done["arm"] == arm].sort_values("seed")["value"].tolist()
        assert got == pytest.approx(values)
    assert set(done["pooling"]) == set(KNOWN)  # the factor column comes from each run's levels
    assert done[done["arm"] == "mean"]["run_id"].tolist() == ["hmean0", "hmean1", "hmean2"]


def test_failed_and_pending_runs_stay_visible(known_results):
    frame = results.load("pooling", results=known_results)
    extra = frame[frame["state"] != "done"].set_index(["arm", "seed"])
    assert extra.loc[("mean", 3), "state"] == "failed"
    assert extra.loc[("attention", 3), "state"] == "pending"
    assert math.isnan(extra.loc[("mean", 3), "value"])
    table = results.runs("pooling", results=known_results).set_index(["arm", "seed"])
    assert table.loc[("mean", 3), "error"] == "RuntimeError: CUDA out of memory"
    assert len(table) == 11


def test_done_run_without_metrics_is_flagged(known_results, make):
    make(known_results, "pooling", "max", 4, levels={"pooling": "max"}, tasks={"topic": "multiclass"})
    frame = results.load("pooling", results=known_results)
    row = frame[(frame["arm"] == "max") & (frame["seed"] == 4)]
    assert row["state"].tolist() == ["done (no metrics.json)"]


def test_split_filter(known_results):
    frame = results.load("pooling", results=known_results, splits=["val"])
    assert set(frame[frame["state"] == "done"]["split"]) == {"val"}


def test_unknown_experiment_lists_known_ones(known_results):
    with pytest.raises(LexilabError, match=r"no results for experiment 'polling'.*experiments there: pooling"):
        results.load("polling", results=known_results)


def test_spec_expectations_show_missing_runs(tmp_path, make, repo_root, monkeypatch):
    from lexilab.spec import load_spec

    monkeypatch.chdir(repo_root)  # the spec's data root is relative to the repository
    spec = load_spec("experiments/quickstart.yaml")
    first, *others = spec.arm_names
    root = tmp_path / "results"
    make(root, "quickstart", first, 0, levels=spec.arms[0].levels, tasks={"colour": "multiclass"},
         metrics={"test": {"colour": {"accuracy": 0.7}}})
    table = results.runs("experiments/quickstart.yaml", results=root)
    states = dict(zip(table["arm"] + "/" + table["seed"].astype(str), table["state"]))
    assert states == {f"{first}/0": "done", **{f"{arm}/0": "missing" for arm in others}}
    exp = results.experiment("experiments/quickstart.yaml", results=root)
    assert exp.arms == spec.arm_names
    assert exp.report_defaults == spec.report


def test_records_history_and_gradcos(tmp_path, make):
    root = tmp_path / "results"
    recs = [{"id": f"x{i}", "prediction": "a", "reference": "a" if i % 2 else "b", "scores": {"a": 0.6, "b": 0.4}}
            for i in range(4)]
    make(root, "e", "base", 0, levels={}, tasks={"t": "multiclass"}, metrics={"test": {"t": {"accuracy": 0.5}}},
         predictions={("test", "t"): recs},
         history=[{"step": 1, "loss/t": 0.9}, {"step": 2, "split": "val", "val_loss": 0.8}],
         gradcos=[{"step": 2, "task_a": "t", "task_b": "u", "group": "all", "cosine": -0.2}])
    make(root, "e", "base", 1, levels={}, tasks={"t": "multiclass"}, state="failed")
    got = results.records("e", results=root, task="t")
    assert list(got) == [("base", 0)] and got[("base", 0)] == recs
    frame = results.load_records("e", results=root, task="t")
    assert list(frame.columns[:2]) == ["arm", "seed"] and len(frame) == 4
    history = results.load_history("e", results=root)
    assert history["step"].tolist() == [1, 2] and set(history["arm"]) == {"base"}
    assert results.load_gradcos("e", results=root)["cosine"].tolist() == [-0.2]
    assert results.load_records("e", results=root, task="missing").empty


def test_report_from_another_directory_lists_missing_and_failed_runs(tiny_results, tmp_path, monkeypatch):
    """The expected arm × seed grid comes from what the runs recorded, so `report SPEC` works
    where the spec's relative data root (../shared/data) does not resolve, and still names the
    run that never happened and the one that failed."""
    import os
    import shutil
    import subprocess
    import sys

    from lexilab.runs import update_status
    from lexilab.spec import SpecError, load_spec

    from .conftest import TINY_SPEC

    root = tmp_path / "results"
    shutil.copytree(tiny_results, root, ignore=shutil.ignore_patterns("checkpoints", "predictions"))
    shutil.rmtree(root / "tiny" / "labels_only" / "seed-2")  # never ran
    update_status(root / "tiny" / "keywords_only" / "seed-1", state="failed", error="RuntimeError: boom")
    elsewhere = tmp_path / "a" / "b"
    elsewhere.mkdir(parents=True)
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv("LEXILAB_DATA", raising=False)
    with pytest.raises(SpecError, match="tokenizer"):  # the spec itself does not validate here
        load_spec(TINY_SPEC)
    table = results.runs(TINY_SPEC, results=root).set_index(["arm", "seed"])
    assert table.loc[("labels_only", 2), "state"] == "missing" and table.loc[("keywords_only", 1), "state"] == "failed"
    assert len(table) == 12
    env = {k: v for k, v in os.environ.items() if k != "LEXILAB_DATA"}
    proc = subprocess.run([sys.executable, "-m", "lexilab", "report", str(TINY_SPEC), "--results", str(root),
                           "--out", str(tmp_path / "out"), "--no-figures", "--resamples", "200"],
                          cwd=elsewhere, env={**env, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    note = next(line for line in proc.stdout.splitlines() if line.startswith("note: not finished"))
    assert "1 missing" in note and "1 failed" in note
    assert "labels_only/seed-2" in note and "keywords_only/seed-1" in note
    assert (tmp_path / "out" / "tables" / "tiny.tex").is_file()
    assert "skipped tiny-setup" in proc.stdout  # the setup table alone needs the spec to validate
