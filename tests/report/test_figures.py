"""Figures: written for people (labels, legends, fixed arm colours) and byte-deterministic PDFs."""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.colors import to_hex

from lexilab import results
from lexilab.report.compare import build_report
from lexilab.report.figures import (PALETTE, arm_colors, curves_figure, forest_figure, gradcos_figure,
                                    metrics_figure, perclass_f1_figure, save)


def _report(root):
    exp = results.experiment("pooling", results=root)
    return build_report(exp, results.load(exp), metrics=["topic/accuracy", "emotion/f1_samples"],
                        baseline="mean", n_resamples=500)


def test_arm_colours_are_fixed_by_spec_order():
    colors = arm_colors(["b", "a", "c"])
    assert colors == {"b": PALETTE[0], "a": PALETTE[1], "c": PALETTE[2]}
    assert arm_colors([f"x{i}" for i in range(10)])["x8"] == PALETTE[0]


def test_metrics_figure_has_labels_seed_dots_and_colours(known_results):
    report = _report(known_results)
    colors = arm_colors(report.experiment.arms)
    fig = metrics_figure(report, colors)
    ax = fig.axes[0]
    assert ax.get_ylabel() == "topic accuracy (0–1)" and ax.get_title() == "topic accuracy"
    assert [t.get_text() for t in ax.get_xticklabels()] == report.arms
    dots = [c for c in ax.collections if c.get_offsets().shape[0] == 3]  # one dot per seed and arm
    assert len(dots) == len(report.arms)
    seeds = sorted(np.round(dots[0].get_offsets()[:, 1], 6))
    assert seeds == sorted(np.round(report.summary.iloc[0]["values"], 6))
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["mean, 95% CI (t-interval)", "one seed"]
    for dot, arm in zip(dots, report.arms):
        assert to_hex(dot.get_facecolor()[0]) == colors[arm].lower()


def test_forest_figure_shows_every_comparison(known_results):
    report = _report(known_results)
    fig = forest_figure(report, arm_colors(report.experiment.arms))
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["attention", "max"]
    assert ax.get_xlabel().startswith("arm − mean")
    assert any(t.get_text().startswith("p_adj=") for t in ax.texts)


def test_pdf_bytes_are_deterministic(known_results, tmp_path):
    report = _report(known_results)
    colors = arm_colors(report.experiment.arms)
    first = save(metrics_figure(report, colors), tmp_path / "a", "m")
    second = save(metrics_figure(report, colors), tmp_path / "b", "m")
    for p1, p2 in zip(first, second):
        assert p1.read_bytes() == p2.read_bytes()
    assert b"CreationDate" not in first[0].read_bytes()


def test_gradcos_curves_and_perclass_from_records():
    colors = arm_colors(["mtl", "other"])
    gradcos = pd.DataFrame([{"arm": arm, "seed": s, "step": step, "task_a": "a", "task_b": "b", "group": g,
                             "cosine": c} for arm, c in (("mtl", -0.3), ("other", 0.4)) for s in range(2)
                            for step in (2, 4) for g in ("all", "encoder.block.0")])
    fig = gradcos_figure(gradcos, colors)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "training step" and ax.get_ylim() == (-1.05, 1.05)
    assert [l.get_label() for l in ax.get_lines() if not l.get_label().startswith("_")] == ["mtl", "other"]
    assert list(ax.get_lines()[0].get_ydata()) == [-0.3, -0.3]
    assert gradcos_figure(pd.DataFrame(), colors) is None
    history = pd.DataFrame([{"arm": "mtl", "seed": 0, "step": i, "split": None, "loss/a": 1.0 / i} for i in range(1, 6)]
                           + [{"arm": "mtl", "seed": 0, "step": 5, "split": "val", "val_loss/a": 0.5}])
    fig = curves_figure(history, colors, smooth=1)
    assert fig.axes[0].get_lines()[0].get_ydata().tolist() == [1.0, 0.5, 1 / 3, 0.25, 0.2]
    details = {("mtl", 0): {"e": {"per_class": {"x": {"f1": 0.2}, "y": {"f1": 0.6}}}},
               ("mtl", 1): {"e": {"per_class": {"x": {"f1": 0.4}, "y": {"f1": 0.8}}}}}
    fig = perclass_f1_figure(details, "e", ["mtl"])
    image = fig.axes[0].get_images()[0].get_array()
    assert np.allclose(image, [[0.3, 0.7]])
