"""Build everything one run needs from its resolved config: device, data, tokenizer,
backbone, tasks and the multi-task model. The same path for every arm of every study."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from lexilab.config import effective_data_root
from lexilab.data.registry import SPLITS, Dataset, load_dataset
from lexilab.errors import LexilabError


class MultiTaskModel(nn.Module):
    """One backbone shared by every task; per-task modules (pooling + head) for classification.

    Seq2seq tasks use the backbone's decoder and LM head; classification tasks use the encoder,
    their pooling and their head and never run the decoder.
    """

    def __init__(self, backbone: nn.Module, tasks: dict):
        super().__init__()
        self.backbone = backbone
        modules = {}
        for name, task in tasks.items():
            module = task.build_module(backbone)
            if module is not None:
                modules[name] = module
        self.task_modules = nn.ModuleDict(modules)

    def module_for(self, task_name: str) -> nn.Module | None:
        return self.task_modules[task_name] if task_name in self.task_modules else None


@dataclass
class Assembly:
    config: dict
    device: torch.device
    datasets: dict[str, Dataset]
    tokenizer: object
    tasks: dict  # name -> Task
    model: MultiTaskModel
    leakage: dict = field(default_factory=dict)


def resolve_device(name: str) -> torch.device:
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise LexilabError(f"train.device: {name!r} requested but no CUDA device is visible")
    return torch.device(name)


def resolve_path_like(value, root: Path):
    """`data:NAME` names a folder under the data root (e.g. the FLAN-T5 tokenizer)."""
    if isinstance(value, str) and value.startswith("data:"):
        return str(root / value[len("data:"):])
    return value


def limit_splits(dataset: Dataset, limits: dict | None) -> Dataset:
    """Keep the first N examples of each split (tiny runs); the cut is reported, not silent."""
    if not limits:
        return dataset
    splits = {}
    report = dict(dataset.report)
    for split in SPLITS:
        rows = dataset.splits[split]
        n = limits.get(split)
        if n is not None and len(rows) > n:
            report[f"limit_dropped_{split}"] = len(rows) - int(n)
            rows = rows[: int(n)]
        splits[split] = rows
    return Dataset(dataset.name, dataset.kind, splits, dataset.label_names, dataset.text_fields,
                   dataset.files, report)


def load_datasets(config: dict) -> dict[str, Dataset]:
    root = effective_data_root(config)
    datasets = {}
    for name, task_cfg in config["tasks"].items():
        dataset = load_dataset(task_cfg["data"], root)
        if dataset.kind != task_cfg["kind"]:
            raise LexilabError(
                f"tasks.{name}.data: dataset {dataset.name!r} is {dataset.kind}, task kind is {task_cfg['kind']}"
            )
        datasets[name] = limit_splits(dataset, task_cfg.get("limit"))
        for split in ("train", "val", "test"):
            if not datasets[name].splits[split]:
                raise LexilabError(f"tasks.{name}.data: split {split!r} of {dataset.name!r} has no rows")
    return datasets


def check_leakage(datasets: dict[str, Dataset], policy: str) -> tuple[dict[str, Dataset], dict]:
    """Exact and near-duplicate check across splits and tasks before training (warn/drop/fail)."""
    from lexilab.data.leakage import check

    cleaned, report = check(datasets, policy)
    return cleaned, report.to_dict()


def build_backbone(config: dict, root: Path):
    from lexilab.model import T5Config, load_backbone, load_tokenizer

    cfg = config["backbone"]
    name = resolve_path_like(cfg["name"], root)
    overrides = {}
    if cfg.get("dropout") is not None:
        overrides["dropout_rate"] = float(cfg["dropout"])
    backbone = load_backbone(name, init=cfg.get("init", "pretrained"), config_overrides=overrides or None,
                             seed=int(config["seed"]))
    if cfg.get("attention") not in (None, "sdpa"):
        if not isinstance(getattr(backbone, "config", None), T5Config):
            raise LexilabError(f"config.yaml: backbone.attention: {cfg['attention']} is for the T5 backbone; "
                               f"{name} is encoder-only")
        backbone.config.attention = cfg["attention"]  # read at every forward pass
    tokenizer_source = resolve_path_like(cfg.get("tokenizer") or name, root)
    if not isinstance(tokenizer_source, (str, os.PathLike)):
        raise LexilabError("backbone.tokenizer: a backbone given as a config mapping needs a tokenizer path or hub id")
    return backbone, load_tokenizer(tokenizer_source)


def assemble(config: dict) -> Assembly:
    from lexilab.tasks import build_task

    device = resolve_device(config["train"].get("device", "auto"))
    datasets = load_datasets(config)
    datasets, leakage = check_leakage(datasets, config["train"].get("leakage", "warn"))
    torch.manual_seed(int(config["seed"]))  # head initialisation is part of the run's seed
    backbone, tokenizer = build_backbone(config, effective_data_root(config))
    if getattr(getattr(backbone, "config", None), "attention", "sdpa") == "flex" and device.type != "cuda":
        raise LexilabError(f"config.yaml: backbone.attention: flex trains on CUDA only: torch's FlexAttention has no backward "
                           f"pass on {device.type} (use sdpa, the default, there)")
    tasks = {}
    for name, task_cfg in config["tasks"].items():
        if task_cfg["kind"] == "seq2seq" and not backbone.is_encoder_decoder:
            raise LexilabError(f"tasks.{name}: a seq2seq task needs an encoder-decoder backbone")
        tasks[name] = build_task(name, task_cfg, datasets[name], tokenizer)
    model = MultiTaskModel(backbone, tasks).to(device)
    return Assembly(config, device, datasets, tokenizer, tasks, model, leakage)
