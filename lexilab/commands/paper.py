"""`python -m lexilab paper`: regenerate every table and figure paper/main.tex inputs from the
results, then build paper/main.pdf with latexmk (when installed)."""
from __future__ import annotations

from pathlib import Path

from lexilab.report.paper import build_pdf, regenerate


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "paper", help="regenerate the paper's tables and figures from results and build the PDF",
        description="Scan paper/main.tex (and the files it inputs) for \\lexitable / \\lexifigure, regenerate "
                    "those tables and figures from the results (setup tables from experiments/*.yaml), then run "
                    "latexmk. Experiments without finished runs stay placeholders in the PDF.")
    parser.add_argument("--results", metavar="DIR", help="results root (default: $LEXILAB_RESULTS or ./results)")
    parser.add_argument("--paper", default="paper", metavar="DIR", help="folder holding main.tex")
    parser.add_argument("--experiments", default="experiments", metavar="DIR", help="folder of experiment specs")
    parser.add_argument("--no-build", action="store_true", help="regenerate tables and figures only")
    parser.add_argument("--resamples", type=int, default=10_000, metavar="B", help="bootstrap resamples")
    parser.set_defaults(func=handler)


def handler(args) -> int:
    paper_dir = Path(args.paper)
    lines, needs = regenerate(paper_dir, args.results, Path(args.experiments), n_resamples=args.resamples)
    print(f"{paper_dir / 'main.tex'}: {len(needs.tables)} tables and {len(needs.figures)} figures from "
          f"{len(needs.experiments())} experiments")
    for line in lines:
        print(f"  {line}")
    if args.no_build:
        return 0
    status, message = build_pdf(paper_dir)
    print(message)
    return 1 if status else 0
