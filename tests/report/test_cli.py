"""The report and paper commands on results trees with known values (fast)."""
from __future__ import annotations

import argparse
import shutil

import pytest

from lexilab.cli import main
from lexilab.commands import paper as paper_command
from lexilab.commands import report as report_command
from lexilab.report.paper import figure_experiment, scan


def _run(module, argv):
    parser = argparse.ArgumentParser()
    module.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.func(args)


def test_report_command_prints_table_and_writes_files(known_results, tmp_path, capsys):
    status = _run(report_command, ["report", "pooling", "--results", str(known_results), "--out", str(tmp_path),
                                   "--metrics", "topic/accuracy", "--baseline", "mean", "--resamples", "500"])
    out = capsys.readouterr().out
    assert status == 0
    assert out.startswith("pooling — split test — 3 seeds per arm")
    assert "attention" in out and "Holm-adjusted over 2 comparisons" in out
    assert (tmp_path / "tables" / "pooling.tex").is_file()
    assert (tmp_path / "figures" / "pooling-metrics.pdf").is_file()
    assert "skipped pooling-gradcos: no gradcos.jsonl" in out


@pytest.mark.parametrize("argv,message", [
    (["--metrics", "topic/acc"], "metric topic/acc not in the test results; available: emotion/f1_samples"),
    (["--baseline", "nope"], "--baseline: arm 'nope' has no finished runs in pooling; arms:"),
])
def test_bad_input_is_one_line_on_stderr(known_results, tmp_path, capsys, argv, message):
    if "lexilab.commands.report" not in __import__("lexilab.cli").cli.COMMAND_MODULES:
        pytest.skip("report is not registered in lexilab/cli.py yet")
    status = main(["report", "pooling", "--results", str(known_results), "--out", str(tmp_path), "--no-figures",
                   *argv])
    err = capsys.readouterr().err
    assert status == 2 and message in err and err.count("\n") == 1


def test_paper_scan_and_figure_names(repo_root):
    assert figure_experiment("pooling_ablation-perclass-f1-emotion") == "pooling_ablation"
    assert figure_experiment("my-exp-domain-rouge") == "my-exp"
    assert figure_experiment("quickstart-forest") == "quickstart"
    assert figure_experiment("unrelated") is None
    needs = scan(repo_root / "paper" / "main.tex")
    assert "quickstart" in needs.tables and "quickstart-metrics" in needs.figures
    assert not [n for n in needs.tables + needs.figures if "#" in n]  # macro definitions are not uses
    assert {"pooling_ablation", "mtl_vs_single", "quickstart"} <= set(needs.experiments())


def test_paper_command_regenerates_inputs_and_builds(known_results, tmp_path, capsys):
    paper = tmp_path / "paper"
    (paper / "sections").mkdir(parents=True)
    (paper / "main.tex").write_text(
        "\\documentclass{article}\\usepackage{booktabs}\\usepackage{graphicx}\\graphicspath{{figures/}}\n"
        "\\begin{document}\n\\input{sections/body}\n\\end{document}\n")
    (paper / "sections" / "body.tex").write_text(
        "% \\input{tables/commented_out}\n\\input{tables/pooling}\n"
        "\\includegraphics[width=\\linewidth]{figures/pooling-forest}\n")
    status = _run(paper_command, ["paper", "--results", str(known_results), "--paper", str(paper),
                                  "--experiments", str(tmp_path / "none"), "--resamples", "500"])
    out = capsys.readouterr().out
    assert "1 tables and 1 figures from 1 experiments" in out and "pooling: regenerated" in out
    assert (paper / "tables" / "pooling.tex").is_file() and (paper / "figures" / "pooling-forest.pdf").is_file()
    if shutil.which("latexmk"):
        assert status == 0 and (paper / "main.pdf").is_file(), out
    else:
        assert status == 0 and "latexmk not found" in out
