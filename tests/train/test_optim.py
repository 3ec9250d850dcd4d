"""Every key of the optim block reaches AdamW; the schedule matches its formula."""
import math

import pytest
import torch
from torch import nn

from lexilab.errors import LexilabError
from lexilab.train.optim import build_optimizer, build_scheduler, lr_factor, param_groups


def _parts():
    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))
    heads = nn.ModuleDict({"a": nn.Linear(4, 2)})
    return backbone, heads


def test_every_optim_key_reaches_adamw():
    backbone, heads = _parts()
    extra = [nn.Parameter(torch.zeros(2))]
    cfg = {"lr": 3e-5, "head_lr": 1e-3, "weight_decay": 0.01, "betas": [0.9, 0.98], "eps": 1e-6}
    opt = build_optimizer(param_groups(backbone, heads, extra, cfg), cfg)
    assert isinstance(opt, torch.optim.AdamW)
    by_name = {g["name"]: g for g in opt.param_groups}
    for group in opt.param_groups:
        assert group["betas"] == (0.9, 0.98)
        assert group["eps"] == 1e-6
    assert by_name["backbone"]["lr"] == 3e-5 and by_name["backbone"]["weight_decay"] == 0.01
    assert by_name["heads"]["lr"] == 1e-3 and by_name["heads"]["weight_decay"] == 0.01
    # biases and norm scales are not decayed; learnable loss weights train at the head lr
    assert by_name["backbone_no_decay"]["weight_decay"] == 0.0
    assert by_name["weighting"]["lr"] == 1e-3 and by_name["weighting"]["weight_decay"] == 0.0
    counted = sum(p.numel() for g in opt.param_groups for p in g["params"])
    assert counted == sum(p.numel() for p in [*backbone.parameters(), *heads.parameters(), *extra])


def test_adamw_update_uses_betas_and_eps():
    """One step on one scalar against the AdamW formula (Loshchilov & Hutter 2019)."""
    param = nn.Parameter(torch.tensor([1.0]))
    module = nn.Module()
    module.w = param
    cfg = {"lr": 0.1, "weight_decay": 0.0, "betas": [0.5, 0.25], "eps": 0.5}
    opt = build_optimizer(param_groups(module, nn.Module(), [], cfg), cfg)
    param.grad = torch.tensor([2.0])
    opt.step()
    m_hat = (1 - 0.5) * 2.0 / (1 - 0.5)
    v_hat = (1 - 0.25) * 4.0 / (1 - 0.25)
    assert param.item() == pytest.approx(1.0 - 0.1 * m_hat / (math.sqrt(v_hat) + 0.5), rel=1e-6)


@pytest.mark.parametrize("schedule", ["cosine", "linear", "constant"])
def test_schedule_formula(schedule):
    # 101 optimizer steps (indices 0..100): warm-up 0..9, decay from 1 at index 10 to the floor
    # at index 100, the last step the run takes
    total, warmup, floor = 101, 10, 0.1
    assert lr_factor(0, total, warmup, schedule, floor) == pytest.approx(0.1)
    assert lr_factor(9, total, warmup, schedule, floor) == pytest.approx(1.0)
    assert lr_factor(10, total, warmup, schedule, floor) == pytest.approx(1.0)
    mid = lr_factor(55, total, warmup, schedule, floor)
    expected = {"cosine": floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * 0.5)),
                "linear": floor + (1 - floor) * 0.5, "constant": 1.0}[schedule]
    assert mid == pytest.approx(expected)
    end = 1.0 if schedule == "constant" else floor
    assert lr_factor(100, total, warmup, schedule, floor) == pytest.approx(end)
    assert lr_factor(500, total, warmup, schedule, floor) == pytest.approx(end)  # the floor holds


def test_scheduler_drives_group_lrs():
    backbone, heads = _parts()
    cfg = {"lr": 1.0, "head_lr": 2.0, "warmup_steps": 2, "schedule": "linear", "min_lr_ratio": 0.25}
    opt = build_optimizer(param_groups(backbone, heads, [], cfg), cfg)
    sched = build_scheduler(opt, cfg, total_steps=4)
    seen = []
    for _ in range(4):
        seen.append([g["lr"] for g in opt.param_groups if g["name"] in ("backbone", "heads")])
        opt.step()
        sched.step()
    # the last of the 4 steps runs at the floor, min_lr_ratio × lr (the README's promise)
    assert seen == [[0.5, 1.0], [1.0, 2.0], [1.0, 2.0], [0.25, 0.5]]


def test_bad_schedule_and_betas():
    backbone, heads = _parts()
    with pytest.raises(LexilabError, match="optim.schedule"):
        cfg = {"lr": 1.0, "schedule": "exponential"}
        build_scheduler(build_optimizer(param_groups(backbone, heads, [], cfg), cfg), cfg, 10)
    with pytest.raises(LexilabError, match="optim.betas"):
        cfg = {"lr": 1.0, "betas": [0.9]}
        build_optimizer(param_groups(backbone, heads, [], cfg), cfg)
