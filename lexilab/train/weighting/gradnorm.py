"""GradNorm (Chen, Badrinarayanan, Lee & Rabinovich, ICML 2018).

Learnable task weights ``w_t`` (init 1). With ``W`` the last shared layer's parameters,
``G_t = ‖∇_W w_t L_t‖ = w_t ‖∇_W L_t‖``, ``Ḡ = mean_t G_t``, the inverse training rate
``r_t = L̃_t / mean_i L̃_i`` with ``L̃_t = L_t / L_t(0)`` (loss at the first step), the weights
receive the gradient of

    L_grad = Σ_t | G_t − Ḡ · r_t^α |        (target Ḡ·r_t^α held constant, paper §3.2)

i.e. ``∂L_grad/∂w_t = sign(G_t − target_t) · ‖∇_W L_t‖`` — exact, no double backward needed
because ``G_t`` is linear in ``w_t``. The network receives the gradient of ``Σ_t w_t L_t`` (w
detached). After each optimizer step the weights are renormalised to sum to T; we do it at the
first micro-batch of the next window (the first point where the method sees the stepped
weights), with a floor of 1e-6 so a weight never turns negative. Over a window of micro-batches
``L_t`` and ``∇_W L_t`` are the window means, as for one batch of the whole window.

"Last shared layer" W: by default the paper's "last shared layer of weights" — the last weight
matrix (≥ 2-D parameter) of the topmost shared group that has one: on T5 the last encoder
block's feed-forward output ``wo`` (the top group, the final RMSNorm, holds only a scale vector),
on BERT the last layer's ``output.dense``. The ``layer`` option names a group of
``backbone.shared_parameter_groups()`` instead (all its trainable parameters). With no matrix
among the shared parameters, the last trainable one.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from lexilab.errors import LexilabError
from lexilab.train.weighting import Weighting, check_number, register_weighting

_FLOOR = 1e-6


@register_weighting("gradnorm")
class GradNormWeighting(Weighting):
    needs_all_tasks = True
    options = ("alpha", "layer")

    def __init__(self, task_names, shared_params, seed: int = 0, alpha: float = 1.5,
                 layer: str | None = None) -> None:
        super().__init__(task_names, shared_params, seed)
        self.alpha = check_number("alpha", alpha, low=0.0)
        if layer is not None and layer not in self.shared_groups:
            raise LexilabError(
                f"config.yaml: weighting.layer: {layer!r} is not a shared parameter group; "
                f"groups: {', '.join(self.shared_groups)}"
            )
        self.layer = layer
        self.weights = nn.Parameter(torch.ones(len(self.task_names)))
        self.initial_losses: list[float] | None = None
        # within an optimizer step's window: the last layer, Σ per-task gradients of it, Σ losses
        self._window: dict | None = None

    def parameters(self) -> list[nn.Parameter]:
        return [self.weights]

    def _last_layer(self, shared_params) -> list[nn.Parameter]:
        if isinstance(shared_params, dict):
            groups = shared_params
        elif self.groups_given:  # grouped at build time, flat list at call time
            groups = self.shared_groups
        else:
            groups = {"shared": list(shared_params)}
        groups = {k: [p for p in v if p.requires_grad] for k, v in groups.items()}
        if self.layer is not None:
            params = groups.get(self.layer, [])
        else:
            params = _last_weight_matrix(list(groups.values()))
        if not params:
            raise LexilabError("config.yaml: weighting: gradnorm found no trainable last shared layer")
        return params

    def accumulate(self, losses: dict[str, Tensor], shared_params, scale: float = 1.0) -> dict[str, float]:
        self._check_losses(losses)
        n_tasks = len(self.task_names)
        if self._window is None:  # first micro-batch after an optimizer step
            with torch.no_grad():
                self.weights.clamp_(min=_FLOOR)
                self.weights.mul_(n_tasks / self.weights.sum())
            last = self._last_layer(shared_params)
            size = sum(p.numel() for p in last)
            self._window = {"last": last, "grads": torch.zeros(n_tasks, size, device=self.weights.device),
                            "losses": torch.zeros(n_tasks, dtype=torch.float64)}
        window = self._window
        w = self.weights.detach()
        for i, t in enumerate(self.task_names):
            grads = torch.autograd.grad(losses[t] * scale, window["last"], retain_graph=True, allow_unused=True)
            flat = torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1).float()
                              for g, p in zip(grads, window["last"])])
            window["grads"][i].add_(flat.to(window["grads"].device))
            window["losses"][i] += float(losses[t].detach())
        total = sum(w[i] * losses[t] for i, t in enumerate(self.task_names))
        (total * scale).backward()
        return {t: float(w[i]) for i, t in enumerate(self.task_names)}

    def finish(self, micro_batches: int, scale: float = 1.0) -> dict[str, float]:
        """The weights' gradient from the window's mean losses and mean last-layer gradients."""
        window, self._window = self._window, None
        if window is None:
            return {}
        w = self.weights.detach()
        # data parallel: the norms and loss ratios of the global batch (T × n_last + T floats)
        self._reduce(window["grads"])
        self._reduce(window["losses"])
        values = (window["losses"] / micro_batches).to(w.device, w.dtype)
        if self.initial_losses is None:
            self.initial_losses = values.tolist()
        mean_grads = window["grads"].double() / (float(micro_batches) * float(scale))
        norms_t = mean_grads.norm(dim=1).to(w.device, w.dtype)
        g_norms = w * norms_t
        ratio = values / torch.tensor(self.initial_losses, dtype=w.dtype, device=w.device)
        rate = ratio / ratio.mean()
        target = g_norms.mean() * rate.pow(self.alpha)
        grad_w = torch.sign(g_norms - target) * norms_t * scale  # .grad holds S × the gradient
        if self.weights.grad is None:
            self.weights.grad = grad_w.clone()
        else:
            self.weights.grad.add_(grad_w)
        return {}

    def state_dict(self) -> dict:
        return dict(super().state_dict(), weights=self.weights.detach().cpu().tolist(),
                    initial_losses=self.initial_losses)

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        with torch.no_grad():
            self.weights.copy_(torch.tensor(state["weights"], dtype=self.weights.dtype))
        self.initial_losses = state["initial_losses"]


def _last_weight_matrix(groups: list[list[nn.Parameter]]) -> list[nn.Parameter]:
    """The last weight matrix (≥ 2-D parameter) of the topmost group that has one — on T5 the
    last encoder block's feed-forward output ``wo``, on BERT the last layer's ``output.dense``
    (parameters come in module-registration order); with no matrix at all, the last parameter."""
    for params in reversed(groups):
        matrices = [p for p in params if p.ndim >= 2]
        if matrices:
            return matrices[-1:]
    flat = [p for params in groups for p in params]
    return flat[-1:]
