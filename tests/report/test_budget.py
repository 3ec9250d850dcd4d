"""Compute budgets: the spec's `budget: {match: ARM}` and the report's per-task budget and warning.

Truth is counted by hand from the schedule (round-robin over known task sizes) or drawn from
the real sampler, never taken from the code under test."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from lexilab import results
from lexilab.report.budget import arm_budgets, budget_warnings
from lexilab.spec import SpecError, load_spec

SPEC = """\
name: {name}
base:
  backbone:
    name: {{d_model: 16, d_kv: 4, d_ff: 32, num_layers: 1, num_heads: 2, vocab_size: 32128,
           feed_forward_proj: gated-gelu}}
    init: random
    tokenizer: data:flan_t5_tokenizer
  tasks:
    big:
      kind: multiclass
      data: {{name: synthetic, task: shared_a, n: {{train: 32, val: 8, calibration: 8, test: 16}}}}
      max_length: 24
    small:
      kind: multiclass
      data: {{name: synthetic, task: shared_b, n: {{train: 8, val: 8, calibration: 8, test: 16}}}}
      max_length: 24
  sampler: {sampler}
  optim: {{lr: 1.0e-2, warmup_steps: 0}}
  train: {{epochs: 2, batch_size: 8, eval_batch_size: 16, device: cpu, checkpoint_every: null}}
  tracking: {{mlflow: false}}
factors:
  tasks:
    mtl: {{}}
    small_only: {{tasks.big: null}}
    big_only: {{tasks.small: null}}
seeds: 1
report: {{metrics: [small/accuracy, big/accuracy], baseline: mtl}}
{extra}"""


def write_spec(tmp_path: Path, name: str, extra: str = "", sampler: str = "{kind: round_robin}") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(SPEC.format(name=name, extra=extra, sampler=sampler))
    return path


@pytest.fixture
def data_env(shared_data, monkeypatch):
    monkeypatch.setenv("LEXILAB_DATA", str(shared_data))


def test_matched_round_robin_budget_is_the_mtl_schedule(tmp_path, data_env):
    # MTL, round robin, steps_per_epoch largest: 2 tasks × ceil(32/8) = 8 steps per epoch, so each
    # task gets 4 batches per epoch; alone, small would get ceil(8/8) = 1 and big ceil(32/8) = 4.
    plain = {a.name: a for a in load_spec(write_spec(tmp_path, "plain")).arms}
    matched = {a.name: a for a in load_spec(write_spec(tmp_path, "matched", "budget: {match: mtl}")).arms}
    assert plain["small_only"].config["sampler"]["steps_per_epoch"] == "largest"
    assert matched["small_only"].config["sampler"]["steps_per_epoch"] == 4
    assert matched["big_only"].config["sampler"]["steps_per_epoch"] == 4
    assert matched["mtl"].config == plain["mtl"].config and matched["mtl"].hash == plain["mtl"].hash
    assert matched["small_only"].hash != plain["small_only"].hash  # a different run, not a resume


def test_matched_budget_of_a_random_sampler_is_its_expected_draws(tmp_path, data_env):
    """Temperature sampling: the matched count equals the mean number of draws of the task by
    the real sampler over the MTL run (simulated over many sampler seeds)."""
    from lexilab.train.samplers import build_sampler

    sampler = "{kind: temperature, alpha: 0.5}"
    matched = {a.name: a for a in load_spec(write_spec(tmp_path, "t", "budget: {match: mtl}", sampler)).arms}
    total = 8 * 2  # 2 tasks × ceil(32/8) steps per epoch × 2 epochs
    draws = [Counter(build_sampler({"kind": "temperature", "alpha": 0.5}, {"big": 32, "small": 8}, seed, total)
                     .draw(total))["small"] for seed in range(4000)]
    expected_per_epoch = np.mean(draws) / 2  # p(small) = √8 / (√8 + √32) = 1/3 → 16/3 draws in all
    assert matched["small_only"].config["sampler"]["steps_per_epoch"] == round(expected_per_epoch)
    assert expected_per_epoch == pytest.approx(16 / 3 / 2, abs=0.05)


@pytest.mark.parametrize("extra, match", [
    ("budget: {match: nope}", r"budget\.match: 'nope' is not a level of any factor"),
    ("budget: {match: mtl, by: steps}", r"budget\.by: unknown key"),
    ("budget: mtl", r"budget: expected \{match: LEVEL\}"),
])
def test_budget_errors_are_one_line_each(tmp_path, data_env, extra, match):
    with pytest.raises(SpecError, match=match):
        load_spec(write_spec(tmp_path, "bad", extra))


def _run(spec: Path, root: Path, cli) -> str:
    """Train the mtl and small_only arms through `lexilab run` (in this process: a fresh one
    would only add interpreter start-up), then the report's terminal text."""
    from lexilab.report.build import generate

    code, out, err = cli("run", spec, "--results", root, "--only", "mtl", "small_only")
    assert code == 0, out[-2000:] + err[-3000:]
    _report, text, _written = generate(spec, results=root, out_dir=root.parent / "out", figures=False, n_resamples=200)
    return text


@pytest.mark.slow
def test_report_shows_budgets_and_warns_until_they_are_matched(tmp_path, data_env, cli_of, monkeypatch):
    """A tiny real pair: unmatched, small gets 8 updates (64 examples) in mtl but 2 (16) alone —
    flagged; with `budget: {match: mtl}` both get 8 (64) — not flagged."""
    monkeypatch.setenv("LEXILAB_PROGRESS", "0")
    root, cli = tmp_path / "results", cli_of("lexilab.commands.run")
    out = _run(write_spec(tmp_path, "plain"), root, cli)
    budgets = arm_budgets(results.load_history("plain", results=root)).set_index(["arm", "task"])
    assert budgets.loc[("mtl", "small"), ["examples", "updates"]].tolist() == [64, 8]
    assert budgets.loc[("small_only", "small"), ["examples", "updates"]].tolist() == [16, 2]
    assert budgets.loc[("mtl", "big"), ["examples", "updates"]].tolist() == [64, 8]
    assert "compute budget per task" in out and "64 / 8" in out and "16 / 2" in out
    warned = [line for line in out.splitlines() if line.startswith("note: compute budget differs")]
    assert len(warned) == 1, out
    assert "small gets 16 examples, 2 updates in small_only but 64 examples, 8 updates in mtl (-75%)" in warned[0]
    caption = (tmp_path / "out" / "tables" / "plain.tex").read_text()
    assert "Compute budget differs: small gets 16 examples, 2 updates in small\\_only" in caption
    out = _run(write_spec(tmp_path, "matched", "budget: {match: mtl}"), root, cli)
    budgets = arm_budgets(results.load_history("matched", results=root)).set_index(["arm", "task"])
    assert budgets.loc[("small_only", "small"), ["examples", "updates"]].tolist() == [64, 8]
    assert "compute budget differs" not in out


def test_warning_threshold_is_ten_percent():
    import pandas as pd

    budgets = pd.DataFrame([{"arm": "a", "task": "t", "examples": 100.0, "updates": 110.0},
                            {"arm": "b", "task": "t", "examples": 100.0, "updates": 100.0},
                            {"arm": "c", "task": "t", "examples": 100.0, "updates": 111.0}])
    comps = pd.DataFrame([{"arm": "a", "baseline": "b", "metric": "t/accuracy"},
                          {"arm": "c", "baseline": "b", "metric": "t/accuracy"}])
    notes = budget_warnings(budgets, comps)
    assert len(notes) == 1 and "in c but" in notes[0] and "(+11%)" in notes[0]
