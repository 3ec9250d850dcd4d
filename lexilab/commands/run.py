"""`python -m lexilab run SPEC`: validate a spec, plan arms × seeds against the results tree,
write each new run's directory, and hand the runs to an executor.

Everything is checked before anything is written or submitted: the spec (every problem, one
line each), ``--only`` names, resources and the cluster profile. Re-running the same command
skips finished runs, retries failed or interrupted ones (they resume from their checkpoint),
and when the spec changed under an existing arm name, moves the old run aside to
``seed-<n>.<oldhash>/`` (with a warning) and starts the new one.
"""
from __future__ import annotations

import json
import sys
import textwrap
import time
from pathlib import Path

from lexilab.commands.status import format_table, results_root, status_table
from lexilab.envinfo import ACCEPT_FLAG, accept_changed_runs, changed_runs, changed_runs_lines
from lexilab.errors import LexilabError
from lexilab.io import check_output_dir
from lexilab.runs import STATUS_FILE, Action, move_aside, plan_runs, queue_run, read_status, write_run
from lexilab.spec import MAX_RUNS, MAX_RUNS_CEILING, Spec, SpecError, differences, load_spec

EXECUTORS = ("inline", "local", "slurm", "debug")
LABELS = {"new": "new", "skip": "done", "retry": "retry", "active": "active", "changed": "changed",
          "blocked": "BLOCKED", "unreadable": "unreadable"}
# command-line resource flags → the dispatch layer's resource keys
RESOURCE_FLAGS = {"partition": "partition", "account": "account", "qos": "qos", "time": "time",
                  "gpus": "gpus_per_node", "cpus": "cpus_per_task", "mem": "mem", "constraint": "constraint",
                  "sbatch": "sbatch"}


def _value(value) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(", ", ": "))


def plan_report(spec: Spec, actions: list[Action], root: Path, dry_run: bool) -> str:
    arms = list(dict.fromkeys(a.run.arm for a in actions))
    seeds = sorted({a.run.seed for a in actions})
    lines = [f"experiment {spec.name}: {len(arms)} arm{'s' * (len(arms) != 1)} × {len(seeds)} "
             f"seed{'s' * (len(seeds) != 1)} = {len(actions)} runs → {root / spec.name}"]
    if spec.description:
        lines.append(textwrap.fill(" ".join(spec.description.split()), 100, initial_indent="  ",
                                   subsequent_indent="  "))
    if dry_run:
        cells = {(a.run.arm, a.run.seed): LABELS[a.kind] for a in actions}
        rows = [[arm] + [cells.get((arm, s), "") for s in seeds] for arm in arms]
        lines += ["", format_table(["arm"] + [f"seed-{s}" for s in seeds], rows)]
        chosen = [arm for arm in spec.arms if arm.name in arms]
        diff = differences(chosen)
        if diff:
            lines += ["", "resolved differences between arms:"]
            if len(diff) <= 6:
                lines.append(format_table(["arm", *diff], [[arm] + [_value(diff[k][arm]) for k in diff] for arm in arms]))
            else:
                lines.append(format_table(["key", *arms], [[k] + [_value(v[arm]) for arm in arms] for k, v in diff.items()]))
        elif len(chosen) == 1:
            lines += ["", f"one arm ({chosen[0].name}): the base config"]
    notes = [f"  {a.run.arm}/seed-{a.run.seed}: {LABELS[a.kind]}: {a.note}" for a in actions
             if a.kind in ("changed", "blocked", "active", "retry", "unreadable") and a.note]
    if notes:
        lines += ["", *notes]
    return "\n".join(lines)


def _state(run_dir: Path) -> str:
    try:
        return read_status(run_dir).get("state", "pending")
    except LexilabError:  # a damaged status.json
        return "unknown"


def _cli_resources(args) -> dict:
    out = {}
    for flag, key in RESOURCE_FLAGS.items():
        value = getattr(args, flag, None)
        if flag == "sbatch" and value:  # given without dashes so argparse does not take them as flags
            value = [v if v.startswith("-") else f"--{v}" for v in value]
        if value not in (None, []):
            out[key] = value
    return out


def check_resources(spec: Spec, args) -> dict:
    """Spec resources overridden by the command line; the profile is read now so that a bad
    name or value stops the command before anything is written."""
    from lexilab.dispatch.resources import merge_resources, normalize

    cli = normalize(_cli_resources(args), "command line")
    merge_resources(args.profile, spec.resources, cli)  # raises on a bad profile or value
    return {**spec.resources, **cli}


def report_errors(err: SpecError) -> int:
    """One ``lexilab: error:`` line per problem (the CLI would prefix only the first)."""
    for line in err.lines:
        print(f"lexilab: error: {line}", file=sys.stderr)
    return 2


def handle(args) -> int:
    try:
        return _run(args)
    except SpecError as err:
        return report_errors(err)


def _run(args) -> int:
    spec = load_spec(args.spec)
    if spec.search is not None:  # its trials are written and dispatched by the sweep driver
        raise LexilabError(f"{args.spec}: a sweep spec (search:); run it with: python -m lexilab sweep {args.spec}")
    if args.seeds is not None and args.seeds < 1:
        raise LexilabError(f"--seeds: {args.seeds}: expected a count ≥ 1")
    if args.max_parallel is not None and args.max_parallel < 1:
        raise LexilabError(f"--max-parallel: {args.max_parallel}: expected an integer ≥ 1")
    if not 1 <= args.max_runs <= MAX_RUNS_CEILING:
        raise LexilabError(f"--max-runs: {args.max_runs}: expected an integer from 1 to {MAX_RUNS_CEILING}")
    runs = spec.runs(seeds=args.seeds, only=args.only, max_runs=args.max_runs)
    root = results_root(args.results)
    check_output_dir(root, "the results root", writable=not args.dry_run)  # before any write
    resources = check_resources(spec, args)
    if not args.dry_run:  # a dry run reads only; otherwise jobs that died silently are marked first
        from lexilab.dispatch import refresh_status

        refresh_status([r.run_dir(root) for r in runs if (r.run_dir(root) / STATUS_FILE).is_file()])
    actions = plan_runs(runs, root, retry_running=args.retry_running)
    print(plan_report(spec, actions, root, args.dry_run))
    blocked = [a for a in actions if a.kind == "blocked"]
    if blocked:
        raise SpecError([f"{a.path}: {a.note}" for a in blocked])
    # finished and resumable runs started on data files that have changed since (env.json)
    changed = changed_runs([(a.path, a.run.config.get("data_root")) for a in actions if a.kind in ("skip", "retry")])
    if changed and not args.accept_data_change:
        raise SpecError(changed_runs_lines(changed))
    if args.dry_run:
        print("\ndry run: nothing written or submitted")
        return 0
    if changed:
        accept_changed_runs(changed)
        print(f"accepted changed data files for {len(changed)} runs (recorded in their env.json)", file=sys.stderr)
    todo = []
    # what the report needs without re-loading the spec (whose data paths may not resolve there):
    # the whole planned arm × seed grid and the pre-registered report block
    grid = {"arms": {arm.name: dict(arm.levels) for arm in spec.arms}, "seeds": sorted({r.seed for r in runs})}
    for action in actions:
        run = action.run
        if action.kind == "changed":
            moved = move_aside(action.path, action.info.config_hash if action.info else None)
            print(f"warning: {run.arm}/seed-{run.seed}: the spec changed since this run was written; "
                  f"old run kept in {moved}", file=sys.stderr)
        if action.kind in ("new", "changed"):
            meta = {"experiment": spec.name, "arm": run.arm, "levels": run.levels, "seed": run.seed,
                    "spec": str(Path(args.spec).resolve()), "grid": grid, "report": spec.report}
            write_run(action.path, run.config, meta, run.config_hash)
            todo.append(action)
        elif action.kind == "retry":  # unless another `run` command took it meanwhile
            if queue_run(action.path, retried=time.time(), job_id=None, slurm_job_id=None):
                todo.append(action)
    counts = {k: sum(a.kind == k for a in actions) for k in LABELS}
    print(f"{counts['new'] + counts['changed']} new, {counts['retry']} to retry, {counts['skip']} done, "
          f"{counts['active']} still running or queued")
    if not todo:
        print("nothing to run")
        return 0
    from lexilab.dispatch import dispatch
    from lexilab.tracking import ensure_experiment

    # created here, once: parallel jobs creating the same MLflow experiment would race
    try:
        ensure_experiment(spec.name, todo[0].run.config, root)
    except Exception as err:  # the MLflow mirror never stops a run: the run folders are the record
        print(f"warning: MLflow: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}; "
              "the runs go on without the mirror", file=sys.stderr)
    dispatch([a.path for a in todo], args.executor, resources=resources, max_parallel=args.max_parallel,
             wait=args.wait, profile=args.profile, log_dir=root / spec.name / ".submitit")
    if args.wait or args.executor in ("inline", "debug"):
        arms = list(dict.fromkeys(a.run.arm for a in actions))
        text, counts = status_table(spec.name, root, arms, sorted({a.run.seed for a in actions}),
                                    {(a.run.arm, a.run.seed): a.run.config_hash for a in actions})
        print("\n" + text)
        unfinished = [(a, _state(a.path)) for a in todo if _state(a.path) != "done"]
        for action, state in unfinished:  # e.g. its status could not be written (disk full)
            print(f"lexilab: error: {action.path}: did not finish (state {state})", file=sys.stderr)
        return 1 if counts.get("failed") or counts.get("unknown") or unfinished else 0
    print(f"submitted {len(todo)} runs; follow them with: python -m lexilab status {args.spec}")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "run", help="run an experiment spec (arms × seeds)",
        description="Validate a spec, skip finished runs, retry failed or interrupted ones, and dispatch "
                    "the rest. Nothing is written or submitted unless every check passes.")
    parser.add_argument("spec", metavar="SPEC", help="experiment spec (YAML), e.g. experiments/quickstart.yaml")
    parser.add_argument("--seeds", type=int, metavar="N", help="run seeds 0..N-1 (overrides the spec's seeds)")
    parser.add_argument("--executor", choices=EXECUTORS, default="inline",
                        help="inline: in this process; local: this machine, one run per GPU; "
                             "slurm: a SLURM cluster via submitit; debug: submitit's debug executor")
    parser.add_argument("--results", metavar="DIR", help="results root (default: $LEXILAB_RESULTS or ./results)")
    parser.add_argument("--only", nargs="+", metavar="ARM", help="run only these arms")
    parser.add_argument("--wait", action="store_true", help="block until every run has finished (local/slurm)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the arm × seed plan and the differences between arms; write nothing")
    parser.add_argument("--max-parallel", type=int, metavar="N",
                        help="at most N runs at once (local: CPU slots or GPUs; slurm: array parallelism)")
    parser.add_argument("--retry-running", action="store_true",
                        help="resubmit runs marked running/queued whose job cannot be checked from here")
    parser.add_argument("--max-runs", type=int, default=MAX_RUNS, metavar="N",
                        help=f"plan at most N runs (arms × seeds; default {MAX_RUNS}): a typo in seeds stops here")
    parser.add_argument(ACCEPT_FLAG, action="store_true",
                        help="go on although a data file changed since a run started on it (resumed runs "
                             "continue on the new data; env.json records the acceptance)")
    parser.add_argument("--profile", metavar="NAME", help="cluster profile: slurm/profiles/NAME.yaml or a path")
    group = parser.add_argument_group("resources (override the spec's `resources` and the profile)")
    group.add_argument("--partition")
    group.add_argument("--account")
    group.add_argument("--qos")
    group.add_argument("--time", help="minutes or [D-]HH:MM[:SS]")
    group.add_argument("--gpus", type=int, help="GPUs per run")
    group.add_argument("--cpus", type=int, help="CPUs per run")
    group.add_argument("--mem", help="memory per run, e.g. 32G")
    group.add_argument("--constraint", help="node features, e.g. a100|h100")
    group.add_argument("--sbatch", action="append", metavar="OPT=VALUE",
                       help="extra sbatch option, e.g. mail-type=FAIL (repeatable)")
    parser.set_defaults(func=handle)
