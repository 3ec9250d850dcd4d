"""Gradient-conflict diagnostics: how much do the tasks' gradients on the shared encoder agree?

For every task t, ``torch.autograd.grad`` gives ``g_t``, the gradient of ``L_t`` w.r.t. the
shared parameters (a parameter that ``L_t`` does not use counts as zeros). For every pair of
tasks (a, b), over all shared parameters as one flat vector (``group = "all"``) and over each
layer group, we report the cosine ``⟨g_a, g_b⟩ / (‖g_a‖‖g_b‖)``, the norms, the norm ratio
``‖g_a‖/‖g_b‖`` and the conflict flag ``cos < 0`` (Yu et al. 2020 call such gradients
conflicting). Per parameter, the T×T Gram matrix is computed in fp32; parameters are summed
into groups in fp64.

Nothing here touches ``.grad`` or optimizer state, and no random numbers are drawn; the graph
of ``losses`` is retained, so the caller may still backpropagate them.
"""
from __future__ import annotations

from itertools import combinations
from typing import Callable, Iterable

import torch
from torch import Tensor, nn

ALL = "all"


def gradient_cosines(losses: dict[str, Tensor], groups: dict[str, list[nn.Parameter]],
                     step: int, reduce: Callable[[Tensor], Tensor] | None = None) -> list[dict]:
    """Pairwise gradient cosines over all shared parameters and per group, as JSON records.

    ``losses``: task → scalar loss (graph attached); ``groups``: ordered group name → shared
    parameters (parameters with ``requires_grad=False`` are skipped; a parameter in several
    groups counts once in ``"all"``). Returns one record per task pair (in ``losses`` order)
    and group (``"all"`` first, then ``groups`` order; groups without trainable parameters are
    left out)::

        {"step", "task_a", "task_b", "group", "cosine", "norm_a", "norm_b", "norm_ratio",
         "conflict"}

    ``cosine`` is None when either gradient is zero (then ``conflict`` is False);
    ``norm_ratio = norm_a / norm_b`` is None when ``norm_b`` is 0.

    ``reduce`` (a data-parallel run's in-place mean over ranks) is applied to each task's
    gradient, flattened, before any product: the cosines are those of the global gradients.
    """
    tasks = list(losses)
    params: list[nn.Parameter] = []
    position: dict[int, int] = {}
    members: dict[str, list[int]] = {}
    for name, group in groups.items():
        idx: list[int] = []
        for p in group:
            if not p.requires_grad:
                continue
            if id(p) not in position:
                position[id(p)] = len(params)
                params.append(p)
            if position[id(p)] not in idx:
                idx.append(position[id(p)])
        if idx:
            members[name] = idx
    if not params or len(tasks) < 2:
        return []

    per_task = [_task_grads(losses[t], params) for t in tasks]
    if reduce is not None:
        per_task = [_reduced(grads, params, reduce) for grads in per_task]
    grams = [_param_gram([grads[k] for grads in per_task], params[k]) for k in range(len(params))]
    summed = {ALL: torch.stack(grams).sum(0)}
    for name, idx in members.items():
        summed[name] = torch.stack([grams[k] for k in idx]).sum(0)

    records = []
    for group, gram in summed.items():
        gram = gram.tolist()
        norms = [max(gram[i][i], 0.0) ** 0.5 for i in range(len(tasks))]
        for i, j in combinations(range(len(tasks)), 2):
            cosine = None
            if norms[i] > 0 and norms[j] > 0:
                cosine = min(max(gram[i][j] / (norms[i] * norms[j]), -1.0), 1.0)
            records.append({
                "step": int(step), "task_a": tasks[i], "task_b": tasks[j], "group": group,
                "cosine": cosine, "norm_a": norms[i], "norm_b": norms[j],
                "norm_ratio": norms[i] / norms[j] if norms[j] > 0 else None,
                "conflict": cosine is not None and cosine < 0,
            })
    return records


def _task_grads(loss: Tensor, params: list[nn.Parameter]) -> list[Tensor | None]:
    if not loss.requires_grad:  # no graph: the task's gradient is zero everywhere
        return [None] * len(params)
    return list(torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True))


def _reduced(grads: list[Tensor | None], params: list[nn.Parameter], reduce) -> list[Tensor]:
    """One task's gradients (zeros for unused parameters) through ``reduce`` as one flat vector."""
    flat = torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1).float()
                      for g, p in zip(grads, params)])
    reduce(flat)
    return [part.view_as(p) for part, p in zip(flat.split([p.numel() for p in params]), params)]


def _param_gram(grads: list[Tensor | None], param: nn.Parameter) -> Tensor:
    """T×T Gram matrix of one parameter's per-task gradients (fp32 products, fp64 result)."""
    rows = [
        g.reshape(-1).float() if g is not None
        else torch.zeros(param.numel(), dtype=torch.float32, device=param.device)
        for g in grads
    ]
    matrix = torch.stack(rows)
    return (matrix @ matrix.T).double()


def conflict_rate(records: Iterable[dict]) -> list[dict]:
    """Summary per (task pair, group): how often the gradients conflicted (cos < 0).

    Returns ``{"task_a", "task_b", "group", "n", "conflicts", "conflict_rate", "mean_cosine"}``
    per pair and group, in first-seen order; ``n`` counts records with a defined cosine.
    """
    stats: dict[tuple[str, str, str], list[float]] = {}
    for r in records:
        key = (r["task_a"], r["task_b"], r["group"])
        entry = stats.setdefault(key, [0, 0, 0.0])
        if r.get("cosine") is None:
            continue
        entry[0] += 1
        entry[1] += 1 if r["cosine"] < 0 else 0
        entry[2] += r["cosine"]
    return [
        {"task_a": a, "task_b": b, "group": g, "n": n, "conflicts": c,
         "conflict_rate": c / n if n else None, "mean_cosine": s / n if n else None}
        for (a, b, g), (n, c, s) in stats.items()
    ]
