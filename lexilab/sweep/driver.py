"""The sweep driver: ask Optuna for trials, train them as ordinary runs, tell Optuna the results.

Each trial is one run per seed under ``results/<name>/trial-<n>/seed-<k>/`` (the same files as
any run), dispatched through :mod:`lexilab.dispatch` one seed after another; at most
``workers`` trials are in flight. Everything the driver needs is in the study and on disk, so
it keeps no state of its own: killed at any moment, the same command picks the RUNNING trials
up again (their runs are still training under a local launcher or SLURM, or resume from their
checkpoint) and asks only for the trials still missing. A run that raised fails its trial with
the error; a run whose job vanished without a result is rerun (it resumes from its
checkpoint) up to ``storage.max_retry`` times, then the trial fails — it is never left RUNNING.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import statistics
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from lexilab.errors import LexilabError
from lexilab.sweep import space
from lexilab.sweep.hook import META_KEY
from lexilab.sweep.methods import build_pruner, build_sampler
from lexilab.sweep.objectives import run_value
from lexilab.sweep.storage import STORAGE_ENV, StorageSpec, open_storage, redact, uses_heartbeat

log = logging.getLogger("lexilab.sweep")
RUN_DIRS_ATTR = "run_dirs"
FINISHED_RUN = ("done", "pruned")


def trial_dir(root: Path, name: str, number: int) -> Path:
    return Path(root) / name / f"trial-{number}"


@dataclass
class Driver:
    spec: object  # lexilab.spec.Spec with .search
    root: Path
    storage: StorageSpec  # resolved
    workers: int = 1
    executor: str = "inline"
    trials: int | None = None  # total trials wanted (default: search.trials)
    profile: str | None = None
    poll_s: float = 0.5
    out: object = field(default=None, repr=False)  # progress lines (default: sys.stdout at the time)
    gpus: dict[int, str] = field(default_factory=dict)  # trial number → GPU it was given (local)

    def __post_init__(self) -> None:
        self.search = self.spec.search
        self.out = self.out or sys.stdout
        self.total = self.trials or self.search.trials
        self.name = self.spec.name
        self.storage_obj = None
        self.study = None
        self.last_beat = 0.0

    # ------------------------------------------------------------------ the study
    def open_study(self, create: bool = True):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.storage_obj = open_storage(self.storage)
        sampler = build_sampler(self.search.sampler, self.search.directions, self.workers, self.search.grid())
        pruner = build_pruner(self.search.pruner)
        if not create:
            self.study = optuna.load_study(study_name=self.name, storage=self.storage_obj, sampler=sampler, pruner=pruner)
            return self.study
        study = optuna.create_study(study_name=self.name, storage=self.storage_obj, sampler=sampler, pruner=pruner,
                                    directions=self.search.directions, load_if_exists=True)
        wanted = [o.name for o in self.search.objectives]
        stored = study.user_attrs.get("objectives")
        if stored is None:
            study.set_user_attr("objectives", wanted)
            study.set_user_attr("seeds_per_trial", self.search.seeds_per_trial)
            study.set_user_attr("spec", str(Path(self.spec.path).resolve()))
        elif stored != wanted:
            raise LexilabError(f"{self.spec.path}: search.objectives: the study {self.name!r} in {self.storage.url} "
                               f"optimises {stored}, the spec {wanted}; rename the spec or use another storage")
        self.study = study
        return study

    # ------------------------------------------------------------------ the loop
    def run(self) -> dict[str, int]:
        """Drive the study to ``total`` trials; returns the count of trials by state."""
        from optuna.trial import TrialState

        study = self.study or self.open_study()
        from lexilab.tracking import ensure_experiment

        ensure_experiment(self.name, self.search.config_for({}, None)[0], self.root)
        while True:
            if uses_heartbeat(self.storage_obj):
                from optuna.storages import fail_stale_trials

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    fail_stale_trials(study)
            trials = study.get_trials(deepcopy=False)
            active = [t for t in trials if t.state == TrialState.RUNNING]
            for trial in active:
                self.advance(trial)
            trials = study.get_trials(deepcopy=False)
            active = [t for t in trials if t.state == TrialState.RUNNING]
            counted = counted_trials(trials)
            while len(active) < self.workers and counted < self.total:
                with warnings.catch_warnings():  # "heartbeat is supposed to be used with Study.optimize": we beat ourselves
                    warnings.simplefilter("ignore", UserWarning)
                    trial = study.ask()
                counted += 1
                frozen = study._storage.get_trial(trial._trial_id)
                self.advance(frozen, trial)
                if study._storage.get_trial(trial._trial_id).state == TrialState.RUNNING:
                    active.append(frozen)
            if not active and counted >= self.total:
                break
            self.beat(active)
            time.sleep(self.poll_s)
        trials = study.get_trials(deepcopy=False)
        counts: dict[str, int] = {}
        for t in trials:
            counts[t.state.name] = counts.get(t.state.name, 0) + 1
        return counts

    def beat(self, active) -> None:
        """Heartbeats of trials whose run has not started (queued): their jobs cannot beat yet."""
        if not active or not uses_heartbeat(self.storage_obj):
            return
        if time.time() - self.last_beat < self.storage.heartbeat_interval / 2:
            return
        from lexilab.runs import read_status

        for trial in active:
            dirs = trial.user_attrs.get(RUN_DIRS_ATTR) or []
            if not dirs or read_status(dirs[-1]).get("state") != "running":
                self.storage_obj.record_heartbeat(trial._trial_id)
        self.last_beat = time.time()

    # ------------------------------------------------------------------ one trial
    def point(self, frozen, trial=None) -> tuple[dict, dict | None]:
        """The trial's values: suggested now (a new trial, or one whose driver was killed before its
        runs were written: a parameter suggested already keeps its value) or read back."""
        if RUN_DIRS_ATTR not in frozen.user_attrs:
            import optuna

            trial = trial or optuna.trial.Trial(self.study, frozen._trial_id)
            return space.suggest(trial, self.search.params, self.search.task_weights)
        values = {p.key: frozen.params[p.key] for p in self.search.params if p.key in frozen.params}
        weights = None
        if self.search.task_weights is not None:
            weights = self.search.task_weights.weights(frozen.params)
        return values, weights

    def advance(self, frozen, trial=None) -> None:
        """Move one RUNNING trial on: start its next seed, rerun a vanished one, or tell the result."""
        from lexilab.dispatch import refresh_status
        from lexilab.runs import liveness, read_status

        storage = self.study._storage
        number, trial_id = frozen.number, frozen._trial_id
        values, weights = self.point(frozen, trial)
        seeds = self.search.seeds_per_trial
        dirs = [trial_dir(self.root, self.name, number) / f"seed-{k}" for k in range(seeds)]
        if RUN_DIRS_ATTR not in frozen.user_attrs:
            storage.set_trial_user_attr(trial_id, RUN_DIRS_ATTR, [str(d) for d in dirs])
            if weights is not None:
                storage.set_trial_user_attr(trial_id, "weights", weights)
        results: list[dict[str, float]] = []
        for seed, run_dir in enumerate(dirs):
            if not (run_dir / "config.yaml").is_file():
                self.start(number, trial_id, seed, run_dir, values, weights)
                return
            status = refresh_status([run_dir])[run_dir]
            state = status.get("state")
            if state in ("pending", "running"):
                if liveness(status) != "dead":
                    return  # still queued or training
                state = "vanished"
            if state == "pruned":
                self.finish(number, state="PRUNED", note=f"seed {seed} pruned at step {status.get('pruned_step')}")
                return
            if state == "failed" and status.get("traceback"):
                self.finish(number, state="FAIL", note=f"seed {seed}: {status.get('error')}")
                return
            if state != "done":  # vanished or cancelled: rerun (it resumes from its checkpoint) or give up
                attempts = int(status.get("attempts") or 0)
                if attempts > self.storage.max_retry:
                    self.finish(number, state="FAIL", note=f"seed {seed}: its job ended without a result "
                                f"{attempts} times ({status.get('error') or state})")
                    return
                print(f"trial {number} seed {seed}: job ended without a result ({status.get('error') or state}); "
                      "rerunning it from its checkpoint", file=self.out)
                self.dispatch(number, run_dir)
                return
            try:
                results.append({o.name: run_value(o, run_dir) for o in self.search.objectives})
            except (OSError, KeyError, ValueError) as err:
                self.finish(number, state="FAIL", note=f"seed {seed}: objective unreadable: {err}")
                return
            if self.search.pruner["kind"] == "wilcoxon":  # each seed's value is one "step" of the test
                self.report_seed(trial_id, seed, results[-1])
                last_done = seed == seeds - 1 or not (dirs[seed + 1] / "config.yaml").is_file()
                if last_done and seed < seeds - 1 and self.should_prune(trial_id):  # the later seeds are skipped
                    self.finish(number, state="PRUNED", note=f"wilcoxon pruned after seed {seed}")
                    return
        per_seed = {o.name: [r[o.name] for r in results] for o in self.search.objectives}
        storage.set_trial_user_attr(trial_id, "seed_values", per_seed)
        self.finish(number, values=[statistics.fmean(per_seed[o.name]) for o in self.search.objectives])

    def report_seed(self, trial_id: int, seed: int, result: dict[str, float]) -> None:
        if seed not in self.study._storage.get_trial(trial_id).intermediate_values:
            self.study._storage.set_trial_intermediate_value(trial_id, seed, result[self.search.objectives[0].name])

    def should_prune(self, trial_id: int) -> bool:
        import optuna

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return optuna.trial.Trial(self.study, trial_id).should_prune()

    def finish(self, number: int, values: list[float] | None = None, state: str = "COMPLETE", note: str = "") -> None:
        from optuna.trial import TrialState

        if note:
            trial_id = self.study._storage.get_trial_id_from_study_id_trial_number(self.study._study_id, number)
            self.study._storage.set_trial_user_attr(trial_id, "error" if state == "FAIL" else "note", note)
        try:
            with warnings.catch_warnings():  # "heartbeat is supposed to be used with Study.optimize": we beat ourselves
                warnings.simplefilter("ignore", UserWarning)
                self.study.tell(number, values if state == "COMPLETE" else None, state=TrialState[state])
        except (ValueError, RuntimeError) as err:  # finished elsewhere meanwhile (e.g. by its heartbeat)
            print(f"trial {number}: not told ({err})", file=self.out)
            return
        shown = ", ".join(f"{o.name}={v:.4g}" for o, v in zip(self.search.objectives, values or [])) or note
        print(f"trial {number}: {state.lower()}: {shown}", file=self.out)
        self.gpus.pop(number, None)

    # ------------------------------------------------------------------ runs
    def start(self, number: int, trial_id: int, seed: int, run_dir: Path, values: dict, weights: dict | None) -> None:
        from lexilab.config import identity_hash
        from lexilab.runs import write_run

        config, problems = self.search.config_for(values, weights, seed=seed)
        if problems:  # cannot happen for a validated space; refuse loudly rather than train something else
            self.finish(number, state="FAIL", note="invalid run config: " + "; ".join(p.line() for p in problems))
            return
        # the URL goes to config.yaml without its password; the job reads the full one from the
        # environment it inherits (local launcher, sbatch --export=ALL)
        stored = {**dataclasses.asdict(self.storage), "url": redact(self.storage.url)}
        context = {"study": self.name, "storage": stored, "trial_id": trial_id, "trial": number,
                   "objectives": [o.name for o in self.search.objectives], "pruner": self.search.pruner}
        meta = {"experiment": self.name, "arm": f"trial-{number}", "seed": seed, "spec": str(Path(self.spec.path).resolve()),
                "sweep": self.name, "trial": number, "params": values, META_KEY: context}
        if weights is not None:
            meta["weights"] = weights
        write_run(run_dir, config, meta, identity_hash(config))
        self.dispatch(number, run_dir)

    def dispatch(self, number: int, run_dir: Path) -> None:
        from lexilab.dispatch import dispatch
        from lexilab.runs import update_status

        update_status(run_dir, state="pending", job_id=None, slurm_job_id=None, error=None)
        os.environ[STORAGE_ENV] = self.storage.url  # inherited by the job (inline: this process)
        resources = dict(getattr(self.spec, "resources", {}) or {})
        if self.executor == "local":
            gpu = self.free_gpu(number)
            if gpu is not None:
                resources["visible_gpus"] = [gpu]
        dispatch([run_dir], self.executor, resources=resources, max_parallel=1, wait=False, profile=self.profile,
                 log_dir=Path(self.root) / self.name / ".submitit")

    def free_gpu(self, number: int) -> str | None:
        from lexilab.dispatch.pool import visible_gpus

        gpus = visible_gpus(None)
        if not gpus:
            return None
        if number not in self.gpus:
            taken = set(self.gpus.values())
            self.gpus[number] = next((g for g in gpus if g not in taken), gpus[number % len(gpus)])
        return self.gpus[number]


def counted_trials(trials) -> int:
    """Trials that count towards the total: all but failed ones Optuna has retried (a retry is a
    new trial whose system attribute ``retry_history`` names the ones it replaces) and waiting ones."""
    from optuna.trial import TrialState

    retried = {n for t in trials for n in t.system_attrs.get("retry_history", ())}
    # a WAITING trial (enqueued, or a retry) is counted when the driver asks for it
    return sum(1 for t in trials if t.number not in retried and t.state != TrialState.WAITING)
