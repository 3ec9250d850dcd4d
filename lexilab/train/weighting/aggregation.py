"""Shared machinery of the Jacobian-aggregation methods (UPGrad, PCGrad, MGDA, ...).

Per micro-batch, for every task t, one ``torch.autograd.grad`` pass gives both the row ``g_t`` of
the Jacobian of the losses w.r.t. the shared parameters (unused parameters → zeros, fp32) and the
gradient of ``L_t`` w.r.t. the task's own parameters (the leaves reached by ``L_t`` that are not
shared). The rows are summed over the optimizer step's window and, once per window, divided by
the number of micro-batches (and by the fp16 loss scale), so the aggregator sees the Jacobian of
the window's mean losses — the same matrix as one batch of the whole window. A torchjd
aggregator (Quinton & Rey 2024, "Jacobian Descent for Multi-Objective Optimization"; the
``torchjd`` library) is then called on that ``T × n`` matrix; its output vector is accumulated
into the shared parameters' ``.grad``, and each task-specific parameter accumulates exactly its
own task's gradient (a leaf reached by several tasks' losses but not listed as shared — e.g. two
classification tasks sharing a head — gets their sum).

Randomised aggregators (PCGrad's task order, GradDrop's masks, RLW's weights, GradVac's order)
draw from torch's RNG; we run them inside ``torch.random.fork_rng`` seeded from the method's own
numpy generator, so they never consume the trainer's RNG and a resumed run replays them exactly.
"""
from __future__ import annotations

from abc import abstractmethod
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from scipy.optimize import nnls
from torchjd.aggregation import GramianWeightedAggregator, WeightedAggregator
from torchjd.linalg import DualConeProjector

from lexilab.errors import LexilabError
from lexilab.io import jsonable
from lexilab.train.weighting import _WHERE, Weighting, flat_params
from lexilab.train.weighting.gramian import ENGINES, GramianEngine

# Mixed into the run seed so this stream differs from other consumers of the seed.
_STREAM_ID = 0x4147_4752


class AggregationWeighting(Weighting):
    """Base of the methods that aggregate per-task gradients of the shared parameters."""

    needs_all_tasks = True

    options: tuple[str, ...] = ("engine",)

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if "engine" not in cls.options:  # every aggregation method takes ``engine``
            cls.options = (*cls.options, "engine")

    def __init__(self, task_names, shared_params, seed: int = 0, **common) -> None:
        # ``engine`` has no default in the signature on purpose: the resolved config (and so
        # the run's identity hash) shows it only when set, so existing runs keep their hash
        engine = common.pop("engine", "jacobian")
        if common:
            raise TypeError(f"unexpected options {sorted(common)}")
        super().__init__(task_names, shared_params, seed)
        self.rng = np.random.default_rng([max(self.seed, 0), _STREAM_ID])
        self.aggregator = self.make_aggregator()
        if engine not in ENGINES:
            raise LexilabError(f"{_WHERE}.engine: {engine!r} is not one of {', '.join(ENGINES)}")
        if engine == "gramian" and not isinstance(self.aggregator, GramianWeightedAggregator):
            raise LexilabError(f"{_WHERE}.engine: gramian needs a method whose update depends only on the Gramian "
                               f"of the task gradients; {self.name!r} needs the whole Jacobian (use engine: jacobian)")
        self.engine = engine
        self._gramian: GramianEngine | None = None
        # (shared parameters, Σ over the window's micro-batches of their Jacobian, T × n fp32)
        self._window: tuple[list[nn.Parameter], Tensor] | None = None
        self._weights: dict[str, float] | None = None  # the Gramian engine's, until finish()

    @abstractmethod
    def make_aggregator(self) -> nn.Module:
        """The torchjd aggregator (``Aggregator``: ``T × n`` matrix → ``n`` vector)."""

    # -- one window: accumulate the task gradients, aggregate once ------------------------
    def accumulate(self, losses: dict[str, Tensor], shared_params, scale: float = 1.0) -> dict[str, float]:
        """Add this micro-batch's Jacobian rows to the window's sum; task-specific parameters
        get their own task's gradient in ``.grad`` now (linear, so nothing waits for them)."""
        self._check_losses(losses)
        if self.engine == "gramian":
            self._accumulate_gramian(losses, shared_params, scale)
            return {}
        shared = flat_params(shared_params)
        shared_ids = {id(p) for p in shared}
        rows = []
        last = len(self.task_names) - 1
        for i, task in enumerate(self.task_names):
            own = [p for p in graph_leaves(losses[task]) if id(p) not in shared_ids]
            if not shared and not own:  # nothing trainable on this task's path
                continue
            grads = torch.autograd.grad(losses[task] * scale, shared + own, retain_graph=i < last,
                                        allow_unused=True)
            rows.append(_flatten(grads[: len(shared)], shared))
            for p, g in zip(own, grads[len(shared):]):
                if g is not None:
                    _accumulate(p, g)
        if shared:
            if self._window is None:
                self._window = (shared, torch.stack(rows))
            else:  # row by row: no second T × n copy
                for total, row in zip(self._window[1], rows):
                    total.add_(row)
        return {}

    def finish(self, micro_batches: int, scale: float = 1.0) -> dict[str, float]:
        """Aggregate the window's mean Jacobian (true scale) and add ``scale`` × the result to
        the shared parameters' ``.grad``: the update of one batch of ``micro_batches`` × b."""
        if self.engine == "gramian":  # the update is in .grad already (one micro-batch per window)
            weights, self._weights = self._weights, None
            return {t: 1.0 for t in self.task_names} if weights is None else weights
        if self._window is None:  # no trainable shared parameter
            return {t: 1.0 for t in self.task_names}
        shared, total = self._window
        self._window = None
        # data parallel: every rank aggregates the mean Jacobian of all ranks (T × n floats)
        jacobian = self._reduce(total) / (float(micro_batches) * float(scale))
        if torch.isfinite(jacobian).all():
            vector, weights = self.aggregate(jacobian)
            vector = vector * scale
        else:  # fp16 overflow: hand the non-finite values on, the grad scaler skips this step
            vector, weights = total.sum(dim=0), None
        offset = 0
        for p in shared:
            n = p.numel()
            _accumulate(p, vector[offset: offset + n].view_as(p))
            offset += n
        if weights is None:
            return {}
        return {t: float(w) for t, w in zip(self.task_names, weights.tolist())}

    def aggregate(self, jacobian: Tensor) -> tuple[Tensor, Tensor | None]:
        """Call the aggregator on the Jacobian under our own RNG; also return its row weights
        (captured with a forward hook on the aggregator's weighting, as ``torchjd.autojac.
        jac_to_grad`` does), or None for aggregators that do not weight rows."""
        captured: list[Tensor] = []
        # ConFIG also has a ``.weighting`` (its preference vector), but it does not weight rows
        inner = self.aggregator.weighting if isinstance(self.aggregator, WeightedAggregator) else None
        handle = inner.register_forward_hook(lambda _m, _i, out: captured.append(out)) if inner else None
        try:
            vector = self._own_rng(jacobian, self.aggregator)
        finally:
            if handle is not None:
                handle.remove()
        return vector, (captured[-1].detach().cpu() if captured else None)

    def _own_rng(self, matrix: Tensor, fn) -> Tensor:
        """``fn(matrix)`` without gradients, under torch's RNG seeded from our own stream (one
        draw per call, so both engines consume the stream alike) and restored afterwards."""
        seed = int(self.rng.integers(0, 2**63 - 1))
        devices = [matrix.device] if matrix.is_cuda else []
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            torch.random.default_generator.manual_seed(seed)
            if matrix.is_cuda:
                with torch.cuda.device(matrix.device):
                    torch.cuda.manual_seed(seed)
            return fn(matrix)

    # -- the Gramian engine (gramian.py): no T × n matrix ------------------------------------
    def attach(self, backbone: nn.Module) -> None:
        """The module holding the shared parameters: the Gramian engine hooks its modules."""
        if self.engine == "gramian":
            if self._gramian is not None:
                self._gramian.close()
            self._gramian = GramianEngine(backbone)
            self._gramian.build(flat_params(self.shared_groups))

    def _accumulate_gramian(self, losses: dict[str, Tensor], shared_params, scale: float) -> None:
        """The whole window's update from this one micro-batch: G = J Jᵀ through autogram,
        w = the method's weighting of G (true scale: G / S²), then ``.grad`` += S·Jᵀw on the
        shared parameters and S·∇L_t on each task-specific parameter, as the dense path."""
        if self._gramian is None:
            raise LexilabError(f"{_WHERE}.engine: gramian needs the backbone's modules (Weighting.attach); "
                               "this caller did not give them")
        if self._weights is not None or self.reduce_mean is not None:
            raise LexilabError(f"{_WHERE}.engine: gramian aggregates one micro-batch on one process; "
                               "set train.grad_accum: 1 and no train.distributed, or use engine: jacobian")
        shared = flat_params(shared_params)
        vector = torch.stack([losses[t] * scale for t in self.task_names])
        if not vector.requires_grad:  # nothing trainable on any task's path
            self._weights = {t: 1.0 for t in self.task_names}
            return
        weights, own, reached = None, [], []
        if not shared:
            own = graph_leaves(vector)
        else:
            gramian, own, reached = self._gramian.gramian(vector, shared)
            # after the pass that used the hooks of this forward: a changed set of trainable
            # parameters (freezing) gets its hooks for the next forward passes
            self._gramian.build(shared)
            gramian = gramian / (float(scale) ** 2)
            if torch.isfinite(gramian).all():
                weights = self._own_rng(gramian, self.aggregator.gramian_weighting).to(vector.dtype)
        if own:
            torch.autograd.backward(vector, torch.ones_like(vector), inputs=own, retain_graph=bool(reached))
        if reached:  # non-finite Gramian (fp16 overflow): S·Σ ∇L_t, the grad scaler skips the step
            torch.autograd.backward(vector, weights if weights is not None else torch.ones_like(vector),
                                    inputs=reached)
        for p in shared:  # an unreached shared parameter gets a zero gradient, as its zero column would
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        if not shared:
            self._weights = {t: 1.0 for t in self.task_names}
        else:
            self._weights = {} if weights is None else dict(zip(self.task_names, weights.tolist()))

    # -- state -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return dict(super().state_dict(), rng=jsonable(self.rng.bit_generator.state),
                    aggregator=self.aggregator_state())

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.rng.bit_generator.state = state["rng"]
        self.load_aggregator_state(state.get("aggregator") or {})

    def aggregator_state(self) -> dict[str, Any]:
        """State of a stateful aggregator (EMA statistics, ...); stateless ones have none."""
        return {}

    def load_aggregator_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`aggregator_state` saved."""


class NNLSProjector(DualConeProjector):
    """torchjd dual-cone projector solved exactly with scipy's NNLS (UPGrad, DualProj).

    torchjd's default projector needs the optional ``qpsolvers`` + ``quadprog`` packages. The
    problem it solves, ``min_v vᵀ G v  s.t.  v ≥ u`` (Quinton & Rey 2024, Prop. 1), is with
    ``v = u + z`` and ``G = AᵀA`` (``A = Λ^{1/2} Vᵀ`` from the eigendecomposition of G) the
    non-negative least-squares problem ``min_{z ≥ 0} ‖A z + A u‖²`` (Lawson–Hanson, exact).
    G is first divided by its trace, which leaves the minimiser unchanged.
    """

    def __call__(self, U: Tensor, G: Tensor) -> Tensor:
        gram = G.detach().cpu().double().numpy()
        trace = float(np.trace(gram))
        u_arr = U.detach().cpu().double().numpy()
        if trace <= 1e-12:  # all gradients ~0: every v ≥ u is optimal; keep u
            return U.clone()
        eigvals, eigvecs = np.linalg.eigh(gram / trace)
        A = np.sqrt(np.clip(eigvals, 0.0, None))[:, None] * eigvecs.T
        flat = u_arr.reshape(-1, gram.shape[0])
        out = np.stack([u + nnls(A, -A @ u)[0] for u in flat]).reshape(u_arr.shape)
        return torch.as_tensor(out, dtype=G.dtype, device=G.device)


def graph_leaves(tensor: Tensor) -> list[Tensor]:
    """Leaf tensors requiring grad that ``tensor`` depends on, in a deterministic order."""
    out: list[Tensor] = []
    seen_nodes: set = set()
    seen_leaves: set[int] = set()
    stack = [tensor.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen_nodes:
            continue
        seen_nodes.add(node)
        leaf = getattr(node, "variable", None)  # AccumulateGrad nodes hold their leaf
        if leaf is not None and id(leaf) not in seen_leaves:
            seen_leaves.add(id(leaf))
            out.append(leaf)
        stack.extend(next_node for next_node, _ in node.next_functions)
    return out


def _flatten(grads, params: list[nn.Parameter]) -> Tensor:
    parts = [
        (g.reshape(-1).float() if g is not None
         else torch.zeros(p.numel(), dtype=torch.float32, device=p.device))
        for g, p in zip(grads, params)
    ]
    return torch.cat(parts) if parts else torch.zeros(0)


def _accumulate(p: Tensor, g: Tensor) -> None:
    g = g.to(dtype=p.dtype)
    if p.grad is None:
        p.grad = g.clone()
    else:
        p.grad.add_(g)


