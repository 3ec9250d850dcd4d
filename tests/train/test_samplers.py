"""Task samplers: exact sequences, empirical frequencies vs the formulas, exact resume."""
from __future__ import annotations

import json
import math
import pickle

import numpy as np
import pytest

from lexilab.errors import LexilabError
from lexilab.train.samplers import SAMPLERS, build_sampler, steps_per_epoch

SIZES = {"summary": 40_000, "emotion": 9_000, "topic": 1_000}
DRAWS = 200_000


def _freqs(sampler, n=DRAWS):
    tasks = sampler.draw(n)
    names, counts = np.unique(np.array(tasks), return_counts=True)
    return {t: c / n for t, c in zip(names, counts)}


def _formula(sizes, alpha, cap=None):
    """p_t ∝ min(n_t, cap)^alpha, written out independently of the implementation."""
    eff = {t: (min(n, cap) if cap else n) ** alpha for t, n in sizes.items()}
    z = sum(eff.values())
    return {t: v / z for t, v in eff.items()}


def test_registry_names():
    assert set(SAMPLERS) == {"round_robin", "uniform", "proportional", "temperature", "annealed"}


def test_round_robin_exact_sequence():
    s = build_sampler({"kind": "round_robin"}, SIZES, seed=3, total_steps=10)
    assert [s.next() for _ in range(7)] == ["summary", "emotion", "topic"] * 2 + ["summary"]
    assert s.draw(4) == ["emotion", "topic", "summary", "emotion"]
    assert s.probabilities(2) == {"summary": 0.0, "emotion": 0.0, "topic": 1.0}


@pytest.mark.parametrize("cfg, expected", [
    ({"kind": "uniform"}, {t: 1 / 3 for t in SIZES}),
    ({"kind": "proportional"}, {"summary": 0.8, "emotion": 0.18, "topic": 0.02}),
    ({"kind": "proportional", "cap": 10_000}, {"summary": 0.5, "emotion": 0.45, "topic": 0.05}),
    ({"kind": "temperature", "alpha": 0.5}, _formula(SIZES, 0.5)),
    ({"kind": "temperature", "alpha": 0.3, "cap": 5_000}, _formula(SIZES, 0.3, cap=5_000)),
])
def test_empirical_frequencies_match_formula(cfg, expected):
    s = build_sampler(cfg, SIZES, seed=0, total_steps=DRAWS)
    for t, p in s.probabilities(0).items():
        assert p == pytest.approx(expected[t], abs=1e-12)
    freqs = _freqs(s)
    for t, p in expected.items():
        assert abs(freqs.get(t, 0.0) - p) < 0.01


def test_temperature_limits_equal_proportional_and_uniform():
    t1 = build_sampler({"kind": "temperature", "alpha": 1.0}, SIZES, 0, 100)
    prop = build_sampler({"kind": "proportional"}, SIZES, 0, 100)
    t0 = build_sampler({"kind": "temperature", "alpha": 0.0}, SIZES, 0, 100)
    for t in SIZES:
        assert t1.probabilities(5)[t] == pytest.approx(prop.probabilities(5)[t], rel=1e-12)
        assert t0.probabilities(5)[t] == pytest.approx(1 / 3, rel=1e-12)
    # same seed, same probabilities -> the very same stream
    assert t1.draw(500) == prop.draw(500)


def test_cap_only_limits_tasks_above_it():
    capped = build_sampler({"kind": "temperature", "alpha": 1.0, "cap": 9_000}, SIZES, 0, 1)
    p = capped.probabilities(0)
    assert p["summary"] == pytest.approx(p["emotion"])  # both capped to 9000
    assert p["topic"] == pytest.approx(1_000 / 19_000)
    big = build_sampler({"kind": "temperature", "alpha": 0.7, "cap": 10**9}, SIZES, 0, 1)
    assert big.probabilities(0) == pytest.approx(_formula(SIZES, 0.7))


def test_annealed_alpha_moves_linearly_and_frequencies_follow():
    total = 1_001
    s = build_sampler({"kind": "annealed", "alpha_start": 1.0, "alpha_end": 0.0}, SIZES, 0, total)
    assert s.probabilities(0) == pytest.approx(_formula(SIZES, 1.0))
    assert s.probabilities(500) == pytest.approx(_formula(SIZES, 0.5))
    assert s.probabilities(1000) == pytest.approx(_formula(SIZES, 0.0))
    assert s.probabilities(5000) == pytest.approx(_formula(SIZES, 0.0))  # stays at alpha_end
    # empirical: the average distribution over a window of the schedule
    long = build_sampler({"kind": "annealed", "alpha_start": 1.0, "alpha_end": 0.2}, SIZES, 1, DRAWS)
    tasks = np.array(long.draw(DRAWS))
    for lo, hi in ((0, 20_000), (180_000, 200_000)):
        expected = np.mean([[long.probabilities(k)[t] for t in SIZES] for k in range(lo, hi, 50)], axis=0)
        window = tasks[lo:hi]
        for t, p in zip(SIZES, expected):
            assert abs(np.mean(window == t) - p) < 0.01


def test_next_and_draw_share_one_stream():
    for kind in ("uniform", "temperature", "annealed", "round_robin"):
        a = build_sampler({"kind": kind}, SIZES, seed=11, total_steps=300)
        b = build_sampler({"kind": kind}, SIZES, seed=11, total_steps=300)
        assert [a.next() for _ in range(300)] == b.draw(120) + b.draw(180)


def test_seed_changes_stream_and_global_rng_untouched():
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    a = build_sampler({"kind": "uniform"}, SIZES, seed=1, total_steps=1).draw(200)
    b = build_sampler({"kind": "uniform"}, SIZES, seed=2, total_steps=1).draw(200)
    assert a != b
    assert np.array_equal(np.random.get_state()[1], before)


@pytest.mark.parametrize("kind", ["uniform", "proportional", "temperature", "annealed", "round_robin"])
def test_resume_mid_stream_gives_identical_stream(kind):
    ref = build_sampler({"kind": kind}, SIZES, seed=5, total_steps=2_000)
    reference = ref.draw(2_000)
    first = build_sampler({"kind": kind}, SIZES, seed=5, total_steps=2_000)
    head = [first.next() for _ in range(777)]
    state = first.state_dict()
    via_json = json.loads(json.dumps(state))
    via_pickle = pickle.loads(pickle.dumps(state))
    for saved in (state, via_json, via_pickle):
        # a fresh sampler built with a *different* seed: the state alone must decide the stream
        resumed = build_sampler({"kind": kind}, SIZES, seed=99, total_steps=2_000)
        resumed.load_state_dict(saved)
        assert head + resumed.draw(2_000 - 777) == reference
    assert first.draw(10) == reference[777:787]  # saving did not advance the original


def test_state_for_other_tasks_is_rejected():
    s = build_sampler({"kind": "uniform"}, SIZES, 0, 1)
    other = build_sampler({"kind": "uniform"}, {"a": 1, "b": 2}, 0, 1)
    with pytest.raises(LexilabError, match="saved sampler state"):
        s.load_state_dict(other.state_dict())


def test_config_errors_are_one_line_with_suggestions():
    with pytest.raises(LexilabError, match=r"sampler.kind: unknown sampler 'temprature' \(did you mean 'temperature'\?\)"):
        build_sampler({"kind": "temprature"}, SIZES, 0, 1)
    with pytest.raises(LexilabError, match=r"sampler.alfa: .*did you mean 'alpha'"):
        build_sampler({"kind": "temperature", "alfa": 0.5}, SIZES, 0, 1)
    with pytest.raises(LexilabError, match="sampler.cap"):
        build_sampler({"kind": "proportional", "cap": -3}, SIZES, 0, 1)
    with pytest.raises(LexilabError, match="not an option of sampler 'uniform'"):
        build_sampler({"kind": "uniform", "alpha": 0.5}, SIZES, 0, 1)
    with pytest.raises(LexilabError, match="positive int"):
        build_sampler({"kind": "uniform"}, {"a": 0}, 0, 1)
    with pytest.raises(LexilabError, match="total_steps"):
        build_sampler({"kind": "annealed"}, SIZES, 0, 0)
    # steps_per_epoch is read by steps_per_epoch(), not rejected here
    assert build_sampler({"kind": "uniform", "steps_per_epoch": "sum"}, SIZES, 0, 1).kind == "uniform"


def test_steps_per_epoch_rules():
    sizes = {"a": 100, "b": 31, "c": 1}
    assert steps_per_epoch("largest", sizes, 8) == 3 * math.ceil(100 / 8)
    assert steps_per_epoch("sum", sizes, 8) == math.ceil(100 / 8) + math.ceil(31 / 8) + 1
    assert steps_per_epoch(17, sizes, 8) == 17
    # one batch of every task per step (all-tasks weighting methods)
    assert steps_per_epoch("largest", sizes, 8, tasks_per_step=3) == math.ceil(100 / 8)
    assert steps_per_epoch("sum", sizes, 8, tasks_per_step=3) == math.ceil(18 / 3)
    assert steps_per_epoch(17, sizes, 8, tasks_per_step=3) == 17
    with pytest.raises(LexilabError, match=r"did you mean 'largest'"):
        steps_per_epoch("largets", sizes, 8)
    for bad in (0, -1, True, 2.5):
        with pytest.raises(LexilabError):
            steps_per_epoch(bad, sizes, 8)
    with pytest.raises(LexilabError, match="batch_size"):
        steps_per_epoch("sum", sizes, 0)
