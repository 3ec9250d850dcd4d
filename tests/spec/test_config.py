"""Run-config resolution and validation: defaults, types, names against the real registries,
impossible combinations, and the identity hash."""
from __future__ import annotations

import copy
import json
import random
import subprocess
import sys

import pytest

from lexilab.config import DEFAULTS, check_config, deep_merge, identity_hash


def problems_of(raw, base_dir=None) -> list[str]:
    return [p.line() for p in check_config(raw, base_dir)[1]]


def only_problem(raw) -> str:
    lines = problems_of(raw)
    assert len(lines) == 1, lines
    return lines[0]


def test_valid_config_resolves_with_every_default(base_config):
    config, problems = check_config(base_config)
    assert problems == []
    for block, defaults in DEFAULTS.items():
        if isinstance(defaults, dict):
            assert set(config[block]) >= set(defaults), block
    assert config["optim"]["betas"] == [0.9, 0.999] and config["optim"]["lr"] == 3.0e-3
    assert config["tasks"]["colour"]["head"] == {"kind": "linear", "dropout": 0.0}
    assert config["tasks"]["keywords"]["pooling"] is None and config["tasks"]["keywords"]["head"] is None
    assert config["tasks"]["keywords"]["generation"]["length_penalty"] == 1.0
    assert list(config)[:3] == ["seed", "data_root", "backbone"]


def test_resolution_is_idempotent(base_config):
    config, _ = check_config(base_config)
    again, problems = check_config(copy.deepcopy(config))
    assert problems == [] and again == config


def test_resolved_blocks_build_with_the_real_method_registries(base_config):
    """What config.py resolves is exactly what the samplers / weightings / heads accept."""
    import torch

    from lexilab.model.heads import build_head
    from lexilab.train.samplers import SAMPLERS, build_sampler
    from lexilab.train.weighting import WEIGHTINGS, build_weighting

    param = torch.nn.Parameter(torch.zeros(3))
    for kind in SAMPLERS:
        config, problems = check_config({**base_config, "sampler": {"kind": kind}})
        assert problems == [], kind
        build_sampler(config["sampler"], {"colour": 10, "keywords": 20}, seed=0, total_steps=10)
    for kind in WEIGHTINGS:
        config, problems = check_config({**base_config, "weighting": {"kind": kind}})
        assert problems == [], kind
        build_weighting(config["weighting"], ["colour", "keywords"], [param])
    config, _ = check_config(deep_merge(base_config, {"tasks": {"colour": {"head": {"kind": "mlp", "hidden": 8}}}}))
    assert build_head(config["tasks"]["colour"]["head"], 16, 2).fc1.out_features == 8


def test_method_option_defaults_are_the_class_defaults(base_config):
    import inspect

    from lexilab.train.samplers import TemperatureSampler

    config, _ = check_config({**base_config, "sampler": {"kind": "temperature"}})
    expected = inspect.signature(TemperatureSampler).parameters["alpha"].default
    assert config["sampler"] == {"kind": "temperature", "steps_per_epoch": "largest", "alpha": expected, "cap": None}
    config, _ = check_config({**base_config, "sampler": {"kind": "round_robin"}})
    assert config["sampler"] == {"kind": "round_robin", "steps_per_epoch": "largest"}


@pytest.mark.parametrize("where, value, fragment", [
    (("optim", "lr"), "fast", "optim.lr: expected a number > 0, found 'fast' (str)"),
    (("optim", "lr"), -1.0, "optim.lr: expected a number > 0, found -1.0"),
    (("optim", "betas"), [0.9], "optim.betas: expected a list of 2 numbers in [0, 1)"),
    (("train", "epochs"), 2.5, "train.epochs: expected an integer ≥ 1, found 2.5"),
    (("train", "batch_size"), True, "train.batch_size: expected an integer ≥ 1, found True (bool)"),
    (("train", "precision"), "bf61", "train.precision: expected one of fp32, bf16, fp16, found 'bf61' (str) (did you mean 'bf16'?)"),
    (("train", "device"), "gpu", "train.device: expected auto, cpu, mps, cuda or cuda:N, found 'gpu'"),
    (("train", "compile"), "yes", "train.compile: expected true or false, found 'yes'"),
    (("backbone", "init"), "pretrain", "backbone.init: expected one of pretrained, random, found 'pretrain' (str) (did you mean 'pretrained'?)"),
    (("backbone", "freeze"), {"unfreeze": [{"step": 5}]}, "backbone.freeze.unfreeze: expected a list of {step"),
    (("train", "leakage"), "ignore", "train.leakage: expected one of warn, drop, fail"),
])
def test_wrong_type_or_range_is_one_line(base_config, where, value, fragment):
    raw = copy.deepcopy(base_config)
    raw.setdefault(where[0], {})[where[1]] = value
    line = only_problem(raw)
    assert line.startswith(fragment), line


def test_pyyaml_exponent_strings_are_numbers(base_config):
    # PyYAML (YAML 1.1) reads 3e-5 as the string "3e-5"; the config treats it as the number it is
    config, problems = check_config(deep_merge(base_config, {"optim": {"lr": "3e-5"}}))
    assert problems == [] and config["optim"]["lr"] == 3e-5


@pytest.mark.parametrize("patch, fragment", [
    ({"optimm": {}}, "optimm: unknown key (did you mean 'optim'?); allowed: seed, data_root"),
    ({"optim": {"learning_rate": 1e-3}}, "optim.learning_rate: unknown key"),
    ({"optim": {"weight_decy": 0.1}}, "optim.weight_decy: unknown key (did you mean 'weight_decay'?)"),
    ({"tasks": {"colour": {"poolng": "max"}}}, "tasks.colour.poolng: unknown key (did you mean 'pooling'?)"),
    ({"train": {"early_stopping": {"patients": 2}}}, "train.early_stopping.patients: unknown key (did you mean 'patience'?)"),
    ({"sampler": {"alfa": 0.3, "kind": "temperature"}},
     "sampler.alfa: not an option of sampler 'temperature' (did you mean 'alpha'?); its options: alpha, cap"),
    ({"sampler": {"kind": "round_robin", "alpha": 0.3}}, "sampler.alpha: not an option of sampler 'round_robin'"),
    ({"weighting": {"kind": "dwa", "temprature": 1.0}}, "weighting.temprature: not an option of weighting 'dwa' (did you mean 'temperature'?)"),
    ({"tasks": {"colour": {"head": {"kind": "mlp", "hiden": 4}}}}, "tasks.colour.head.hiden: not an option of head 'mlp' (did you mean 'hidden'?)"),
    ({"backbone": {"name": {"d_modle": 8}}}, "backbone.name.d_modle: not a T5 config field (did you mean 'd_model'?)"),
])
def test_unknown_keys_and_options_say_did_you_mean(base_config, patch, fragment):
    line = only_problem(deep_merge(base_config, patch))
    assert line.startswith(fragment), line


@pytest.mark.parametrize("patch, path, registry", [
    ({"tasks": {"colour": {"pooling": "atention"}}}, "tasks.colour.pooling: unknown pooling 'atention' (did you mean 'attention'?)", "pooling"),
    ({"sampler": {"kind": "temprature"}}, "sampler.kind: unknown sampler 'temprature' (did you mean 'temperature'?)", "sampler"),
    ({"weighting": {"kind": "pcgrd"}}, "weighting.kind: unknown weighting 'pcgrd' (did you mean 'pcgrad'?)", "weighting"),
    ({"tasks": {"colour": {"head": {"kind": "mpl"}}}}, "tasks.colour.head.kind: unknown head 'mpl' (did you mean 'mlp'?)", "head"),
    ({"tasks": {"colour": {"data": "goemotion"}}}, "tasks.colour.data: unknown dataset 'goemotion' (did you mean 'goemotions'?)", "dataset"),
    ({"tasks": {"colour": {"kind": "multiclas"}}}, "tasks.colour.kind: expected one of ", "kind"),
])
def test_unknown_names_are_checked_against_the_real_registries(base_config, patch, path, registry):
    from lexilab.data.registry import DATASETS
    from lexilab.model.heads import HEADS
    from lexilab.model.pooling import POOLINGS
    from lexilab.tasks import TASK_KINDS
    from lexilab.train.samplers import SAMPLERS
    from lexilab.train.weighting import WEIGHTINGS

    known = {"pooling": POOLINGS, "sampler": SAMPLERS, "weighting": WEIGHTINGS, "head": HEADS,
             "dataset": DATASETS, "kind": TASK_KINDS}[registry]
    raw = copy.deepcopy(base_config)
    if registry == "dataset":
        raw["tasks"]["colour"]["data"] = "goemotion"
    line = only_problem(deep_merge(raw, patch) if registry != "dataset" else raw)
    assert line.startswith(path), line
    listed = line.split("known: ")[-1] if "known: " in line else line.split("one of ")[-1].split(", found")[0]
    assert sorted(n.strip() for n in listed.split(",")) == sorted(known)


def test_seq2seq_on_an_encoder_only_backbone(base_config, tmp_path):
    bert_dir = tmp_path / "tiny-bert"
    bert_dir.mkdir()
    (bert_dir / "config.json").write_text(json.dumps({"model_type": "bert", "num_hidden_layers": 2}))
    for name in (str(bert_dir), "sentence-transformers/all-MiniLM-L6-v2", "bert-base-uncased"):
        raw = deep_merge(base_config, {"backbone": {"init": "pretrained", "tokenizer": None}})
        raw["backbone"]["name"] = name
        line = only_problem(raw)
        assert line.startswith("tasks.keywords.kind: seq2seq task on an encoder-only backbone"), line
    # the same backbone with the classification task alone is fine
    raw["tasks"].pop("keywords")
    assert problems_of(raw) == []


def test_kind_specific_keys_on_the_wrong_kind(base_config):
    raw = deep_merge(base_config, {"tasks": {
        "keywords": {"pooling": "attention"},
        "colour": {"threshold": {"tune": "global"}, "generation": {"num_beams": 2}, "loss": {"pos_weight": 2.0}},
    }})
    lines = problems_of(raw)
    assert sorted(lines) == sorted([
        "tasks.keywords.pooling: pooling is for multiclass and multilabel tasks only; task 'keywords' is seq2seq (remove the key)",
        "tasks.colour.threshold: threshold is for multilabel tasks only; task 'colour' is multiclass (remove the key)",
        "tasks.colour.generation: generation is for seq2seq tasks only; task 'colour' is multiclass (remove the key)",
        "tasks.colour.loss.pos_weight: pos_weight is for multilabel tasks only; task 'colour' is multiclass (remove the key)",
    ])


def test_dataset_kind_must_match_task_kind(base_config):
    raw = deep_merge(base_config, {"tasks": {"colour": {"data": "goemotions"}}})
    assert only_problem(raw) == "tasks.colour.kind: multiclass but dataset 'goemotions' is multilabel"


def test_missing_data_files_and_tokenizer_folder(base_config, tmp_path):
    raw = deep_merge(base_config, {"data_root": str(tmp_path), "tasks": {"colour": {"data": "ag_news"}}})
    lines = problems_of(raw)
    assert len(lines) == 2, lines
    assert lines[0].startswith(f"backbone.tokenizer: 'data:flan_t5_tokenizer': no folder {tmp_path / 'flan_t5_tokenizer'}")
    assert lines[1].startswith(f"tasks.colour.data: dataset 'ag_news' needs {tmp_path / 'ag_news' / 'test.csv'}")


def test_freeze_more_layers_than_the_backbone_has(base_config):
    raw = deep_merge(base_config, {"backbone": {"freeze": {"encoder_layers": 3}}})
    assert only_problem(raw) == "backbone.freeze.encoder_layers: 3 but the backbone has 2 encoder layers"


def test_task_weights_need_fixed_weighting(base_config):
    raw = deep_merge(base_config, {"tasks": {"colour": {"weight": 0.3}}})
    assert only_problem(raw).startswith("tasks.colour.weight: 0.3 is used only by weighting kind 'fixed'")
    config, problems = check_config(deep_merge(raw, {"weighting": {"kind": "fixed"}}))
    assert problems == [] and config["weighting"] == {"kind": "fixed", "weights": {"colour": 0.3, "keywords": 1.0}}
    both = deep_merge(raw, {"weighting": {"kind": "fixed", "weights": {"colour": 1.0, "keywords": 1.0}}})
    assert only_problem(both).startswith("weighting.weights: set either weighting.weights or the tasks' weight")


def test_metric_names(base_config):
    assert only_problem(deep_merge(base_config, {"train": {"early_stopping": {"metric": "color/accuracy"}}})).startswith(
        "train.early_stopping.metric: 'color/accuracy' names task 'color' (did you mean 'colour'?)")
    assert only_problem(deep_merge(base_config, {"train": {"early_stopping": {"metric": "colour/acuracy"}}})).startswith(
        "train.early_stopping.metric: 'acuracy' is not a multiclass metric (did you mean 'accuracy'?)")
    assert only_problem(deep_merge(base_config, {"tasks": {"keywords": {"early_stopping_metric": "bleu"}}})).startswith(
        "tasks.keywords.early_stopping_metric: 'bleu' is not a seq2seq metric")
    for ok in ("val_loss", "val_loss/colour", "colour/f1_macro", "keywords/rougeL"):
        assert problems_of(deep_merge(base_config, {"train": {"early_stopping": {"metric": ok}}})) == [], ok


def test_config_mapping_backbone_needs_random_init(base_config):
    assert only_problem(deep_merge(base_config, {"backbone": {"init": "pretrained"}})).startswith(
        "backbone.init: a backbone given as a mapping of T5 config fields has no weights to load")


def test_fp16_on_cpu(base_config):
    assert only_problem(deep_merge(base_config, {"train": {"precision": "fp16"}})).startswith(
        "train.precision: fp16 needs a CUDA device")


def test_every_problem_is_reported_at_once(base_config):
    raw = deep_merge(base_config, {"optim": {"lr": "x", "betas": 3}, "train": {"epochs": 0},
                                   "tasks": {"colour": {"pooling": "maxx"}}, "samplr": {}})
    assert len(problems_of(raw)) == 5


def _shuffled(value, rng, path=""):
    """Every mapping's key order shuffled, except the task order (part of a run's identity)."""
    if isinstance(value, dict):
        items = list(value.items())
        if path != "tasks":
            rng.shuffle(items)
        return {k: _shuffled(v, rng, k if not path else f"{path}.{k}") for k, v in items}
    return value


def test_identity_hash_ignores_key_order_and_machine_paths(base_config):
    config, _ = check_config(base_config)
    digest = identity_hash(config)
    for trial in range(5):
        assert identity_hash(_shuffled(config, random.Random(trial))) == digest
    assert identity_hash({**config, "data_root": "/elsewhere", "tracking": {"mlflow": True}}) == digest
    assert identity_hash({**config, "seed": 1}) != digest
    assert identity_hash(deep_merge(config, {"optim": {"lr": 1e-3}})) != digest
    # task order decides round-robin order and head initialisation order: a different run
    reordered = {**config, "tasks": dict(reversed(list(config["tasks"].items())))}
    assert len(config["tasks"]) == 2 and identity_hash(reordered) != digest


def test_identity_hash_is_the_same_in_another_process(base_config):
    config, _ = check_config(base_config)
    code = ("import json, sys; from lexilab.config import identity_hash; "
            "print(identity_hash(json.loads(sys.stdin.read())))")
    out = subprocess.run([sys.executable, "-c", code], input=json.dumps(config), capture_output=True, text=True,
                         check=True, env={"PYTHONHASHSEED": "123", "PATH": ""})
    assert out.stdout.strip() == identity_hash(config)


def test_integer_and_float_spellings_hash_alike(base_config):
    a, _ = check_config(deep_merge(base_config, {"tasks": {"colour": {"weight": 1}}, "optim": {"lr": 1}}))
    b, _ = check_config(deep_merge(base_config, {"tasks": {"colour": {"weight": 1.0}}, "optim": {"lr": 1.0}}))
    assert identity_hash(a) == identity_hash(b)
