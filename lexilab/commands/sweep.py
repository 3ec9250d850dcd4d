"""`python -m lexilab sweep SPEC`: an Optuna sweep of a spec's ``search:`` space, and its
``status``, ``report`` and ``export`` (README "Sweeps").

    python -m lexilab sweep SPEC [--trials N] [--workers W] [--executor inline|local|slurm]
                                 [--storage URL] [--dry-run]
    python -m lexilab sweep status SPEC
    python -m lexilab sweep report SPEC [--with EXPERIMENT] [--out DIR]
    python -m lexilab sweep export SPEC [--top K] [--seeds N] [--compare EXPERIMENT]
"""
from __future__ import annotations

import sys

from lexilab.errors import LexilabError
from lexilab.spec import SpecError

ACTIONS = ("status", "report", "export")
EXECUTORS = ("inline", "local", "slurm")


def handle(args) -> int:
    from lexilab.commands.run import report_errors

    words = list(args.words)
    action = words.pop(0) if words and words[0] in ACTIONS and len(words) > 1 else "run"
    if len(words) != 1:
        raise LexilabError("sweep: expected SPEC, or status|report|export SPEC")
    args.spec = words[0]
    try:
        return {"run": _run, "status": _status, "report": _report, "export": _export}[action](args)
    except SpecError as err:
        return report_errors(err)


def _run(args) -> int:
    from lexilab.sweep.driver import Driver
    from lexilab.sweep.study import load_sweep, load_study, status_text

    for flag, value in (("--trials", args.trials), ("--workers", args.workers)):
        if value is not None and value < 1:
            raise LexilabError(f"{flag}: {value}: expected a whole number ≥ 1")
    workers = args.workers or 1
    if args.executor == "inline" and workers > 1:
        print(f"warning: --executor inline trains one trial at a time; --workers {workers} needs "
              "--executor local or slurm", file=sys.stderr)
        workers = 1
    sweep = load_sweep(args.spec, args.results, args.storage, workers)
    search = sweep.spec.search
    total = args.trials or search.trials
    if args.dry_run:
        from lexilab.sweep.storage import kind_of

        # a server database is not opened by a dry run: Optuna would create its tables
        study = load_study(sweep) if kind_of(sweep.storage.url) in ("journal", "sqlite") else None
        done = len(study.trials) if study is not None else 0
        print(_plan(sweep, total, workers, args.executor, done))
        print("\ndry run: nothing written or submitted")
        return 0
    driver = Driver(sweep.spec, sweep.root, sweep.storage, workers=workers, executor=args.executor,
                    trials=total, profile=args.profile)
    driver.open_study()
    counts = driver.run()
    print("\n" + status_text(sweep, driver.study))
    return 0 if counts.get("COMPLETE") else 1


def _plan(sweep, total: int, workers: int, executor: str, done: int) -> str:
    from lexilab.sweep.space import corners
    from lexilab.sweep.storage import redact

    search = sweep.spec.search
    lines = [f"sweep {sweep.spec.name}: {total} trials × {search.seeds_per_trial} seed"
             f"{'s' * (search.seeds_per_trial > 1)} → {sweep.root / sweep.spec.name}/trial-<n>/seed-<k>/",
             f"  {done} trial{'s' * (done != 1)} already in the study; {max(total - done, 0)} to ask for, "
             f"{workers} at a time ({executor})",
             f"  objectives: " + ", ".join(f"{o.name} ({o.direction})" for o in search.objectives),
             f"  sampler: {search.sampler}; pruner: {search.pruner}",
             f"  storage: {redact(sweep.storage.url)}", "  space:"]
    for p in search.params:
        what = f"{p.choices}" if p.type == "categorical" else f"[{p.low}, {p.high}]{' log' if p.log else ''}" \
                                                               f"{f' step {p.step}' if p.step else ''}"
        lines.append(f"    {p.key}: {p.type} {what}" + (f" when {p.when}" if p.when else ""))
    if search.task_weights is not None:
        tw = search.task_weights
        lines.append(f"    task weights of {', '.join(tw.tasks)}: {tw.space} (low {tw.low}"
                     f"{f', high {tw.high}' if tw.high is not None else ''})")
    lines.append(f"  {len(corners(search.params, search.task_weights))} corners of the space checked: valid run configs")
    return "\n".join(lines)


def _existing(args):
    """(sweep, study) of a study that exists (a one-line error otherwise)."""
    from lexilab.sweep.study import load_study, load_sweep, missing

    sweep = load_sweep(args.spec, args.results, args.storage)
    study = load_study(sweep)
    if study is None:
        raise missing(sweep)
    return sweep, study


def _status(args) -> int:
    from lexilab.sweep.study import status_text

    print(status_text(*_existing(args)))
    return 0


def _report(args) -> int:
    from lexilab.sweep.report import write_report

    sweep, study = _existing(args)
    print(write_report(sweep, study, out=args.out, compare=args.with_))
    return 0


def _export(args) -> int:
    from lexilab.sweep.export import export_confirm

    sweep, study = _existing(args)
    for flag, value in (("--top", args.top), ("--seeds", args.seeds)):
        if value is not None and value < 1:
            raise LexilabError(f"{flag}: {value}: expected a whole number ≥ 1")
    path = export_confirm(sweep, study, top=args.top, seeds=args.seeds or 5, compare=args.compare, out=args.out)
    print(f"wrote {path}\nconfirm on test with: python -m lexilab run {path} && python -m lexilab report "
          f"{sweep.spec.name}-confirm")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "sweep", help="Optuna sweep of a spec's search: space (and its status, report, export)",
        description="Create or continue the study of a spec with a search: block, training each trial as "
                    "ordinary runs; `sweep status|report|export SPEC` read it back.")
    parser.add_argument("words", nargs="+", metavar="[ACTION] SPEC",
                        help="SPEC to run the sweep; status SPEC, report SPEC or export SPEC")
    parser.add_argument("--trials", type=int, metavar="N", help="trials in total (default: search.trials)")
    parser.add_argument("--workers", type=int, metavar="W", help="trials at once (local: CPU processes or GPUs)")
    parser.add_argument("--executor", choices=EXECUTORS, default="inline",
                        help="inline: in this process; local: this machine; slurm: SLURM via submitit")
    parser.add_argument("--storage", metavar="URL", help="postgresql://..., sqlite:///..., journal:PATH "
                        "(default: search.storage, else results/<name>/sweep.journal)")
    parser.add_argument("--results", metavar="DIR", help="results root (default: $LEXILAB_RESULTS or ./results)")
    parser.add_argument("--profile", metavar="NAME", help="cluster profile: slurm/profiles/NAME.yaml or a path")
    parser.add_argument("--dry-run", action="store_true", help="validate and print the plan; write nothing")
    parser.add_argument("--with", dest="with_", metavar="EXPERIMENT",
                        help="report: draw EXPERIMENT's arms (validation means, seed CIs) on the trade-off curve")
    parser.add_argument("--out", metavar="DIR", help="report: figures and table folder; export: spec path")
    parser.add_argument("--top", type=int, metavar="K", help="export: the K best trials (or front points)")
    parser.add_argument("--seeds", type=int, metavar="N", help="export: seeds of each confirmation arm (default 5)")
    parser.add_argument("--compare", metavar="EXPERIMENT", help="export: add that experiment's arms")
    parser.set_defaults(func=handle)
