"""The evaluation protocol: val chooses, calibration tunes, test is evaluated once.

- Early stopping and checkpoint selection look at the val split only.
- Multi-label thresholds are tuned on the calibration split (carved from train), then frozen.
- The test split is evaluated exactly once, at the end, with the selected checkpoint.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
from safetensors.torch import load_model, save_model
from tqdm.auto import tqdm

from lexilab.io import atomic_output, atomic_write_json, write_jsonl
from lexilab.errors import LexilabError

BEST_DIR = Path("checkpoints") / "best"
TASK_METRICS = "task_metrics"  # early stopping on the mean of every task's early_stopping_metric
WEIGHTS_FILE = "model.safetensors"


class EarlyStopping:
    """Patience counted in evaluations. ``metric`` on val: ``val_loss`` (mean over tasks),
    ``val_loss/<task>``, ``<task>/<metric>``, or ``task_metrics`` (the mean over tasks of each
    task's ``early_stopping_metric``, sign-adjusted so that higher is better)."""

    def __init__(self, cfg: dict):
        self.metric = cfg.get("metric") or "val_loss"
        self.patience = cfg.get("patience")
        mode = cfg.get("mode")
        self.mode = mode or ("min" if "loss" in self.metric else "max")
        if self.mode not in ("min", "max"):
            raise LexilabError(f"train.early_stopping.mode: {self.mode!r} is not min or max")
        self.best: float | None = None
        self.best_step: int | None = None
        self.bad = 0
        self.should_stop = False

    def value(self, record: dict, trainer) -> float:
        if self.metric == "val_loss" or self.metric in record:
            return float(record[self.metric])
        if self.metric == TASK_METRICS:
            # each task's own tasks.<name>.early_stopping_metric; minimised ones enter negated
            metrics, _ = evaluate_split(trainer, "val")
            values = [task.val_objective(metrics[name]) * (1.0 if task.val_mode == "max" else -1.0)
                      for name, task in trainer.tasks.items()]
            record.update({f"val/{name}/{task.objective_metric}": metrics[name][task.objective_metric]
                           for name, task in trainer.tasks.items()})
            return sum(values) / len(values)
        task, _, metric = self.metric.partition("/")
        if task not in trainer.tasks:
            raise LexilabError(f"train.early_stopping.metric: no task {task!r} (tasks: {', '.join(trainer.tasks)})")
        metrics, _ = evaluate_split(trainer, "val", only=[task])
        if metric not in metrics[task]:
            raise LexilabError(
                f"train.early_stopping.metric: task {task!r} has no metric {metric!r}; "
                f"available: {', '.join(sorted(k for k in metrics[task] if k != 'details'))}"
            )
        return float(metrics[task][metric])

    def update(self, value: float, step: int) -> bool:
        better = self.best is None or (value < self.best if self.mode == "min" else value > self.best)
        if better and math.isfinite(value):
            self.best, self.best_step, self.bad = value, step, 0
            return True
        self.bad += 1
        if self.patience is not None and self.bad >= int(self.patience):
            self.should_stop = True
        return False

    def state_dict(self) -> dict:
        return {"best": self.best, "best_step": self.best_step, "bad": self.bad, "should_stop": self.should_stop}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_step = state["best"], state["best_step"]
        self.bad, self.should_stop = state["bad"], state["should_stop"]


@torch.no_grad()
def evaluate_losses(trainer, split: str) -> dict[str, float]:
    """Mean loss per task over a split (example-weighted), in eval mode."""
    trainer.model.eval()
    size = int(trainer.train_cfg.get("eval_batch_size") or trainer.train_cfg["batch_size"])
    losses = {}
    for name, task in trainer.tasks.items():
        total, count = 0.0, 0
        for batch in task.batches(split, size, None, shuffle=False):
            loss = trainer._loss(name, batch)
            total += loss.item() * len(batch)
            count += len(batch)
        losses[name] = total / max(count, 1)
    return losses


@torch.no_grad()
def predict_split(trainer, name: str, split: str) -> list[dict]:
    task = trainer.tasks[name]
    trainer.model.eval()
    size = int(trainer.train_cfg.get("eval_batch_size") or trainer.train_cfg["batch_size"])
    generation = task.cfg.get("generation") or {}
    out = []
    batches = task.batches(split, size, None, shuffle=False)
    for batch in tqdm(batches, desc=f"{split} {name}", disable=not trainer.progress, leave=False):
        out.extend(task.predict(trainer.backbone, trainer.model.module_for(name), task.collate(batch), generation))
    return out


def evaluate_split(trainer, split: str, thresholds: dict | None = None, only=None):
    """Metrics and per-example records of every task on ``split``."""
    metrics, records = {}, {}
    for name, task in trainer.tasks.items():
        if only is not None and name not in only:
            continue
        predictions = predict_split(trainer, name, split)
        task_thresholds = (thresholds or {}).get(name)
        kwargs = {"thresholds": task_thresholds} if task.kind == "multilabel" else {}
        metrics[name], records[name] = task.evaluate(predictions, split, **kwargs)
    return metrics, records


def save_best_weights(trainer) -> None:
    # atomic, with the mode of every other run file (co-workers read run folders)
    with atomic_output(trainer.run_dir / BEST_DIR / WEIGHTS_FILE) as tmp:
        save_model(trainer.model, str(tmp))  # handles tied (shared) tensors


def load_best_weights(model, run_dir: Path) -> bool:
    path = Path(run_dir) / BEST_DIR / WEIGHTS_FILE
    if not path.exists():
        return False
    load_model(model, str(path), strict=True)  # raises on missing or unexpected tensors
    return True


def tune_thresholds(trainer) -> dict[str, list[float]]:
    """Multi-label thresholds from the calibration split (the task owns the tuning modes)."""
    thresholds = {}
    for name, task in trainer.tasks.items():
        if task.kind != "multilabel":
            continue
        # mode `none` uses the configured threshold: no predictions needed
        predictions = [] if task.tune_mode == "none" else predict_split(trainer, name, "calibration")
        thresholds[name] = [float(t) for t in task.tune_thresholds(predictions)]
    return thresholds


def finalize(trainer) -> dict:
    """Select the best checkpoint, tune thresholds on calibration, evaluate val and test once."""
    run_dir = trainer.run_dir
    if not load_best_weights(trainer.model, run_dir):
        save_best_weights(trainer)  # no evaluation chose anything: the final weights are the selection
    thresholds = tune_thresholds(trainer)
    atomic_write_json(run_dir / "thresholds.json", thresholds)
    metrics, details = {}, {}
    for split in ("val", "test"):
        split_metrics, records = evaluate_split(trainer, split, thresholds)
        metrics[split], details[split] = {}, {}
        for name, values in split_metrics.items():
            values = dict(values)
            if "details" in values:
                details[split][name] = values.pop("details")
            metrics[split][name] = values
            write_jsonl(run_dir / "predictions" / split / f"{name}.jsonl", records[name])
    metrics_summary = {
        "selected_step": trainer.early.best_step if trainer.early.best_step is not None else trainer.step,
        "steps": trainer.step,
        "nonfinite_skipped": trainer.nonfinite_skipped,
    }
    from lexilab.inference import save_task_metadata

    save_task_metadata(trainer)
    atomic_write_json(run_dir / "metrics_details.json", details)
    atomic_write_json(run_dir / "training_summary.json", metrics_summary)
    atomic_write_json(run_dir / "metrics.json", metrics)
    return metrics
