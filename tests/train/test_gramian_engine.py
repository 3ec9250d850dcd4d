"""weighting.engine: gramian — the gradient methods from torchjd's autogram Gramian instead of
the dense T × n Jacobian: the same update as the dense path (and as a computation by hand from
per-task gradients and scipy), task-specific gradients, the fp16 loss-scale convention, a short
Trainer run, the config-time refusals, and no T × n tensor ever allocated."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.optimize import minimize
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from lexilab.config import check_config, identity_hash
from lexilab.errors import LexilabError
from lexilab.model import load_backbone
from lexilab.train.freezing import apply_freezing
from lexilab.train.trainer import Trainer
from lexilab.train.weighting import WEIGHTINGS, build_weighting, flat_params
from lexilab.train.weighting.aggregation import AggregationWeighting

TASKS = ("topic", "emotion", "summary")  # multiclass, multilabel (attention pooling), seq2seq
GRAMIAN = ("aligned_mtl", "cagrad", "dualproj", "fairgrad", "gradvac", "imtlg", "mgda", "pcgrad", "upgrad")
JACOBIAN_ONLY = ("config", "graddrop", "mean", "rlw")


def test_every_aggregation_method_is_classified():
    kinds = {n for n, c in WEIGHTINGS.items() if issubclass(c, AggregationWeighting)}
    assert kinds == set(GRAMIAN) | set(JACOBIAN_ONLY)


@pytest.fixture(scope="module")
def model(make_config, tmp_path_factory):
    """A tiny T5 (tied embedding: the seq2seq loss uses it outside its module) with three real
    task heads and one fixed batch per task."""
    config = make_config(TASKS, backbone__name__dropout_rate=0.0, train__batch_size=4)
    for task in config["tasks"].values():
        task["max_length"] = 16
    config["tasks"]["summary"]["max_target_length"] = 6
    trainer = Trainer(config, tmp_path_factory.mktemp("gramian") / "a" / "seed-0", progress=False)
    batches = {name: trainer.streams[name].next() for name in TASKS}
    return trainer, batches


def _step(trainer, batches, kind: str, engine: str, scale: float = 1.0, seed: int = 5):
    """One window of one micro-batch through the method: (.grad of every parameter, weights)."""
    trainer.model.zero_grad(set_to_none=True)
    method = build_weighting({"kind": kind, "engine": engine}, list(TASKS), trainer.shared_groups, seed=seed)
    method.attach(trainer.backbone)
    losses = {name: trainer._loss(name, batch) for name, batch in batches.items()}
    weights = method.backward(losses, trainer.shared_groups, scale=scale)
    if method._gramian is not None:
        method._gramian.close()  # the next method hooks the modules afresh
        _step.explicit = method._gramian.explicit
    grads = {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None}
    return grads, weights


def _assert_close(got: dict, expected: dict, rtol: float = 1e-4) -> None:
    assert got.keys() == expected.keys()
    for name, value in expected.items():
        torch.testing.assert_close(got[name], value, rtol=rtol, atol=rtol * float(value.abs().max()) + 1e-10,
                                   msg=lambda m, n=name: f"{n}: {m}")


@pytest.mark.parametrize("kind", GRAMIAN)
def test_gramian_engine_gives_the_dense_paths_update(model, kind):
    trainer, batches = model
    dense, dense_weights = _step(trainer, batches, kind, "jacobian")
    gram, gram_weights = _step(trainer, batches, kind, "gramian")
    _assert_close(gram, dense)  # shared parameters and every task-specific one
    assert gram_weights.keys() == dense_weights.keys() == set(TASKS)
    np.testing.assert_allclose([gram_weights[t] for t in TASKS], [dense_weights[t] for t in TASKS],
                               rtol=1e-4, atol=1e-6)


def _min_norm_by_scipy(gram: np.ndarray) -> np.ndarray:
    """MGDA's weights argmin_{λ ∈ Δ} λᵀGλ by SLSQP (independent of lexilab's active sets)."""
    m = gram.shape[0]
    G = gram / np.trace(gram)
    result = minimize(lambda x: x @ G @ x, np.full(m, 1 / m), jac=lambda x: 2 * G @ x, method="SLSQP",
                      bounds=[(0, 1)] * m, constraints=[{"type": "eq", "fun": lambda x: x.sum() - 1}],
                      options={"ftol": 1e-15, "maxiter": 1000})
    return result.x


def test_mgda_update_by_hand_from_per_task_gradients(model):
    trainer, batches = model
    trainer.model.zero_grad(set_to_none=True)
    shared = flat_params(trainer.shared_groups)
    shared_ids = {id(p) for p in shared}
    rows, own = [], {}
    for name in TASKS:  # one torch.autograd.grad per task: the rows of J and the task's own gradient
        loss = trainer._loss(name, batches[name])
        params = [p for p in trainer.model.parameters() if p.requires_grad]
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        rows.append(torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1).double()
                               for p, g in zip(params, grads) if id(p) in shared_ids]))
        for p, g in zip(params, grads):
            if id(p) not in shared_ids and g is not None:
                own[id(p)] = own.get(id(p), 0) + g
    jacobian = torch.stack(rows).numpy()
    weights = _min_norm_by_scipy(jacobian @ jacobian.T)
    expected = torch.from_numpy(weights @ jacobian)
    got, got_weights = _step(trainer, batches, "mgda", "gramian")
    # the tied embedding is also the seq2seq output projection (used outside its module): it
    # alone is taken by the exact batched pass, every other block comes from autogram
    assert _step.explicit == [trainer.backbone.shared.weight]
    by_id = {id(p): got[n] for n, p in trainer.model.named_parameters() if n in got}
    update = torch.cat([by_id[id(p)].reshape(-1).double() for p in shared])
    torch.testing.assert_close(update, expected, rtol=1e-4, atol=1e-4 * float(expected.abs().max()))
    np.testing.assert_allclose([got_weights[t] for t in TASKS], weights, atol=1e-4)
    assert own  # the decoder and the heads: each gets exactly the gradient of the tasks that use it
    for pid, grad in own.items():
        torch.testing.assert_close(by_id[pid], grad, rtol=1e-5, atol=1e-7)


def test_loss_scale_gives_the_unscaled_answer(model):
    trainer, batches = model
    plain, plain_weights = _step(trainer, batches, "upgrad", "gramian")
    scale = 2.0 ** 12
    scaled, scaled_weights = _step(trainer, batches, "upgrad", "gramian", scale=scale)
    _assert_close({n: g / scale for n, g in scaled.items()}, plain, rtol=1e-5)
    np.testing.assert_allclose([scaled_weights[t] for t in TASKS], [plain_weights[t] for t in TASKS], rtol=1e-5)


def test_mgda_frank_wolfe_above_eight_tasks():
    """Nine tasks: torchjd's Frank–Wolfe MGDA, also a Gramian weighting."""
    torch.manual_seed(0)
    trunk, heads = torch.nn.Sequential(torch.nn.Linear(5, 6), torch.nn.Tanh()), torch.nn.ModuleList(
        torch.nn.Linear(6, 1) for _ in range(9))
    x, y = torch.randn(16, 5), torch.randn(9, 16)
    names = [f"t{i}" for i in range(9)]
    root = torch.nn.ModuleDict({"trunk": trunk, "heads": heads})
    results = []
    for engine in ("jacobian", "gramian"):
        root.zero_grad(set_to_none=True)
        method = build_weighting({"kind": "mgda", "engine": engine}, names, list(trunk.parameters()))
        method.attach(trunk)
        h = trunk(x)
        losses = {n: ((head(h).squeeze(1) - y[i]) ** 2).mean() for i, (n, head) in enumerate(zip(names, heads))}
        weights = method.backward(losses, list(trunk.parameters()))
        results.append(([p.grad.clone() for p in root.parameters()], weights))
    for a, b in zip(results[0][0], results[1][0]):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(list(results[1][1].values()), list(results[0][1].values()), rtol=1e-5, atol=1e-7)


def test_freezing_before_and_after_the_hooks_were_made(model):
    """Hooks made with everything trainable, then embeddings + the bottom block frozen (their
    modules' autogram nodes are dropped), then all unfrozen again (modules unhooked while
    frozen: taken exactly for one step, hooked again for the next): each step equals the dense
    path's."""
    trainer, batches = model
    schedule = [{"embeddings": True, "encoder_layers": 1}, {}, {}]
    methods = {}
    for engine in ("jacobian", "gramian"):
        methods[engine] = build_weighting({"kind": "upgrad", "engine": engine}, list(TASKS),
                                          trainer.shared_groups, seed=5)
        methods[engine].attach(trainer.backbone)
    try:
        for freeze in schedule:
            apply_freezing(trainer.backbone, freeze, 0)
            found = {}
            for engine, method in methods.items():
                trainer.model.zero_grad(set_to_none=True)
                losses = {name: trainer._loss(name, batch) for name, batch in batches.items()}
                method.backward(losses, trainer.shared_groups)
                found[engine] = {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None}
            _assert_close(found["gramian"], found["jacobian"])
            assert ("backbone.shared.weight" in found["gramian"]) == (not freeze)
    finally:
        apply_freezing(trainer.backbone, {}, 0)
        methods["gramian"]._gramian.close()


@pytest.mark.parametrize("model_type", ["bert", "deberta-v2"])
def test_encoder_only_backbones(model_type):
    """Hugging Face encoders: BERT's parameters all sit in hooked modules; DeBERTa-v2 reads its
    relative position embeddings' weight directly, which the coverage check hands to the exact pass."""
    from transformers import AutoConfig, AutoModel

    from lexilab.model.encoder_only import EncoderOnlyBackbone

    extra = {"relative_attention": True, "pos_att_type": ["p2c", "c2p"], "norm_rel_ebd": "layer_norm",
             "position_buckets": 8} if model_type == "deberta-v2" else {}
    config = AutoConfig.for_model(model_type, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                  intermediate_size=64, vocab_size=100, max_position_embeddings=64,
                                  hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, **extra)
    torch.manual_seed(0)
    backbone = EncoderOnlyBackbone(AutoModel.from_config(config)).train()
    heads = [nn.Linear(32, 3) for _ in range(3)]
    gen = torch.Generator().manual_seed(0)
    data = [(torch.randint(3, 100, (4, 9), generator=gen), torch.randint(0, 3, (4,), generator=gen)) for _ in heads]
    groups = backbone.shared_parameter_groups()
    found = {}
    for engine in ("jacobian", "gramian"):
        for p in [*backbone.parameters(), *(q for h in heads for q in h.parameters())]:
            p.grad = None
        method = build_weighting({"kind": "upgrad", "engine": engine}, ["a", "b", "c"], groups)
        method.attach(backbone)
        losses = {t: F.cross_entropy(h(backbone.encode(ids, torch.ones_like(ids)).mean(1)), y)
                  for t, h, (ids, y) in zip("abc", heads, data)}
        method.backward(losses, groups)
        found[engine] = {str(i): p.grad.clone() for i, p in enumerate([*backbone.parameters(), *heads[0].parameters()])
                         if p.grad is not None}
    _assert_close(found["gramian"], found["jacobian"], rtol=1e-5)
    explicit = sum(p.numel() for p in method._gramian.explicit)
    assert (explicit > 0) == (model_type == "deberta-v2")
    assert explicit < sum(p.numel() for p in flat_params(groups)) / 20


class _Trunk(nn.Module):
    """A hooked Linear, a bare shared parameter on the root (no module of its own), a frozen
    one, and heads: the root holds shared and task-specific parameters, so it is not hooked."""

    def __init__(self) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(3)
        self.trunk = nn.Linear(4, 3)
        self.bare = nn.Parameter(torch.randn(3, generator=gen))
        self.frozen = nn.Parameter(torch.randn(3, generator=gen), requires_grad=False)
        self.heads = nn.ModuleList(nn.Linear(3, 1) for _ in range(3))
        with torch.no_grad():
            for p in [*self.trunk.parameters(), *self.heads.parameters()]:
                p.copy_(torch.randn(p.shape, generator=gen))
        self.x, self.y = torch.randn(6, 4, generator=gen), torch.randn(3, 6, generator=gen)

    def losses(self, factor: float = 1.0) -> dict[str, torch.Tensor]:
        h = torch.tanh(self.trunk(self.x) + self.frozen) * self.bare * factor
        return {f"t{i}": ((head(h).squeeze(1) - self.y[i]) ** 2).mean() for i, head in enumerate(self.heads)}

    def shared(self) -> list[nn.Parameter]:
        return [self.trunk.weight, self.trunk.bias, self.bare, self.frozen]


def test_parameters_outside_hooked_modules_and_overflow():
    found = []
    for engine in ("jacobian", "gramian"):
        net = _Trunk()
        method = build_weighting({"kind": "upgrad", "engine": engine}, ["t0", "t1", "t2"], net.shared())
        method.attach(net)
        weights = method.backward(net.losses(), net.shared())
        found.append(({n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}, weights))
        # fp16's first steps overflow: non-finite gradients reach the grad scaler, no solver runs
        net.zero_grad(set_to_none=True)
        assert method.backward(net.losses(factor=1e30), net.shared(), scale=1e30) == {}
        assert not torch.isfinite(net.trunk.weight.grad).all()
    _assert_close(found[1][0], found[0][0], rtol=1e-5)
    assert "frozen" not in found[1][0]
    np.testing.assert_allclose(list(found[1][1].values()), list(found[0][1].values()), rtol=1e-5)


class _LargestTensor(TorchDispatchMode):
    """The largest tensor any operator returns (backward and vmapped passes included)."""

    def __init__(self) -> None:
        super().__init__()
        self.numel = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in tree_flatten(out)[0]:
            if isinstance(tensor, torch.Tensor):
                self.numel = max(self.numel, tensor.numel())
        return out


def test_no_tasks_by_shared_parameters_tensor_is_allocated():
    # small vocabulary: the shared parameters spread over many modules of similar size
    cfg = {"d_model": 32, "d_ff": 64, "num_layers": 2, "num_decoder_layers": 1, "num_heads": 4, "d_kv": 8,
           "vocab_size": 64, "feed_forward_proj": "gated-gelu", "dropout_rate": 0.0}
    backbone = load_backbone(cfg, init="random", seed=0).train()
    groups = backbone.shared_parameter_groups()
    n = sum(p.numel() for p in flat_params(groups))
    names = ["a", "b", "c"]
    gen = torch.Generator().manual_seed(0)
    heads = [torch.nn.Linear(32, 3) for _ in names]
    data = [(torch.randint(2, 64, (4, 8), generator=gen), torch.randint(0, 3, (4,), generator=gen)) for _ in names]
    largest = {}
    for engine in ("jacobian", "gramian"):
        method = build_weighting({"kind": "upgrad", "engine": engine}, names, groups)
        method.attach(backbone)
        losses = {t: F.cross_entropy(head(backbone.encode(ids).mean(1)), y)
                  for t, head, (ids, y) in zip(names, heads, data)}
        with _LargestTensor() as probe:
            method.backward(losses, groups)
        largest[engine] = probe.numel
    assert largest["jacobian"] >= len(names) * n  # the probe sees the dense path's T × n Jacobian
    assert largest["gramian"] <= len(names) * n / 8  # one module's T × |module| block at most


# ----------------------------------------------------------------- config and Trainer
def _config(make_config, **weighting):
    return make_config(TASKS, weighting={"kind": "upgrad", **weighting})


def test_engine_is_absent_from_resolved_configs_unless_set(make_config):
    config, problems = check_config(_config(make_config))
    assert not problems and "engine" not in config["weighting"]  # existing runs keep their identity hash
    gramian, problems = check_config(_config(make_config, engine="gramian"))
    assert not problems and gramian["weighting"]["engine"] == "gramian"
    assert identity_hash(gramian) != identity_hash(config)


@pytest.mark.parametrize("change, says", [
    ({"weighting": {"kind": "graddrop", "engine": "gramian"}}, "'graddrop' needs the whole Jacobian"),
    ({"weighting": {"kind": "upgrad", "engine": "gramian"}, "train__grad_accum": 2}, "train.grad_accum must be 1"),
    ({"weighting": {"kind": "upgrad", "engine": "gramian"}, "train__distributed": {"enabled": True}},
     "under train.distributed"),
    ({"weighting": {"kind": "upgrad", "engine": "gramian"}, "train__compile": True}, "train.compile: false"),
    ({"weighting": {"kind": "upgrad", "engine": "gramain"}}, "'gramain' is not one of jacobian, gramian"),
])
def test_refusals_are_one_line(make_config, tmp_path, change, says):
    config = make_config(TASKS, **change)
    _, problems = check_config(config)
    assert [p.path for p in problems] == ["weighting.engine"]
    assert says in problems[0].message
    with pytest.raises(LexilabError) as error:
        Trainer(config, tmp_path / "a" / "seed-0", progress=False)
    assert says in str(error.value) and "config.yaml" in str(error.value) and "\n" not in str(error.value)


def test_engine_is_not_an_option_of_loss_weightings(make_config):
    _, problems = check_config(make_config(TASKS, weighting={"kind": "equal", "engine": "gramian"}))
    assert [p.path for p in problems] == ["weighting.engine"] and "not an option" in problems[0].message


def test_short_trainer_run_matches_the_dense_engine(make_config, tmp_path):
    """Two optimizer steps of the real Trainer (sampling, dropout, losses, AdamW) under each engine."""
    tasks = ("topic", "emotion")  # the seq2seq head is covered above; this checks the trainer's wiring
    records, states = {}, {}
    for engine in ("jacobian", "gramian"):
        # dropout on (the tiny T5's 0.1): the Gramian engine draws nothing from torch's RNG
        config = make_config(tasks, weighting={"kind": "upgrad", "engine": engine}, train__batch_size=4)
        for task in config["tasks"].values():
            task["max_length"] = 16
        trainer = Trainer(config, tmp_path / engine / "a" / "seed-0", progress=False)
        initial = {k: v.clone() for k, v in trainer.model.state_dict().items()}
        records[engine] = [trainer._window(1) for _ in range(2)]
        states[engine] = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    for dense, gram in zip(records["jacobian"], records["gramian"]):
        for task in tasks:
            assert gram[f"loss/{task}"] == pytest.approx(dense[f"loss/{task}"], rel=1e-5)
    _assert_close(states["gramian"], states["jacobian"], rtol=1e-4)
    assert not torch.equal(states["gramian"]["backbone.shared.weight"], initial["backbone.shared.weight"])  # the steps moved it
