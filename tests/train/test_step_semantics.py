"""What one optimizer step means, checked against independent answers: accumulation windows
equal one big batch for every weighting method, skipped micro-batches, clipping, fp16 loss
scaling, the lr floor, the annealed sampler's horizon, GradNorm's layer and fresh restarts."""
from __future__ import annotations

import pytest
import torch

from lexilab.io import read_jsonl
from lexilab.train.optim import build_optimizer, build_scheduler, param_groups
from lexilab.train.streams import TaskStream
from lexilab.train.trainer import Trainer, train_run
from lexilab.train.weighting import WEIGHTINGS, build_weighting

ALL_TASKS = ("topic", "emotion", "aligned")  # classification tasks: per-example mean losses


def _trainer(make_config, tmp_path, name, tasks=("topic", "emotion"), **overrides) -> Trainer:
    overrides.setdefault("backbone__name__dropout_rate", 0.0)  # identical forward passes
    overrides.setdefault("optim", {"lr": 1e-3, "clip_norm": None})
    return Trainer(make_config(tasks, **overrides), tmp_path / name / "a" / "seed-0", progress=False)


def _grads(trainer: Trainer) -> dict[str, torch.Tensor]:
    grads = {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None}
    grads.update({f"weighting.{i}": p.grad.clone() for i, p in enumerate(trainer.weighting.parameters())
                  if p.grad is not None})
    return grads


def _assert_same_grads(got: dict, expected: dict, rtol: float = 2e-4) -> None:
    assert got.keys() == expected.keys()
    for name, value in expected.items():
        torch.testing.assert_close(got[name], value, rtol=rtol, atol=rtol * float(value.abs().max()) + 1e-9,
                                   msg=lambda m, n=name: f"{n}: {m}")


# ----------------------------------------------------------------- accumulation (item 7)
def _method_cfg(kind: str, tasks) -> dict:
    if kind == "fixed":
        return {"kind": "fixed", "weights": dict(zip(tasks, (1.0, 0.5, 0.3)))}
    return {"kind": kind}


class _Pair:
    """Two trainers over the same data and initial weights: a window of 2 micro-batches of b=4
    and a window of 1 micro-batch of b=8. Building trainers costs ~0.5 s each, so one pair
    serves every method: the method, the weights and the data streams are reset per method."""

    def __init__(self, make_config, tmp_path, tasks):
        self.tasks = tasks
        self.small = _trainer(make_config, tmp_path, "small", tasks, train__batch_size=4, train__grad_accum=2)
        self.big = _trainer(make_config, tmp_path, "big", tasks, train__batch_size=8)
        self.initial = {k: v.clone() for k, v in self.small.model.state_dict().items()}

    def step_grads(self, trainer: Trainer, kind: str, size: int) -> dict:
        trainer.model.load_state_dict(self.initial)
        trainer.weighting = build_weighting(_method_cfg(kind, self.tasks), list(self.tasks), trainer.shared_groups,
                                            seed=7)  # the same seed on both sides: the same random draws
        optim_cfg = trainer.config["optim"]  # as the trainer builds it: the method's parameters included
        trainer.optimizer = build_optimizer(param_groups(trainer.backbone, trainer.model.task_modules,
                                                         trainer.weighting.parameters(), optim_cfg), optim_cfg)
        trainer.scheduler = build_scheduler(trainer.optimizer, optim_cfg, trainer.total_steps)
        trainer.streams = {name: TaskStream(task, int(trainer.train_cfg["batch_size"]), index + 1)
                           for index, (name, task) in enumerate(trainer.tasks.items())}
        trainer._window(size)
        return _grads(trainer)


@pytest.fixture(scope="module")
def pairs(make_config, tmp_path_factory):
    cache: dict = {}

    def get(tasks):
        if tasks not in cache:
            cache[tasks] = _Pair(make_config, tmp_path_factory.mktemp("accum"), tasks)
        return cache[tasks]

    return get


@pytest.mark.parametrize("kind", sorted(WEIGHTINGS))
def test_grad_accum_k_equals_one_batch_of_k_times_b_for_every_method(pairs, kind):
    """grad_accum = 2 with batch 4 gives the gradient of grad_accum = 1 with batch 8 (the same 8
    examples: a stream cuts one shuffle into consecutive batches) for every registered method.

    Gradient methods see every task each micro-batch, so they run on three tasks. Loss weightings
    draw one task per micro-batch, so a window of k·b examples of *one* batch exists only with one
    task; they run on one. The random methods (pcgrad, graddrop, rlw, gradvac) draw once per
    aggregation from their own seeded stream: with the same seed on both sides and one
    aggregation per window they make the same draws, so the equality is exact for them too
    (before this fix they aggregated per micro-batch: 2 draws for 2 micro-batches). The tolerance
    covers float summation order and padding only (the old per-micro-batch aggregation was off
    by up to 12 %)."""
    tasks = ALL_TASKS if WEIGHTINGS[kind].needs_all_tasks else ("topic",)
    pair = pairs(tasks)
    small = pair.step_grads(pair.small, kind, size=2)
    big = pair.step_grads(pair.big, kind, size=1)
    _assert_same_grads(small, big)


# ----------------------------------------------------------------- skip (item 3)
def test_skipped_micro_batch_neither_dilutes_the_step_nor_counts_examples(make_config, tmp_path, monkeypatch):
    """One of two micro-batches is non-finite: the step is the surviving micro-batch's gradient
    (= a grad_accum = 1 step on that batch), and only its 4 examples count."""
    reference = _trainer(make_config, tmp_path, "ref", ("topic",), train__batch_size=4)
    reference._window(1)
    expected = _grads(reference)

    trainer = _trainer(make_config, tmp_path, "skip", ("topic",), train__batch_size=4, train__grad_accum=2,
                       train__on_nonfinite="skip")
    task = trainer.tasks["topic"]
    original, calls = task.loss, []

    def second_is_inf(*args):
        calls.append(1)
        loss = original(*args)
        return loss * float("inf") if len(calls) == 2 else loss

    monkeypatch.setattr(task, "loss", second_is_inf)
    record = trainer._window(2)
    assert trainer.nonfinite_skipped == 1 and record["examples"] == 4
    _assert_same_grads(_grads(trainer), expected, rtol=1e-6)


def test_window_with_every_micro_batch_skipped_takes_no_step(make_config, tmp_path, monkeypatch):
    trainer = _trainer(make_config, tmp_path, "allskip", ("topic",), train__batch_size=4, train__grad_accum=2,
                       train__on_nonfinite="skip")
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    task = trainer.tasks["topic"]
    original = task.loss
    monkeypatch.setattr(task, "loss", lambda *a: original(*a) * float("nan"))
    record = trainer._window(2)
    assert trainer.nonfinite_skipped == 2 and record["examples"] == 0
    assert not any(k.startswith("loss/") for k in record)
    assert all(torch.equal(before[k], v) for k, v in trainer.model.state_dict().items())


# ----------------------------------------------------------------- clipping (item 2)
def test_clipping_scales_the_model_gradients_only(make_config, tmp_path):
    """Uncertainty's log-variance gradients stay out of the clipped norm and are not clipped."""
    free = _trainer(make_config, tmp_path, "free", weighting={"kind": "uncertainty"}, train__grad_accum=2)
    free._window(2)
    unclipped = _grads(free)
    model_norm = float(torch.linalg.vector_norm(torch.stack(
        [torch.linalg.vector_norm(g) for n, g in unclipped.items() if not n.startswith("weighting.")])))
    clip = model_norm / 4
    clipped = _trainer(make_config, tmp_path, "clipped", weighting={"kind": "uncertainty"}, train__grad_accum=2,
                       optim={"lr": 1e-3, "clip_norm": clip})
    record = clipped._window(2)
    assert record["grad_norm"] == pytest.approx(model_norm, rel=1e-5)
    expected = {n: g * (clip / (model_norm + 1e-6)) if not n.startswith("weighting.") else g  # torch's coef
                for n, g in unclipped.items()}
    _assert_same_grads(_grads(clipped), expected, rtol=1e-5)


# ----------------------------------------------------------------- fp16 loss scaling (item 6)
@pytest.mark.parametrize("kind", ["uncertainty", "fairgrad", "gradnorm", "upgrad"])
def test_loss_scaling_gives_the_fp32_gradients(make_config, tmp_path, kind):
    """A grad scaler (scale 1024; the CPU GradScaler runs the same unscale/step code as CUDA's)
    leaves every gradient — uncertainty's ∂/∂s, FairGrad's update, GradNorm's weights — at the
    value of the unscaled fp32 step."""
    plain = _trainer(make_config, tmp_path, "plain", weighting={"kind": kind})
    plain._window(1)
    expected = _grads(plain)
    scaled = _trainer(make_config, tmp_path, "scaled", weighting={"kind": kind})
    scaled.scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    scaled._window(1)
    got = _grads(scaled)
    if kind == "uncertainty":  # d/ds [exp(-s) L + s] = 1 - exp(-s) L at s = 0 (round robin: topic's step)
        (loss_sum, count), = scaled.epoch_losses.values()
        assert float(scaled.weighting.log_vars["topic"].grad) == pytest.approx(1 - loss_sum / count, rel=1e-5)
    _assert_same_grads(got, expected, rtol=1e-5)


# ----------------------------------------------------------------- lr floor (item 5)
def test_last_step_runs_at_the_lr_floor(make_config, tmp_path):
    trainer = _trainer(make_config, tmp_path, "floor", ("topic",), train__epochs=5, train__max_steps=7,
                       sampler={"kind": "round_robin", "steps_per_epoch": 3},
                       optim={"lr": 1e-3, "min_lr_ratio": 0.1, "warmup_steps": 1, "schedule": "cosine"})
    trainer.fit()
    lrs = [r["lr"] for r in read_jsonl(trainer.run_dir / "history.jsonl") if "split" not in r]
    assert len(lrs) == 7
    assert lrs[1] == pytest.approx(1e-3, rel=1e-12)  # first step after the warm-up: the peak
    assert lrs[-1] == pytest.approx(1e-4, rel=1e-12)  # the last step: min_lr_ratio × lr


# ----------------------------------------------------------------- annealed horizon (item 4)
def test_annealed_sampler_reaches_alpha_end_at_the_last_step_under_max_steps(make_config, tmp_path):
    trainer = _trainer(make_config, tmp_path, "anneal", train__epochs=5, train__max_steps=7, train__grad_accum=2,
                       sampler={"kind": "annealed", "alpha_start": 1.0, "alpha_end": 0.2, "steps_per_epoch": 5})
    seen = []
    original = trainer.sampler.draw

    def spy(n):
        seen.extend(float(trainer.sampler.alpha(trainer.sampler.step + i)) for i in range(n))
        return original(n)

    trainer.sampler.draw = spy
    trainer.fit()
    # windows of 2, 2, 1 micro-batches per epoch (5 per epoch): 7 steps = 2 epochs + 2 = 12 draws
    assert len(seen) == 12
    assert seen[0] == pytest.approx(1.0) and seen[-1] == pytest.approx(0.2, abs=1e-12)


# ----------------------------------------------------------------- GradNorm's layer (item 9)
def test_gradnorm_uses_the_last_encoder_blocks_feed_forward_output_on_t5(make_config, tmp_path):
    trainer = _trainer(make_config, tmp_path, "gradnorm", weighting={"kind": "gradnorm"})
    wo = trainer.backbone.encoder.block[-1].ff.wo.weight  # Chen et al. 2018: last shared layer of weights
    assert wo.ndim == 2 and [p is wo for p in trainer.weighting._last_layer(trainer.shared_groups)] == [True]
    # the weights' gradient is sign(G_t − Ḡ)·‖∇_wo L_t‖ at the first step (all r_t = 1)
    norms = []
    for name in trainer.tasks:
        loss = trainer._loss(name, trainer.streams[name].next())
        norms.append(float(torch.autograd.grad(loss, wo)[0].norm()))
    trainer.streams = {name: TaskStream(task, 8, index + 1) for index, (name, task) in enumerate(trainer.tasks.items())}
    trainer._window(1)
    mean = sum(norms) / len(norms)
    expected = [n if n > mean else -n for n in norms]
    assert trainer.weighting.weights.grad.tolist() == pytest.approx(expected, rel=1e-5)


# ----------------------------------------------------------------- fresh restart (item 1)
def test_crash_before_the_first_checkpoint_restarts_the_records(make_config, tmp_path):
    """A run that died at step 3 with checkpoint_every = 4 left records but no checkpoint; its
    re-run starts from scratch, so its records must equal an uninterrupted run's (before: steps
    1–3 twice). The crash is an exception in the step hook: what is on disk afterwards is what a
    SIGKILL at that point leaves (records are appended as they happen)."""
    config = make_config(("topic", "emotion"), train__checkpoint_every=4, diagnostics={"grad_cosine_every": 1},
                         sampler={"kind": "round_robin", "steps_per_epoch": 6})
    reference = tmp_path / "ref" / "a" / "seed-0"
    expected = train_run(config, reference, progress=False)

    crashed = tmp_path / "crashed" / "a" / "seed-0"

    class Killed(Exception):
        pass

    def crash(trainer):
        if trainer.step == 3:
            raise Killed

    with pytest.raises(Killed):
        Trainer(config, crashed, progress=False).fit(on_step=crash)
    assert not (crashed / "checkpoints" / "last" / "state.pt").exists()
    assert [r["step"] for r in read_jsonl(crashed / "history.jsonl")] == [1, 2, 3]

    assert train_run(config, crashed, progress=False) == expected

    def history(run_dir):
        return [{k: v for k, v in r.items() if k != "examples_per_s"} for r in read_jsonl(run_dir / "history.jsonl")]

    assert history(crashed) == history(reference)
    assert list(read_jsonl(crashed / "gradcos.jsonl")) == list(read_jsonl(reference / "gradcos.jsonl"))
