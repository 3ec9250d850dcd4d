"""Fixtures for report tests: results trees with known metric values, written the way the run
command writes them (lexilab.runs.write_run + status.json + metrics.json)."""
from __future__ import annotations

from pathlib import Path

import pytest

from lexilab.io import atomic_write_json, write_jsonl
from lexilab.runs import update_status, write_run


def make_run(root: Path, experiment: str, arm: str, seed: int, *, levels: dict, tasks: dict,
             metrics: dict | None = None, state: str = "done", error: str | None = None,
             history: list | None = None, gradcos: list | None = None, details: dict | None = None,
             predictions: dict | None = None) -> Path:
    """One run directory. ``tasks``: task -> kind; ``metrics``: {split: {task: {metric: value}}};
    ``predictions``: {(split, task): records}."""
    run_dir = root / experiment / arm / f"seed-{seed}"
    config = {"seed": seed, "tasks": {t: {"kind": k} for t, k in tasks.items()}}
    meta = {"experiment": experiment, "arm": arm, "levels": levels, "seed": seed}
    write_run(run_dir, config, meta, f"h{arm}{seed}")
    if state != "pending":
        update_status(run_dir, state=state, error=error)
    if metrics is not None:
        atomic_write_json(run_dir / "metrics.json", metrics)
    if history:
        write_jsonl(run_dir / "history.jsonl", history)
    if gradcos:
        write_jsonl(run_dir / "gradcos.jsonl", gradcos)
    if details:
        atomic_write_json(run_dir / "metrics_details.json", details)
    for (split, task), records in (predictions or {}).items():
        write_jsonl(run_dir / "predictions" / split / f"{task}.jsonl", records)
    return run_dir


# Known values: topic accuracy per arm and seed (three arms share seeds 0-2)
KNOWN = {
    "mean": [0.80, 0.82, 0.81],
    "attention": [0.84, 0.85, 0.86],
    "max": [0.79, 0.83, 0.80],
}
EMOTION = {"mean": [0.30, 0.31, 0.29], "attention": [0.35, 0.36, 0.33], "max": [0.30, 0.28, 0.31]}


@pytest.fixture
def known_results(tmp_path) -> Path:
    """results/pooling/<arm>/seed-<n> with KNOWN values, plus one failed and one pending run."""
    root = tmp_path / "results"
    for arm, values in KNOWN.items():
        for seed, value in enumerate(values):
            make_run(root, "pooling", arm, seed, levels={"pooling": arm},
                     tasks={"topic": "multiclass", "emotion": "multilabel"},
                     metrics={"test": {"topic": {"accuracy": value, "f1_macro": value - 0.05},
                                       "emotion": {"f1_samples": EMOTION[arm][seed]}},
                              "val": {"topic": {"accuracy": value + 0.01}}})
    make_run(root, "pooling", "mean", 3, levels={"pooling": "mean"}, tasks={"topic": "multiclass"},
             state="failed", error="RuntimeError: CUDA out of memory")
    make_run(root, "pooling", "attention", 3, levels={"pooling": "attention"}, tasks={"topic": "multiclass"},
             state="pending")
    return root


@pytest.fixture
def make():
    return make_run


TINY_SPEC = Path(__file__).with_name("tiny_experiment.yaml")  # what tests/conftest.py's tiny_experiment_run trains


@pytest.fixture(scope="session")
def tiny_results(tiny_experiment_run) -> Path:
    """Results of a tiny REAL experiment (tests/report/tiny_experiment.yaml: 4 arms × 3 seeds of a
    tiny random T5 on synthetic tasks), run once per session through `python -m lexilab run`
    (tests/conftest.py starts it in the background)."""
    proc, root = tiny_experiment_run
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return root
