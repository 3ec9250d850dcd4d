"""The Gramian engine of the gradient methods (``weighting: {kind: upgrad, engine: gramian}``).

Most aggregators weight the rows of the Jacobian J (T tasks × n shared parameters) with weights
that depend only on the Gramian G = J Jᵀ (Quinton & Rey 2024, "Jacobian Descent for
Multi-Objective Optimization", Sec. 6). torchjd's ``autogram.Engine`` computes G module by
module during one T-batched backward pass, so no ``T × n`` matrix is stored: per hooked module
it holds one ``T × |module|`` block, adds its Gramian and drops it. The update Jᵀw then comes
from one ordinary backward of ``Σ_t w_t L_t`` restricted to the shared parameters.

autogram sees a parameter only through calls of the module that owns it. A shared parameter used
otherwise — the tied T5 embedding as output projection of a seq2seq loss, a parameter registered
in two modules, a module that also holds task-specific parameters — would be missed silently, so
every step walks the autograd graph and checks, for each shared parameter, that every path from
a loss to it enters its module's autogram node last. The modules that fail (and the parameters
of no hooked module) are taken out of the engine for that step and their block of J is computed
exactly by one batched ``torch.autograd.grad`` instead (``T × |those parameters|``). The same walk
sets autogram's per-module use counts from this graph, so forward passes whose losses were
dropped (a skipped non-finite micro-batch, gradient diagnostics) cannot leave it waiting.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any

import torch
from torch import Tensor, nn
from torchjd.autogram import Engine
from torchjd.autogram._module_hook_manager import AutogramNode

ENGINES = ("jacobian", "gramian")


class GramianEngine:
    """G = J Jᵀ of a vector of losses w.r.t. the trainable shared parameters of ``root``."""

    def __init__(self, root: nn.Module) -> None:
        self.root = root
        self.engine: Engine | None = None
        self.key: tuple[int, ...] = ()
        self.owner: dict[int, Any] = {}  # id(parameter) -> the autogram computer that covers it
        self.explicit: list[nn.Parameter] = []  # last step's parameters taken by the exact pass

    def build(self, shared: list[nn.Parameter]) -> None:
        """(Re)hook the modules that hold only trainable shared parameters, each owned once."""
        key = tuple(id(p) for p in shared)
        if self.engine is not None and key == self.key:
            return
        self.close()
        shared_ids = set(key)
        owners: dict[int, int] = defaultdict(int)
        for module in self.root.modules():
            for p in module.parameters(recurse=False):
                owners[id(p)] += 1
        picked: list[nn.Module] = []

        def visit(module: nn.Module) -> None:
            params = [p for p in module.parameters() if p.requires_grad]
            # autogram hooks a module with trainable direct parameters together with its children
            if any(p.requires_grad for p in module.parameters(recurse=False)):
                if all(id(p) in shared_ids and owners[id(p)] == 1 for p in params):
                    picked.append(module)
                    return
            for child in module.children():
                visit(child)

        visit(self.root)
        self.engine = Engine(*picked, batch_dim=None) if picked else None
        self.key = key
        self.owner = {}
        if self.engine is not None:
            for computer in self.engine._gramian_computers.values():
                for p in computer.jacobian_computer.rg_params.values():
                    self.owner[id(p)] = computer

    def close(self) -> None:
        """Remove the hooks (a rebuilt engine must not leave the old ones behind)."""
        if self.engine is not None:
            self.engine._module_hook_manager._finalizer()
            self.engine = None

    def gramian(self, losses: Tensor, shared: list[nn.Parameter]) -> tuple[Tensor, list[Tensor], list[nn.Parameter]]:
        """Gramian (T × T, fp32) of ``losses`` (a vector) w.r.t. ``shared``; also the other
        leaves the losses reach (task-specific parameters) and the shared ones they reach."""
        shared_ids = {id(p) for p in shared}
        graph = _Graph(losses, shared_ids)
        live: dict[Any, list] = {}
        explicit: dict[int, nn.Parameter] = {}
        computers = set(self.engine._gramian_computers.values()) if self.engine is not None else set()
        failed = {computer for computer in graph.nodes
                  if computer not in computers
                  or not all(p.requires_grad for p in computer.jacobian_computer.rg_params.values())}
        for leaf in graph.shared:
            computer = self.owner.get(id(leaf))
            if computer is None or computer in failed or not graph.covered(leaf, computer):
                explicit[id(leaf)] = leaf
                if computer is not None:
                    failed.add(computer)
        for computer, nodes in graph.nodes.items():
            if computer in failed:
                for node in nodes:  # this module's block comes from the exact pass below
                    node.gramian_accumulation_phase = False
                    for p in computer.jacobian_computer.rg_params.values():
                        if id(p) in shared_ids:
                            explicit[id(p)] = p
            else:
                live[computer] = nodes
        T = losses.shape[0]
        total = torch.zeros(T, T, dtype=torch.float32, device=losses.device)
        if self.engine is not None:
            for computer in computers:
                computer.reset()
                computer.remaining_counter = len(live.get(computer, ()))
            if live:
                total += self.engine.compute_gramian(losses).float()
            else:  # compute_gramian resets this; without a call, drop what the forwards registered
                self.engine._target_edges.reset()
        reached = {id(p) for p in graph.shared}  # an unreached parameter's block is zero
        self.explicit = params = [p for p in explicit.values() if id(p) in reached]
        if params:
            eye = torch.eye(T, dtype=losses.dtype, device=losses.device)
            blocks = torch.autograd.grad(losses, params, grad_outputs=eye, is_grads_batched=True,
                                         retain_graph=True, allow_unused=True)
            for block in blocks:
                if block is not None:
                    flat = block.reshape(T, -1).float()
                    total += flat @ flat.T
                    del flat
        return total, graph.others, graph.shared


class _Graph:
    """One pass over the autograd graph of ``losses``: autogram nodes per computer, leaves."""

    def __init__(self, losses: Tensor, shared_ids: set[int]) -> None:
        self.nodes: dict[Any, list] = defaultdict(list)
        self.parents: dict[Any, list] = defaultdict(list)
        self.shared: list[Tensor] = []
        self.others: list[Tensor] = []
        self.leaf_node: dict[int, Any] = {}
        root = losses.grad_fn
        seen = {root}
        stack = [root]
        while stack:
            node = stack.pop()
            if getattr(node, "_forward_cls", None) is AutogramNode:
                self.nodes[node.gramian_computer].append(node)
            leaf = getattr(node, "variable", None)  # AccumulateGrad nodes hold their leaf
            if leaf is not None:
                (self.shared if id(leaf) in shared_ids else self.others).append(leaf)
                self.leaf_node[id(leaf)] = node
            for child, _ in node.next_functions:
                if child is None:
                    continue
                self.parents[child].append(node)
                if child not in seen:
                    seen.add(child)
                    stack.append(child)
        self.root = root

    def covered(self, leaf: Tensor, computer: Any) -> bool:
        """Whether every path from the losses to ``leaf`` enters ``computer``'s autogram node
        last: walking up from the leaf, each branch must meet one of that module's nodes
        before any other module's node or the losses (what autogram misses otherwise)."""
        start = self.leaf_node[id(leaf)]
        seen = {start}
        stack = list(self.parents[start])
        while stack:
            node = stack.pop()
            if node in seen:
                continue
            seen.add(node)
            if getattr(node, "_forward_cls", None) is AutogramNode:
                if node.gramian_computer is not computer:
                    return False
                continue
            if node is self.root:
                return False
            stack.extend(self.parents[node])
        return True


def engine_problems(config: dict) -> list:
    """Config-time refusals of ``weighting.engine`` (called by lexilab.config_checks): the
    Gramian of a window's mean Jacobian is not the sum of its micro-batches' Gramians (nor of
    its ranks'), so the Gramian engine needs one micro-batch on one process; autogram's hooks
    need the eager autograd graph; and the method must weight rows from the Gramian alone."""
    from torchjd.aggregation import GramianWeightedAggregator

    from lexilab.config import Problem
    from lexilab.errors import LexilabError
    from lexilab.train.weighting import WEIGHTINGS
    from lexilab.train.weighting.aggregation import AggregationWeighting

    block = dict(config.get("weighting") or {})
    engine = block.pop("engine", "jacobian")
    cls = WEIGHTINGS.get(block.pop("kind", None))
    if cls is None or not issubclass(cls, AggregationWeighting):
        return []  # unknown kind / not an option of this method: reported by the schema check
    if engine not in ENGINES:
        return [Problem("weighting.engine", f"{engine!r} is not one of {', '.join(ENGINES)}")]
    if engine != "gramian":
        return []
    try:
        method = cls(list(config["tasks"]), [], seed=0, **block)
    except (LexilabError, TypeError, ValueError):
        return []  # a bad option: the method reports it when the run is built
    if not isinstance(method.aggregator, GramianWeightedAggregator):
        return [Problem("weighting.engine", f"gramian needs a method whose update depends only on the Gramian of "
                        f"the task gradients; {cls.name!r} needs the whole Jacobian (use engine: jacobian)")]
    train = config["train"]
    if int(train.get("grad_accum", 1)) != 1:
        return [Problem("weighting.engine", f"gramian aggregates each micro-batch on its own, so train.grad_accum "
                        f"must be 1 (is {train['grad_accum']}): a window's Gramian is not the sum of its "
                        "micro-batches'; use engine: jacobian or a larger train.batch_size")]
    if (train.get("distributed") or {}).get("enabled"):
        return [Problem("weighting.engine", "gramian needs one process: under train.distributed the Gramian "
                        "needs cross-rank terms; use engine: jacobian")]
    if train.get("compile"):
        return [Problem("weighting.engine", "gramian needs the eager autograd graph (autogram's module hooks); "
                        "set train.compile: false or use engine: jacobian")]
    return []
