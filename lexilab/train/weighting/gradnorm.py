"""GradNorm (Chen, Badrinarayanan, Lee & Rabinovich, ICML 2018).

Learnable task weights ``w_t`` (init 1). With ``W`` the last shared layer's parameters,
``G_t = ‖∇_W w_t L_t‖ = w_t ‖∇_W L_t‖``, ``Ḡ = mean_t G_t``, the inverse training rate
``r_t = L̃_t / mean_i L̃_i`` with ``L̃_t = L_t / L_t(0)`` (loss at the first step), the weights
receive the gradient of

    L_grad = Σ_t | G_t − Ḡ · r_t^α |        (target Ḡ·r_t^α held constant, paper §3.2)

i.e. ``∂L_grad/∂w_t = sign(G_t − target_t) · ‖∇_W L_t‖`` — exact, no double backward needed
because ``G_t`` is linear in ``w_t``. The network receives the gradient of ``Σ_t w_t L_t`` (w
detached). After each optimizer step the weights are renormalised to sum to T; we do it at the
start of the next ``backward`` (the first point where the method sees the stepped weights), with
a floor of 1e-6 so a weight never turns negative.

"Last shared layer": the top group of ``shared_params`` when the trainer passes the ordered
mapping of ``backbone.shared_parameter_groups()`` (or the group named by the ``layer``
option), else the last trainable parameter of the flat list.
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

    def parameters(self) -> list[nn.Parameter]:
        return [self.weights]

    def _last_layer(self, shared_params) -> list[nn.Parameter]:
        if isinstance(shared_params, dict):
            groups, grouped = shared_params, True
        elif self.groups_given:  # grouped at build time, flat list at call time
            groups, grouped = self.shared_groups, True
        else:
            groups, grouped = {"shared": list(shared_params)}, False
        groups = {k: [p for p in v if p.requires_grad] for k, v in groups.items()}
        if self.layer is not None:
            params = groups.get(self.layer, [])
        else:
            non_empty = [v for v in groups.values() if v]
            params = non_empty[-1] if non_empty else []
            if not grouped:  # flat list: its last trainable parameter
                params = params[-1:]
        if not params:
            raise LexilabError("config.yaml: weighting: gradnorm found no trainable last shared layer")
        return params

    def backward(self, losses: dict[str, Tensor], shared_params) -> dict[str, float]:
        self._check_losses(losses)
        n_tasks = len(self.task_names)
        with torch.no_grad():
            self.weights.clamp_(min=_FLOOR)
            self.weights.mul_(n_tasks / self.weights.sum())
        w = self.weights.detach()
        values = torch.stack([losses[t].detach().float() for t in self.task_names]).to(w.device)
        if self.initial_losses is None:
            self.initial_losses = values.tolist()
        last = self._last_layer(shared_params)
        norms = []
        for t in self.task_names:
            grads = torch.autograd.grad(losses[t], last, retain_graph=True, allow_unused=True)
            squared = sum(float(g.float().pow(2).sum()) for g in grads if g is not None)
            norms.append(squared ** 0.5)
        norms_t = torch.tensor(norms, dtype=w.dtype, device=w.device)
        g_norms = w * norms_t
        ratio = values / torch.tensor(self.initial_losses, dtype=w.dtype, device=w.device)
        rate = ratio / ratio.mean()
        target = g_norms.mean() * rate.pow(self.alpha)
        grad_w = torch.sign(g_norms - target) * norms_t
        if self.weights.grad is None:
            self.weights.grad = grad_w.clone()
        else:
            self.weights.grad.add_(grad_w)
        total = sum(w[i] * losses[t] for i, t in enumerate(self.task_names))
        total.backward()
        return {t: float(w[i]) for i, t in enumerate(self.task_names)}

    def state_dict(self) -> dict:
        return dict(super().state_dict(), weights=self.weights.detach().cpu().tolist(),
                    initial_losses=self.initial_losses)

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        with torch.no_grad():
            self.weights.copy_(torch.tensor(state["weights"], dtype=self.weights.dtype))
        self.initial_losses = state["initial_losses"]

