"""Figures: written for people (labels, legends, fixed arm colours) and byte-deterministic PDFs."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex

from lexilab import results
from lexilab.report.compare import build_report
from lexilab.report.figures import (PALETTE, arm_colors, curves_figure, forest_figure, gradcos_figure,
                                    metrics_figure, perclass_f1_figure, save)

from .conftest import KNOWN


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
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["mean, 95% CI (t-interval)", "one seed",
                                                                 "same seed across arms"]
    for dot, arm in zip(dots, report.arms):
        assert to_hex(dot.get_facecolor()[0]) == colors[arm].lower()


def test_metrics_figure_joins_each_seed_across_arms(known_results):
    """The pairing the paired test uses: one line per seed through that seed's value in every arm
    (values from the fixture's KNOWN table, in arm order)."""
    report = _report(known_results)
    ax = metrics_figure(report, arm_colors(report.experiment.arms)).axes[0]
    lines = {l.get_gid(): l for l in ax.get_lines() if (l.get_gid() or "").startswith("seed-")}
    assert sorted(lines) == ["seed-0", "seed-1", "seed-2"]  # seed 3 failed/pending: in no arm twice
    for seed in range(3):
        assert np.allclose(lines[f"seed-{seed}"].get_ydata(), [KNOWN[arm][seed] for arm in report.arms])
    dots = [c for c in ax.collections if c.get_offsets().shape[0] == 3]
    for arm_dots in dots:  # each line passes through that seed's dot of every arm
        for seed, (x, y) in enumerate(arm_dots.get_offsets()):
            assert any(np.isclose(lx, x) and np.isclose(ly, y) for lx, ly in lines[f"seed-{seed}"].get_xydata())


def _texts(fig):
    out = [t.get_text() for t in fig.texts] + ([fig._suptitle.get_text()] if fig._suptitle else [])
    for ax in fig.axes:
        out += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel(), *[t.get_text() for t in ax.texts]]
    return out


def test_forest_figure_shares_its_scale_names_the_interval_and_uses_the_tables_sign(known_results):
    report = _report(known_results)
    fig = forest_figure(report, arm_colors(report.experiment.arms))
    topic, emotion = fig.axes[:2]
    assert [t.get_text() for t in topic.get_yticklabels()] == ["attention", "max"]
    assert topic.get_xlim() == emotion.get_xlim()  # one x-scale across panels
    # Δ = arm − baseline, as in the table: attention − mean from the fixture's values
    marker = topic.get_lines()[0]
    assert marker.get_xdata()[0] == pytest.approx(np.mean(KNOWN["attention"]) - np.mean(KNOWN["mean"]))
    assert topic.get_xlabel() == "Δ = arm − mean (right is better, 0–1 scale)"
    title = fig._suptitle.get_text()
    assert "t-interval over seed differences, n = 3" in title and "Holm-adjusted over 4 comparisons" in title
    assert "one x-scale for all panels" in title
    texts = _texts(fig)
    assert not any("p_adj" in t or "holm" in t or "bh" in t.split() for t in texts), texts
    assert [t.get_text().startswith("p = ") for t in topic.texts] == [True, True]


def test_forest_figure_says_when_scales_differ(known_results):
    exp = results.experiment("pooling", results=known_results)
    frame = results.load(exp)
    frame.loc[frame["metric"] == "f1_samples", "metric"] = "loss"  # a metric in other units
    report = build_report(exp, frame, metrics=["topic/accuracy", "emotion/loss"], baseline="mean", n_resamples=200)
    fig = forest_figure(report, arm_colors(exp.arms))
    assert "x-scales DIFFER between panels" in fig._suptitle.get_text()
    assert fig.axes[1].get_xlabel() == "Δ = arm − mean (left is better)"


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
    fig = curves_figure(history, colors, smooth=1)  # old history without example counts: by record
    assert fig.axes[0].get_lines()[0].get_ydata().tolist() == [1.0, 0.5, 1 / 3, 0.25, 0.2]
    details = {("mtl", 0): {"e": {"per_class": {"x": {"f1": 0.2}, "y": {"f1": 0.6}}}},
               ("mtl", 1): {"e": {"per_class": {"x": {"f1": 0.4}, "y": {"f1": 0.8}}}}}
    fig = perclass_f1_figure(details, "e", ["mtl"])
    image = fig.axes[0].get_images()[0].get_array()
    assert np.allclose(image, [[0.3, 0.7]])


def test_curves_are_drawn_against_examples_seen_with_a_seed_band():
    """An MTL arm that gives task a every other step and a single-task arm that gives it every
    step: against examples seen (history's examples_seen/a) both curves span the same x, the
    line is the mean over seeds and the band spans the seeds."""
    colors = arm_colors(["mtl", "a_only"])
    rows = []
    for seed, scale in ((0, 1.0), (1, 3.0)):
        for step in range(1, 9):  # mtl: a on odd steps, b on even steps, batches of 4
            rows.append({"arm": "mtl", "seed": seed, "step": step, "split": None,
                         "loss/a": scale / step if step % 2 else None, "loss/b": None if step % 2 else 1.0,
                         "examples_seen/a": 4 * ((step + 1) // 2), "updates/a": (step + 1) // 2,
                         "examples_seen/b": 4 * (step // 2), "updates/b": step // 2})
        for step in range(1, 5):
            rows.append({"arm": "a_only", "seed": seed, "step": step, "split": None, "loss/a": scale / (2 * step - 1),
                         "examples_seen/a": 4 * step, "updates/a": step})
        rows.append({"arm": "a_only", "seed": seed, "step": 4, "split": "val", "val_loss/a": 0.5 * scale})
    fig = curves_figure(pd.DataFrame(rows), colors, smooth=1)
    ax = fig.axes[0]
    assert ax.get_title() == "a" and ax.get_xlabel() == "a training examples seen"
    train = {l.get_label(): l for l in ax.get_lines()}
    for arm in ("mtl", "a_only"):
        line = train[f"{arm} (train)"]
        assert line.get_xdata().tolist() == [4, 8, 12, 16]  # the same x in both arms
        assert np.allclose(line.get_ydata(), [2.0 / k for k in (1, 3, 5, 7)])  # mean of scales 1 and 3
    val = train["a_only (val)"]
    assert val.get_xdata().tolist() == [16] and val.get_ydata().tolist() == [1.0]
    bands = [c for c in ax.collections if len(c.get_paths())]
    assert len(bands) == 2  # one seed band per arm
    ys = np.concatenate([p.vertices[:, 1] for p in bands[0].get_paths()])
    assert ys.max() == pytest.approx(3.0) and ys.min() == pytest.approx(1.0 / 7)
