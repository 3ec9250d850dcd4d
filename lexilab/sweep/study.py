"""Reading a sweep back: its spec, storage and study, the trials table, the best trial or front."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from lexilab.errors import LexilabError
from lexilab.sweep.storage import StorageSpec, check_reachable, kind_of, redact, url_problem


@dataclass
class Sweep:
    spec: object  # lexilab.spec.Spec (with .search)
    root: Path
    storage: StorageSpec  # resolved
    storage_where: str  # where the storage came from (for messages)


def load_sweep(spec_path: str, results: str | None, storage_url: str | None, workers: int = 1) -> Sweep:
    """The validated sweep spec and its storage, checked reachable (one line if not)."""
    from lexilab.commands.status import results_root
    from lexilab.spec import load_spec, load_yaml

    spec = load_spec(spec_path)
    if spec.search is None:
        raise LexilabError(f"{spec_path}: no search: block, so not a sweep (run it with `python -m lexilab run`)")
    root = results_root(results)
    if storage_url is not None:
        problem = url_problem(storage_url)
        if problem:
            raise LexilabError(f"--storage: {problem}")
        base = spec.search.storage
        storage, where = StorageSpec(storage_url, base.heartbeat_interval, base.grace_period, base.max_retry), "--storage"
    else:
        _, lines = load_yaml(spec_path)
        line = lines.get("search.storage")
        storage, where = spec.search.storage, f"{spec_path}:{line}: search.storage" if line else f"{spec_path}: storage"
    storage = storage.resolved(root, spec.name)
    check_reachable(storage, where, workers)
    return Sweep(spec, root, storage, where)


def load_study(sweep: Sweep):
    """The sweep's study, read only (None when no trial was ever asked for)."""
    import optuna

    from lexilab.sweep.storage import journal_path, open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    kind = kind_of(sweep.storage.url)
    if kind == "journal" and not Path(journal_path(sweep.storage.url)).exists():
        return None
    if kind == "sqlite" and not Path(sweep.storage.url.split(":///", 1)[-1]).exists():
        return None  # opening it would create the database
    try:
        return optuna.load_study(study_name=sweep.spec.name, storage=open_storage(sweep.storage))
    except KeyError:  # no such study in this storage
        return None


def missing(sweep: Sweep) -> LexilabError:
    return LexilabError(f"{sweep.spec.path}: no study {sweep.spec.name!r} in {redact(sweep.storage.url)} yet; "
                        f"start it with: python -m lexilab sweep {sweep.spec.path}")


def trial_rows(study, objectives) -> list[dict]:
    """One dict per trial: number, state, params, values, seconds, run dirs, error."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        seconds = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete and t.datetime_start else None
        values = dict(zip([o.name for o in objectives], t.values)) if t.values else {}
        rows.append({"number": t.number, "state": t.state.name.lower(), "params": dict(t.params),
                     "weights": t.user_attrs.get("weights"), "values": values, "seconds": seconds,
                     "run_dirs": t.user_attrs.get("run_dirs") or [], "seed_values": t.user_attrs.get("seed_values"),
                     "error": t.user_attrs.get("error") or t.user_attrs.get("note")})
    return rows


def shown_params(row: dict) -> str:
    """Params as key=value; task weights as the weights themselves (not the raw simplex draws)."""
    items = {k: v for k, v in row["params"].items() if not k.startswith("weight.")}
    if row.get("weights"):
        items.update({f"w.{t}": w for t, w in row["weights"].items()})
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in items.items())


def status_text(sweep: Sweep, study) -> str:
    from lexilab.commands.status import format_table

    search = sweep.spec.search
    rows = trial_rows(study, search.objectives)
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["state"]] = counts.get(row["state"], 0) + 1
    goals = ", ".join(f"{o.name} ({'↓' if o.direction == 'minimize' else '↑'})" for o in search.objectives)
    head = (f"sweep {sweep.spec.name}: {len(rows)} of {search.trials} trials — "
            + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none")
            + f"\nobjectives: {goals}; storage: {redact(sweep.storage.url)}")
    table = [[str(r["number"]), r["state"], shown_params(r),
              ", ".join(f"{v:.4g}" for v in r["values"].values()) or "—",
              f"{r['seconds']:.0f} s" if r["seconds"] is not None else "—",
              ", ".join(_relative(d, sweep.root) for d in r["run_dirs"]) or "—"] for r in rows]
    text = head
    if table:
        text += "\n\n" + format_table(["trial", "state", "params", "objective" + "s" * (len(search.objectives) > 1),
                                       "duration", "run dirs"], table)
    errors = [f"  trial {r['number']}: {r['error']}" for r in rows if r["state"] in ("fail", "pruned") and r["error"]]
    if errors:
        text += "\n\nfailed or pruned:\n" + "\n".join(errors)
    return text


def _relative(path: str, root: Path) -> str:
    try:
        return str(Path(path).relative_to(Path(root).resolve()))
    except ValueError:
        return str(path)


def best_trials(study, objectives) -> list:
    """The best trial (one objective) or the Pareto front (several), COMPLETE trials only."""
    from optuna.trial import TrialState

    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    if not complete:
        return []
    if len(objectives) == 1:
        return [study.best_trial]
    return sorted(study.best_trials, key=lambda t: t.values[0])


def to_json(rows: list[dict]) -> str:
    return json.dumps(rows, indent=2, default=str)
