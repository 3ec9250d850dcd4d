"""sweep status / report / export and the analysis notebook on one tiny two-objective sweep and a
two-arm comparison experiment, checked against brute force and the run directories' files."""
from __future__ import annotations

import json
from pathlib import Path

import nbformat
import numpy as np
import pytest
import yaml
from nbclient import NotebookClient

import lexilab.cli
from lexilab.config import identity_hash
from lexilab.spec import load_spec
from lexilab.sweep.study import load_study, load_sweep

pytestmark = pytest.mark.slow  # one shared 4-trial sweep + a 4-run experiment (~40 s on 2 loaded cores)
OBJECTIVES = ["colour/accuracy", "animal/accuracy"]


def _main(*argv) -> int:
    return lexilab.cli.main([str(a) for a in argv])


@pytest.fixture(scope="module")
def swept(tmp_path_factory, make_base):
    """A 4-trial sweep (two objectives, log-uniform weights) and a 2-arm experiment, both run inline."""
    import os

    root = tmp_path_factory.mktemp("sweep_report")
    results = root / "results"
    os.environ["LEXILAB_PROGRESS"] = "0"
    base = make_base(max_steps=4)
    sweep_doc = {"name": "two_goals", "base": base,
                 "search": {"task_weights": {"space": "log_uniform", "low": 0.1, "high": 10.0},
                            "objectives": OBJECTIVES, "trials": 4, "sampler": {"kind": "random", "seed": 1}}}
    (root / "experiments").mkdir()
    sweep_path = root / "experiments" / "two_goals.yaml"
    sweep_path.write_text(yaml.safe_dump(sweep_doc, sort_keys=False))
    compare_doc = {"name": "methods", "base": base, "seeds": 2,
                   "factors": {"weighting": {"equal": {"weighting": {"kind": "equal"}},
                                             "uncertainty": {"weighting": {"kind": "uncertainty"}}}},
                   "report": {"metrics": OBJECTIVES, "baseline": "equal"}}
    compare_path = root / "experiments" / "methods.yaml"
    compare_path.write_text(yaml.safe_dump(compare_doc, sort_keys=False))
    assert _main("sweep", sweep_path, "--results", results) == 0
    assert _main("run", compare_path, "--results", results) == 0
    return {"root": root, "results": results, "sweep": sweep_path, "compare": compare_path}


def _pareto(points: dict[int, tuple[float, float]]) -> set[int]:
    """Brute force: trials no other trial weakly dominates (both objectives maximised)."""
    def dominated(a, b):
        return all(y >= x for x, y in zip(a, b)) and any(y > x for x, y in zip(a, b))
    return {n for n, p in points.items() if not any(dominated(p, q) for m, q in points.items() if m != n)}


def _val_metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())["val"]


def test_status_lists_every_trial_with_params_values_and_run_dirs(swept, capsys):
    capsys.readouterr()
    assert _main("sweep", "status", swept["sweep"], "--results", swept["results"]) == 0
    out = capsys.readouterr().out
    assert "4 of 4 trials — complete 4" in out
    for n in range(4):
        assert f"two_goals/trial-{n}/seed-0" in out
    assert "w.animal=" in out


def test_report_front_figures_table_and_other_experiment(swept, capsys, tmp_path):
    capsys.readouterr()
    out_dir = tmp_path / "paper"
    assert _main("sweep", "report", swept["sweep"], "--results", swept["results"], "--out", out_dir,
                 "--with", swept["compare"]) == 0
    text = capsys.readouterr().out
    study = load_study(load_sweep(str(swept["sweep"]), str(swept["results"]), None))
    points = {}
    for t in study.trials:  # the objectives straight from each trial's metrics.json
        val = _val_metrics(swept["results"] / "two_goals" / f"trial-{t.number}" / "seed-0")
        points[t.number] = (val["colour"]["accuracy"], val["animal"]["accuracy"])
        assert t.values == pytest.approx(list(points[t.number]))
    front = _pareto(points)
    shown = {int(line.split()[0]) for line in text.split("Pareto front")[1].splitlines()[3:]
             if line.strip() and line.split()[0].isdigit()}
    assert shown == front
    for name in ("history", "parallel", "tradeoff"):
        for ext in ("pdf", "png"):
            assert (out_dir / "figures" / f"two_goals-sweep-{name}.{ext}").stat().st_size > 1000
    table = (out_dir / "tables" / "two_goals-sweep.tex").read_text()
    assert table.count(r"\\") == 1 + len(front)  # the header row, then one row per front trial

    from lexilab.sweep.report import arm_points

    arms = arm_points(str(swept["compare"]), load_sweep(str(swept["sweep"]), str(swept["results"]), None)
                      .spec.search.objectives, swept["results"])
    for arm in ("equal", "uncertainty"):
        seeds = [_val_metrics(swept["results"] / "methods" / arm / f"seed-{s}") for s in (0, 1)]
        values = [s["colour"]["accuracy"] for s in seeds]
        mean, low, high = arms[arm]["colour/accuracy"]
        assert mean == pytest.approx(np.mean(values))
        from scipy import stats

        half = stats.t.ppf(0.975, 1) * np.std(values, ddof=1) / np.sqrt(2)
        assert (low, high) == pytest.approx((np.mean(values) - half, np.mean(values) + half))


def test_export_writes_a_runnable_confirm_spec_reproducing_trials_and_compared_arms(swept, capsys):
    assert _main("sweep", "export", swept["sweep"], "--results", swept["results"], "--top", "2", "--seeds", "3",
                 "--compare", "methods") == 0
    path = swept["root"] / "experiments" / "generated" / "two_goals-confirm.yaml"
    spec = load_spec(path)
    assert spec.seeds == [0, 1, 2] and spec.report["baseline"] == "methods-equal"
    tuned = [arm for arm in spec.arms if arm.name.startswith("tuned-trial-")]
    study = load_study(load_sweep(str(swept["sweep"]), str(swept["results"]), None))
    front = _pareto({t.number: tuple(t.values) for t in study.trials})
    assert len(tuned) == min(2, len(front))
    assert {int(arm.name.rsplit("-", 1)[1]) for arm in tuned} <= front  # points of the front only
    for arm in tuned:  # the trial's run config, seed aside
        number = int(arm.name.rsplit("-", 1)[1])
        run_config = yaml.safe_load((swept["results"] / "two_goals" / f"trial-{number}" / "seed-0" /
                                     "config.yaml").read_text())
        for key in ("config_hash", "meta"):
            run_config.pop(key)
        assert identity_hash({**arm.config, "seed": 0}) == identity_hash(run_config)
    methods = load_spec(swept["compare"])
    for arm in methods.arms:  # each compared arm reproduced exactly
        mine = next(a for a in spec.arms if a.name == f"methods-{arm.name}")
        assert mine.hash == arm.hash


def test_notebook_executes(swept, repo_root, monkeypatch):
    for key, value in {"LEXILAB_RESULTS": str(swept["results"]), "LEXILAB_SWEEP_SPEC": str(swept["sweep"]),
                       "LEXILAB_COMPARE": str(swept["compare"])}.items():
        monkeypatch.setenv(key, value)
    nb = nbformat.read(repo_root / "analysis" / "loss_weight_sweep.ipynb", as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(repo_root / "analysis")}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "sweep two_goals: 4 trials" in text and "Pareto front" in text
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 2
