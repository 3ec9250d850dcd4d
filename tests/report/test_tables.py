"""LaTeX and terminal output of a report: content, legend, determinism."""
from __future__ import annotations

import re

import numpy as np

from lexilab import results
from lexilab.report.build import generate
from lexilab.report.compare import build_report
from lexilab.report.tables import escape, metric_label, results_table
from lexilab.report.terminal import render

from .conftest import KNOWN


def _report(root, **kwargs):
    exp = results.experiment("pooling", results=root)
    return build_report(exp, results.load(exp), metrics=["topic/accuracy", "emotion/f1_samples"], baseline="mean",
                        n_resamples=1000, **kwargs)


def test_table_is_booktabs_with_best_bold_markers_and_caption(known_results):
    report = _report(known_results)
    tex = results_table(report, "python -m lexilab report pooling")
    for command in (r"\toprule", r"\midrule", r"\bottomrule", r"\caption{", r"\label{tab:pooling}"):
        assert command in tex
    rows = {line.split(" & ")[0]: line for line in tex.splitlines() if line.endswith(r"\\") and " & " in line}
    best = f"{np.mean(KNOWN['attention']):.3f}"
    assert rf"\mathbf{{{best}}}" in rows["attention"]
    assert r"\mathbf" not in rows["max"]
    assert rows["mean (baseline)"].count("$") == 4  # plain cells, no markers on the baseline
    half = (report.summary.set_index(["arm", "metric"]).loc[("max", "topic/accuracy"), "high"]
            - report.summary.set_index(["arm", "metric"]).loc[("max", "topic/accuracy"), "low"]) / 2
    assert f"\\pm {half:.3f}" in rows["max"]
    caption = re.search(r"\\caption\{(.*)\}", tex).group(1)
    assert "3 seeds per arm" in caption and "t-interval" in caption
    assert "Holm-adjusted over 4 comparisons" in caption and "$^{*}p<0.05$" in caption
    p = report.comparisons.set_index(["arm", "metric"]).loc[("attention", "topic/accuracy"), "p_adj"]
    star = "*" if 0.01 <= p < 0.05 else "**" if 0.001 <= p < 0.01 else "***" if p < 0.001 else ""
    assert (f"^{{{star}}}" in rows["attention"]) == bool(star)


def test_unpaired_marker_and_legend(known_results, make):
    make(known_results, "pooling", "max", 7, levels={"pooling": "max"},
         tasks={"topic": "multiclass", "emotion": "multilabel"},
         metrics={"test": {"topic": {"accuracy": 0.8}, "emotion": {"f1_samples": 0.3}}})
    report = _report(known_results)
    tex = results_table(report, "cmd")  # max has a seed the baseline lacks: paired on the shared seeds
    assert r"\ddagger" in [l for l in tex.splitlines() if l.startswith("max")][0]
    assert "paired on the seeds both arms finished, dropped: max: seed 7 (mean has no seed-7 run)" in tex
    text = render(report)
    assert "‡" in text and "dropped max: seed 7 (mean has no seed-7 run)" in text


def test_regeneration_is_byte_identical(known_results, tmp_path):
    out1, out2 = tmp_path / "p1", tmp_path / "p2"
    kwargs = dict(results=known_results, metrics=["topic/accuracy"], baseline="mean", n_resamples=500)
    generate("pooling", out_dir=out1, **kwargs)
    generate("pooling", out_dir=out2, **kwargs)
    files = sorted(p.relative_to(out1) for p in out1.rglob("*") if p.is_file())
    assert {str(f) for f in files} >= {"tables/pooling.tex", "figures/pooling-metrics.pdf", "figures/pooling-forest.png"}
    for rel in files:
        assert (out1 / rel).read_bytes() == (out2 / rel).read_bytes(), rel
    first = (out1 / "tables/pooling.tex").read_bytes()
    generate("pooling", out_dir=out1, **kwargs)  # in place, too
    assert (out1 / "tables/pooling.tex").read_bytes() == first


def test_terminal_table_lists_arms_metrics_and_p(known_results):
    report = _report(known_results)
    text = render(report)
    lines = text.splitlines()
    assert lines[0].startswith("pooling — split test — 3 seeds per arm — mean [95% CI: t-interval")
    row = next(l for l in lines if l.startswith("attention"))
    mean = np.mean(KNOWN["attention"]) - np.mean(KNOWN["mean"])
    assert f"{mean:+.3f}" in row
    assert any(l.startswith("mean (baseline)") and "(reference)" in l for l in lines)
    assert "Holm-adjusted over 4 comparisons" in text and "paired t-test" in text


def test_latex_escaping_and_metric_labels():
    assert escape("colour_only & 50%") == r"colour\_only \& 50\%"
    assert metric_label("emotion/f1_samples") == "emotion sample F1"
    assert metric_label("summary/rougeL@literary") == "summary ROUGE-L (literary)"
    assert metric_label("emotion/hamming_loss") == "emotion Hamming loss"
