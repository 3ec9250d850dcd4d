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
from torchjd.aggregation import WeightedAggregator
from torchjd.linalg import DualConeProjector

from lexilab.train.weighting import Weighting, flat_params
from lexilab.io import jsonable

# Mixed into the run seed so this stream differs from other consumers of the seed.
_STREAM_ID = 0x4147_4752


class AggregationWeighting(Weighting):
    """Base of the methods that aggregate per-task gradients of the shared parameters."""

    needs_all_tasks = True

    def __init__(self, task_names, shared_params, seed: int = 0) -> None:
        super().__init__(task_names, shared_params, seed)
        self.rng = np.random.default_rng([max(self.seed, 0), _STREAM_ID])
        self.aggregator = self.make_aggregator()
        # (shared parameters, Σ over the window's micro-batches of their Jacobian, T × n fp32)
        self._window: tuple[list[nn.Parameter], Tensor] | None = None

    @abstractmethod
    def make_aggregator(self) -> nn.Module:
        """The torchjd aggregator (``Aggregator``: ``T × n`` matrix → ``n`` vector)."""

    # -- one window: accumulate the task gradients, aggregate once ------------------------
    def accumulate(self, losses: dict[str, Tensor], shared_params, scale: float = 1.0) -> dict[str, float]:
        """Add this micro-batch's Jacobian rows to the window's sum; task-specific parameters
        get their own task's gradient in ``.grad`` now (linear, so nothing waits for them)."""
        self._check_losses(losses)
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
        seed = int(self.rng.integers(0, 2**63 - 1))
        devices = [jacobian.device] if jacobian.is_cuda else []
        try:
            with torch.random.fork_rng(devices=devices), torch.no_grad():
                torch.random.default_generator.manual_seed(seed)
                if jacobian.is_cuda:
                    with torch.cuda.device(jacobian.device):
                        torch.cuda.manual_seed(seed)
                vector = self.aggregator(jacobian)
        finally:
            if handle is not None:
                handle.remove()
        return vector, (captured[-1].detach().cpu() if captured else None)

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


