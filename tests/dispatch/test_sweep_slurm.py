"""A 2-trial sweep through the real local SLURM (the dispatch tests' session cluster): each
trial is one sbatch job that trains the run and reports to the study in the journal file."""
from __future__ import annotations

import optuna
import pytest
import yaml

from lexilab.commands import sweep as sweep_command
from lexilab.runs import read_status
from lexilab.sweep.study import load_study, load_sweep

pytestmark = pytest.mark.slurm


def test_two_trial_sweep_through_slurm(slurm, runs, monkeypatch, capsys):
    import lexilab.cli

    base = runs.base(max_steps=4)
    spec = {"name": "slurm_sweep", "base": base,
            "search": {"params": {"optim.lr": {"type": "float", "low": 1e-3, "high": 3e-2, "log": True}},
                       "objectives": "colour/accuracy", "trials": 2}}
    path = runs.root / "slurm_sweep.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    results = runs.root / "results"
    monkeypatch.setenv("LEXILAB_PROGRESS", "0")
    monkeypatch.setattr(lexilab.cli, "COMMAND_MODULES", [sweep_command.__name__])
    code = lexilab.cli.main(["sweep", str(path), "--executor", "slurm", "--workers", "2", "--profile", "local",
                             "--results", str(results)])
    out = capsys.readouterr()
    assert code == 0, out.err
    study = load_study(load_sweep(str(path), str(results), None))
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 2
    for trial in study.trials:
        run_dir = results / "slurm_sweep" / f"trial-{trial.number}" / "seed-0"
        status = read_status(run_dir)
        assert status["state"] == "done" and status["executor"] == "slurm" and status["job_id"]
        config = yaml.safe_load((run_dir / "config.yaml").read_text())
        assert config["optim"]["lr"] == pytest.approx(trial.params["optim.lr"])
