"""Pre-registration: a spec's `report:` block fixes the analysis (test, ci, correction, alpha,
confidence, family) before the data exist; bad values are one-line errors naming the key."""
from __future__ import annotations

import argparse

import pytest
import yaml

from lexilab.commands import report as report_command
from lexilab.errors import LexilabError
from lexilab.spec import load_spec

from .conftest import TINY_SPEC


def _spec(tmp_path, shared_data, report: dict):
    document = yaml.safe_load(TINY_SPEC.read_text())
    document["base"]["data_root"] = str(shared_data)
    document["report"] = {**document["report"], **report}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def test_every_analysis_choice_is_accepted(tmp_path, shared_data):
    block = {"test": "items", "ci": "bootstrap", "correction": "bh", "alpha": 0.01, "confidence": 0.99,
             "family": ["colour/accuracy", "labels/f1_macro", "keywords/rougeL", "colour/f1_macro"]}
    spec = load_spec(_spec(tmp_path, shared_data, block))
    assert {k: spec.report[k] for k in block} == block
    assert spec.report["baseline"] == "mtl"


@pytest.mark.parametrize("block, message", [
    ({"test": "ttest"}, "report.test: unknown test 'ttest'"),
    ({"ci": "bca"}, "report.ci: unknown ci 'bca'"),
    ({"correction": "holms"}, "report.correction: unknown correction 'holms' (did you mean"),
    ({"alpha": 5}, "report.alpha: expected a number between 0 and 1 (exclusive), found 5"),
    ({"confidence": "95%"}, "report.confidence: expected a number between 0 and 1 (exclusive), found '95%'"),
    ({"family": ["colour/acc"]}, "report.family.0: 'acc' is not a multiclass metric"),
    ({"family": ["colour/accuracy"]}, "report.family: must include every report.metrics entry; missing labels/f1_macro"),
    ({"familly": []}, "report.familly: unknown key (did you mean 'family'?)"),
])
def test_bad_choices_are_one_line_each(tmp_path, shared_data, block, message):
    with pytest.raises(LexilabError) as err:
        load_spec(_spec(tmp_path, shared_data, block))
    lines = [line for line in str(err.value).splitlines() if message in line]
    assert len(lines) == 1 and "spec.yaml:" in lines[0], str(err.value)


def _parse(argv):
    parser = argparse.ArgumentParser()
    report_command.register(parser.add_subparsers())
    return parser.parse_args(["report", "x", *argv])


def test_command_line_leaves_unset_choices_to_the_spec():
    args = _parse([])
    assert (args.test, args.ci, args.correction, args.alpha, args.confidence, args.family) == (None,) * 6
    args = _parse(["--alpha", "0.01", "--confidence", "0.9", "--family", "a/accuracy"])
    assert (args.alpha, args.confidence, args.family) == (0.01, 0.9, ["a/accuracy"])
    with pytest.raises(SystemExit):
        _parse(["--alpha", "1.5"])


def test_report_command_prints_the_deviation(known_results, tmp_path, capsys):
    args = _parse(["--results", str(known_results), "--out", str(tmp_path), "--no-figures", "--metrics",
                   "topic/accuracy", "--baseline", "mean", "--correction", "bonferroni", "--resamples", "200"])
    args.experiment = "pooling"
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert ("analysis deviates from the spec's pre-registered one: --correction bonferroni instead of the "
            "default holm (the spec names none)") in out


def test_baseline_override_is_a_deviation_only_when_registered(known_results):
    from lexilab import results
    from lexilab.report.compare import build_report

    exp = results.experiment("pooling", results=known_results)
    exp.report_defaults = {"metrics": ["topic/accuracy"], "baseline": "mean"}
    report = build_report(exp, results.load(exp), baseline="max", n_resamples=200)
    assert report.deviations == ["--baseline max instead of the spec's mean"]
    exp.report_defaults = {"metrics": ["topic/accuracy"]}
    assert build_report(exp, results.load(exp), baseline="max", n_resamples=200).deviations == []
