"""What a trial's run records: MLflow tags naming the sweep and trial, and no storage password."""
from __future__ import annotations

import pytest

from lexilab.sweep.storage import redact


@pytest.mark.slow  # MLflow's sqlite store set-up: ~30 s on 2 loaded cores
def test_a_trial_run_is_tagged_in_mlflow_and_keeps_no_storage_password(sweep_spec, cli, results, fresh_db, make_base):
    base = make_base()
    base["tracking"] = {"mlflow": True}
    url = fresh_db.replace("postgresql://lexilab@", "postgresql://lexilab:s3cret-pw@")  # trust auth ignores it
    path = sweep_spec({"params": {"optim.lr": {"type": "float", "low": 1e-3, "high": 1e-2}},
                       "objectives": "val_loss", "trials": 1, "storage": url}, base=base)
    code, out, err = cli("sweep", path)
    assert code == 0, err
    run_dir = results / "tiny_sweep" / "trial-0" / "seed-0"
    config_text = (run_dir / "config.yaml").read_text()
    assert "s3cret-pw" not in config_text and redact(url) in config_text
    assert "s3cret-pw" not in out + err

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{(results / 'mlflow.db').resolve()}")
    experiment = client.get_experiment_by_name("tiny_sweep")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.data.tags["sweep"] == "tiny_sweep" and run.data.tags["trial"] == "0"
    assert all("s3cret-pw" not in value for value in run.data.tags.values())


@pytest.mark.parametrize("url, shown", [
    ("postgresql://user:pw@host:5432/db", "postgresql://user:***@host:5432/db"),
    ("postgresql://user@host/db", "postgresql://user@host/db"),
    ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
])
def test_redact(url, shown):
    assert redact(url) == shown
