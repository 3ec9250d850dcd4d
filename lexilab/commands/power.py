"""`python -m lexilab power SPEC_OR_NAME [--delta D | --seeds N]`: power analysis from a pilot.

From the finished runs of an experiment (the pilot), the seed-to-seed standard deviation of each
comparison's paired differences gives either the number of seeds needed to detect a difference
D with power 0.8, or the minimum detectable difference at N seeds — for the paired t-test over
seeds at the spec's α and correction (``lexilab.power``)."""
from __future__ import annotations

import argparse

from lexilab import power as power_api
from lexilab import results as results_api
from lexilab.commands.report import add_analysis_options
from lexilab.report.compare import build_report
from lexilab.report.terminal import fmt, table


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "power", help="seeds needed to detect a difference, or the smallest detectable one (from a pilot)",
        description="Power analysis of the paired t-test over seeds from an experiment's finished runs (a "
                    "pilot): per comparison, the sd of the per-seed differences gives the seeds needed to detect "
                    "--delta D with the given power, or the minimum detectable difference at --seeds N (default: "
                    "at the pilot's own seeds), at the spec's alpha and correction over the comparison family.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_analysis_options(parser)
    goal = parser.add_mutually_exclusive_group()
    goal.add_argument("--delta", type=float, metavar="D",
                      help="difference to detect, in the metric's units (treatment − baseline; its sign is ignored)")
    goal.add_argument("--seeds", type=int, metavar="N", help="seeds per arm at which to give the detectable difference")
    parser.add_argument("--power", type=float, default=power_api.POWER, help="power to reach")
    parser.set_defaults(func=handler)


def handler(args) -> int:
    from lexilab.errors import LexilabError

    if args.seeds is not None and args.seeds < 2:
        raise LexilabError(f"--seeds: a paired t-test needs at least 2 seeds, found {args.seeds}")
    if args.delta is not None and args.delta == 0:
        raise LexilabError("--delta: a difference of 0 cannot be detected; give the smallest difference that matters")
    if not 0 < args.power < 1:
        raise LexilabError(f"--power: expected a number between 0 and 1 (exclusive), found {args.power}")
    exp = results_api.experiment(args.experiment, args.results)
    report = build_report(exp, results_api.load(exp), metrics=args.metrics, baseline=args.baseline,
                          correction=args.correction, alpha=args.alpha, family=args.family, split=args.split,
                          test="t", n_resamples=200)
    print("\n".join(plan_lines(report, delta=args.delta, seeds=args.seeds, power=args.power)))
    return 0


def plan_lines(report, *, delta: float | None = None, seeds: int | None = None, power: float = power_api.POWER):
    """The power table of a report's paired comparisons, with its header and notes."""
    per_test = power_api.comparison_alpha(report.alpha, report.correction, report.family_size)
    level = (f"α={report.alpha:g}" if per_test == report.alpha else
             f"α={report.alpha:g}/{report.family_size} = {per_test:.4g} per comparison ({report.correction} over "
             f"{report.family_size} comparisons: the level of a lone true effect)")
    lines = [f"{report.experiment.name} — power {power:g} of the two-sided paired t-test over seeds at {level}; "
             "sd: the pilot's per-seed differences, taken as the truth"]
    if report.deviations:
        lines.append("analysis deviates from the spec's pre-registered one: " + "; ".join(report.deviations))
    goal = (f"seeds for |Δ|={delta:g}" if delta is not None else
            f"MDD at {seeds} seeds" if seeds is not None else "MDD at the pilot's seeds")
    rows, skipped = [], []
    for r in report.comparisons.itertuples():
        if r.design != "paired":
            skipped.append(f"{r.arm} vs {r.baseline} {r.metric}")
            continue
        if delta is not None:
            n = power_api.seeds_needed(delta, r.diff_sd, per_test, power)
            answer = str(n) if n is not None else f"> {power_api.MAX_SEEDS:,}" if r.diff_sd > 0 else "— (sd 0)"
        else:
            answer = fmt(power_api.minimum_detectable_difference(r.diff_sd, seeds or r.n, per_test, power))
        rows.append([f"{r.arm} vs {r.baseline}", r.metric, str(r.n), fmt(r.diff_sd), fmt(r.diff, sign=True), answer])
    lines += ["", table(["comparison", "metric", "pilot seeds", "sd of paired Δ", "observed Δ", goal], rows)]
    if skipped:
        lines.append(f"not planned (fewer than 2 shared seeds, no paired differences): {', '.join(skipped)}")
    lines += [f"note: {n}" for n in report.notes]
    return lines
