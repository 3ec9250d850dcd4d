"""The MLflow store under concurrent first use: processes that create a new store at the same
moment (two `run` commands of different specs into a new results root) all succeed."""
from __future__ import annotations

import multiprocessing as mp
import traceback

import pytest

pytest.importorskip("mlflow")


def _create(root, name, barrier, errors):
    from lexilab.tracking import ensure_experiment

    barrier.wait()
    try:
        ensure_experiment(name, {"tracking": {}}, root)
    except BaseException:
        errors.put(f"{name}: {traceback.format_exc().splitlines()[-1]}")


@pytest.mark.parametrize("processes", [3])
def test_concurrent_first_use_of_a_new_store(tmp_path, processes):
    import mlflow  # noqa: F401  imported before forking: the children start at once

    context = mp.get_context("fork")
    barrier, errors = context.Barrier(processes), context.Queue()
    names = [f"spec{i}" for i in range(processes)]
    workers = [context.Process(target=_create, args=(tmp_path, n, barrier, errors)) for n in names]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    problems = []
    while not errors.empty():
        problems.append(errors.get())
    assert not problems, problems
    assert all(w.exitcode == 0 for w in workers)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert sorted(e.name for e in client.search_experiments()) == sorted(names + ["Default"])
