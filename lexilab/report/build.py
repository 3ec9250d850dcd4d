"""One call from an experiment to its report: load results, compute, print, write files."""
from __future__ import annotations

import os
from pathlib import Path

from lexilab import results as results_api
from lexilab.report.compare import Report, build_report
from lexilab.report.figures import write_figures
from lexilab.report.tables import write_results_table, write_setup_table
from lexilab.report.terminal import render


def generate(experiment_or_spec, *, results: str | os.PathLike | None = None, out_dir: str | os.PathLike = "paper",
             metrics: list[str] | None = None, baseline: str | None = None, correction: str = "holm",
             ci: str = "t", test: str = "t", split: str = "test", figures: bool = True,
             n_resamples: int = 10_000, seed: int = 0, command: str | None = None) -> tuple[Report, str, dict]:
    """Compute the report of one experiment; write ``<out_dir>/tables/<exp>.tex`` (and the setup
    table when the spec is known) and, with ``figures``, ``<out_dir>/figures/<exp>-*.pdf|png``.
    Returns (report, terminal text, {name: paths or reason skipped})."""
    exp = results_api.experiment(experiment_or_spec, results)
    frame = results_api.load(exp)
    command = command or f"python -m lexilab report {exp.name}"

    def loader(task, arms):
        return results_api.records(exp, task=task, split=split, arms=arms)

    report = build_report(exp, frame, metrics=metrics, baseline=baseline, correction=correction, ci=ci, test=test,
                          split=split, n_resamples=n_resamples, seed=seed, records_loader=loader)
    written: dict = {"table": [write_results_table(report, out_dir, command)]}
    if exp.spec is not None:
        written["setup"] = [write_setup_table(exp.spec, out_dir)]
    if figures:
        written.update(write_figures(report, frame, out_dir, history=results_api.load_history(exp),
                                     gradcos=results_api.load_gradcos(exp),
                                     details=results_api.load_details(exp, split=split)))
    return report, render(report), written


def written_lines(written: dict, out_dir: str | os.PathLike) -> list[str]:
    lines = []
    for name, value in written.items():
        if isinstance(value, str):
            lines.append(f"  skipped {name}: {value}")
        else:
            lines.append("  wrote " + ", ".join(str(Path(p)) for p in value))
    return lines
