"""Paper figures of an experiment, as PDF (vector, deterministic bytes) and PNG.

    <exp>-metrics        each metric per arm: mean with 95% CI and one dot per seed
    <exp>-forest         differences vs the baseline with CIs, adjusted p-values
    <exp>-gradcos        gradient cosine between tasks over training (gradcos.jsonl)
    <exp>-curves         training loss per task and validation loss over steps (history.jsonl)
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
from lexilab.report.compare import Report
from lexilab.report.tables import metric_label
from lexilab.report.terminal import fmt_p

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
    fig, axes = _grid(len(report.metrics))
    for ax, metric in zip(axes, report.metrics):
        rows = report.summary[report.summary["metric"] == metric]
        for x, row in enumerate(rows.itertuples()):
            values = np.asarray(row.values, dtype=float)
            offsets = np.linspace(-0.18, 0.18, len(values)) if len(values) > 1 else np.zeros(1)
            ax.scatter(x + offsets - 0.12, values, s=12, color=colors[row.arm], alpha=0.55, linewidths=0, zorder=2)
            if math.isfinite(row.low):
                ax.errorbar(x + 0.18, row.mean, yerr=[[row.mean - row.low], [row.high - row.mean]], fmt="o",
                            color=colors[row.arm], markersize=5, capsize=3, zorder=3)
            else:
                ax.plot(x + 0.18, row.mean, "o", color=colors[row.arm], markersize=5, zorder=3)
        ax.set_xticks(range(len(rows)), list(rows["arm"]), rotation=30, ha="right")
        ax.set_ylabel(value_label(metric))
        ax.set_title(metric_label(metric))
        ax.grid(axis="y", alpha=0.3)
    ci = "t-interval" if report.ci == "t" else "bootstrap"
    handles = [Line2D([], [], marker="o", color="0.3", linestyle="-", label=f"mean, 95% CI ({ci})"),
               Line2D([], [], marker="o", color="0.3", alpha=0.55, linestyle="", markersize=4, label="one seed")]
    fig.legend(handles=handles, loc="outside lower center", ncols=2, frameon=False)
    return fig


def forest_figure(report: Report, colors: dict[str, str]) -> Figure | None:
    comps = report.comparisons
    if comps.empty:
        return None
    metrics = [m for m in report.metrics if m in set(comps["metric"])]
    fig, axes = _grid(len(metrics), width=3.6, height=0.55 * max(comps.groupby("metric").size()) + 1.2)
    for ax, metric in zip(axes, metrics):
        rows = comps[comps["metric"] == metric].reset_index(drop=True)
        for y, row in enumerate(rows.itertuples()):
            ok = math.isfinite(row.low) and math.isfinite(row.high)
            ax.errorbar(row.diff, y, xerr=[[row.diff - row.low], [row.high - row.diff]] if ok else None,
                        fmt="s" if row.design == "paired" else "D", color=colors[row.arm], capsize=3, markersize=5)
            ax.annotate(f"p_adj={fmt_p(row.p_adj)}{row.marker}", (1.0, y), xycoords=("axes fraction", "data"),
                        xytext=(4, 0), textcoords="offset points", va="center", fontsize=7)
        ax.axvline(0, color="0.4", linewidth=0.8, linestyle="--")
        ax.set_yticks(range(len(rows)), list(rows["arm"]))
        ax.set_ylim(-0.7, len(rows) - 0.3)
        ax.invert_yaxis()
        unit = " (0–1 scale)" if metric.split("/", 1)[-1].startswith(BOUNDED) else ""
        ax.set_xlabel(f"arm − {rows['baseline'].iloc[0]}{unit}")
        ax.xaxis.set_major_locator(MaxNLocator(5))
        ax.set_title(metric_label(metric))
        ax.grid(axis="x", alpha=0.3)
    shapes = "square: paired over seeds; diamond: unpaired" if (comps["design"] != "paired").any() else "paired over seeds"
    fig.suptitle(f"Difference from the baseline: mean, 95% CI ({shapes}); p_adj: {report.correction}-adjusted",
                 fontsize=8)
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


def curves_figure(history: pd.DataFrame, colors: dict[str, str], smooth: int = 5) -> Figure | None:
    if history.empty:
        return None
    train = history[history["split"].isna()] if "split" in history else history
    val = history[history["split"] == "val"] if "split" in history else history.iloc[0:0]
    tasks = sorted(c.split("/", 1)[1] for c in history.columns if c.startswith("loss/"))
    if not tasks:
        return None
    fig, axes = _grid(len(tasks), width=3.4)
    for ax, task in zip(axes, tasks):
        for arm in [x for x in colors if x in set(history["arm"])]:
            rows = train[(train["arm"] == arm) & train[f"loss/{task}"].notna()]
            if not rows.empty:
                curve = rows.groupby("step")[f"loss/{task}"].mean().rolling(smooth, min_periods=1).mean()
                ax.plot(curve.index, curve.to_numpy(), color=colors[arm], linewidth=1.2, label=f"{arm} (train)")
            column = f"val_loss/{task}"
            if column in val:
                v = val[(val["arm"] == arm) & val[column].notna()].groupby("step")[column].mean()
                if not v.empty:
                    ax.plot(v.index, v.to_numpy(), color=colors[arm], linestyle="--", marker="o", markersize=3,
                            linewidth=1.0, label=f"{arm} (val)")
        ax.set_xlabel("training step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("loss (cross-entropy, nats)")
        ax.set_title(f"{task}")
        ax.legend(frameon=False, fontsize=7, title=f"solid: train, moving mean of {smooth} logged steps;\n"
                  "dashed: validation; both mean over seeds", title_fontsize=6)
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
