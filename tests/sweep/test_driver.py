"""The sweep driver end to end on tiny synthetic runs: failures, pruning, vanished jobs,
re-running a finished sweep, the known-answer optimum."""
from __future__ import annotations

import os
import subprocess
import sys

import optuna
import pytest
import yaml

from lexilab.runs import read_status
from lexilab.spec import load_spec
from lexilab.sweep.driver import Driver
from lexilab.sweep.study import load_study, load_sweep


def _study(path, results):
    return load_study(load_sweep(str(path), str(results), None))


def _configs(run_dir):
    with open(run_dir / "config.yaml", encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def test_failing_trial_is_fail_with_its_error_and_the_sweep_goes_on(sweep_spec, cli, results, shared_data):
    # a train split of 0 rows passes the config schema but raises when the data is built
    path = sweep_spec({"params": {"tasks.animal.data.n.train": {"type": "categorical", "choices": [0, 64]}},
                       "objectives": "val_loss", "trials": 2, "sampler": "grid"})
    code, out, err = cli("sweep", path)
    assert code == 0, err
    trials = {t.params["tasks.animal.data.n.train"]: t for t in _study(path, results).trials}
    assert trials[0].state == optuna.trial.TrialState.FAIL
    assert "split 'train' of 'synthetic-disjoint_b' has no rows" in trials[0].user_attrs["error"]
    assert trials[64].state == optuna.trial.TrialState.COMPLETE
    failed_run = results / "tiny_sweep" / f"trial-{trials[0].number}" / "seed-0"
    assert read_status(failed_run)["state"] == "failed"
    code, out, err = cli("sweep", "status", path)
    assert code == 0 and "fail" in out and "has no rows" in out


def test_median_pruner_prunes_a_designed_bad_region(sweep_spec, results, shared_data):
    # lr 3.0 makes AdamW diverge (validation loss several nats above ln 2); lr 0.01 does not
    base_path = sweep_spec({"params": {"optim.lr": {"type": "categorical", "choices": [0.01, 3.0]}},
                            "objectives": "val_loss/colour", "trials": 3,
                            "pruner": {"kind": "median", "n_startup_trials": 2, "n_warmup_steps": 0}})
    doc = yaml.safe_load(base_path.read_text())
    doc["base"]["train"].update({"max_steps": 8, "eval_every": 2})
    base_path.write_text(yaml.safe_dump(doc, sort_keys=False))
    sweep = load_sweep(str(base_path), str(results), None)
    driver = Driver(sweep.spec, sweep.root, sweep.storage, poll_s=0.05)
    study = driver.open_study()
    for lr in (0.01, 0.01, 3.0):
        study.enqueue_trial({"optim.lr": lr})
    driver.run()
    bad = study.trials[2]
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE", "PRUNED"]
    run_dir = results / "tiny_sweep" / "trial-2" / "seed-0"
    status = read_status(run_dir)
    assert status["state"] == "pruned" and status["pruned_step"] < 8
    assert (run_dir / "config.yaml").is_file() and not (run_dir / "metrics.json").exists()
    assert max(bad.intermediate_values) == status["pruned_step"]
    from lexilab.commands.status import status_table

    text, counts = status_table("tiny_sweep", results)  # `python -m lexilab status tiny_sweep`
    assert counts["pruned"] == 1 and counts["done"] == 2
    assert any(line.startswith("trial-2") and "pruned" in line for line in text.splitlines())


def test_wilcoxon_pruner_skips_the_remaining_seeds_of_a_bad_trial(sweep_spec, results):
    # seeds of the diverging lr 3.0 are worse than the best trial's same seeds: after two of them
    # the one-sided signed-rank test (exact p = 1/4 < 0.5) prunes, and seed 2 never trains
    path = sweep_spec({"params": {"optim.lr": {"type": "categorical", "choices": [0.01, 3.0]}},
                       "objectives": "val_loss/colour", "trials": 2, "seeds_per_trial": 3,
                       "pruner": {"kind": "wilcoxon", "p_threshold": 0.5, "n_startup_steps": 2}})
    sweep = load_sweep(str(path), str(results), None)
    driver = Driver(sweep.spec, sweep.root, sweep.storage, poll_s=0.05)
    study = driver.open_study()
    for lr in (0.01, 3.0):
        study.enqueue_trial({"optim.lr": lr})
    driver.run()
    good, bad = study.trials
    assert good.state.name == "COMPLETE" and sorted(good.intermediate_values) == [0, 1, 2]
    assert bad.state.name == "PRUNED" and sorted(bad.intermediate_values) == [0, 1]
    assert all(bad.intermediate_values[k] > good.intermediate_values[k] for k in (0, 1))
    trial_dir = results / "tiny_sweep" / "trial-1"
    assert [read_status(trial_dir / f"seed-{k}")["state"] for k in (0, 1)] == ["done", "done"]
    assert not (trial_dir / "seed-2").exists()


def test_finished_sweep_trains_nothing(sweep_spec, cli, results):
    path = sweep_spec({"params": {"optim.lr": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True}},
                       "objectives": "colour/accuracy", "trials": 2})
    assert cli("sweep", path)[0] == 0
    before = {p: read_status(p) for p in results.glob("tiny_sweep/trial-*/seed-*")}
    code, out, err = cli("sweep", path)
    assert code == 0, err
    after = {p: read_status(p) for p in results.glob("tiny_sweep/trial-*/seed-*")}
    assert before == after and len(after) == 2
    assert len(_study(path, results).trials) == 2
    code, out, err = cli("sweep", path, "--trials", "3")  # asking for more continues the same study
    assert code == 0 and len(_study(path, results).trials) == 3


def test_vanished_job_is_rerun_then_failed_never_left_running(sweep_spec, results):
    path = sweep_spec({"params": {"optim.lr": {"type": "float", "low": 1e-3, "high": 1e-2}},
                       "objectives": "val_loss", "trials": 1, "storage": {"max_retry": 1}})
    sweep = load_sweep(str(path), str(results), None)
    driver = Driver(sweep.spec, sweep.root, sweep.storage, poll_s=0.05)
    study = driver.open_study()
    trial = study.ask()
    trial.suggest_float("optim.lr", 1e-3, 1e-2)
    # its job was started and then vanished (SIGKILL, preemption): a run left `running` by a dead process
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    run_dir = results / "tiny_sweep" / "trial-0" / "seed-0"
    from lexilab.config import identity_hash
    from lexilab.runs import update_status, write_run

    config, _ = sweep.spec.search.config_for({"optim.lr": trial.params["optim.lr"]}, None)
    write_run(run_dir, config, {"experiment": "tiny_sweep", "arm": "trial-0", "seed": 0}, identity_hash(config))
    study._storage.set_trial_user_attr(trial._trial_id, "run_dirs", [str(run_dir)])
    dead = {"state": "running", "pid": gone.pid, "host": os.uname().nodename, "executor": "inline", "attempts": 2}
    update_status(run_dir, **dead)
    driver.run()  # attempts (2) > max_retry (1): failed, with the reason
    frozen = study.trials[0]
    assert frozen.state == optuna.trial.TrialState.FAIL
    assert "ended without a result 2 times" in frozen.user_attrs["error"]
    # with retries left, the same vanished run is rerun from its directory and the trial completes
    path2 = sweep_spec({"params": {"optim.lr": {"type": "float", "low": 1e-3, "high": 1e-2}},
                        "objectives": "val_loss", "trials": 1}, name="again", filename="again.yaml")
    sweep2 = load_sweep(str(path2), str(results), None)
    driver2 = Driver(sweep2.spec, sweep2.root, sweep2.storage, poll_s=0.05)
    study2 = driver2.open_study()
    trial2 = study2.ask()
    trial2.suggest_float("optim.lr", 1e-3, 1e-2)
    run_dir2 = results / "again" / "trial-0" / "seed-0"
    write_run(run_dir2, config, {"experiment": "again", "arm": "trial-0", "seed": 0}, identity_hash(config))
    study2._storage.set_trial_user_attr(trial2._trial_id, "run_dirs", [str(run_dir2)])
    update_status(run_dir2, **{**dead, "attempts": 1})
    driver2.run()
    assert study2.trials[0].state == optuna.trial.TrialState.COMPLETE
    assert read_status(run_dir2)["state"] == "done" and read_status(run_dir2)["attempts"] == 2


@pytest.mark.slow
def test_known_answer_sweep_finds_the_weight_region_that_trains_the_objective_task(sweep_spec, cli, results,
                                                                                  make_base):
    """Truth by construction: the animal head is trained by the animal loss only and the two tasks
    read disjoint features, so with weight 0 on animal its validation accuracy stays at chance
    (balanced labels: 1/2), and it rises with the animal task's share of the weight. The sweep must
    find a best trial with most of the weight on animal, clearly above chance."""
    base = make_base(max_steps=40)
    for task in base["tasks"].values():
        task["data"]["n"].update({"train": 256, "val": 64})
    base["train"]["batch_size"] = 32
    path = sweep_spec({"task_weights": {"space": "simplex", "low": 0}, "objectives": "animal/accuracy",
                       "trials": 8, "sampler": {"kind": "random", "seed": 3}}, base=base)
    code, out, err = cli("sweep", path)
    assert code == 0, err
    study = _study(path, results)
    assert len(study.trials) == 8
    best = study.best_trial
    weights = best.user_attrs["weights"]
    assert weights["animal"] > weights["colour"], weights
    assert best.value >= 0.65
    # and the run directory of the best trial trained exactly those weights
    config = _configs(results / "tiny_sweep" / f"trial-{best.number}" / "seed-0")
    assert config["weighting"]["kind"] == "fixed"
    assert config["tasks"]["animal"]["weight"] == pytest.approx(weights["animal"])
