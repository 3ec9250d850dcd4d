"""Cross-field checks of a resolved run config: names against the registries, and the
combinations that cannot work (a seq2seq task on an encoder-only backbone, pooling on a
seq2seq task, a dataset of another kind than its task, ...). Called by
:func:`lexilab.config.check_config` once every field has the right type.

Encoder-only or encoder-decoder is decided without loading weights or reaching the network:
a mapping of T5 fields is a T5; a local directory's ``config.json`` ``model_type`` decides
(BERT family → encoder-only, t5/mt5 → encoder-decoder); a hub id is looked up in the local
Hugging Face cache, else by known ids and prefixes (``sentence-transformers/``, ``bert-``,
``roberta-``, ``microsoft/MiniLM``, ... → encoder-only; ``google/flan-t5``, ``t5-``, ... →
encoder-decoder). An unknown hub id is not checked here (the runner still refuses it).
"""
from __future__ import annotations

import inspect
import json
import os
from dataclasses import fields
from pathlib import Path
from typing import Any

from lexilab.config import Problem, effective_data_root, is_local_path, registry
from lexilab.data.registry import did_you_mean

ENCODER_DECODER_TYPES = ("t5", "mt5")
ENCODER_ONLY_PREFIXES = (
    "sentence-transformers/", "bert-", "google-bert/", "roberta-", "FacebookAI/", "distilbert",
    "microsoft/MiniLM", "nreimers/MiniLM", "albert-", "microsoft/deberta", "google/electra",
    "BAAI/bge-", "intfloat/e5-", "thenlper/gte-", "xlm-roberta",
)
ENCODER_DECODER_PREFIXES = ("google/flan-t5", "google/t5", "google-t5/", "t5-", "google/mt5")
# encoder layers of well-known hub ids (used to check freeze settings without the network)
KNOWN_LAYERS = {
    "google/flan-t5-small": 8, "google/flan-t5-base": 12, "google/flan-t5-large": 24,
    "t5-small": 6, "t5-base": 12, "google-t5/t5-small": 6, "google-t5/t5-base": 12,
    "sentence-transformers/all-MiniLM-L6-v2": 6, "sentence-transformers/all-MiniLM-L12-v2": 12,
    "sentence-transformers/all-mpnet-base-v2": 12, "bert-base-uncased": 12,
    "google-bert/bert-base-uncased": 12, "roberta-base": 12, "FacebookAI/roberta-base": 12,
    "distilbert-base-uncased": 6, "microsoft/MiniLM-L12-H384-uncased": 12,
}


def encoder_only_types() -> frozenset:
    from lexilab.model.encoder_only import ENCODER_ONLY_MODEL_TYPES
    return frozenset(ENCODER_ONLY_MODEL_TYPES)


def _layers_from_config_json(raw: dict) -> int | None:
    for key in ("num_layers", "num_hidden_layers", "n_layers"):
        if isinstance(raw.get(key), int):
            return raw[key]
    return None


def backbone_family(name: Any, data_root: Path | None = None) -> tuple[str | None, int | None, str]:
    """(``"encoder-decoder"`` | ``"encoder-only"`` | None, encoder layers or None, why)."""
    if isinstance(name, dict):
        return "encoder-decoder", int(name.get("num_layers", 6)), "a mapping of T5 config fields"
    config_json = None
    if name.startswith("data:") and data_root is not None:
        config_json = data_root / name[len("data:"):] / "config.json"
    elif os.path.isdir(name):
        config_json = Path(name) / "config.json"
    else:
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(name, "config.json")
            config_json = Path(cached) if isinstance(cached, str) else None
        except Exception:  # an id the hub library rejects is judged by its prefix below
            config_json = None
    if config_json is not None and config_json.is_file():
        raw = json.loads(config_json.read_text(encoding="utf-8"))
        model_type = raw.get("model_type")
        why = f"model_type {model_type!r} in {config_json}"
        if model_type in ENCODER_DECODER_TYPES:
            return "encoder-decoder", _layers_from_config_json(raw), why
        if model_type in encoder_only_types():
            return "encoder-only", _layers_from_config_json(raw), why
        return "unsupported", None, why
    if name.startswith(ENCODER_ONLY_PREFIXES):
        return "encoder-only", KNOWN_LAYERS.get(name), f"{name!r} is a known encoder-only hub id"
    if name.startswith(ENCODER_DECODER_PREFIXES):
        return "encoder-decoder", KNOWN_LAYERS.get(name), f"{name!r} is a known T5 hub id"
    return None, None, "unknown hub id"


def _check_backbone(config: dict, root: Path) -> list[Problem]:
    problems = []
    backbone = config["backbone"]
    name = backbone["name"]
    if isinstance(name, dict):
        from lexilab.model.t5 import T5Config

        known = [f.name for f in fields(T5Config)]
        for key in name:
            if key not in known:
                problems.append(Problem(f"backbone.name.{key}", f"not a T5 config field{did_you_mean(key, known)}"))
        if not problems:
            from lexilab.errors import LexilabError

            try:
                T5Config.from_dict(name, source="backbone.name", strict=True)
            except LexilabError as err:
                problems.append(Problem("", str(err)))
        if backbone["init"] != "random":
            problems.append(Problem("backbone.init", "a backbone given as a mapping of T5 config fields has no "
                                    "weights to load: use init: random"))
        if not backbone["tokenizer"]:
            problems.append(Problem("backbone.tokenizer", "a backbone given as a mapping of T5 config fields needs "
                                    "a tokenizer (a hub id, a folder, or data:NAME under the data root)"))
    for key in ("name", "tokenizer"):
        value = backbone[key]
        if isinstance(value, str) and value.startswith("data:"):
            if not (root / value[len("data:"):]).is_dir():
                problems.append(Problem(f"backbone.{key}", f"{value!r}: no folder {root / value[5:]} under the data root"))
        elif isinstance(value, str) and is_local_path(value, Path.cwd()) and not os.path.isdir(value):
            problems.append(Problem(f"backbone.{key}", f"{value!r}: no such directory"))
    if problems:
        return problems
    family, layers, why = backbone_family(name, root)
    if family == "unsupported":
        problems.append(Problem("backbone.name", f"{why}: lexilab supports T5 ({', '.join(ENCODER_DECODER_TYPES)}) "
                                f"and encoder-only {', '.join(sorted(encoder_only_types()))}"))
    if family == "encoder-only":
        for task, block in config["tasks"].items():
            if block["kind"] == "seq2seq":
                problems.append(Problem(f"tasks.{task}.kind", f"seq2seq task on an encoder-only backbone "
                                        f"({why}); seq2seq needs a T5 backbone"))
    freeze = backbone["freeze"]
    if layers is not None:
        for key, value in [("encoder_layers", freeze["encoder_layers"])] + [
            (f"unfreeze.{i}.encoder_layers", e["encoder_layers"]) for i, e in enumerate(freeze["unfreeze"])
        ]:
            if value > layers:
                problems.append(Problem(f"backbone.freeze.{key}", f"{value} but the backbone has {layers} encoder layers"))
    return problems


def _check_task_names(name: str, task: dict, root: Path) -> list[Problem]:
    from lexilab.data.registry import DATASETS, get_entry

    problems = []
    path = f"tasks.{name}"
    if task["pooling"] is not None:
        POOLINGS = registry("pooling")
        if task["pooling"] not in POOLINGS:
            problems.append(Problem(f"{path}.pooling", f"unknown pooling {task['pooling']!r}"
                                    f"{did_you_mean(task['pooling'], POOLINGS)}; known: {', '.join(sorted(POOLINGS))}"))
    data = task["data"]
    options = dict(data) if isinstance(data, dict) else {}
    dataset = options.pop("name", None) if isinstance(data, dict) else data
    where = f"{path}.data" + (".name" if isinstance(data, dict) else "")
    if not isinstance(dataset, str):
        return problems + [Problem(where, "a dataset mapping needs name: <dataset> (and its options)")]
    try:
        entry = get_entry(dataset)
    except Exception:  # noqa: BLE001 — get_entry raises LexilabError for unknown names
        known = sorted(DATASETS)
        return problems + [Problem(where, f"unknown dataset {dataset!r}{did_you_mean(dataset, known)}; "
                                   f"known: {', '.join(known)}")]
    params = inspect.signature(entry.loader).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        allowed = [n for n in list(params)[1:]]  # the first parameter is the data root
        for key in options:
            if key not in allowed:
                problems.append(Problem(f"{path}.data.{key}", f"not an option of dataset {dataset!r}"
                                        f"{did_you_mean(key, allowed)}; its options: {', '.join(allowed) or 'none'}"))
    kind = _dataset_kind(entry, options)
    if kind is None and task["kind"] not in entry.kind.split("|") and entry.kind != "any":
        kind = entry.kind
    if kind is not None and kind != task["kind"]:
        problems.append(Problem(f"{path}.kind", f"{task['kind']} but dataset {dataset!r} is {kind}"))
    missing = [f for f in entry.files if not (root / f).exists()]
    if missing:
        problems.append(Problem(where, f"dataset {dataset!r} needs {root / missing[0]}"
                                f"{f' (and {len(missing) - 1} more files)' if len(missing) > 1 else ''}, "
                                "which does not exist; set data_root or $LEXILAB_DATA"))
    return problems


def _dataset_kind(entry, options: dict) -> str | None:
    """The kind a dataset yields; a loader whose kind depends on its options (synthetic) may
    expose ``kind_for(**options)``; otherwise the registered kind."""
    kind_for = getattr(entry.loader, "kind_for", None)
    if callable(kind_for):
        try:
            return kind_for(**options)
        except Exception:  # noqa: BLE001 — a bad option is reported by the loader itself
            return None
    kinds = entry.kind.split("|")  # e.g. synthetic: "multiclass|multilabel|seq2seq"
    return None if len(kinds) > 1 or entry.kind == "any" else entry.kind


def _check_weighting(config: dict) -> list[Problem]:
    problems = []
    weighting = config["weighting"]
    weighted = {t: b["weight"] for t, b in config["tasks"].items() if b["weight"] != 1.0}
    if weighting["kind"] == "fixed":
        given = weighting.get("weights")
        from_tasks = {t: b["weight"] for t, b in config["tasks"].items()}
        if given is None:
            weighting["weights"] = from_tasks
        elif weighted and given != from_tasks:  # equal: a resolved config checked again
            problems.append(Problem("weighting.weights", "set either weighting.weights or the tasks' weight keys, "
                                    f"not both (tasks with a weight: {', '.join(weighted)})"))
        elif not isinstance(given, dict) or set(given) != set(config["tasks"]):
            problems.append(Problem("weighting.weights", f"expected one weight per task ({', '.join(config['tasks'])}), "
                                    f"found {given!r}"))
    elif weighted:
        task, value = next(iter(weighted.items()))
        problems.append(Problem(f"tasks.{task}.weight", f"{value} is used only by weighting kind 'fixed', but "
                                f"weighting.kind is {weighting['kind']!r}; set weighting: {{kind: fixed}} or drop it"))
    return problems


def _check_metrics(config: dict) -> list[Problem]:
    """Metric names: early stopping (``val_loss``, ``val_loss/<task>``, ``task_metrics`` or ``<task>/<metric>``)
    and each task's ``early_stopping_metric``, against the metrics of the task's kind."""
    from lexilab.metrics import METRICS, is_known_metric

    problems = []
    tasks = config["tasks"]
    for name, task in tasks.items():
        metric = task["early_stopping_metric"]
        if metric is not None and not is_known_metric(task["kind"], metric):
            known = METRICS.get(task["kind"], ())
            problems.append(Problem(f"tasks.{name}.early_stopping_metric", f"{metric!r} is not a {task['kind']} metric"
                                    f"{did_you_mean(metric, known)}; known: {', '.join(known)}"))
        loss = task["loss"]
        if task["kind"] == "multiclass" and loss["focal_gamma"] is not None and loss["label_smoothing"]:
            problems.append(Problem(f"tasks.{name}.loss", "focal_gamma and label_smoothing cannot be combined"))
    metric = config["train"]["early_stopping"]["metric"]
    task, _, name = metric.partition("/")
    if metric in ("val_loss", "task_metrics") or (task == "val_loss" and name in tasks):
        return problems
    if task == "val_loss" or task not in tasks:
        missing = name if task == "val_loss" else task
        problems.append(Problem("train.early_stopping.metric", f"{metric!r} names task {missing!r}"
                                f"{did_you_mean(missing, tasks)}, which this run does not have; "
                                f"use val_loss, val_loss/<task>, task_metrics or <task>/<metric> with tasks {', '.join(tasks)}"))
    elif not is_known_metric(tasks[task]["kind"], name):
        known = METRICS.get(tasks[task]["kind"], ())
        problems.append(Problem("train.early_stopping.metric", f"{name!r} is not a {tasks[task]['kind']} metric"
                                f"{did_you_mean(name, known)}; known: {', '.join(known)}"))
    return problems


def cross_checks(config: dict) -> list[Problem]:
    """Every cross-field problem of a resolved run config (may fill derived values, e.g. fixed
    weighting's weights from the tasks' ``weight``). A check whose fields are missing or
    mistyped (already reported by the schema) is skipped, so all other problems still show."""
    root = effective_data_root(config)
    from lexilab.train.weighting.gramian import engine_problems

    checks = [lambda: _check_backbone(config, root), lambda: _check_weighting(config),
              lambda: _check_metrics(config), lambda: _check_precision(config), lambda: engine_problems(config)]
    checks += [lambda n=name, t=task: _check_task_names(n, t, root) for name, task in config.get("tasks", {}).items()]
    problems = []
    for check in checks:
        try:
            problems.extend(check())
        except (KeyError, TypeError, AttributeError):
            continue
    return problems


def _check_precision(config: dict) -> list[Problem]:
    if config["train"]["precision"] == "fp16" and config["train"]["device"] in ("cpu", "mps"):
        return [Problem("train.precision", f"fp16 needs a CUDA device; train.device is "
                        f"{config['train']['device']!r} (use bf16 or fp32)")]
    return []
