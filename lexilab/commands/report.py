"""`python -m lexilab report SPEC_OR_NAME`: the results table of an experiment with CIs and
paired tests, printed and written as a LaTeX table and figures for the paper.

The analysis (test, interval, correction, alpha, confidence, comparison family) is the one the
spec's ``report:`` block pre-registers; an option given here overrides it and the report says
that the analysis deviates from the spec's."""
from __future__ import annotations

import argparse

from lexilab.report.build import generate, written_lines
from lexilab.report.compare import CI_METHODS, TESTS
from lexilab.stats import CORRECTIONS

PRE_REGISTERED = " (default: the spec's report.{key}, else {default}; overriding it is reported as a deviation)"


def level(text: str) -> float:
    """argparse type of alpha and confidence: a number strictly between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, found {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1 (exclusive), found {text}")
    return value


def add_analysis_options(parser: argparse.ArgumentParser) -> None:
    """The options that select the experiment's results and its comparisons (report, power)."""
    parser.add_argument("experiment", metavar="SPEC_OR_NAME", help="spec file (experiments/X.yaml) or experiment name")
    parser.add_argument("--results", metavar="DIR", help="results root (default: $LEXILAB_RESULTS or ./results)")
    parser.add_argument("--metrics", nargs="+", metavar="TASK/METRIC",
                        help="metrics to report (default: the spec's report.metrics, else one per task)")
    parser.add_argument("--family", nargs="+", metavar="TASK/METRIC",
                        help="metrics whose comparisons form the multiple-comparison family" +
                        PRE_REGISTERED.format(key="family", default="report.metrics"))
    parser.add_argument("--baseline", metavar="ARM", help="arm to compare against (default: the spec's report.baseline)")
    parser.add_argument("--correction", choices=list(CORRECTIONS),
                        help="multiple-comparison correction over the family" +
                        PRE_REGISTERED.format(key="correction", default="holm"))
    parser.add_argument("--alpha", type=level, help="significance level" + PRE_REGISTERED.format(key="alpha", default=0.05))
    parser.add_argument("--split", default="test", help="split to report")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "report", help="table of an experiment (mean, CI, paired tests) + LaTeX table and figures",
        description="Summarise an experiment's finished runs: per arm and metric the mean and CI across "
                    "seeds, the difference vs a baseline arm with a paired test on the seeds both finished "
                    "(unpaired below 2 shared seeds), p-values adjusted over the comparison family; writes "
                    "OUT/tables/<exp>.tex and OUT/figures/<exp>-*. The analysis is the spec's pre-registered "
                    "report: block unless overridden here.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_analysis_options(parser)
    parser.add_argument("--test", choices=list(TESTS),
                        help="test behind p: paired t, Wilcoxon, sign-flip permutation, 'items' (two-level over "
                             "seeds × test items: retraining and test-set variance; Bouthillier et al. 2021) or "
                             "'these-models' (bootstrap over test items of these trained models only)" +
                        PRE_REGISTERED.format(key="test", default="t"))
    parser.add_argument("--ci", choices=list(CI_METHODS),
                        help="interval shown per arm" + PRE_REGISTERED.format(key="ci", default="t"))
    parser.add_argument("--confidence", type=level,
                        help="level of every interval" + PRE_REGISTERED.format(key="confidence", default=0.95))
    parser.add_argument("--out", default="paper", metavar="DIR", help="folder receiving tables/ and figures/")
    parser.add_argument("--no-figures", action="store_true", help="write the table only")
    parser.add_argument("--resamples", type=int, default=10_000, metavar="B", help="bootstrap resamples")
    parser.set_defaults(func=handler)


def handler(args) -> int:
    report, text, written = generate(args.experiment, results=args.results, out_dir=args.out, metrics=args.metrics,
                                     baseline=args.baseline, correction=args.correction, ci=args.ci, test=args.test,
                                     alpha=args.alpha, confidence=args.confidence, family=args.family,
                                     split=args.split, figures=not args.no_figures, n_resamples=args.resamples)
    print(text)
    print()
    print("\n".join(written_lines(written, args.out)))
    return 0
