"""Two gloo processes with batch b against one process with batch 2b over the same examples.

One ``torch.multiprocessing`` spawn trains every case in turn (process start-up and the first
model build dominate); the one-process references train in this process afterwards. The
independent truth is the one-process run of the unchanged trainer: a data-parallel run must
end on its weights (fp32, 1e-5 relative per tensor) for every method family, with the same
sampler draws, records and gradient cosines."""
from __future__ import annotations

import json
from collections import defaultdict

import pytest
import torch

from lexilab.errors import LexilabError
from lexilab.io import read_jsonl
from lexilab.train import ddp_spawn
from lexilab.train.trainer import Trainer

METHODS = ("equal", "uncertainty", "dwa", "gradnorm", "pcgrad", "upgrad", "cagrad", "mgda")
WORLD, BATCH = 2, 4  # processes, per-process batch; the reference runs one process with 2 × 4


def _case_config(ddp_config, data_root, case: str, batch: int) -> dict:
    if case == "examples":  # a full pass over each task, with a short last batch (45 = 5·8 + 5)
        config = ddp_config(data_root, "equal", batch, train_n=45, sampler={"kind": "round_robin"})
        config["train"]["epochs"] = 1
        return config
    if case.startswith("dwa"):  # two tasks per epoch (round robin), so that the ratios exist
        config = ddp_config(data_root, "dwa", batch, sampler={"kind": "round_robin", "steps_per_epoch": 2})
        config["train"]["checkpoint_every"] = 1 if case == "dwa-resumed" else None
        return config
    if case in ("pruned", "nan", "raise"):
        return ddp_config(data_root, "upgrad", batch)
    if case == "bf16":  # CPU autocast: collectives and the Jacobian stay fp32
        return ddp_config(data_root, "upgrad", batch, train__precision="bf16")
    if case == "compiled":  # the Jacobian path through torch.compile'd backbone and heads
        return ddp_config(data_root, "upgrad", batch, train__compile=True)
    overrides = {"diagnostics": {"grad_cosine_every": 1}} if case == "equal" else {}
    return ddp_config(data_root, case, batch, **overrides)


@pytest.fixture(scope="module")
def trained(make_ddp_config, data_root, tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    # the failing cases come last: after a rank's exception the process group is gone
    cases = [*METHODS, "bf16", "compiled", "dwa-resumed", "examples", "pruned", "nan", "raise"]
    # inductor's C++ build takes minutes on CPU; aot_eager still traces with dynamo and runs
    # the backward through AOTAutograd, which is what data parallelism has to survive
    options = {"compiled": {"compile_backend": "aot_eager"},
               "dwa-resumed": {"interrupt_after": 3}, "examples": {"record_examples": str(root)},
               "pruned": {"prune_at_step": 2},
               "nan": {"inject": [1, 1, "nan"]}, "raise": {"inject": [1, 1, "raise"]}}
    only_parallel = ("compiled", "dwa-resumed", "pruned", "nan", "raise")
    jobs = {world: [(_case_config(make_ddp_config, data_root, case, BATCH * WORLD // world),
                     str(root / f"w{world}" / case / "a" / "seed-0"), options.get(case, {}) if world > 1 else {})
                    for case in cases if world > 1 or case not in only_parallel]
            for world in (WORLD, 1)}
    ddp_spawn.spawn(ddp_spawn.train_runs, WORLD, jobs[WORLD])
    ddp_spawn.train_runs(jobs[1])
    return root


def _final(root, world: int, case: str) -> dict:
    return torch.load(root / f"w{world}" / case / "a" / "seed-0" / ddp_spawn.FINAL_FILE)


def _assert_close_tensors(got: dict, expected: dict, rtol: float = 1e-5) -> None:
    assert got.keys() == expected.keys()
    for name, value in expected.items():
        error = float((got[name].double() - value.double()).norm() / max(float(value.double().norm()), 1e-12))
        assert error <= rtol, f"{name}: relative error {error:.2e}"


@pytest.mark.slow
@pytest.mark.parametrize("kind", METHODS)
def test_two_processes_take_the_steps_of_one_process_with_the_doubled_batch(trained, kind):
    """After 3 epochs (DWA's third uses loss ratios; the last batch of 3 examples is sharded
    2/1) the weights — and the method's own state: log-variances, DWA's
    and GradNorm's weights — equal the one-process run's. Before the fix a rank aggregated its
    own Jacobian and logged its own losses."""
    two, one = _final(trained, WORLD, kind), _final(trained, 1, kind)
    assert two["world_size"] == WORLD and one["world_size"] == 1
    _assert_close_tensors(two["model"], one["model"])
    for got, expected in zip(two["weighting_params"], one["weighting_params"]):
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-7)
    if kind in ("dwa", "gradnorm"):
        got, expected = two["weighting"]["weights"], one["weighting"]["weights"]
        got = list(got.values()) if isinstance(got, dict) else got
        expected = list(expected.values()) if isinstance(expected, dict) else expected
        assert got == pytest.approx(expected, rel=1e-5)
        if kind == "dwa":
            assert any(abs(w - 1.0) > 1e-4 for w in expected)  # the third epoch really reweighted


@pytest.mark.slow
def test_bf16_autocast_keeps_working_under_data_parallelism(trained):
    """bf16 rounds differently for a shard than for the whole batch, so the bound is bf16's
    (~3 significant digits), not fp32's; the fp32 weights move the same way on both sides."""
    two, one = _final(trained, WORLD, "bf16"), _final(trained, 1, "bf16")
    _assert_close_tensors(two["model"], one["model"], rtol=1e-2)
    fp32 = _final(trained, 1, "upgrad")  # the same run in fp32: autocast really was on
    assert any(not torch.equal(one["model"][n], v) for n, v in fp32["model"].items())


@pytest.mark.slow
def test_compile_keeps_working_under_data_parallelism(trained):
    """Two processes with the backbone and heads compiled end on the weights of one eager
    process with the doubled batch (UPGrad: per-task gradients through the compiled graph)."""
    two, one = _final(trained, WORLD, "compiled"), _final(trained, 1, "upgrad")
    _assert_close_tensors(two["model"], one["model"])
    assert two["compiled"], "train.compile did not reach torch.compile"


@pytest.mark.slow
def test_resume_on_the_same_world_size_is_bit_exact(trained):
    """Interrupted after step 3 (checkpoint every step), resumed on 2 processes: bit-identical
    to the uninterrupted 2-process run (model, DWA's epoch history and weights)."""
    resumed, straight = _final(trained, WORLD, "dwa-resumed"), _final(trained, WORLD, "dwa")
    for name, value in straight["model"].items():
        assert torch.equal(resumed["model"][name], value), name
    assert resumed["weighting"] == straight["weighting"]


@pytest.mark.slow
def test_resume_on_another_world_size_is_refused_in_one_line(trained, make_ddp_config, data_root):
    run_dir = trained / f"w{WORLD}" / "dwa-resumed" / "a" / "seed-0"
    trainer = Trainer(_case_config(make_ddp_config, data_root, "dwa-resumed", BATCH), run_dir, progress=False)
    with pytest.raises(LexilabError) as caught:
        trainer.maybe_resume()
    message = str(caught.value)
    assert "\n" not in message and "saved by a run on 2 process(es)" in message and "not 1" in message


@pytest.mark.slow
def test_rank_zero_alone_writes_the_records_of_the_one_process_run(trained):
    """history.jsonl: one record per step and evaluation (rank 1 writes none), with the global
    batch's losses and example counts of the one-process run."""
    for case in ("uncertainty", "upgrad"):
        two = list(read_jsonl(trained / f"w{WORLD}" / case / "a" / "seed-0" / "history.jsonl"))
        one = list(read_jsonl(trained / "w1" / case / "a" / "seed-0" / "history.jsonl"))
        assert [r["step"] for r in two] == [r["step"] for r in one]
        for got, expected in zip(two, one):
            assert got.get("examples") == expected.get("examples")
            for key, value in expected.items():
                if key.startswith(("loss/", "val_loss", "examples_seen/", "updates/")):
                    assert got[key] == pytest.approx(value, rel=1e-5), key


@pytest.mark.slow
def test_gradient_cosines_are_those_of_the_global_task_gradients(trained):
    two = list(read_jsonl(trained / f"w{WORLD}" / "equal" / "a" / "seed-0" / "gradcos.jsonl"))
    one = list(read_jsonl(trained / "w1" / "equal" / "a" / "seed-0" / "gradcos.jsonl"))
    assert len(two) == len(one) > 0
    for got, expected in zip(two, one):
        assert (got["step"], got["group"], got["task_a"]) == (expected["step"], expected["group"], expected["task_a"])
        assert got["cosine"] == pytest.approx(expected["cosine"], rel=1e-4, abs=1e-6)
        assert got["norm_a"] == pytest.approx(expected["norm_a"], rel=1e-5)


@pytest.mark.slow
def test_every_rank_trains_the_same_task_on_disjoint_shards_covering_each_pass(trained):
    """Round robin over 2 tasks of 45 examples, global batch 8: every step both ranks train the
    same task; within a pass no example twice and none skipped (the short last batch of 5 is
    sharded 3/2)."""
    per_rank = [list(read_jsonl(trained / f"examples-{rank}.jsonl")) for rank in range(WORLD)]
    assert len(per_rank[0]) == len(per_rank[1]) > 0
    seen = defaultdict(list)
    for mine, theirs in zip(*per_rank):
        assert (mine["step"], mine["task"]) == (theirs["step"], theirs["task"])
        seen[mine["task"]] += mine["ids"] + theirs["ids"]
    sizes = {len(m["ids"]) + len(t["ids"]) for m, t in zip(*per_rank)}
    assert sizes == {8, 5}
    for task, ids in seen.items():
        assert len(ids) == len(set(ids)) == 45, task


def _errors(root, case: str) -> list[str]:
    run_dir = root / f"w{WORLD}" / case / "a" / "seed-0"
    return [(run_dir / f"error-{rank}.txt").read_text() for rank in range(WORLD)]


@pytest.mark.slow
def test_a_nan_on_one_rank_fails_every_rank_naming_it(trained):
    """The non-finite check runs on the all-gathered losses: both ranks stop at the same step
    (no rank is left waiting in a collective) with the error of the rank at fault."""
    for error in _errors(trained, "nan"):
        assert error.startswith("NonFiniteLoss: non-finite loss (nan) at step 1 in task") and error.endswith("on rank 1")


@pytest.mark.slow
def test_an_exception_on_one_rank_reaches_rank_zero_with_that_ranks_error(trained):
    """Rank 1 raises while rank 0 waits in the step's all-gather: rank 0's collective breaks and
    it raises RankFailed with rank 1's own error line (what the runner writes to status.json)."""
    zero, one = _errors(trained, "raise")
    assert one == "ValueError: injected failure on rank 1 at step 1"
    assert zero == "RankFailed: rank 1: ValueError: injected failure on rank 1 at step 1"


@pytest.mark.slow
def test_a_sweep_pruning_rank_zero_stops_every_rank_at_the_same_step(trained):
    """Only rank 0 runs the sweep's hook (it reports to Optuna); its decision is broadcast, so
    rank 1 stops after the same evaluation instead of waiting in the next collective."""
    assert _errors(trained, "pruned") == ["RunPruned: pruned at step 2"] * WORLD
