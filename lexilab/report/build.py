"""One call from an experiment to its report: load results, compute, print, write files."""
from __future__ import annotations

import os
from pathlib import Path

from lexilab import results as results_api
from lexilab.report.budget import arm_budgets, budget_lines, budget_warnings
from lexilab.report.compare import Report, build_report
from lexilab.report.figures import write_figures
from lexilab.report.tables import write_results_table, write_setup_table
from lexilab.report.terminal import render


def generate(experiment_or_spec, *, results: str | os.PathLike | None = None, out_dir: str | os.PathLike = "paper",
             metrics: list[str] | None = None, baseline: str | None = None, correction: str | None = None,
             ci: str | None = None, test: str | None = None, alpha: float | None = None,
             confidence: float | None = None, family: list[str] | None = None, split: str = "test", figures: bool = True,
             n_resamples: int = 10_000, seed: int = 0, command: str | None = None) -> tuple[Report, str, dict]:
    """Compute the report of one experiment; write ``<out_dir>/tables/<exp>.tex`` (and the setup
    table when the spec is known) and, with ``figures``, ``<out_dir>/figures/<exp>-*.pdf|png``.
    The analysis choices left as None are the spec's pre-registered ``report:`` ones.
    Returns (report, terminal text, {name: paths or reason skipped})."""
    exp = results_api.experiment(experiment_or_spec, results)
    frame = results_api.load(exp)
    command = command or f"python -m lexilab report {exp.name}"

    def loader(task, arms):
        return results_api.records(exp, task=task, split=split, arms=arms)

    report = build_report(exp, frame, metrics=metrics, baseline=baseline, correction=correction, ci=ci, test=test,
                          alpha=alpha, confidence=confidence, family=family, split=split, n_resamples=n_resamples,
                          seed=seed, records_loader=loader)
    history = results_api.load_history(exp)
    budgets = arm_budgets(history, report.arms)
    report.notes.extend(budget_warnings(budgets, report.comparisons))
    written: dict = {"table": [write_results_table(report, out_dir, command)]}
    spec, reason = _setup_spec(exp)
    written[f"{exp.name}-setup"] = [write_setup_table(spec, out_dir)] if spec is not None else reason
    if figures:
        written.update(write_figures(report, frame, out_dir, history=history,
                                     gradcos=results_api.load_gradcos(exp),
                                     details=results_api.load_details(exp, split=split)))
    return report, render(report, budget_lines(budgets, report.arms)), written


def _setup_spec(exp):
    """The validated spec for the setup table, or (None, why not): the results table never needs
    it, and a spec whose data paths do not resolve from here only costs the setup table."""
    from lexilab.errors import LexilabError
    from lexilab.spec import load_spec

    if exp.spec is not None:
        return exp.spec, ""
    if exp.spec_path is None or not Path(exp.spec_path).is_file():
        return None, f"the spec file is not here ({exp.spec_path or 'none recorded'})"
    try:
        return load_spec(exp.spec_path), ""
    except LexilabError as err:
        return None, f"{exp.spec_path} does not validate here: {str(err).splitlines()[0]}"


def written_lines(written: dict, out_dir: str | os.PathLike) -> list[str]:
    lines = []
    for name, value in written.items():
        if isinstance(value, str):
            lines.append(f"  skipped {name}: {value}")
        else:
            lines.append("  wrote " + ", ".join(str(Path(p)) for p in value))
    return lines
