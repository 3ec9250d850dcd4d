"""What a finished run offers: the MLflow mirror, `predict`, and a slice of the real datasets."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from lexilab.inference import load_predictor
from lexilab.runner import run_in_dir
from lexilab.runs import read_status


@pytest.fixture(scope="module")
def mirrored_run(tmp_path_factory, make_config):
    results = tmp_path_factory.mktemp("results")
    run_dir = results / "exp" / "mtl" / "seed-0"
    run_dir.mkdir(parents=True)
    config = make_config(tracking={"mlflow": True})
    (run_dir / "config.yaml").write_text(yaml.safe_dump({**config, "config_hash": "abc123"}))
    metrics = run_in_dir(run_dir, progress=False)
    return results, run_dir, config, metrics


def test_runner_marks_done_and_is_idempotent(mirrored_run):
    _, run_dir, _, metrics = mirrored_run
    status = read_status(run_dir)
    assert status["state"] == "done" and status["attempts"] == 1 and status["mlflow_run_id"]
    assert run_in_dir(run_dir, progress=False) == metrics  # done: nothing trains again
    assert read_status(run_dir)["attempts"] == 1


def test_mlflow_mirror_has_params_metrics_tags(mirrored_run):
    from mlflow.tracking import MlflowClient

    results, run_dir, config, metrics = mirrored_run
    client = MlflowClient(tracking_uri=f"sqlite:///{results / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("exp")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.data.tags["arm"] == "mtl" and run.data.tags["seed"] == "0"
    assert run.data.tags["config_hash"] == "abc123"
    assert run.data.params["optim.lr"] == str(config["optim"]["lr"])
    assert run.data.params["tasks.emotion.pooling"] == "attention"
    assert run.data.metrics["test/topic/accuracy"] == pytest.approx(metrics["test"]["topic"]["accuracy"])
    assert run.info.status == "FINISHED"


def test_failed_run_records_error_line_and_traceback(make_config, tmp_path):
    run_dir = tmp_path / "exp" / "bad" / "seed-0"
    run_dir.mkdir(parents=True)
    config = make_config(("topic",))
    config["tasks"]["topic"]["data"]["task"] = "no_such_task"
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(Exception):
        run_in_dir(run_dir, progress=False)
    status = read_status(run_dir)
    assert status["state"] == "failed" and "no_such_task" in status["error"]
    assert "Traceback" in status["traceback"]


def test_predict_runs_every_task(mirrored_run, repo_root):
    _, run_dir, _, _ = mirrored_run
    predictor = load_predictor(run_dir)
    texts = ["red dog north table chair", "blue cat south house garden"]
    out = predictor.predict(texts)
    assert len(out) == 2 and set(out[0]) == {"topic", "emotion", "summary"}
    assert out[0]["topic"]["label"] in ("no", "yes") and 0 <= out[0]["topic"]["confidence"] <= 1
    assert all(x["label"] in "ABCD" for x in out[0]["emotion"]["top"])
    assert isinstance(out[0]["summary"]["summary"], str)
    # the selected weights and calibrated thresholds are used: on val examples, predict agrees
    # with the trainer's own val predictions (written by the evaluation code path)
    from lexilab.data import load_dataset
    from lexilab.io import read_jsonl

    config = mirrored_run[2]
    rows = load_dataset(config["tasks"]["topic"]["data"], config["data_root"]).splits["val"][:6]
    ours = predictor.predict([row["text"] for row in rows])
    for task in ("topic", "emotion"):
        theirs = {r["id"]: r for r in read_jsonl(run_dir / "predictions" / "val" / f"{task}.jsonl")}
        for row, mine in zip(rows, ours):
            record = theirs[row["id"]]
            if task == "topic":
                assert mine[task]["label"] == record["prediction"]
                assert mine[task]["confidence"] == pytest.approx(record["confidence"], abs=1e-5)
            else:
                assert sorted(x["label"] for x in mine[task]["labels"]) == sorted(record["prediction"])
                top = {x["label"]: x["score"] for x in mine[task]["top"]}
                assert all(top[k] == pytest.approx(record["scores"][k], abs=1e-5) for k in top)
    cli = subprocess.run([sys.executable, "-m", "lexilab", "predict", "--json", str(run_dir), *texts],
                         capture_output=True, text=True, cwd=repo_root)
    assert cli.returncode == 0, cli.stderr[-1000:]
    lines = [json.loads(line) for line in cli.stdout.splitlines()]
    assert [line["topic"]["label"] for line in lines] == [o["topic"]["label"] for o in out]


def test_predict_bad_run_dir_is_one_line(tmp_path, repo_root):
    cli = subprocess.run([sys.executable, "-m", "lexilab", "predict", str(tmp_path), "hello"],
                         capture_output=True, text=True, cwd=repo_root)
    assert cli.returncode == 2 and cli.stderr.count("\n") == 1 and "lexilab: error:" in cli.stderr


def test_small_slice_of_real_datasets_trains(make_config, tmp_path):
    """GoEmotions + SciTLDR + topics7 from ../shared/data, a few examples each, all kinds at once."""
    limit = {"train": 24, "val": 8, "calibration": 8, "test": 8}
    config = make_config(("topic",))
    config["tasks"] = {
        "emotion": {"kind": "multilabel", "data": "goemotions", "max_length": 48, "limit": limit},
        "topic": {"kind": "multiclass", "data": "topics7", "max_length": 64, "limit": limit},
        "summary": {"kind": "seq2seq", "data": "scitldr", "max_length": 96, "max_target_length": 24,
                    "limit": limit, "generation": {"num_beams": 1, "max_new_tokens": 8}},
    }
    from lexilab.train.trainer import train_run

    metrics = train_run(config, tmp_path / "real" / "a" / "seed-0", progress=False)
    assert len(json.loads((tmp_path / "real" / "a" / "seed-0" / "tasks.json").read_text())["emotion"]["label_names"]) == 28
    assert set(metrics["test"]) == {"emotion", "topic", "summary"}
    env = json.loads((tmp_path / "real" / "a" / "seed-0" / "env.json").read_text())
    assert all(len(sha) == 64 for sha in env["datasets"]["emotion"]["files"].values())
