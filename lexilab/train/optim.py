"""AdamW with every spec key honoured, differential learning rates, and warm-up + decay.

LexiMind configured betas/eps that never reached its optimizer; here each key of the `optim`
block maps to one argument below, and a test checks that every one arrives.
"""
from __future__ import annotations

import math
from typing import Iterable

import torch
from torch import nn

from lexilab.errors import LexilabError

SCHEDULES = ("cosine", "linear", "constant")


def _no_decay(name: str, param: nn.Parameter) -> bool:
    # Norm scales and biases are not decayed (standard AdamW practice, Loshchilov & Hutter 2019).
    return param.ndim < 2 or "norm" in name.lower() or name.endswith(".bias")


def param_groups(
    backbone: nn.Module, heads: nn.Module, extra: Iterable[nn.Parameter], cfg: dict
) -> list[dict]:
    """Backbone and task modules in separate groups so `head_lr` can differ from `lr`."""
    lr = float(cfg["lr"])
    head_lr = float(cfg["head_lr"]) if cfg.get("head_lr") is not None else lr
    wd = float(cfg.get("weight_decay", 0.0))
    groups = []
    for label, module, group_lr in (("backbone", backbone, lr), ("heads", heads, head_lr)):
        decay, plain = [], []
        seen: set[int] = set()
        for name, param in module.named_parameters():
            if id(param) in seen:  # tied weights appear once
                continue
            seen.add(id(param))
            (plain if _no_decay(name, param) else decay).append(param)
        if decay:
            groups.append({"params": decay, "lr": group_lr, "weight_decay": wd, "name": f"{label}"})
        if plain:
            groups.append({"params": plain, "lr": group_lr, "weight_decay": 0.0, "name": f"{label}_no_decay"})
    extra = list(extra)
    if extra:  # learnable loss weights (e.g. uncertainty log-variances): head lr, no decay
        groups.append({"params": extra, "lr": head_lr, "weight_decay": 0.0, "name": "weighting"})
    return groups


def build_optimizer(groups: list[dict], cfg: dict) -> torch.optim.AdamW:
    betas = cfg.get("betas", (0.9, 0.999))
    if len(betas) != 2:
        raise LexilabError(f"optim.betas: expected two numbers, found {betas!r}")
    return torch.optim.AdamW(
        groups,
        lr=float(cfg["lr"]),
        betas=(float(betas[0]), float(betas[1])),
        eps=float(cfg.get("eps", 1e-8)),
        weight_decay=float(cfg.get("weight_decay", 0.0)),
    )


def lr_factor(step: int, total_steps: int, warmup_steps: int, schedule: str, min_lr_ratio: float) -> float:
    """Multiplier of the base lr at optimizer step ``step`` (0-based): linear warm-up from 0,
    then cosine / linear decay from 1 at step ``warmup_steps`` to ``min_lr_ratio`` at the last
    step (``total_steps − 1``), or constant."""
    if schedule not in SCHEDULES:
        raise LexilabError(f"optim.schedule: {schedule!r} is not one of {', '.join(SCHEDULES)}")
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    span = max(1, total_steps - 1 - warmup_steps)  # decay steps after the first: the last one sits on the floor
    progress = min(1.0, (step - warmup_steps) / span)
    if schedule == "cosine":
        decay = 0.5 * (1.0 + math.cos(math.pi * progress))
    else:
        decay = 1.0 - progress
    return min_lr_ratio + (1.0 - min_lr_ratio) * decay


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: dict, total_steps: int):
    warmup = int(cfg.get("warmup_steps", 0))
    schedule = cfg.get("schedule", "cosine")
    floor = float(cfg.get("min_lr_ratio", 0.0))
    lr_factor(0, total_steps, warmup, schedule, floor)  # validate the schedule name up front
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, total_steps, warmup, schedule, floor)
    )
