"""Hostile specs and arguments: bytes that are not UTF-8, deep nesting, alias bombs, enormous
numbers, seed counts and run counts, results roots that cannot hold results, and experiment
names that collide with the MLflow store. Each gives one error line and writes nothing."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from lexilab.config import MAX_SEED
from lexilab.spec import MAX_RUNS, MAX_SEEDS, load_spec
from lexilab.spec_yaml import MAX_NODES


def _spec_text(base_config, **top) -> str:
    return yaml.safe_dump({"name": "toy", "base": base_config, **top}, sort_keys=False)


def refused(cli, spec, tmp_path, *args):
    """Run the CLI; return its single error line after checking nothing was written."""
    results = tmp_path / "results"
    code, out, err = cli("run", spec, "--results", results, *args)
    lines = err.splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("lexilab: error: "), (code, out, err)
    assert not results.exists()
    return lines[0]


def test_bytes_that_are_not_utf8(cli, write_spec, tmp_path, base_config):
    spec = write_spec("x")
    spec.write_bytes(b"name: toy\ndescription: caf\xe9 au lait\n" + _spec_text(base_config).split("\n", 1)[1].encode())
    line = refused(cli, spec, tmp_path)
    assert f"{spec}:2:" in line and "not UTF-8" in line and "0xe9" in line


def test_a_character_yaml_does_not_allow(cli, write_spec, tmp_path):
    spec = write_spec("name: toy\nbase: {}\ndescription: bell\x07\n")
    line = refused(cli, spec, tmp_path)
    assert line == f"lexilab: error: {spec}:3:18: character #x0007 is not allowed in YAML"


def test_twenty_thousand_nested_brackets(cli, write_spec, tmp_path):
    spec = write_spec("name: toy\nbase: " + "[" * 20_000 + "]" * 20_000 + "\n")
    line = refused(cli, spec, tmp_path)
    assert f"{spec}:2:" in line and "nested more than 64 levels deep" in line


def test_billion_laughs_is_refused_in_well_under_a_second(cli, write_spec, tmp_path):
    levels = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for prev, name in zip("abcdefgh", "bcdefghi"):
        levels.append(f"{name}: &{name} [{', '.join(['*' + prev] * 9)}]")
    spec = write_spec("name: toy\nbase:\n" + "".join(f"  {level}\n" for level in levels))  # 9**9 strings
    started = time.perf_counter()
    line = refused(cli, spec, tmp_path)
    assert time.perf_counter() - started < 0.5
    assert f"more than {MAX_NODES:,} values" in line and line.startswith(f"lexilab: error: {spec}:")


def test_recursive_alias(cli, write_spec, tmp_path):
    spec = write_spec("name: toy\nbase: &b {tasks: *b}\n")
    assert "used inside its own anchor" in refused(cli, spec, tmp_path)


def test_an_integer_of_four_hundred_digits(cli, write_spec, tmp_path, base_config):
    spec = write_spec(_spec_text(base_config).replace("epochs: 1", "epochs: 1" + "0" * 400))
    line = refused(cli, spec, tmp_path)
    assert "an integer with 401 digits" in line and f"{spec}:" in line


@pytest.mark.parametrize("block, key, value", [
    ("train", "epochs", 10**20), ("train", "max_steps", 2**31), ("train", "batch_size", 2**40),
    ("optim", "warmup_steps", 10**12), ("optim", "lr", 10**25),
])
def test_every_number_is_bounded(make_spec, base_config, block, key, value):
    from lexilab.spec import SpecError

    base_config[block][key] = value
    with pytest.raises(SpecError) as info:
        load_spec(make_spec())
    (line,) = info.value.lines
    assert f"base.{block}.{key}: expected " in line


def test_method_options_are_bounded(make_spec, base_config):
    from lexilab.spec import SpecError

    base_config["sampler"] = {"kind": "temperature", "alpha": float("inf")}
    with pytest.raises(SpecError, match=r"base\.sampler\.alpha: expected finite numbers"):
        load_spec(make_spec())


def test_a_billion_seeds_in_the_spec(cli, make_spec, tmp_path):
    line = refused(cli, make_spec(seeds=10**9), tmp_path)
    assert f"seeds: expected a count from 1 to {MAX_SEEDS}" in line


def test_a_billion_seeds_on_the_command_line(cli, make_spec, tmp_path):
    line = refused(cli, make_spec(), tmp_path, "--seeds", "1000000000")
    assert f"--seeds: 1000000000: expected a count from 1 to {MAX_SEEDS}" in line


def test_seeds_beyond_what_the_generators_take(cli, make_spec, tmp_path):
    line = refused(cli, make_spec(seeds=[0, 9_300_000_000_000_000]), tmp_path)
    assert f"integers from 0 to {MAX_SEED}" in line
    assert MAX_SEED * 1000 + 999 < 2**63  # the trainer's derived stream seeds stay in range


def test_run_count_limit_and_max_runs(cli, make_spec, tmp_path):
    line = refused(cli, make_spec(seeds=MAX_SEEDS), tmp_path)  # 10,000 seeds: no folder, no table
    assert f"10,000 runs (1 arm × 10000 seeds) is more than {MAX_RUNS:,}" in line and "--max-runs 10000" in line
    spec = make_spec(seeds=3)
    assert "--max-runs 3 to plan them" in refused(cli, spec, tmp_path, "--max-runs", "2")
    code, out, err = cli("run", spec, "--results", tmp_path / "results", "--max-runs", "3", "--dry-run")
    assert code == 0 and "= 3 runs" in out, err


@pytest.mark.parametrize("where", ["file", "/proc/lexilab", "/sys/results", "/dev/results/x"])
def test_results_root_that_cannot_hold_results(cli, make_spec, tmp_path, where):
    if where == "file":
        root = tmp_path / "taken"
        root.write_text("not a folder")
        target = root / "sub"
    else:
        target = where
    code, out, err = cli("run", make_spec(), "--results", target)
    assert code == 2 and len(err.splitlines()) == 1 and "results root" in err, err
    if where == "file":
        assert root.read_text() == "not a folder" and f"{root} exists and is not one" in err
    else:
        assert "kernel filesystem" in err


def test_results_root_in_shared_memory_is_storage():
    from lexilab.io import check_output_dir

    assert check_output_dir("/dev/shm/lexilab-results", "the results root") == Path("/dev/shm/lexilab-results")
    assert not Path("/dev/shm/lexilab-results").exists()  # checked, not created


@pytest.mark.parametrize("name", ["mlflow.db", "MLflow.db", "mlflow.db-journal", "mlflow.db-wal", "mlartifacts"])
def test_experiment_names_that_collide_with_the_mlflow_store(cli, make_spec, tmp_path, name):
    line = refused(cli, make_spec(name=name), tmp_path)
    assert f"name: {name!r} collides with the MLflow store" in line


def test_reserved_names_cover_the_default_store(tmp_path):
    """The names refused are the files the tracking module puts at the results root."""
    from urllib.parse import urlparse

    from lexilab.spec import STORE_NAMES
    from lexilab.tracking import settings

    uri, artifacts = settings(None, tmp_path)
    assert Path(urlparse(uri).path).name in STORE_NAMES and Path(urlparse(artifacts).path).name in STORE_NAMES
