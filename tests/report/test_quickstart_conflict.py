"""The gradient-cosine demo's built-in answer is visible in its own records: two seq2seq tasks
read the shared encoder through the same decoder and LM head, so a partner asking for the
opposite word on the same texts pulls the encoder apart (cosine < 0) and a partner asking for
the same word pulls it together (cosine > 0) — on every seed, once the shared output format
("yes"/"no", then the end token) is learned. Before that, both pairs agree on the format."""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from lexilab.report.build import generate

SPEC = "experiments/quickstart_conflict.yaml"
SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def conflict_results(quickstart_conflict_run):
    """`python -m lexilab run` of the spec's whole grid (tests/conftest.py starts it in the background)."""
    proc, root = quickstart_conflict_run
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return root / "quickstart_conflict"


def cosines(run_dir, partner: str) -> tuple[list[int], list[float]]:
    """(step, cosine) of up vs ``partner`` over all shared encoder parameters, read from the file."""
    rows = [json.loads(line) for line in (run_dir / "gradcos.jsonl").read_text().splitlines() if line]
    rows = [r for r in rows if r["group"] == "all" and {r["task_a"], r["task_b"]} == {"up", partner}]
    assert rows and all(r["cosine"] is not None for r in rows)
    return [r["step"] for r in rows], [r["cosine"] for r in rows]


@pytest.mark.slow
def test_conflicting_pair_negative_sharing_pair_positive_on_every_seed(conflict_results):
    late = {"agreeing": [], "opposing": []}
    for arm, partner in (("agreeing", "same"), ("opposing", "opposite")):
        for seed in SEEDS:
            steps, values = cosines(conflict_results / arm / f"seed-{seed}", partner)
            total = json.loads((conflict_results / arm / f"seed-{seed}" / "training_summary.json").read_text())["steps"]
            early = [v for s, v in zip(steps, values) if s <= total // 4]
            assert np.mean(early) > 0.3, (arm, seed, early)  # the shared output format first
            late[arm].append(float(np.mean([v for s, v in zip(steps, values) if s > total // 2])))
    assert all(v > 0.2 for v in late["agreeing"]), late
    assert all(v < -0.2 for v in late["opposing"]), late
    # across seeds: the 95% t-interval of each pair's mean excludes 0 on its designed side
    for arm, sign in (("agreeing", 1), ("opposing", -1)):
        values = np.array(late[arm])
        low, high = stats.t.interval(0.95, len(values) - 1, loc=values.mean(), scale=stats.sem(values))
        assert (low > 0) if sign > 0 else (high < 0), (arm, values, low, high)


@pytest.mark.slow
def test_the_opposing_partner_pulls_the_task_to_chance(conflict_results, repo_root, tmp_path):
    report, text, written = generate(repo_root / SPEC, results=conflict_results.parent, out_dir=tmp_path,
                                     n_resamples=2000)
    comp = report.comparisons.set_index("arm").loc["opposing"]
    assert comp["metric"] == "up/rougeL" and comp["baseline"] == "agreeing" and comp["n"] == len(SEEDS)
    assert comp["high"] < 0  # the whole 95% interval of the paired difference below zero
    assert isinstance(written["quickstart_conflict-gradcos"], list)  # the demo draws the figure

