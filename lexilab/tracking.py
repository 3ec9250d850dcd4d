"""MLflow mirror of each run. Files in the run directory are the source of truth; MLflow gets
params (the flattened resolved config), metrics, tags and key artifacts for browsing.

Default store: ``sqlite:///<results>/mlflow.db`` with artifacts under ``<results>/mlartifacts``.
"""
from __future__ import annotations

import fcntl
import os
import re
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

from lexilab.io import read_jsonl

# MLflow params are strings of bounded length; longer values are cut (the run's config.yaml is logged whole)
MAX_PARAM_LENGTH = 500


def metric_name(name: str) -> str:
    """MLflow allows alphanumerics, _ - . space : / in names (per-domain metrics use '@')."""
    return re.sub(r"[^\w\-. :/]", "_", name)


def settings(cfg: dict | None, results_root: Path) -> tuple[str, str]:
    cfg = cfg or {}
    uri = cfg.get("tracking_uri") or f"sqlite:///{(results_root / 'mlflow.db').resolve()}"
    artifacts = cfg.get("artifact_location") or (results_root / "mlartifacts").resolve().as_uri()
    return uri, artifacts


def enabled(config: dict) -> bool:
    return bool((config.get("tracking") or {}).get("mlflow", True))


def _client(uri: str):
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _lock_path(uri: str, results_root: Path) -> Path:
    """A lock file beside a SQLite store (``.mlflow.db.lock``), else in the results root."""
    parsed = urlparse(uri)
    if parsed.scheme == "sqlite" and parsed.path not in ("", "/", "/:memory:"):
        db = Path(parsed.path)
        return db.with_name(f".{db.name}.lock")
    return results_root / ".mlflow.lock"


@contextmanager
def store_lock(uri: str, results_root: Path):
    """Serialise use of the store between processes. Two processes that open a new store at
    once both run MLflow's schema creation, and the second dies with sqlalchemy's "table
    experiments already exists"; concurrent SQLite writers also get "database is locked"."""
    path = _lock_path(uri, results_root)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _ensure(client, name: str, artifacts: str) -> str:
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    return client.create_experiment(name, artifact_location=artifacts)


def ensure_experiment(name: str, config: dict, results_root: str | os.PathLike | None = None) -> str | None:
    """Create the MLflow experiment (before any job starts: parallel jobs would race to create it)."""
    if not enabled(config):
        return None
    root = Path(results_root or os.environ.get("LEXILAB_RESULTS", "results"))
    root.mkdir(parents=True, exist_ok=True)
    uri, artifacts = settings(config.get("tracking"), root)
    with store_lock(uri, root):
        return _ensure(_client(uri), name, artifacts)


def flatten(config: dict, prefix: str = "") -> dict[str, str]:
    flat = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = str(value)[:MAX_PARAM_LENGTH]
    return flat


def mirror_run(run_dir: Path, config: dict, state: str, metrics: dict | None, tags: dict) -> str | None:
    """Log one finished (or failed) run: params, val/test metrics, history curves, artifacts."""
    if not enabled(config):
        return None
    results_root = run_dir.parents[2]
    uri, artifacts = settings(config.get("tracking"), results_root)
    with store_lock(uri, results_root):
        client = _client(uri)
        return _mirror(client, _ensure(client, tags["experiment"], artifacts), run_dir, config, state, metrics, tags)


def _mirror(client, experiment_id: str, run_dir: Path, config: dict, state: str, metrics: dict | None,
            tags: dict) -> str:
    from mlflow.entities import Metric, Param

    run = client.create_run(experiment_id, run_name=f"{tags['arm']}/seed-{tags['seed']}",
                            tags={k: str(v) for k, v in tags.items()})
    run_id = run.info.run_id
    params = [Param(k, v) for k, v in sorted(flatten(config).items())]
    for start in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
        client.log_batch(run_id, params=params[start:start + 100])
    values = []
    for split, tasks in (metrics or {}).items():
        for task, task_metrics in tasks.items():
            for metric, value in task_metrics.items():
                if isinstance(value, (int, float)):
                    values.append(Metric(metric_name(f"{split}/{task}/{metric}"), float(value), 0, 0))
    history = run_dir / "history.jsonl"
    if history.exists():
        for record in read_jsonl(history):
            for key, value in record.items():
                if (key.startswith("loss/") or key.startswith("val_loss") or key == "lr") and isinstance(value, (int, float)):
                    values.append(Metric(metric_name(key), float(value), 0, int(record["step"])))
    for start in range(0, len(values), 1000):
        client.log_batch(run_id, metrics=values[start:start + 1000])
    for name in ("config.yaml", "metrics.json", "env.json", "thresholds.json", "status.json"):
        if (run_dir / name).exists():
            client.log_artifact(run_id, str(run_dir / name))
    client.set_terminated(run_id, status="FINISHED" if state == "done" else "FAILED")
    return run_id
