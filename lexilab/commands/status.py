"""`python -m lexilab status SPEC_OR_NAME`: arm × seed → pending/running/done/failed/cancelled,
with the error line of each failure and the job id of each queued or running run."""
from __future__ import annotations

import json
import os
import sys
from collections import Counter
from pathlib import Path

from lexilab.runs import RunInfo, job_id, scan_experiment

NOT_STARTED = "—"


def results_root(value: str | None) -> Path:
    """--results, else $LEXILAB_RESULTS, else ./results."""
    return Path(value or os.environ.get("LEXILAB_RESULTS") or "results")


def format_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(headers, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines)


def cell(info: RunInfo | None, expected_hash: str | None = None) -> str:
    if info is None:
        return NOT_STARTED
    text = info.state
    job = job_id(info.status)
    if job and info.state in ("pending", "running", "failed", "cancelled"):
        text += f" {job}"
    if expected_hash and info.config_hash and info.config_hash != expected_hash:
        text += " *"
    return text


def status_table(name: str, root: Path, arms: list[str] | None = None, seeds: list[int] | None = None,
                 expected: dict[tuple[str, int], str] | None = None) -> tuple[str, Counter]:
    """The readable report for one experiment; ``arms``/``seeds``/``expected`` (config hashes)
    come from a spec, else from what is on disk."""
    runs = scan_experiment(root / name)
    open_runs = [info.path for info in runs.values() if info.state in ("pending", "running")]
    if open_runs:  # ask the scheduler about jobs that ended without recording it
        from lexilab.dispatch import refresh_status

        refresh_status(open_runs)
        runs = scan_experiment(root / name)
    arm_names = list(arms) if arms is not None else sorted({arm for arm, _ in runs})
    wanted = set(arm_names)
    seed_list = sorted(set(seeds or []) | {seed for arm, seed in runs if arm in wanted})
    expected = expected or {}
    counts: Counter = Counter()
    rows = []
    for arm in arm_names:
        row = [arm]
        for seed in seed_list:
            info = runs.get((arm, seed))
            row.append(cell(info, expected.get((arm, seed))))
            counts[info.state if info else "not started"] += 1
        rows.append(row)
    total = sum(counts.values())
    summary = ", ".join(f"{state} {n}" for state, n in sorted(counts.items()))
    lines = [f"experiment {name} ({root / name}): {total} runs — {summary or 'none'}"]
    if rows and seed_list:
        lines += ["", format_table(["arm"] + [f"seed-{s}" for s in seed_list], rows)]
    failures = [(k, v) for k, v in sorted(runs.items()) if k[0] in wanted and v.state in ("failed", "unknown")]
    if failures:
        lines += ["", "failures:"]
        lines += [f"  {arm}/seed-{seed}: {info.status.get('error') or 'no error recorded'}"
                  f"{f'  (traceback in {info.path}/status.json)' if info.status.get('traceback') else ''}"
                  for (arm, seed), info in failures]
    if any(cell(runs.get(k), h).endswith(" *") for k, h in expected.items()):
        lines += ["", "* the spec has changed since this run was written: `run` would move it aside and start anew"]
    others = sorted({arm for arm, _ in runs} - wanted)
    if others:
        lines += ["", f"also on disk, not in the spec: {', '.join(others)}"]
    return "\n".join(lines), counts


def handle(args) -> int:
    from lexilab.spec import SpecError

    try:
        return _status(args)
    except SpecError as err:
        for line in err.lines:
            print(f"lexilab: error: {line}", file=sys.stderr)
        return 2


def _status(args) -> int:
    root = results_root(args.results)
    target = Path(args.spec_or_name)
    if target.suffix in (".yaml", ".yml") or target.is_file():
        from lexilab.spec import load_spec

        spec = load_spec(target)
        runs = spec.runs()
        text, counts = status_table(spec.name, root, spec.arm_names, spec.seeds,
                                    {(r.arm, r.seed): r.config_hash for r in runs})
        name = spec.name
    else:
        name = args.spec_or_name
        if not (root / name).is_dir():
            known = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
            from lexilab.data.registry import did_you_mean
            from lexilab.errors import LexilabError

            raise LexilabError(f"{root / name}: no such experiment{did_you_mean(name, known)}; "
                               f"experiments in {root}: {', '.join(known) or 'none'}")
        text, counts = status_table(name, root)
    if args.json:
        runs = scan_experiment(root / name)
        json.dump([{"arm": arm, "seed": seed, "config_hash": info.config_hash, **info.status}
                   for (arm, seed), info in sorted(runs.items())], sys.stdout, indent=1, default=str)
        print()
    else:
        print(text)
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "status", help="show the state of every run of an experiment",
        description="A table arm × seed → pending/running/done/failed/cancelled (with SLURM job ids), "
                    "then the error line of every failed run.")
    parser.add_argument("spec_or_name", metavar="SPEC_OR_NAME",
                        help="a spec file (experiments/x.yaml) or an experiment name (a folder of the results root)")
    parser.add_argument("--results", metavar="DIR", help="results root (default: $LEXILAB_RESULTS or ./results)")
    parser.add_argument("--json", action="store_true", help="print every run's status.json as JSON instead")
    parser.set_defaults(func=handle)
