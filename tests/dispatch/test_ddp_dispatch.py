"""train.distributed runs through the executors: the real local SLURM runs one job with two
tasks (one rank each, gloo on CPU, ranks read from SLURM's environment) that ends on the metrics
of one process with the doubled batch; the local executor gives such a run two slots."""
from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import pytest

from lexilab.dispatch import dispatch
from lexilab.io import read_json
from lexilab.runner import run_in_dir
from lexilab.runs import read_status



def _ddp_conftest():
    """tests/distributed/conftest.py (test folders are not packages): its metrics comparison."""
    spec = importlib.util.spec_from_file_location("ddp_conftest", Path(__file__).parents[1] / "distributed" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _two_task_config(runs, batch: int, distributed: bool) -> dict:
    config = runs.base(max_steps=6, checkpoint_every=3)
    colour = config["tasks"]["colour"]
    config["tasks"]["shape"] = copy.deepcopy(colour)
    config["tasks"]["shape"]["data"]["task"] = "shared_b"
    config["backbone"]["name"]["dropout_rate"] = 0.0  # both sides run the same forward passes
    config["train"]["batch_size"] = batch
    config["train"]["distributed"] = {"enabled": distributed, "backend": "gloo", "timeout_s": 120}
    return config


@pytest.mark.slurm
@pytest.mark.slow
def test_a_distributed_run_is_one_slurm_job_with_one_task_per_process(slurm, runs):
    run_dir = runs.write("ddp", config=_two_task_config(runs, 4, True))
    result = dispatch([run_dir], "slurm", profile="local", resources={"tasks_per_node": 2},
                      log_dir=runs.root / "logs")
    states = result.wait(timeout=400)
    status = read_status(run_dir)
    assert states[run_dir] == "done", status.get("error")
    assert status["world_size"] == 2  # rank 0 saw SLURM's two tasks
    expected = run_in_dir(runs.write("single", config=_two_task_config(runs, 8, False)), progress=False)
    _ddp_conftest().assert_metrics_close(read_json(run_dir / "metrics.json"), expected)


@pytest.mark.slow
def test_the_local_executor_gives_a_distributed_run_one_slot_per_process(runs):
    run_dir = runs.write("ddp", config=_two_task_config(runs, 4, True))
    dispatch([run_dir], "local", max_parallel=2, resources={"tasks_per_node": 2}, wait=True,
             log_dir=runs.root / "logs")
    status = read_status(run_dir)
    assert status["state"] == "done", status.get("error")
    assert status["world_size"] == 2 and status["slot"] == [0, 1]
    assert (run_dir / "metrics.json").exists()


def test_a_distributed_run_wider_than_the_pool_is_refused_before_anything_is_queued(runs):
    from lexilab.errors import LexilabError

    run_dir = runs.write("ddp", config=_two_task_config(runs, 4, True))
    with pytest.raises(LexilabError, match="needs 2 slots; the pool has 1"):
        dispatch([run_dir], "local", max_parallel=1, resources={"tasks_per_node": 2}, wait=True,
                 log_dir=runs.root / "logs")
    assert read_status(run_dir)["state"] == "pending" and "executor" not in read_status(run_dir)
