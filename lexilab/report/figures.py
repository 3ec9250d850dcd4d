"""Paper figures of an experiment, as PDF (vector, deterministic bytes) and PNG.

    <exp>-metrics        each metric per arm: mean with 95% CI and one dot per seed
    <exp>-forest         differences vs the baseline (the table's Δ) with CIs, adjusted p-values
    <exp>-gradcos        gradient cosine between tasks over training (gradcos.jsonl)
    <exp>-curves         training and validation loss per task over examples of it seen (history.jsonl)
    <exp>-perclass-f1-<task>   per-class F1 of a multi-label task per arm (metrics_details.json)
    <exp>-domain-rouge   ROUGE per domain of a seq2seq task per arm

Every arm keeps one colour in every figure (:func:`arm_colors`, Okabe & Ito's colour-blind-safe
palette in spec order). Figures are drawn with matplotlib's object API (no pyplot state).
"""
from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import rc_context
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from lexilab import stats
from lexilab.io import atomic_write_bytes
from lexilab.report.compare import TESTS as TESTS_TEXT
from lexilab.report.compare import Report, lower_is_better
from lexilab.report.tables import metric_label
from lexilab.report.terminal import CORRECTION_NAMES, fmt_p

# Okabe & Ito (2008) colour-blind-safe palette; yellow last (weak on white)
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000", "#F0E442"]
STYLE = {"pdf.fonttype": 42, "ps.fonttype": 42, "font.size": 9, "axes.titlesize": 9, "axes.labelsize": 9,
         "legend.fontsize": 8, "xtick.labelsize": 8, "ytick.labelsize": 8, "axes.spines.top": False,
         "axes.spines.right": False, "svg.hashsalt": "lexilab"}
BOUNDED = ("accuracy", "f1", "precision", "recall", "rouge", "roc_auc", "map", "average_precision", "hamming")
FIGURE_KINDS = ("metrics", "forest", "gradcos", "curves", "perclass-f1", "domain-rouge")


def arm_colors(arms: list[str]) -> dict[str, str]:
    """A fixed colour per arm, by position in the spec's arm order (cycles after 8 arms)."""
    return {arm: PALETTE[i % len(PALETTE)] for i, arm in enumerate(arms)}


def value_label(metric: str) -> str:
    name = metric.split("/", 1)[-1]
    return metric_label(metric) + (" (0–1)" if name.startswith(BOUNDED) else "")


def png_bytes(fig: Figure, dpi: int = 110) -> bytes:
    """The figure as PNG bytes (notebooks display them with IPython.display.Image)."""
    buffer = io.BytesIO()
    with rc_context(STYLE):
        fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


def save(fig: Figure, out_dir: str | Path, name: str) -> list[Path]:
    """Write ``figures/<name>.pdf`` and ``.png`` atomically; the PDF carries no creation date."""
    paths = []
    for ext, kwargs in (("pdf", {"metadata": {"CreationDate": None}}), ("png", {"dpi": 200})):
        buffer = io.BytesIO()
        fig.savefig(buffer, format=ext, bbox_inches="tight", **kwargs)
        path = Path(out_dir) / "figures" / f"{name}.{ext}"
        atomic_write_bytes(path, buffer.getvalue())
        paths.append(path)
    return paths


def _grid(n: int, width: float = 3.0, height: float = 2.6, max_cols: int = 3):
    cols = min(n, max_cols)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(width * cols, height * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def metrics_figure(report: Report, colors: dict[str, str]) -> Figure:
    """Each metric per arm: one dot per seed, a grey line joining each seed across the arms
    (the pairing the paired tests use), and the mean with its 95% CI beside the dots."""
    fig, axes = _grid(len(report.metrics))
    all_seeds = sorted({int(s) for seeds in report.summary["seeds"] for s in seeds}) if len(report.summary) else []
    offset = {s: o for s, o in zip(all_seeds, np.linspace(-0.2, 0.04, len(all_seeds)) if len(all_seeds) > 1
                                   else np.full(len(all_seeds), -0.08))}
    for ax, metric in zip(axes, report.metrics):
        rows = report.summary[report.summary["metric"] == metric].reset_index(drop=True)
        by_seed: dict[int, list[tuple[float, float]]] = {}
        for x, row in enumerate(rows.itertuples()):
            seeds = [int(s) for s in row.seeds]
            values = np.asarray(row.values, dtype=float)
            xs = np.array([x + offset[s] for s in seeds])
            ax.scatter(xs, values, s=12, color=colors[row.arm], alpha=0.6, linewidths=0, zorder=3)
            for seed, px, value in zip(seeds, xs, values):
                by_seed.setdefault(seed, []).append((px, value))
            if math.isfinite(row.low):
                ax.errorbar(x + 0.2, row.mean, yerr=[[row.mean - row.low], [row.high - row.mean]], fmt="o",
                            color=colors[row.arm], markersize=5, capsize=3, zorder=4)
            else:
                ax.plot(x + 0.2, row.mean, "o", color=colors[row.arm], markersize=5, zorder=4)
        for seed, points in sorted(by_seed.items()):
            if len(points) > 1:
                px, py = zip(*points)
                ax.plot(px, py, color="0.6", linewidth=0.7, alpha=0.8, zorder=2, gid=f"seed-{seed}")
        ax.set_xticks(range(len(rows)), list(rows["arm"]), rotation=30, ha="right")
        ax.set_ylabel(value_label(metric))
        ax.set_title(metric_label(metric))
        ax.grid(axis="y", alpha=0.3)
    ci = "t-interval" if report.ci == "t" else "bootstrap"
    handles = [Line2D([], [], marker="o", color="0.3", linestyle="-", label=f"mean, 95% CI ({ci})"),
               Line2D([], [], marker="o", color="0.3", alpha=0.6, linestyle="", markersize=4, label="one seed"),
               Line2D([], [], color="0.6", linewidth=0.7, label="same seed across arms")]
    fig.legend(handles=handles, loc="outside lower center", ncols=3, frameon=False)
    return fig


def _interval_text(comps: pd.DataFrame) -> str:
    """The interval method of the comparisons and their n, in words (for the caption)."""
    parts = []
    for (method, design), rows in comps.groupby(["ci_method", "design"], sort=False):
        ns = sorted({int(n) for n in rows["n"]}) if "n" in rows else []
        n = f"n = {ns[0]}" if len(ns) == 1 else f"n = {ns[0]}–{ns[-1]}" if ns else ""
        what = "seed differences" if design == "paired" else "seeds per arm, unpaired"
        if "item" in str(method):
            what = "test items within seeds"
        parts.append(f"{method} over {what}" + (f", {n}" if n and "item" not in str(method) else ""))
    return "; ".join(parts)


def forest_figure(report: Report, colors: dict[str, str]) -> Figure | None:
    """Differences from the baseline (arm − baseline, the table's Δ) with their 95% CIs. Panels
    share one x-scale when every metric has the same unit; otherwise the title says they do not."""
    comps = report.comparisons
    if comps.empty:
        return None
    metrics = [m for m in report.metrics if m in set(comps["metric"])]
    fig, axes = _grid(len(metrics), width=3.6, height=0.55 * max(comps.groupby("metric").size()) + 1.3)
    bounded = {m: m.split("/", 1)[-1].startswith(BOUNDED) for m in metrics}
    shared = len(set(bounded.values())) == 1 and len(metrics) > 1
    shown = comps[comps["metric"].isin(metrics)]
    finite = shown[np.isfinite(shown["low"]) & np.isfinite(shown["high"])]
    lo = min([0.0, *finite["low"], *shown["diff"].dropna()])
    hi = max([0.0, *finite["high"], *shown["diff"].dropna()])
    pad = 0.06 * (hi - lo or 1.0)
    for ax, metric in zip(axes, metrics):
        rows = comps[comps["metric"] == metric].reset_index(drop=True)
        for y, row in enumerate(rows.itertuples()):
            ok = math.isfinite(row.low) and math.isfinite(row.high)
            ax.errorbar(row.diff, y, xerr=[[row.diff - row.low], [row.high - row.diff]] if ok else None,
                        fmt="s" if row.design == "paired" else "D", color=colors[row.arm], capsize=3, markersize=5)
            ax.annotate(f"p = {fmt_p(row.p_adj)}{row.marker}", (1.0, y), xycoords=("axes fraction", "data"),
                        xytext=(4, 0), textcoords="offset points", va="center", fontsize=7)
        ax.axvline(0, color="0.4", linewidth=0.8, linestyle="--")
        ax.set_yticks(range(len(rows)), list(rows["arm"]))
        ax.set_ylim(-0.7, len(rows) - 0.3)
        ax.invert_yaxis()
        if shared:
            ax.set_xlim(lo - pad, hi + pad)
        unit = ", 0–1 scale" if bounded[metric] else ""
        better = "left" if lower_is_better(metric) else "right"
        ax.set_xlabel(f"Δ = arm − {rows['baseline'].iloc[0]} ({better} is better{unit})")
        ax.xaxis.set_major_locator(MaxNLocator(5))
        ax.set_title(metric_label(metric))
        ax.grid(axis="x", alpha=0.3)
    shapes = "; square: paired, diamond: unpaired" if (comps["design"] != "paired").any() else ""
    n = len(comps)
    scale = ("one x-scale for all panels" if shared else
             "" if len(metrics) == 1 else "x-scales DIFFER between panels (metrics in different units)")
    lines = [f"Difference from the baseline: mean and 95% CI ({_interval_text(comps)}){shapes}",
             f"p: {TESTS_TEXT.get(report.test, report.test)}, " + (
                 f"unadjusted ({n} comparison{'s' * (n != 1)})" if report.correction == "none" else
                 f"{CORRECTION_NAMES[report.correction]}-adjusted over {n} comparison{'s' * (n != 1)}")
             + (f"; {scale}" if scale else "")]
    fig.suptitle("\n".join(lines), fontsize=7)
    return fig


def gradcos_figure(gradcos: pd.DataFrame, colors: dict[str, str], group: str = "all") -> Figure | None:
    if gradcos.empty or "cosine" not in gradcos:
        return None
    data = gradcos[(gradcos["group"] == group) & gradcos["cosine"].notna()]
    if data.empty:
        return None
    pairs = list(dict.fromkeys(zip(data["task_a"], data["task_b"])))
    fig, axes = _grid(len(pairs), width=3.4)
    for ax, (a, b) in zip(axes, pairs):
        sel = data[(data["task_a"] == a) & (data["task_b"] == b)]
        for arm in [x for x in colors if x in set(sel["arm"])]:
            per = sel[sel["arm"] == arm].groupby("step")["cosine"]
            mean, low, high = per.mean(), per.min(), per.max()
            ax.plot(mean.index, mean.to_numpy(), color=colors[arm], label=arm, linewidth=1.3)
            ax.fill_between(mean.index, low.to_numpy(), high.to_numpy(), color=colors[arm], alpha=0.15, linewidth=0)
        ax.axhline(0, color="0.4", linewidth=0.8, linestyle="--")
        ax.set_ylim(-1.05, 1.05)
        ax.set_xlabel("training step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("gradient cosine (shared encoder)")
        ax.set_title(f"{a} vs {b}")
        ax.legend(frameon=False, title="line: mean over seeds; band: min–max", title_fontsize=7)
    return fig


def _run_curves(history: pd.DataFrame, task: str, smooth: int):
    """Per run (arm, seed): the training curve of ``task`` against examples of it seen so far
    (moving mean of ``smooth`` logged steps) and its validation points, or None when absent."""
    train = history[history["split"].isna()] if "split" in history else history
    val = history[history["split"] == "val"] if "split" in history else history.iloc[0:0]
    x_column = f"examples_seen/{task}"
    for (arm, seed), rows in train[train[f"loss/{task}"].notna()].groupby(["arm", "seed"], sort=False):
        rows = rows.sort_values("step")
        if x_column in rows and rows[x_column].notna().all():
            x = rows[x_column].to_numpy(dtype=float)
        else:
            x = None  # history written before budgets were logged: no examples axis
        y = rows[f"loss/{task}"].rolling(smooth, min_periods=1).mean().to_numpy()
        column = f"val_loss/{task}"
        v = val[(val["arm"] == arm) & (val["seed"] == seed)] if column in val else val.iloc[0:0]
        v = v[v[column].notna()] if column in v else v
        vx = None
        if x is not None and not v.empty:  # a validation step → the examples seen by then
            everything = train[(train["arm"] == arm) & (train["seed"] == seed)].sort_values("step")
            vx = np.interp(v["step"].to_numpy(dtype=float), everything["step"].to_numpy(dtype=float),
                           everything[x_column].ffill().fillna(0).to_numpy(dtype=float))
        yield arm, seed, x, y, vx, (v[column].to_numpy(dtype=float) if not v.empty else None)


def curves_figure(history: pd.DataFrame, colors: dict[str, str], smooth: int = 5) -> Figure | None:
    """Training loss of each task against the examples of that task seen so far (so arms that
    split their steps between tasks differently stay comparable): per arm the mean over seeds,
    a band from the lowest to the highest seed, and validation loss (dashed)."""
    if history.empty:
        return None
    tasks = sorted(c.split("/", 1)[1] for c in history.columns if c.startswith("loss/"))
    if not tasks:
        return None
    fig, axes = _grid(len(tasks), width=3.4)
    for ax, task in zip(axes, tasks):
        curves = list(_run_curves(history, task, smooth))
        by_examples = all(c[2] is not None for c in curves)
        for arm in [a for a in colors if any(c[0] == a for c in curves)]:
            mine = [c for c in curves if c[0] == arm]
            xs = [c[2] if by_examples else np.arange(1, len(c[3]) + 1, dtype=float) for c in mine]
            grid = np.unique(np.concatenate(xs))
            grid = grid[(grid >= max(x[0] for x in xs)) & (grid <= min(x[-1] for x in xs))]
            ys = np.array([np.interp(grid, x, c[3]) for x, c in zip(xs, mine)])
            ax.plot(grid, ys.mean(axis=0), color=colors[arm], linewidth=1.2, label=f"{arm} (train)")
            if len(mine) > 1:
                ax.fill_between(grid, ys.min(axis=0), ys.max(axis=0), color=colors[arm], alpha=0.18, linewidth=0)
            val = [(c[4], c[5]) for c in mine if c[4] is not None and c[5] is not None]
            if val:
                vx = np.unique(np.concatenate([v[0] for v in val]))
                vy = np.array([np.interp(vx, v[0], v[1]) for v in val]).mean(axis=0)
                ax.plot(vx, vy, color=colors[arm], linestyle="--", marker="o", markersize=3, linewidth=1.0,
                        label=f"{arm} (val)")
        ax.set_xlabel(f"{task} training examples seen" if by_examples else "training records (no example counts)")
        ax.xaxis.set_major_locator(MaxNLocator(5, integer=True))
        ax.set_ylabel("loss (cross-entropy, nats)")
        ax.set_title(f"{task}")
        ax.legend(frameon=False, fontsize=6, loc="best")
    fig.suptitle(f"solid: training loss, moving mean of {smooth} logged steps; dashed: validation loss; "
                 "lines: mean over seeds, band: lowest to highest seed", fontsize=7)
    return fig


def perclass_f1_figure(details: dict, task: str, arms: list[str]) -> Figure | None:
    per_arm = {}
    for (arm, _seed), tasks in details.items():
        block = (tasks or {}).get(task) or {}
        if block.get("per_class"):
            per_arm.setdefault(arm, []).append({k: v["f1"] for k, v in block["per_class"].items()})
    arms = [a for a in arms if a in per_arm]
    if not arms:
        return None
    labels = list(per_arm[arms[0]][0])
    matrix = np.array([[np.mean([run[label] for run in per_arm[a]]) for label in labels] for a in arms])
    fig = Figure(figsize=(max(4.0, 0.32 * len(labels) + 2.2), 0.4 * len(arms) + 1.6), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(matrix, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right")
    ax.set_yticks(range(len(arms)), arms)
    if matrix.size <= 400:
        for (i, j), v in np.ndenumerate(matrix):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6, color="white" if v < 0.5 else "black")
    fig.colorbar(image, ax=ax, label="F1 (mean over seeds, 0–1)")
    ax.set_title(f"{task}: per-class F1")
    return fig


def domain_rouge_figure(report: Report, frame: pd.DataFrame, colors: dict[str, str]) -> Figure | None:
    done = frame[(frame["state"] == "done") & (frame["split"] == report.split)]
    rouge = done[done["metric"].str.contains("@", na=False) & done["metric"].str.startswith("rouge", na=False)]
    if rouge.empty:
        return None
    wanted = [m.split("/", 1) for m in report.metrics if m.split("/", 1)[-1].startswith("rouge")]
    task, base = wanted[0] if wanted else (rouge["task"].iloc[0], "rougeL")
    sel = rouge[(rouge["task"] == task) & rouge["metric"].str.startswith(base + "@")]
    domains = sorted({m.split("@", 1)[1] for m in sel["metric"]})
    arms = [a for a in colors if a in set(sel["arm"])]
    if not domains or not arms:
        return None
    fig = Figure(figsize=(max(3.2, 1.2 * len(domains) * max(1, len(arms)) ** 0.5 + 1.5), 2.8), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / len(arms)
    for k, arm in enumerate(arms):
        for x, domain in enumerate(domains):
            values = sel[(sel["arm"] == arm) & (sel["metric"] == f"{base}@{domain}")]["value"].dropna().to_numpy()
            if not values.size:
                continue
            pos = x - 0.4 + width * (k + 0.5)
            ax.scatter(np.full(values.size, pos), values, s=10, color=colors[arm], alpha=0.5, linewidths=0)
            low, high = stats.t_interval(values) if values.size > 1 else (np.nan, np.nan)
            mean = values.mean()
            yerr = [[mean - low], [high - mean]] if np.isfinite(low) else None
            ax.errorbar(pos, mean, yerr=yerr, fmt="o", color=colors[arm], capsize=3, markersize=5,
                        label=arm if x == 0 else None)
    ax.set_xticks(range(len(domains)), domains)
    ax.set_xlabel("domain")
    ax.set_ylabel(f"{metric_label(task + '/' + base).split(' ', 1)[1]} F-measure (0–1)")
    ax.set_title(f"{metric_label(task + '/' + base)} per domain (mean, 95% t-interval, one dot per seed)")
    ax.legend(frameon=False)
    return fig


def write_figures(report: Report, frame: pd.DataFrame, out_dir: str | Path, *, history: pd.DataFrame | None = None,
                  gradcos: pd.DataFrame | None = None, details: dict | None = None) -> dict[str, list[Path] | str]:
    """Draw every figure the data allows; returns name → written paths, or the reason it was skipped."""
    name = report.experiment.name
    colors = arm_colors(report.experiment.arms)
    out: dict[str, list[Path] | str] = {}
    with rc_context(STYLE):
        plans = [("metrics", lambda: metrics_figure(report, colors), "no metrics"),
                 ("forest", lambda: forest_figure(report, colors), "no comparisons"),
                 ("gradcos", lambda: gradcos_figure(gradcos if gradcos is not None else pd.DataFrame(), colors),
                  "no gradcos.jsonl (diagnostics.grad_cosine_every is 0)"),
                 ("curves", lambda: curves_figure(history if history is not None else pd.DataFrame(), colors),
                  "no history.jsonl"),
                 ("domain-rouge", lambda: domain_rouge_figure(report, frame, colors), "no per-domain ROUGE")]
        for task, kind in report.experiment.task_kinds.items():
            if kind == "multilabel":
                plans.append((f"perclass-f1-{task}", lambda t=task: perclass_f1_figure(details or {}, t, report.arms),
                              "no per-class details"))
        for kind, draw, reason in plans:
            fig = draw()
            out[f"{name}-{kind}"] = save(fig, out_dir, f"{name}-{kind}") if fig is not None else reason
    return out
