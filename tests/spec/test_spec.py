"""Specs: expansion (factorial, arms, exclude, seeds), one clear line per problem with file and
line, inconsistent factors, empty expansions, and every shipped spec validating."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from lexilab.errors import LexilabError
from lexilab.spec import ABSENT, SpecError, differences, load_spec

EXPERIMENTS = sorted((Path(__file__).resolve().parents[2] / "experiments").glob("*.yaml"))

POOLING = {"mean": {"tasks.colour.pooling": "mean"}, "max": {"tasks.colour.pooling": "max"},
           "attention": {"tasks.colour.pooling": "attention"}}
SAMPLING = {"rr": {"sampler": {"kind": "round_robin"}}, "temp": {"sampler": {"kind": "temperature", "alpha": 0.5}}}


def errors(path) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_spec(path)
    return info.value.lines


def one_error(path) -> str:
    lines = errors(path)
    assert len(lines) == 1, lines
    return lines[0]


def line_of(path: Path, needle: str) -> int:
    """1-based line of the first line containing ``needle`` (independent of the loader)."""
    return next(i for i, text in enumerate(path.read_text().splitlines(), 1) if needle in text)


# --------------------------------------------------------------------------- expansion
def test_full_factorial_arms_and_seeds(make_spec):
    spec = load_spec(make_spec(factors={"pooling": POOLING, "sampling": SAMPLING}, seeds=2))
    assert spec.arm_names == ["mean+rr", "mean+temp", "max+rr", "max+temp", "attention+rr", "attention+temp"]
    runs = spec.runs()
    assert len(runs) == 12 and [r.seed for r in runs[:2]] == [0, 1]
    arm = spec.arms[5]
    assert arm.levels == {"pooling": "attention", "sampling": "temp"}
    assert arm.config["tasks"]["colour"]["pooling"] == "attention" and arm.config["sampler"]["alpha"] == 0.5
    assert spec.arms[0].config["sampler"] == {"kind": "round_robin", "steps_per_epoch": "largest"}
    assert runs[0].run_dir("R") == Path("R/toy/mean+rr/seed-0")


def test_seeds_list_count_and_override(make_spec):
    spec = load_spec(make_spec(factors={"pooling": POOLING}, seeds=[17, 3]))
    assert spec.seeds == [17, 3] and [r.seed for r in spec.runs()][:2] == [17, 3]
    assert [r.seed for r in spec.runs(seeds=4)][:4] == [0, 1, 2, 3] and len(spec.runs(seeds=4)) == 12
    runs = spec.runs(seeds=1)
    assert {r.config["seed"] for r in runs} == {0}
    assert len({r.config_hash for r in spec.runs()}) == 6  # seed is part of a run's identity


def test_explicit_arms_and_exclude(make_spec):
    spec = load_spec(make_spec(factors={"pooling": POOLING, "sampling": SAMPLING},
                               arms=[{"pooling": "mean", "sampling": "rr"}, "attention+temp"]))
    assert spec.arm_names == ["mean+rr", "attention+temp"]
    spec = load_spec(make_spec(factors={"pooling": POOLING, "sampling": SAMPLING},
                               exclude=[{"pooling": "max"}, {"pooling": "mean", "sampling": "temp"}]))
    assert spec.arm_names == ["mean+rr", "attention+rr", "attention+temp"]


def test_no_factors_is_one_base_arm(make_spec):
    spec = load_spec(make_spec(seeds=3))
    assert spec.arm_names == ["base"] and len(spec.runs()) == 3


def test_only_selects_arms_and_rejects_unknown(make_spec):
    spec = load_spec(make_spec(factors={"pooling": POOLING}))
    assert [r.arm for r in spec.runs(only=["max"])] == ["max"]
    with pytest.raises(SpecError, match=r"--only: unknown arm 'maxx' \(did you mean 'max'\?\)"):
        spec.runs(only=["maxx"])


def test_level_mapping_replaces_and_dotted_key_sets_one_field(make_spec):
    spec = load_spec(make_spec(factors={"tasks": {"both": {}, "colour_only": {"tasks": {"colour": {
        "kind": "multiclass", "data": {"name": "synthetic", "task": "shared_a"}}}}}}))
    both, alone = spec.arms
    assert list(alone.config["tasks"]) == ["colour"]
    assert alone.config["tasks"]["colour"]["max_length"] == 512  # the default fills what the level leaves out
    diff = differences(spec.arms)
    assert diff["tasks.keywords"] == {"both": "{...}", "colour_only": ABSENT}
    assert "tasks.colour.max_length" in diff and "tasks.colour.data.n" in diff


def test_differences_name_exactly_the_keys_levels_change(make_spec):
    spec = load_spec(make_spec(factors={"sampling": SAMPLING, "lr": {"low": {"optim.lr": 1e-4}, "high": {"optim.lr": 1e-3}}}))
    assert set(differences(spec.arms)) == {"sampler.kind", "sampler.alpha", "sampler.cap", "optim.lr"}
    assert differences(spec.arms)["optim.lr"] == {"rr+low": 1e-4, "rr+high": 1e-3, "temp+low": 1e-4, "temp+high": 1e-3}


def test_report_and_resources(make_spec):
    spec = load_spec(make_spec(factors={"pooling": POOLING}, report={"metrics": ["colour/accuracy"], "baseline": "mean"},
                               resources={"gpus": 1, "time": "01:30:00"}))
    assert spec.report == {"metrics": ["colour/accuracy"], "baseline": "mean"}
    assert spec.resources == {"gpus_per_node": 1, "time": 90}


# --------------------------------------------------------------------------- problems
def test_yaml_syntax_error_names_file_and_line(write_spec):
    path = write_spec("""\
        name: toy
        base:
          optim: {lr: 1e-3
          train: {epochs: 1}
        """)
    with pytest.raises(LexilabError) as info:
        load_spec(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{path}:") and "YAML syntax error" in message
    line = int(re.match(re.escape(str(path)) + r":(\d+):", message).group(1))
    assert line in (3, 4)  # the unclosed flow mapping: PyYAML reports where it noticed


def test_duplicate_key_is_reported(write_spec):
    path = write_spec("name: toy\nseeds: 2\nbase: {}\nseeds: 3\n")
    assert one_error(path) == f"{path}:4: seeds: key given twice (YAML keeps only the last)"


def test_missing_spec_file(tmp_path):
    with pytest.raises(LexilabError, match="no such spec file"):
        load_spec(tmp_path / "nope.yaml")


def test_unknown_key_has_file_line_and_did_you_mean(make_spec):
    path = make_spec(sedes=3)
    assert one_error(path) == (f"{path}:{line_of(path, 'sedes:')}: sedes: unknown key (did you mean 'seeds'?); "
                               "allowed: name, description, base, factors, arms, exclude, seeds, report, resources, "
                               "search, budget")


def test_base_problem_line_points_at_the_key(make_spec, base_config):
    base_config["optim"]["lr"] = "fast"
    path = make_spec()
    assert one_error(path) == f"{path}:{line_of(path, 'lr: fast')}: base.optim.lr: expected a number > 0, found 'fast' (str)"


@pytest.mark.parametrize("seeds", [0, -2, "three", [], [1, 1], [0, -1], 2.5, True])
def test_bad_seeds(make_spec, seeds):
    assert ": seeds: " in one_error(make_spec(seeds=seeds))


def test_seed_in_base_or_in_a_factor(make_spec, base_config):
    base_config["seed"] = 3
    line = one_error(make_spec())
    assert "base.seed: set seeds at the top level" in line
    del base_config["seed"]
    line = one_error(make_spec(factors={"s": {"a": {"seed": 1}, "b": {}}}))
    assert "factors.s.a.seed: the seed is not a factor; use seeds" in line


def test_problem_in_a_level_is_attributed_to_the_level(make_spec):
    path = make_spec(factors={"pooling": {"mean": {"tasks.colour.pooling": "mean"},
                                          "att": {"tasks.colour.pooling": "atention"}}})
    assert one_error(path) == (f"{path}:{line_of(path, 'atention')}: factors.pooling.att.tasks.colour.pooling: unknown "
                               "pooling 'atention' (did you mean 'attention'?); known: attention, first, max, mean")


def test_pooling_on_a_seq2seq_task_set_by_a_level(make_spec):
    line = one_error(make_spec(factors={"p": {"a": {"tasks.keywords.pooling": "attention"}, "b": {}}}))
    assert line.endswith("factors.p.a.tasks.keywords.pooling: pooling is for multiclass and multilabel tasks only; "
                         "task 'keywords' is seq2seq (remove the key)")


def test_seq2seq_on_encoder_only_backbone_level_names_the_arm(make_spec):
    line = one_error(make_spec(factors={"backbone": {"t5": {}, "minilm": {
        "backbone.name": "sentence-transformers/all-MiniLM-L6-v2", "backbone.tokenizer": None, "backbone.init": "pretrained"}}}))
    assert "base.tasks.keywords.kind: seq2seq task on an encoder-only backbone" in line and line.endswith("(arm minilm)")


def test_override_of_a_task_base_lacks(make_spec):
    line = one_error(make_spec(factors={"p": {"a": {"tasks.color.pooling": "max"}, "b": {}}}))
    assert "factors.p.a.tasks.color.pooling: no task 'color' in base (did you mean 'colour'?)" in line


def test_two_factors_touching_the_same_key(make_spec):
    line = one_error(make_spec(factors={"sampling": SAMPLING, "alpha": {"low": {"sampler.alpha": 0.3}, "high": {"sampler.alpha": 0.7}}}))
    assert "factors.alpha.low.sampler.alpha: factor 'alpha' sets a key that factor 'sampling' also sets (level rr: sampler)" in line
    line = one_error(make_spec(factors={"a": {"x": {"optim.lr": 1e-3}}, "b": {"y": {"optim.lr": 1e-4}}}))
    assert "factor 'b' sets a key that factor 'a' also sets" in line


def test_levels_that_change_nothing(make_spec):
    line = one_error(make_spec(factors={"pooling": {"mean": {"tasks.colour.pooling": "mean"}, "default": {}}}))
    assert "arms 'mean' and 'default' resolve to the same config" in line


def test_empty_expansion(make_spec):
    line = one_error(make_spec(factors={"pooling": POOLING}, exclude=[{"pooling": p} for p in POOLING]))
    assert line.endswith("exclude: the spec expands to no arms (nothing would run)")


@pytest.mark.parametrize("top, fragment", [
    ({"arms": [{"pooling": "maen"}]}, "arms.0.pooling: unknown level 'maen' of factor 'pooling' (did you mean 'mean'?)"),
    ({"arms": [{"poolng": "mean"}]}, "arms.0.poolng: unknown factor (did you mean 'pooling'?)"),
    ({"arms": []}, "arms: expected a non-empty list"),
    ({"exclude": [{"pooling": "min"}]}, "exclude.0.pooling: unknown level 'min'"),
    ({"exclude": "max"}, "exclude: expected a list"),
    ({"report": {"metrics": ["color/accuracy"]}}, "report.metrics.0: 'color/accuracy': expected task/metric with a task of the spec (did you mean 'colour'?)"),
    ({"report": {"metrics": ["colour/acc"]}}, "report.metrics.0: 'acc' is not a multiclass metric"),
    ({"report": {"baseline": "maen"}}, "report.baseline: unknown arm 'maen' (did you mean 'mean'?)"),
    ({"resources": {"gpu": 1}}, "resources.gpu: unknown resource (did you mean gpus?)"),
    ({"resources": {"time": "soon"}}, "resources.time: found 'soon'"),
    ({"name": "my study"}, "name: expected a name of letters"),
    ({"factors": {"pooling": {"a+b": {}}}}, "factors.pooling.a+b: a level name is letters"),
    ({"factors": {"pooling": []}}, "factors.pooling: expected a mapping level name → overrides"),
    ({"base": [1, 2]}, "base: expected a mapping (the run config every arm starts from), found [1, 2]"),
])
def test_malformed_blocks(make_spec, top, fragment):
    top = {"factors": {"pooling": POOLING}, **top}
    path = make_spec(**top)
    line = one_error(path)
    assert fragment in line and line.startswith(f"{path}:"), line


def test_many_problems_one_line_each_in_file_order(make_spec, base_config):
    base_config["optim"]["lr"] = "x"
    base_config["train"]["epochs"] = 0
    base_config["tasks"]["colour"]["pooling"] = "maxx"
    path = make_spec(seeds=0, factors={"sampling": {"rr": {"sampler.kind": "round_robn"}, "t": {}}})
    lines = errors(path)
    assert len(lines) == 5, lines
    numbers = [int(re.match(re.escape(str(path)) + r":(\d+): ", line).group(1)) for line in lines]
    assert numbers == sorted(numbers)
    assert all("\n" not in line for line in lines)


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.name)
def test_every_shipped_spec_validates(path, shared_data, monkeypatch):
    monkeypatch.setenv("LEXILAB_DATA", str(shared_data))
    spec = load_spec(path)
    assert spec.name == path.stem and spec.description.strip()
    if spec.search is not None:  # a sweep (lexilab.sweep): its objectives are what it reports
        assert spec.runs() and spec.search.objectives and spec.search.trials
        return
    assert spec.runs() and spec.report["metrics"] and spec.report["baseline"] in spec.arm_names


def test_resolved_arm_configs_check_again_unchanged(shared_data, monkeypatch):
    """The trainer checks config.yaml again: a resolved config must resolve to itself."""
    from lexilab.config import check_config

    monkeypatch.setenv("LEXILAB_DATA", str(shared_data))
    for path in EXPERIMENTS:
        for arm in load_spec(path).arms:
            again, problems = check_config(arm.config)
            assert problems == [] and again == arm.config, (path.name, arm.name, problems)


def test_shipped_study_designs(shared_data, monkeypatch):
    monkeypatch.setenv("LEXILAB_DATA", str(shared_data))
    by_name = {p.stem: load_spec(p) for p in EXPERIMENTS}
    assert set(by_name) >= {"quickstart", "pooling_ablation", "sampling_ablation", "mtl_vs_single", "init_ablation",
                            "factorial", "leximind_reproduction", "weighting_comparison", "backbones"}
    alphas = {a.config["sampler"].get("alpha") for a in by_name["sampling_ablation"].arms if a.config["sampler"]["kind"] == "temperature"}
    assert alphas == {0.3, 0.5, 0.7, 1.0}
    assert {a.config["sampler"]["kind"] for a in by_name["sampling_ablation"].arms} == {"round_robin", "proportional", "temperature"}
    assert {a.config["weighting"]["kind"] for a in by_name["weighting_comparison"].arms} == {
        "equal", "uncertainty", "dwa", "gradnorm", "pcgrad", "cagrad", "upgrad"}
    assert sorted(len(a.config["tasks"]) for a in by_name["mtl_vs_single"].arms) == [1, 1, 1, 3]
    assert len(by_name["factorial"].arms) == 4
    assert all(b["kind"] != "seq2seq" for a in by_name["backbones"].arms for b in a.config["tasks"].values())
    lexi = by_name["leximind_reproduction"].arms[0].config
    assert lexi["optim"]["lr"] == 3e-5 and lexi["optim"]["betas"] == [0.9, 0.98] and lexi["optim"]["min_lr_ratio"] == 0.1
    assert lexi["train"]["batch_size"] == 10 and lexi["train"]["grad_accum"] == 4 and lexi["train"]["epochs"] == 8
    assert lexi["backbone"]["freeze"]["encoder_layers"] == 4 and lexi["weighting"]["weights"]["topic"] == 0.3
    assert {t["data"] for t in lexi["tasks"].values()} == {"summaries_mixed", "goemotions", "topics7"}
