"""`python -m lexilab report SPEC_OR_NAME`: the results table of an experiment with CIs and
paired tests, printed and written as a LaTeX table and figures for the paper."""
from __future__ import annotations

import argparse

from lexilab.report.build import generate, written_lines
from lexilab.report.compare import CI_METHODS, TESTS
from lexilab.stats import CORRECTIONS


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "report", help="table of an experiment (mean, CI, paired tests) + LaTeX table and figures",
        description="Summarise an experiment's finished runs: per arm and metric the mean and 95%% CI across "
                    "seeds, the difference vs a baseline arm with a paired test (unpaired when seed sets differ), "
                    "p-values adjusted over all comparisons; writes OUT/tables/<exp>.tex and OUT/figures/<exp>-*.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("experiment", metavar="SPEC_OR_NAME", help="spec file (experiments/X.yaml) or experiment name")
    parser.add_argument("--results", metavar="DIR", help="results root (default: $LEXILAB_RESULTS or ./results)")
    parser.add_argument("--metrics", nargs="+", metavar="TASK/METRIC",
                        help="metrics to report (default: the spec's report.metrics, else one per task)")
    parser.add_argument("--baseline", metavar="ARM", help="arm to compare against (default: the spec's report.baseline)")
    parser.add_argument("--correction", choices=list(CORRECTIONS), default="holm",
                        help="multiple-comparison correction over every comparison in the report")
    parser.add_argument("--test", choices=list(TESTS), default="t",
                        help="test behind p: paired t, Wilcoxon, sign-flip permutation, or the item-level "
                             "paired bootstrap over test examples (Koehn 2004)")
    parser.add_argument("--ci", choices=list(CI_METHODS), default="t", help="interval shown per arm")
    parser.add_argument("--split", default="test", help="split to report")
    parser.add_argument("--out", default="paper", metavar="DIR", help="folder receiving tables/ and figures/")
    parser.add_argument("--no-figures", action="store_true", help="write the table only")
    parser.add_argument("--resamples", type=int, default=10_000, metavar="B", help="bootstrap resamples")
    parser.set_defaults(func=handler)


def handler(args) -> int:
    report, text, written = generate(args.experiment, results=args.results, out_dir=args.out, metrics=args.metrics,
                                     baseline=args.baseline, correction=args.correction, ci=args.ci, test=args.test,
                                     split=args.split, figures=not args.no_figures, n_resamples=args.resamples)
    print(text)
    print()
    print("\n".join(written_lines(written, args.out)))
    return 0
