"""`sweep report`: the best trial (or the Pareto front), figures and a LaTeX table.

Figures (PDF + PNG, matplotlib only) under ``<out>/figures/<name>-sweep-*``: optimisation
history, parameter importances (Optuna's fANOVA evaluator, Hutter et al. 2014), parallel
coordinates, and for two or more objectives the trade-off plot of the first two: every trial,
the Pareto front as a step line and, with ``--with EXPERIMENT``, that experiment's arms as
points at their validation means with seed confidence intervals on both axes — the figure of
Xin et al. 2022 ("Do Current Multi-Task Optimization Methods in Deep Learning Even Help?").
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from lexilab.errors import LexilabError
from lexilab.sweep.study import best_trials, shown_params, trial_rows


def write_report(sweep, study, out: str | None = None, compare: str | None = None) -> str:
    from lexilab.commands.status import format_table

    search = sweep.spec.search
    objectives = search.objectives
    out_dir = Path(out or "paper")
    name = sweep.spec.name
    rows = {r["number"]: r for r in trial_rows(study, objectives)}
    best = best_trials(study, objectives)
    if not best:
        raise LexilabError(f"sweep {name}: no complete trial yet (see python -m lexilab sweep status {sweep.spec.path})")
    arms = arm_points(compare, objectives, sweep.root) if compare else None
    lines = [f"sweep {name}: {len(rows)} trials, {sum(r['state'] == 'complete' for r in rows.values())} complete"]
    if len(objectives) == 1:
        trial = best[0]
        row = rows[trial.number]
        lines.append(f"best trial {trial.number}: {objectives[0].name} = {trial.value:.4g} "
                     f"({objectives[0].direction}); {shown_params(row)}")
        for objective, values in (row.get("seed_values") or {}).items():
            lines.append(f"  per seed: {objective}: " + ", ".join(f"seed-{k} {v:.4g}" for k, v in enumerate(values)))
        lines.append(f"  run dirs: {', '.join(row['run_dirs'])}")
    else:
        lines.append(f"Pareto front ({len(best)} trials):")
        lines.append(format_table(["trial", *[o.name for o in objectives], "params"],
                                  [[str(t.number), *[f"{v:.4g}" for v in t.values], shown_params(rows[t.number])]
                                   for t in best]))
    written = [write_table(sweep, study, best, rows, out_dir)]
    written += write_figures(sweep, study, best, out_dir, arms)
    lines += ["", "wrote:"] + [f"  {p}" for p in written]
    return "\n".join(lines)


# --------------------------------------------------------------------------- the other experiment
def arm_points(experiment: str, objectives, results_root) -> dict[str, dict[str, tuple[float, float, float]]]:
    """Arm → objective → (validation mean, CI low, CI high) over the arm's seeds."""
    from lexilab import results as results_api
    from lexilab.stats import t_interval

    if len(objectives) < 2:
        raise LexilabError("--with: the trade-off plot needs two objectives in search.objectives")
    if any(o.is_loss for o in objectives[:2]):
        raise LexilabError("--with: the other experiment's runs record metrics, not the validation loss; "
                           "use TASK/METRIC objectives")
    frame = results_api.load(experiment, results_root, splits=["val"])
    frame = frame[frame["state"] == "done"]
    out: dict[str, dict] = {}
    for arm, group in frame.groupby("arm", sort=False):
        point = {}
        for objective in objectives[:2]:
            values = group[(group["task"] == objective.task) & (group["metric"] == objective.metric)]["value"].to_numpy()
            if len(values) == 0:
                break
            low, high = t_interval(values)
            point[objective.name] = (float(values.mean()), float(low), float(high))
        if len(point) == 2:
            out[str(arm)] = point
    if not out:
        raise LexilabError(f"--with {experiment}: no finished run of it has {objectives[0].name} and "
                           f"{objectives[1].name} on val")
    return out


# --------------------------------------------------------------------------- table
def write_table(sweep, study, best, rows, out_dir: Path) -> Path:
    from lexilab.io import atomic_write_text
    from lexilab.report.tables import escape

    objectives = sweep.spec.search.objectives
    header = ["Trial", "Setting", *[escape(o.name) + (" $\\downarrow$" if o.direction == "minimize" else " $\\uparrow$")
                                    for o in objectives]]
    body = []
    for trial in best:
        row = rows[trial.number]
        cells = []
        for objective, value in zip(objectives, trial.values):
            seeds = (row.get("seed_values") or {}).get(objective.name) or []
            spread = f" $\\pm$ {np.std(seeds, ddof=1):.3f}" if len(seeds) > 1 else ""
            cells.append(f"{value:.3f}{spread}")
        body.append(" & ".join([str(trial.number), escape(shown_params(row)), *cells]) + r" \\")
    kind = "Best trial" if len(objectives) == 1 else "Pareto front"
    spread_note = ", $\\pm$ one standard deviation over seeds" if sweep.spec.search.seeds_per_trial > 1 else ""
    text = "\n".join([
        f"% generated by: python -m lexilab sweep report {sweep.spec.path}",
        r"\begin{table}[t]", r"\centering", r"\small",
        r"\begin{tabular}{r l " + "r " * len(objectives) + "}", r"\toprule",
        " & ".join(header) + r" \\", r"\midrule", *body, r"\bottomrule", r"\end{tabular}",
        f"\\caption{{{kind} of the sweep {escape(sweep.spec.name)} ({len(rows)} trials, validation split; "
        f"mean over {sweep.spec.search.seeds_per_trial} seed(s) per trial"
        f"{spread_note}).}}",
        f"\\label{{tab:{sweep.spec.name}-sweep}}", r"\end{table}", ""])
    path = out_dir / "tables" / f"{sweep.spec.name}-sweep.tex"
    atomic_write_text(path, text)
    return path


# --------------------------------------------------------------------------- figures
def write_figures(sweep, study, best, out_dir: Path, arms=None) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna
    from matplotlib import rc_context

    from lexilab.report.figures import STYLE, save

    objectives = sweep.spec.search.objectives
    name = f"{sweep.spec.name}-sweep"
    paths: list[Path] = []
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    vis = optuna.visualization.matplotlib
    first = objectives[0]
    target = (lambda t: t.values[0]) if len(objectives) > 1 else None
    plots = {"history": lambda: vis.plot_optimization_history(study, target=target, target_name=first.name)}
    if complete and complete[0].params:
        if len(complete) >= 2 and len({tuple(sorted(t.params.items())) for t in complete}) >= 2:
            plots["importances"] = lambda: vis.plot_param_importances(study, target=target, target_name=first.name)
        plots["parallel"] = lambda: vis.plot_parallel_coordinate(study, target=target, target_name=first.name)
    with rc_context(STYLE), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # optuna.visualization.matplotlib is marked experimental
        for kind, draw in plots.items():
            try:
                axes = draw()
            except (ValueError, RuntimeError) as err:  # e.g. importances of a space Optuna cannot evaluate
                print(f"note: {kind} figure skipped: {err}")
                continue
            figure = np.ravel(axes)[0].figure if isinstance(axes, np.ndarray) else axes.figure
            paths += save(figure, out_dir, f"{name}-{kind}")
            plt.close(figure)
        if len(objectives) >= 2:
            figure = tradeoff_figure(study, objectives, best, arms)
            paths += save(figure, out_dir, f"{name}-tradeoff")
    return paths


def tradeoff_figure(study, objectives, best, arms=None):
    """All trials, the Pareto front (step line) and, optionally, another experiment's arms."""
    import optuna
    from matplotlib.figure import Figure

    from lexilab.report.figures import PALETTE

    x_obj, y_obj = objectives[0], objectives[1]
    figure = Figure(figsize=(4.2, 3.4))
    ax = figure.add_subplot()
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    ax.scatter([t.values[0] for t in complete], [t.values[1] for t in complete], s=14, color="#999999",
               label="trials (fixed weights)", zorder=2)
    front = sorted(best, key=lambda t: t.values[0])
    ax.plot([t.values[0] for t in front], [t.values[1] for t in front], color=PALETTE[0], marker="o", markersize=4, label="Pareto front", zorder=3)
    for index, (arm, point) in enumerate((arms or {}).items()):
        (x, x_lo, x_hi), (y, y_lo, y_hi) = point[x_obj.name], point[y_obj.name]
        xerr = None if np.isnan(x_lo) else [[x - x_lo], [x_hi - x]]
        yerr = None if np.isnan(y_lo) else [[y - y_lo], [y_hi - y]]
        ax.errorbar([x], [y], xerr=xerr, yerr=yerr, fmt="s", markersize=5, capsize=2,
                    color=PALETTE[(index + 1) % len(PALETTE)], label=arm, zorder=4)
    ax.set_xlabel(f"{x_obj.name} (val, {'lower' if x_obj.direction == 'minimize' else 'higher'} is better)")
    ax.set_ylabel(f"{y_obj.name} (val, {'lower' if y_obj.direction == 'minimize' else 'higher'} is better)")
    ax.legend(frameon=False, fontsize=7)
    figure.tight_layout()
    return figure
