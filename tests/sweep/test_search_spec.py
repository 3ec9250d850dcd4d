"""The search: block: what a valid space gives, and every malformed block refused in one line
naming the file, line and key, before anything is written."""
from __future__ import annotations

import math
import re
import time

import optuna
import pytest

from lexilab.spec import SpecError, load_spec
from lexilab.sweep import space

GOOD = {"params": {"optim.lr": {"type": "float", "low": 1.0e-3, "high": 3.0e-2, "log": True}},
        "task_weights": {"space": "simplex", "low": 0.05},
        "objectives": "animal/accuracy", "trials": 3}


def refused(cli, path, results, *extra) -> list[str]:
    code, out, err = cli("sweep", path, *extra)
    assert code == 2, (out, err)
    assert not results.exists(), "nothing may be written before validation passes"
    return [line for line in err.splitlines() if line.strip()]


def test_valid_search_block(sweep_spec):
    spec = load_spec(sweep_spec(GOOD))
    search = spec.search
    assert [p.key for p in search.params] == ["optim.lr"]
    assert search.task_weights.tasks == ["colour", "animal"]
    assert search.directions == ["maximize"] and search.seeds_per_trial == 1
    assert search.sampler == {"kind": "tpe", "seed": 0} and search.pruner == {"kind": "none"}


@pytest.mark.parametrize("search, key, words", [
    ({"params": {"optim.lr": {"type": "float", "low": 1e-3, "hgh": 1e-2}}}, "search.params.optim.lr.hgh", "unknown key"),
    ({"params": {"optim.lr": {"type": "float", "low": 0.1, "high": 0.01}}}, "search.params.optim.lr.low", "greater than high"),
    ({"params": {"optim.lr": {"type": "float", "low": 0.0, "high": 0.01, "log": True}}}, "search.params.optim.lr.log", "low > 0"),
    ({"params": {"sampler.kind": {"type": "categorical", "choices": []}}}, "search.params.sampler.kind.choices", "non-empty"),
    ({"sampler": "annealing"}, "search.sampler", "unknown sampler"),
    ({"pruner": "asha"}, "search.pruner", "unknown pruner"),
    ({"storage": "redis://localhost:6379"}, "search.storage", "unknown storage"),
    ({"objectives": "test/animal/accuracy"}, "search.objectives", "tunes on val only"),
    ({"objectives": "animal/rougeL"}, "search.objectives", "not a multiclass metric"),
    ({"objectives": "topic/accuracy"}, "search.objectives", "no task 'topic' in the arm"),
    ({"objectives": ["animal/accuracy", "colour/accuracy"], "pruner": "median"}, "search.pruner", "Optuna cannot prune"),
    ({"task_weights": {"space": "simplex"}}, "search.task_weights", "weight 0"),
    ({"task_weights": {"space": "log_uniform", "low": 0, "high": 10}}, "search.task_weights.low", "low > 0"),
    ({"params": {"train.batch_size": {"type": "int", "low": 0, "high": 16}}}, "search.params.train.batch_size",
     "at the corner train.batch_size=0"),
    ({"trials": 0}, "search.trials", "≥ 1"),
    ({"params": {"optim.lr": {"type": "categorical", "choices": [0.01, 0.02]}}, "sampler": "grid", "trials": 3},
     "search.trials", "the grid has 2 points"),
])
def test_malformed_search_block_is_one_line_naming_file_line_and_key(sweep_spec, cli, results, search, key, words):
    block = {**GOOD, **search}
    if "task_weights" in search or "params" in search:  # the case alone: keep the rest valid and small
        block = {**{k: v for k, v in GOOD.items() if k not in ("params", "task_weights")}, **search}
    path = sweep_spec(block)
    lines = refused(cli, path, results)
    assert len(lines) == 1, lines
    line = lines[0]
    match = re.match(rf"lexilab: error: {re.escape(str(path))}:(\d+): {re.escape(key)}: (.*)$", line)
    assert match, line
    assert words in match.group(2), line
    text = path.read_text().splitlines()
    assert key.split(".")[-1] in text[int(match.group(1)) - 1] or key.split(".")[-1].isdigit(), (line, text)


def test_conditional_parameter_exists_only_for_its_choice(sweep_spec):
    params = {"weighting.kind": {"type": "categorical", "choices": ["equal", "gradnorm"]},
              "weighting.alpha": {"type": "float", "low": 0.5, "high": 3.0, "when": {"weighting.kind": "gradnorm"}}}
    spec = load_spec(sweep_spec({"params": params, "objectives": "animal/accuracy", "trials": 2}))
    points = space.corners(spec.search.params, None)
    assert {"weighting.kind": "equal"} in points[0:1] or any(v == {"weighting.kind": "equal"} for v, _ in points)
    assert all(("weighting.alpha" in v) == (v["weighting.kind"] == "gradnorm") for v, _ in points)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(20):
        trial = study.ask()
        values, _ = space.suggest(trial, spec.search.params, None)
        assert ("weighting.alpha" in values) == (values["weighting.kind"] == "gradnorm")
        config, problems = spec.search.config_for(values, None)
        assert not problems, problems
        assert config["weighting"]["kind"] == values["weighting.kind"]
        study.tell(trial, 0.0)


def test_same_space_without_the_condition_is_refused_at_its_corner(sweep_spec, cli, results):
    params = {"weighting.kind": {"type": "categorical", "choices": ["equal", "gradnorm"]},
              "weighting.alpha": {"type": "float", "low": 0.5, "high": 3.0}}
    lines = refused(cli, sweep_spec({"params": params, "objectives": "animal/accuracy", "trials": 2}), results)
    assert any("search.params.weighting.alpha" in l and "weighting.kind=equal" in l for l in lines), lines


def test_simplex_weights_cover_the_simplex_and_keep_the_minimum_share():
    weights = space.TaskWeights(["a", "b", "c"], "simplex", low=0.05)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(200):
        trial = study.ask()
        w = weights.suggest(trial)
        study.tell(trial, 0.0)
        assert math.isclose(sum(w.values()), 3.0)  # shares sum to 1, scaled by K: equal weights are all 1
        assert min(w.values()) >= 3 * 0.05 - 1e-12
    vertex = weights.weights({"weight.a": 1.0, "weight.b": 0.0, "weight.c": 0.0})
    assert vertex == pytest.approx({"a": 3 * (0.05 + 0.85), "b": 0.15, "c": 0.15})
    zero = space.TaskWeights(["a", "b"], "simplex", low=0.0).weights({"weight.a": 1.0, "weight.b": 0.0})
    assert zero == {"a": 2.0, "b": 0.0}


def test_log_uniform_weights_are_ratios_to_the_first_task():
    weights = space.TaskWeights(["a", "b"], "log_uniform", low=0.01, high=100.0)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    ratios = []
    for _ in range(400):
        trial = study.ask()
        w = weights.suggest(trial)
        study.tell(trial, 0.0)
        assert w["a"] == 1.0 and 0.01 <= w["b"] <= 100.0
        ratios.append(math.log10(w["b"]))
    from scipy import stats

    assert stats.kstest(ratios, stats.uniform(loc=-2, scale=4).cdf).pvalue > 0.01  # log-uniform on [1e-2, 1e2]


def test_grid_needs_listed_values(sweep_spec, cli, results):
    block = {"params": {"optim.lr": {"type": "float", "low": 1e-3, "high": 1e-2}}, "objectives": "animal/accuracy",
             "trials": 2, "sampler": "grid"}
    lines = refused(cli, sweep_spec(block), results)
    assert len(lines) == 1 and "search.params.optim.lr" in lines[0] and "grid" in lines[0], lines


def test_unreachable_postgresql_is_one_fast_line(sweep_spec, cli, results):
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    path = sweep_spec(GOOD)
    started = time.perf_counter()
    lines = refused(cli, path, results, "--storage", f"postgresql://nobody:secret@127.0.0.1:{port}/db")
    assert time.perf_counter() - started < 10
    assert len(lines) == 1 and lines[0].startswith("lexilab: error: --storage: cannot reach PostgreSQL"), lines
    assert "secret" not in lines[0]
    path = sweep_spec({**GOOD, "storage": f"postgresql://nobody@127.0.0.1:{port}/db"})
    lines = refused(cli, path, results)
    assert len(lines) == 1 and re.match(rf"lexilab: error: {re.escape(str(path))}:\d+: search.storage: cannot reach",
                                        lines[0]), lines


def test_sqlite_with_parallel_workers_warns(sweep_spec, cli, results, tmp_path):
    path = sweep_spec(GOOD)
    code, out, err = cli("sweep", path, "--storage", f"sqlite:///{tmp_path}/s.db", "--workers", "2",
                         "--executor", "local", "--dry-run")
    assert code == 0, err
    assert "SQLite is not meant for parallel workers" in err
    assert not (tmp_path / "s.db").exists() and not results.exists()


def test_run_refuses_a_sweep_spec(sweep_spec, cli, results):
    lines = [l for l in cli("run", sweep_spec(GOOD))[2].splitlines() if l.strip()]
    assert len(lines) == 1 and "a sweep spec (search:); run it with: python -m lexilab sweep" in lines[0], lines
    assert not results.exists()
