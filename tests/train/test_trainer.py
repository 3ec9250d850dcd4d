"""The trainer end to end on tiny synthetic multi-task runs: the run directory contract, the
evaluation protocol, freezing, accumulation windows, non-finite losses, methods and precision."""
from __future__ import annotations

import json

import pytest
import torch

from lexilab.errors import LexilabError
from lexilab.io import read_json, read_jsonl
from lexilab.train import evaluation
from lexilab.train.trainer import NonFiniteLoss, Trainer, train_run

SIZES = {"train": 48, "val": 16, "calibration": 16, "test": 16}  # the tiny tasks of conftest.py


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, make_config):
    """One 3-task run (all kinds), recording which splits the evaluation code predicted."""
    run_dir = tmp_path_factory.mktemp("results") / "exp" / "mtl" / "seed-0"
    calls = []
    original = evaluation.predict_split

    def spy(trainer, name, split):
        calls.append((name, split))
        return original(trainer, name, split)

    evaluation.predict_split = spy
    try:
        config = make_config(diagnostics={"grad_cosine_every": 2})
        metrics = train_run(config, run_dir, progress=False)
    finally:
        evaluation.predict_split = original
    return run_dir, metrics, calls


def test_run_directory_contract(finished_run):
    run_dir, metrics, _ = finished_run
    for name in ("env.json", "history.jsonl", "gradcos.jsonl", "metrics.json", "thresholds.json",
                 "tasks.json", "checkpoints/last/state.pt", "checkpoints/best/model.safetensors"):
        assert (run_dir / name).exists(), name
    assert read_json(run_dir / "metrics.json") == json.loads(json.dumps(metrics))
    assert set(metrics) == {"val", "test"}
    assert {"accuracy", "f1_macro"} <= set(metrics["test"]["topic"])
    assert {"f1_samples", "f1_micro", "hamming_loss", "map"} <= set(metrics["test"]["emotion"])
    assert {"rouge1", "rougeL"} <= set(metrics["test"]["summary"])
    for split in ("val", "test"):
        for task in ("topic", "emotion", "summary"):
            records = list(read_jsonl(run_dir / "predictions" / split / f"{task}.jsonl"))
            assert len(records) == SIZES[split]
            assert {"id", "prediction", "reference"} <= set(records[0])
    thresholds = read_json(run_dir / "thresholds.json")
    assert list(thresholds) == ["emotion"] and len(thresholds["emotion"]) == 4
    env = read_json(run_dir / "env.json")
    assert env["packages"]["torch"] and env["device"] == "cpu"
    assert env["datasets"]["topic"]["rows"]["train"] == SIZES["train"]
    steps = [r["step"] for r in read_jsonl(run_dir / "history.jsonl") if "split" not in r]
    assert steps == list(range(1, 7))  # 6 micro-batches, accumulation 1
    cosines = list(read_jsonl(run_dir / "gradcos.jsonl"))
    assert {r["step"] for r in cosines} == {2, 4, 6}
    assert {(r["task_a"], r["task_b"]) for r in cosines if r["group"] == "all"} == {
        ("topic", "emotion"), ("topic", "summary"), ("emotion", "summary")}


def test_test_split_evaluated_once_thresholds_from_calibration(finished_run):
    _, _, calls = finished_run
    for task in ("topic", "emotion", "summary"):
        assert calls.count((task, "test")) == 1
    assert calls.count(("emotion", "calibration")) == 1  # thresholds: calibration split only
    assert ("topic", "calibration") not in calls


def test_rerun_of_finished_state_trains_nothing_more(finished_run, make_config):
    run_dir, metrics, _ = finished_run
    trainer = Trainer(make_config(diagnostics={"grad_cosine_every": 2}), run_dir, progress=False)
    assert trainer.maybe_resume() and trainer.step == trainer.total_steps
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.fit()
    assert all(torch.equal(before[k], v) for k, v in trainer.model.state_dict().items())


def _snapshot(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_frozen_parameters_do_not_change_and_unfreezing_follows_schedule(make_config, tmp_path):
    # embeddings and both encoder blocks frozen; block 1 unfrozen from optimizer step index 3
    config = make_config(("topic", "summary"), backbone__freeze={
        "embeddings": True, "encoder_layers": 2, "unfreeze": [{"step": 3, "encoder_layers": 1}]})
    trainer = Trainer(config, tmp_path / "e" / "a" / "seed-0", progress=False)
    seen = {0: _snapshot(trainer.model)}
    trainer.fit(on_step=lambda t: seen.__setitem__(t.step, _snapshot(t.model)))

    def moved(a, b, prefix):
        keys = [k for k in seen[a] if k.startswith(prefix)]
        assert keys, prefix
        return any(not torch.equal(seen[a][k], seen[b][k]) for k in keys)

    assert not moved(0, 6, "backbone.shared.")  # embeddings never move
    assert not moved(0, 6, "backbone.encoder.block.0.")  # bottom layer frozen throughout
    assert not moved(0, 3, "backbone.encoder.block.1.")  # steps 1-3 (indices 0-2): frozen
    assert moved(3, 6, "backbone.encoder.block.1.")  # from index 3 on: trained
    assert moved(0, 6, "backbone.decoder.") and moved(0, 6, "task_modules.topic.")


def test_accumulation_windows_never_leak_across_epochs(make_config, tmp_path):
    config = make_config(("topic",), sampler={"kind": "round_robin", "steps_per_epoch": 7},
                         train__grad_accum=3, train__epochs=2, train__batch_size=4)
    run_dir = tmp_path / "e" / "a" / "seed-0"
    trainer = Trainer(config, run_dir, progress=False)
    assert trainer.windows_per_epoch == 3 and trainer.total_steps == 6
    trainer.fit()
    history = [r for r in read_jsonl(run_dir / "history.jsonl") if "split" not in r]
    # windows of 3, 3 and the epoch's last 1 micro-batch, twice: 7 batches of 4 per epoch
    assert [r["examples"] for r in history] == [12, 12, 4, 12, 12, 4]
    assert [r["epoch"] for r in history] == [0, 0, 0, 1, 1, 1]


def test_nonfinite_loss_fails_naming_step_and_task(make_config, tmp_path, monkeypatch):
    config = make_config(("topic", "emotion"))
    trainer = Trainer(config, tmp_path / "e" / "a" / "seed-0", progress=False)
    task = trainer.tasks["emotion"]
    original = task.loss
    monkeypatch.setattr(task, "loss", lambda *a: original(*a) * float("nan"))
    with pytest.raises(NonFiniteLoss, match=r"step 1 in task 'emotion'"):
        trainer.fit()


def test_nonfinite_skip_policy_counts_skipped_batches(make_config, tmp_path, monkeypatch):
    config = make_config(("topic", "emotion"), train__on_nonfinite="skip")
    trainer = Trainer(config, tmp_path / "e" / "a" / "seed-0", progress=False)
    task = trainer.tasks["emotion"]
    original = task.loss
    monkeypatch.setattr(task, "loss", lambda *a: original(*a) * float("inf"))
    trainer.fit()
    assert trainer.nonfinite_skipped == 3  # round robin: every other micro-batch is emotion's
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


@pytest.mark.parametrize("weighting", [{"kind": "uncertainty"}, {"kind": "dwa"}, {"kind": "fixed"},
                                       {"kind": "pcgrad"}, {"kind": "upgrad"}, {"kind": "gradnorm"}])
def test_weighting_methods_train_through_the_same_path(make_config, tmp_path, weighting):
    config = make_config(("topic", "aligned"), weighting=weighting, train__epochs=2,
                         sampler={"kind": "round_robin", "steps_per_epoch": 2})
    if weighting["kind"] == "fixed":
        config["tasks"]["aligned"]["weight"] = 0.3
    trainer = Trainer(config, tmp_path / "e" / "a" / "seed-0", progress=False)
    start = _snapshot(trainer.model)
    trainer.fit()
    assert trainer.weighting.needs_all_tasks == (weighting["kind"] in ("pcgrad", "upgrad", "gradnorm"))
    end = trainer.model.state_dict()
    assert any(not torch.equal(start[k], end[k]) for k in start)
    assert all(torch.isfinite(v).all() for v in end.values())
    if weighting["kind"] == "uncertainty":
        assert any(not torch.equal(p, torch.zeros_like(p)) for p in trainer.weighting.parameters())


def test_diagnostics_leave_training_bit_identical(make_config, tmp_path):
    weights = []
    for every in (0, 1):
        config = make_config(("topic", "emotion"), diagnostics={"grad_cosine_every": every})
        trainer = Trainer(config, tmp_path / f"d{every}" / "a" / "seed-0", progress=False)
        trainer.fit()
        weights.append(_snapshot(trainer.model))
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_bf16_autocast_runs_on_cpu(make_config, tmp_path):
    config = make_config(("topic", "summary"), train__precision="bf16")
    metrics = train_run(config, tmp_path / "e" / "a" / "seed-0", progress=False)
    assert 0.0 <= metrics["test"]["topic"]["accuracy"] <= 1.0


def test_seq2seq_task_on_encoder_only_backbone_is_refused(make_config, tmp_path):
    from transformers import BertConfig, BertModel

    directory = tmp_path / "bert"
    BertModel(BertConfig(vocab_size=32128, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                         intermediate_size=64)).save_pretrained(directory)
    config = make_config(("topic", "summary"), backbone={"name": str(directory), "init": "pretrained",
                                                         "tokenizer": "data:flan_t5_tokenizer"})
    with pytest.raises(LexilabError, match="seq2seq"):
        train_run(config, tmp_path / "e" / "a" / "seed-0", progress=False)
    config = make_config(("topic", "emotion"), backbone={"name": str(directory), "init": "pretrained",
                                                         "tokenizer": "data:flan_t5_tokenizer"})
    metrics = train_run(config, tmp_path / "e" / "b" / "seed-0", progress=False)
    assert set(metrics["test"]) == {"topic", "emotion"}


def test_compile_option_compiles_backbone_and_task_modules(make_config, tmp_path, monkeypatch):
    """`train.compile` reaches torch.compile for the backbone and every task module (the compile
    itself is torch's; compiling on CPU would cost a minute here, so the call is recorded)."""
    compiled = []
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, **kw: compiled.append((type(self).__name__, kw)))
    Trainer(make_config(("topic", "emotion"), train__compile=True), tmp_path / "e" / "a" / "seed-0", progress=False)
    names = [name for name, _ in compiled]
    assert names.count("T5Model") == 1 and len(names) == 3 and all(kw == {"dynamic": True} for _, kw in compiled)
    compiled.clear()
    Trainer(make_config(("topic",)), tmp_path / "e" / "b" / "seed-0", progress=False)
    assert compiled == []


def test_early_stopping_on_each_tasks_own_metric(make_config, tmp_path, monkeypatch):
    """`task_metrics` selects by the mean of every task's early_stopping_metric on val (a
    minimised metric negated); `<task>/<metric>` by one task's metric."""
    config = make_config(("topic", "emotion"), train__epochs=3, sampler={"kind": "round_robin", "steps_per_epoch": 2},
                         train__early_stopping={"metric": "task_metrics", "patience": None})
    config["tasks"]["emotion"]["early_stopping_metric"] = "hamming_loss"
    trainer = Trainer(config, tmp_path / "e" / "a" / "seed-0", progress=False)
    values = iter([{"topic": 0.5, "emotion": 0.4}, {"topic": 0.9, "emotion": 0.2}, {"topic": 0.6, "emotion": 0.1}])

    def fake_split(t, split, thresholds=None, only=None):
        step = next(values)
        return {"topic": {"f1_macro": step["topic"]}, "emotion": {"hamming_loss": step["emotion"]}}, {}

    monkeypatch.setattr(evaluation, "evaluate_split", fake_split)
    trainer.fit()
    # means of (f1_macro, -hamming_loss): 0.05, 0.35, 0.25 → the second evaluation (step 4) wins
    assert trainer.early.best == pytest.approx(0.35) and trainer.early.best_step == 4
    evals = [r for r in read_jsonl(trainer.run_dir / "history.jsonl") if r.get("split") == "val"]
    assert [r["val/emotion/hamming_loss"] for r in evals] == [0.4, 0.2, 0.1]
