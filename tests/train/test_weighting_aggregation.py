"""Jacobian-aggregation methods: plumbing (brute-force Jacobian, task-specific gradients, RNG,
resume) and each method's answer on cases solved by hand or by the paper's defining property."""
from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

from lexilab.train.weighting import WEIGHTINGS, build_weighting
from lexilab.train.weighting.aggregation import AggregationWeighting

AGGREGATORS = sorted(n for n, c in WEIGHTINGS.items() if issubclass(c, AggregationWeighting))


class Net(nn.Module):
    """Shared trunk (+ a shared parameter only task a uses, + a frozen one), a head per task."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.trunk = nn.Linear(4, 3)
        self.only_a = nn.Parameter(torch.zeros(3))
        self.frozen = nn.Parameter(torch.zeros(3), requires_grad=False)
        self.heads = nn.ModuleDict({"a": nn.Linear(3, 1), "b": nn.Linear(3, 2), "c": nn.Linear(3, 1)})
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen))
        self.x = torch.randn(6, 4, generator=gen)
        self.y = {t: torch.randn(6, h.out_features, generator=gen) for t, h in self.heads.items()}

    def losses(self, tasks=("a", "b", "c")) -> dict[str, torch.Tensor]:
        h = torch.tanh(self.trunk(self.x) + self.frozen)
        out = {}
        for t in tasks:
            z = h + self.only_a if t == "a" else h
            out[t] = ((self.heads[t](z) - self.y[t]) ** 2).mean()
        return out

    def shared(self) -> list[nn.Parameter]:
        return [self.trunk.weight, self.trunk.bias, self.only_a, self.frozen]


def _linear_jacobian_losses(rows: list[list[float]]):
    """L_t = g_t · θ: the Jacobian w.r.t. θ is exactly ``rows``."""
    theta = nn.Parameter(torch.zeros(len(rows[0]), dtype=torch.float32))
    names = [f"t{i}" for i in range(len(rows))]
    losses = {n: torch.tensor(r) @ theta for n, r in zip(names, rows)}
    return theta, names, losses


def _aggregate(kind: str, rows, **options) -> np.ndarray:
    theta, names, losses = _linear_jacobian_losses(rows)
    w = build_weighting({"kind": kind, **options}, names, [theta])
    w.backward(losses, [theta])
    return theta.grad.double().numpy()


@pytest.mark.parametrize("kind", AGGREGATORS)
def test_plumbing_jacobian_and_task_specific_gradients(kind):
    model = Net()
    tasks = ("a", "b", "c")
    trainable = [p for p in model.shared() if p.requires_grad]
    # brute force: per-task gradients from separate passes on separate copies
    rows, own = [], {}
    for t in tasks:
        ref = copy.deepcopy(model)
        ref.losses((t,))[t].backward()
        shared_ref = [p for p in ref.shared() if p.requires_grad]
        rows.append(torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
                               for p in shared_ref]))
        own[t] = {n: p.grad.clone() for n, p in ref.heads[t].named_parameters()}
    jacobian = torch.stack(rows)
    assert torch.all(jacobian[1:, -3:] == 0)  # only_a: zero rows for b and c
    # the aggregation the method should produce on that Jacobian (same seed -> same draws)
    expected_vec, _ = build_weighting({"kind": kind}, list(tasks), trainable, seed=7).aggregate(jacobian)
    before = [torch.full_like(p, 0.5) for p in trainable]
    for p, b in zip(trainable, before):
        p.grad = b.clone()  # pre-existing gradients accumulate, as with loss.backward()
    w = build_weighting({"kind": kind}, list(tasks), model.shared(), seed=7)
    weights = w.backward(model.losses(), model.shared())
    got = torch.cat([(p.grad - b).reshape(-1) for p, b in zip(trainable, before)])
    torch.testing.assert_close(got, expected_vec, rtol=1e-5, atol=1e-6)
    assert model.frozen.grad is None
    for t in tasks:
        for n, p in model.heads[t].named_parameters():
            torch.testing.assert_close(p.grad, own[t][n], rtol=0, atol=1e-7)
    if weights:
        assert set(weights) == set(tasks)
        combo = torch.tensor([weights[t] for t in tasks]) @ jacobian
        torch.testing.assert_close(combo, expected_vec, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["pcgrad", "graddrop", "rlw", "gradvac"])
def test_random_methods_own_their_rng_and_resume_exactly(kind):
    rows = [[1.0, -2.0, 0.5, 3.0], [-1.0, 1.0, 2.0, -0.5], [0.3, 0.2, -1.5, 1.0], [2.0, -0.1, 0.4, -2.0]]
    torch.manual_seed(0)
    global_before = torch.get_rng_state()
    theta, names, _ = _linear_jacobian_losses(rows)
    first = build_weighting({"kind": kind}, names, [theta], seed=3)
    out = []
    for step in range(6):
        theta.grad = None
        losses = {n: torch.tensor(r) @ theta for n, r in zip(names, rows)}
        first.backward(losses, [theta])
        out.append(theta.grad.clone())
        if step == 2:
            saved = first.state_dict()
    assert torch.equal(torch.get_rng_state(), global_before)  # trainer's RNG untouched
    resumed = build_weighting({"kind": kind}, names, [theta], seed=999)
    resumed.load_state_dict(saved)
    for step in range(3, 6):
        theta.grad = None
        resumed.backward({n: torch.tensor(r) @ theta for n, r in zip(names, rows)}, [theta])
        torch.testing.assert_close(theta.grad, out[step], rtol=0, atol=0)
    if kind in ("graddrop", "rlw"):
        assert any(not torch.equal(out[0], o) for o in out[1:])  # draws differ between steps


def test_pcgrad_two_conflicting_gradients_by_hand():
    g1, g2 = np.array([1.0, 0.0]), np.array([-1.0, 1.0])
    p1 = g1 - (g1 @ g2) / (g2 @ g2) * g2  # Yu et al. 2020, Eq. in Alg. 1
    p2 = g2 - (g2 @ g1) / (g1 @ g1) * g1
    np.testing.assert_allclose(p1 + p2, [0.5, 1.5])
    np.testing.assert_allclose(_aggregate("pcgrad", [g1.tolist(), g2.tolist()]), p1 + p2, atol=1e-6)
    # no conflict: plain sum
    np.testing.assert_allclose(_aggregate("pcgrad", [[1.0, 0.2], [0.5, 1.0]]), [1.5, 1.2], atol=1e-6)


@pytest.mark.parametrize("g1, g2", [([1.0, 0.0], [-1.0, 1.0]), ([2.0, 1.0, 0.0], [0.0, 1.0, -3.0]),
                                    ([1.0, 1.0], [3.0, 3.5])])
def test_mgda_is_min_norm_point_of_the_segment(g1, g2):
    a, b = np.array(g1), np.array(g2)
    gamma = np.clip((b - a) @ b / ((a - b) @ (a - b)), 0.0, 1.0)  # Sener & Koltun 2018, Alg. 1
    expected = gamma * a + (1 - gamma) * b
    np.testing.assert_allclose(_aggregate("mgda", [g1, g2]), expected, atol=1e-6)


def _conflicting_rows(seed: int, m: int = 3, n: int = 5) -> list[list[float]]:
    rng = np.random.default_rng(seed)
    rows = rng.normal(size=(m, n))
    rows[1] = -0.8 * rows[0] + 0.3 * rng.normal(size=n)  # make task 1 conflict with task 0
    return rows.tolist()


def _brute_force_min_norm(jac: np.ndarray) -> np.ndarray:
    """min ‖Jᵀλ‖ over the simplex: best point of a fine grid, polished by SLSQP from there
    (independent of the method's active-set solver and of torchjd)."""
    from scipy.optimize import minimize

    m = jac.shape[0]
    gram = jac @ jac.T
    if m == 3:
        steps = np.linspace(0.0, 1.0, 301)
        grid = np.array([(a, b, 1.0 - a - b) for a in steps for b in steps if a + b <= 1.0 + 1e-12])
        start = grid[np.argmin(np.einsum("ij,jk,ik->i", grid, gram, grid))]
    else:
        start = np.full(m, 1.0 / m)
    res = minimize(lambda w: w @ gram @ w, start, jac=lambda w: 2 * gram @ w, method="SLSQP",
                   bounds=[(0.0, 1.0)] * m, constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1.0}],
                   options={"ftol": 1e-16, "maxiter": 1000})
    return jac.T @ res.x


@pytest.mark.parametrize("seed", range(6))
def test_mgda_reaches_the_min_norm_point_on_three_tasks(seed):
    """On these problems Frank–Wolfe with ε = 1e-3 (the former default) stops 2–87 % short."""
    rows = _conflicting_rows(seed, m=3, n=5)
    expected = _brute_force_min_norm(np.array(rows))
    got = _aggregate("mgda", rows)
    assert np.linalg.norm(got) <= np.linalg.norm(expected) * (1 + 1e-6)
    np.testing.assert_allclose(got, expected, atol=1e-5 * np.linalg.norm(rows))


def test_mgda_degenerate_hulls():
    # 0 lies in the hull of three coplanar gradients: the min-norm point is 0
    np.testing.assert_allclose(_aggregate("mgda", [[1.0, 0.0], [-1.0, 1.0], [0.0, -1.0]]), [0.0, 0.0], atol=1e-6)
    # a repeated gradient (affinely dependent support) and one task
    np.testing.assert_allclose(_aggregate("mgda", [[1.0, 2.0], [1.0, 2.0], [3.0, 0.0]]),
                               _brute_force_min_norm(np.array([[1.0, 2.0], [1.0, 2.0], [3.0, 0.0]])), atol=1e-5)
    np.testing.assert_allclose(_aggregate("mgda", [[0.5, -2.0]]), [0.5, -2.0], atol=1e-7)


def test_mgda_many_tasks_uses_frank_wolfe_to_tolerance():
    rows = np.random.default_rng(0).normal(size=(10, 12)) + 0.5
    got = _aggregate("mgda", rows.tolist())
    expected = _brute_force_min_norm(rows)
    assert np.linalg.norm(got) == pytest.approx(np.linalg.norm(expected), rel=1e-3)


@pytest.mark.parametrize("seed", range(5))
def test_upgrad_and_dualproj_never_conflict(seed):
    rows = _conflicting_rows(seed)
    jac = np.array(rows)
    assert (jac @ jac.mean(0) < 0).any() or (jac[0] @ jac[1] < 0)
    for kind in ("upgrad", "dualproj"):
        d = _aggregate(kind, rows)
        assert (jac @ d >= -1e-5).all(), kind


def test_upgrad_identical_gradients_give_that_gradient():
    g = [0.5, -1.0, 2.0]
    np.testing.assert_allclose(_aggregate("upgrad", [g, g, g]), g, atol=1e-5)


def test_dualproj_projects_the_mean_onto_the_dual_cone_by_hand():
    # cone {d : d·(1,0) ≥ 0, d·(−2,1) ≥ 0}; mean (−0.5, 0.5) → closest point (0, 0.5)
    np.testing.assert_allclose(_aggregate("dualproj", [[1.0, 0.0], [-2.0, 1.0]]), [0.0, 0.5], atol=1e-5)
    np.testing.assert_allclose(_aggregate("dualproj", [[1.0, 0.5], [0.2, 1.0]]), [0.6, 0.75], atol=1e-5)


@pytest.mark.parametrize("c", [0.2, 0.5, 0.9])
@pytest.mark.parametrize("rows", [[[1.0, 0.0], [-1.0, 1.0]], [[2.0, 0.5], [-0.5, 1.0]],
                                  [[1.0, 0.0, 0.0], [-0.5, 1.0, 0.0], [0.0, -0.7, 1.0]]])
def test_cagrad_maximises_worst_task_improvement_in_the_ball(c, rows):
    jac = np.array(rows)
    g0 = jac.mean(0)
    radius = c * np.linalg.norm(g0)
    d = _aggregate("cagrad", rows, c=c)
    assert np.linalg.norm(d - g0) <= radius * (1 + 1e-4)
    # brute force over the ball's boundary (the maximiser lies on it)
    rng = np.random.default_rng(0)
    u = rng.normal(size=(200_000, jac.shape[1]))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    best = (jac @ (g0 + radius * u).T).min(0).max()
    assert (jac @ d).min() >= best - 1e-4 * max(1.0, abs(best))


def test_cagrad_c_zero_is_the_mean():
    rows = [[1.0, 0.0], [-1.0, 1.0], [0.3, -2.0]]
    np.testing.assert_allclose(_aggregate("cagrad", rows, c=0.0), np.mean(rows, 0), atol=1e-6)


def test_imtlg_equal_projections_on_unit_gradients():
    rows = [[1.0, 0.0, 0.5], [-0.5, 2.0, 0.0], [0.2, -0.3, 1.0]]
    jac = np.array(rows)
    d = _aggregate("imtlg", rows)
    proj = jac @ d / np.linalg.norm(jac, axis=1)
    np.testing.assert_allclose(proj, proj[0], rtol=1e-4)
    assert proj[0] > 0


def test_aligned_mtl_by_hand():
    # G = diag(4, 1): B = sqrt(λ_min)·V Λ^{-1/2} Vᵀ = diag(1/2, 1); weights B·(1/2, 1/2)
    np.testing.assert_allclose(_aggregate("aligned_mtl", [[2.0, 0.0], [0.0, 1.0]]), [0.5, 0.5], atol=1e-6)


def test_graddrop_keeps_agreeing_signs_and_picks_one_sign_otherwise():
    agree = [[1.0, -2.0, 3.0], [2.0, -1.0, 0.5]]
    np.testing.assert_allclose(_aggregate("graddrop", agree), [3.0, -3.0, 3.5], atol=1e-6)
    mixed = [[1.0, -2.0], [-3.0, 0.5]]
    for seed in range(5):
        theta, names, losses = _linear_jacobian_losses(mixed)
        build_weighting({"kind": "graddrop"}, names, [theta], seed=seed).backward(losses, [theta])
        d = theta.grad.numpy()
        assert np.isclose(d[0], 1.0) or np.isclose(d[0], -3.0)
        assert np.isclose(d[1], 0.5) or np.isclose(d[1], -2.0)


def test_rlw_is_a_random_convex_combination():
    rows = [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]
    theta, names, losses = _linear_jacobian_losses(rows)
    weights = build_weighting({"kind": "rlw"}, names, [theta], seed=1).backward(losses, [theta])
    w = np.array([weights[n] for n in names])
    assert (w > 0).all() and w.sum() == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(theta.grad.numpy(), w @ np.array(rows), atol=1e-6)


def test_mean_is_the_mean():
    rows = [[1.0, -2.0], [3.0, 0.5], [-1.0, 1.0]]
    np.testing.assert_allclose(_aggregate("mean", rows), np.mean(rows, 0), atol=1e-6)


def test_config_has_equal_cosine_with_every_task():
    rows = [[1.0, 0.0, 0.2], [-0.6, 1.0, 0.0], [0.1, -0.4, 1.0]]
    jac = np.array(rows)
    d = _aggregate("config", rows)
    cos = jac @ d / (np.linalg.norm(jac, axis=1) * np.linalg.norm(d))
    np.testing.assert_allclose(cos, cos[0], rtol=1e-4)
    unit = d / np.linalg.norm(d)
    assert np.linalg.norm(d) == pytest.approx((jac @ unit).sum(), rel=1e-5)


def test_fairgrad_solves_the_alpha_fair_condition():
    rows = [[1.0, 0.0], [-0.5, 2.0], [0.3, 0.3]]
    jac = np.array(rows)
    gram = jac @ jac.T
    for alpha in (1.0, 2.0):
        theta, names, losses = _linear_jacobian_losses(rows)
        weights = build_weighting({"kind": "fairgrad", "alpha": alpha}, names, [theta]).backward(losses, [theta])
        w = np.array([weights[n] for n in names])
        np.testing.assert_allclose(gram @ w, w ** (-1.0 / alpha), rtol=1e-3)
    np.testing.assert_allclose(_aggregate("fairgrad", rows, alpha=0.0), jac.mean(0), atol=1e-6)


def test_gradvac_first_step_projects_like_pcgrad_then_uses_its_ema():
    # with φ̂ = 0 the vaccine correction is exactly the PCGrad projection (Wang et al. 2021)
    np.testing.assert_allclose(_aggregate("gradvac", [[1.0, 0.0], [-1.0, 1.0]]), [0.5, 1.5], atol=1e-6)
    np.testing.assert_allclose(_aggregate("gradvac", [[1.0, 0.2], [0.5, 1.0]]), [1.5, 1.2], atol=1e-6)
    rows = [[1.0, 0.2], [0.5, 1.0]]  # cos > 0: EMA target rises above 0 after one step
    theta, names, _ = _linear_jacobian_losses(rows)
    w = build_weighting({"kind": "gradvac", "beta": 1.0}, names, [theta])
    w.backward({n: torch.tensor(r) @ theta for n, r in zip(names, rows)}, [theta])
    phi = np.array(w.state_dict()["aggregator"]["phi"])
    cos = (np.array(rows[0]) @ np.array(rows[1])) / np.prod(np.linalg.norm(rows, axis=1))
    assert phi[0, 1] == pytest.approx(cos, rel=1e-5)


def _primal_projection(x: np.ndarray, jac: np.ndarray) -> np.ndarray:
    """argmin_y ‖y − x‖² s.t. J y ≥ 0, solved in the primal by SLSQP (independent of torchjd)."""
    from scipy.optimize import minimize

    res = minimize(lambda y: ((y - x) ** 2).sum(), x, jac=lambda y: 2 * (y - x), method="SLSQP",
                   constraints=[{"type": "ineq", "fun": lambda y: jac @ y, "jac": lambda y: jac}],
                   options={"ftol": 1e-14, "maxiter": 1000})
    return res.x


@pytest.mark.parametrize("seed", range(3))
def test_upgrad_and_dualproj_equal_primal_projections(seed):
    rows = _conflicting_rows(seed, m=3, n=4)
    jac = np.array(rows)
    upgrad = np.mean([_primal_projection(g, jac) for g in jac], axis=0)  # Quinton & Rey, Eq. 4
    np.testing.assert_allclose(_aggregate("upgrad", rows), upgrad, atol=1e-4)
    dualproj = _primal_projection(jac.mean(0), jac)
    np.testing.assert_allclose(_aggregate("dualproj", rows), dualproj, atol=1e-4)


def _method(kind: str) -> dict:
    return {"kind": "fixed", "weights": {"a": 1.0, "b": 0.5, "c": 0.3}} if kind == "fixed" else {"kind": kind}


@pytest.mark.parametrize("kind", sorted(WEIGHTINGS))
def test_every_method_is_exact_under_a_loss_scale(kind):
    """With the fp16 loss scale S passed in, ``.grad`` holds exactly S × the unscaled gradients
    (the grad scaler then divides by S): the scaled objective never reaches a non-linear term."""
    grads = []
    for scale in (1.0, 1024.0):
        model = Net()
        w = build_weighting(_method(kind), ["a", "b", "c"], model.shared(), seed=5)
        w.backward(model.losses(), model.shared(), scale=scale)
        found = {n: p.grad / scale for n, p in model.named_parameters() if p.grad is not None}
        found.update({f"method.{i}": p.grad / scale for i, p in enumerate(w.parameters()) if p.grad is not None})
        grads.append(found)
    assert grads[0].keys() == grads[1].keys()
    for name, g in grads[0].items():
        torch.testing.assert_close(grads[1][name], g, rtol=1e-5, atol=1e-7, msg=lambda m, n=name: f"{n}: {m}")


@pytest.mark.parametrize("kind", AGGREGATORS)
def test_overflowing_jacobian_reaches_the_grad_scaler_instead_of_the_solver(kind):
    """fp16's first steps overflow: a non-finite Jacobian is handed on as non-finite gradients
    (GradScaler then skips the step and lowers the scale) without calling the solvers."""
    theta, names, losses = _linear_jacobian_losses([[1.0, -2.0], [3.0, 0.5], [-1.0, 1.0]])
    w = build_weighting({"kind": kind}, names, [theta])
    w.backward(losses, [theta], scale=2e38)  # 3 × 2e38 overflows fp32
    assert not torch.isfinite(theta.grad).all()
