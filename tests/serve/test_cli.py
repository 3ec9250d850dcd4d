"""`python -m lexilab serve` refuses what it cannot serve with one line, before it listens."""
from __future__ import annotations

import shutil
import socket

import pytest

import lexilab.cli
from lexilab.runs import update_status


@pytest.fixture
def serve(capsys):
    def call(*argv):
        code = lexilab.cli.main(["serve", *map(str, argv)])
        return code, capsys.readouterr().err

    return call


def copy_run(source, target):
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("last"))  # no resume state needed
    return target


def test_a_run_that_is_not_done_is_refused(serve, trained_study, tmp_path):
    run = copy_run(trained_study["mtl"], tmp_path / "exp" / "mtl" / "seed-0")
    update_status(run, state="running")
    code, err = serve(run)
    assert code == 2 and err.count("\n") == 1
    assert "status.json: the run is running, not done" in err


def test_a_run_without_weights_is_refused(serve, trained_study, tmp_path):
    run = copy_run(trained_study["mtl"], tmp_path / "exp" / "mtl" / "seed-0")
    (run / "checkpoints" / "best" / "model.safetensors").unlink()
    code, err = serve(run)
    assert code == 2 and err.count("\n") == 1
    assert "model.safetensors: missing (the run has no selected weights)" in err


@pytest.mark.parametrize("case", ["missing", "twice", "max-batch", "busy-port"])
def test_other_refusals_are_one_line(serve, trained_study, tmp_path, case):
    run = trained_study["topic_only"]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        argv, expected = {
            "missing": ([tmp_path / "nope"], "nope: no such run directory"),
            "twice": ([run, run], "given twice"),
            "max-batch": ([run, "--max-batch", 0], "--max-batch: must be at least 1, got 0"),
            "busy-port": ([run, "--port", taken.getsockname()[1]], "cannot listen"),
        }[case]
        code, err = serve(*argv)
    assert code == 2 and err.count("\n") == 1 and expected in err, err


def test_the_same_arm_and_seed_from_two_studies_get_qualified_names(trained_study, tmp_path):
    from lexilab.errors import LexilabError
    from lexilab.serve import check_run_dirs

    copy = copy_run(trained_study["mtl"], tmp_path / "copy" / "mtl" / "seed-0")
    with pytest.raises(LexilabError, match="servetiny/mtl/seed-0: two run directories have this experiment"):
        check_run_dirs([str(trained_study["mtl"]), str(copy)])
    config = copy / "config.yaml"  # the same arm and seed in another study: names say which study
    config.write_text(config.read_text().replace("experiment: servetiny", "experiment: other_study", 1))
    runs = check_run_dirs([str(trained_study["mtl"]), str(copy), str(trained_study["topic_only"])])
    assert [r.name for r in runs] == ["servetiny/mtl/seed-0", "other_study/mtl/seed-0",
                                      "servetiny/topic_only/seed-0"]
