"""The run-process side of a sweep trial: report evaluations to Optuna, prune, heartbeat.

A trial's run directory records its sweep context in config.yaml (``meta.sweep_trial``: the
storage, study, trial id, objective and pruner). The runner opens it with :func:`trial_hook`;
the trainer calls the hook after each validation evaluation, which reports the objective's
value at that step and raises :class:`RunPruned` when the pruner says stop (or when the trial
was already finished elsewhere, e.g. failed by its heartbeat) — the run then ends at that step
boundary with state ``pruned``. With an RDB storage a thread records the trial's heartbeat
while the run trains, so a run whose job vanishes is failed by the driver and retried.
"""
from __future__ import annotations

import contextlib
import threading
import warnings
from typing import Iterator

META_KEY = "sweep_trial"
STEP_PRUNERS = ("median", "hyperband")  # pruners over the evaluations of a run


class RunPruned(Exception):
    """The sweep's pruner stopped this run at ``step`` (not a failure)."""

    def __init__(self, step: int, reason: str = "pruned"):
        super().__init__(f"{reason} at step {step}")
        self.step = step
        self.reason = reason


class TrialReporter:
    """Called by the trainer as ``hook(trainer, record)`` after each evaluation."""

    def __init__(self, context: dict):
        import optuna

        from lexilab.sweep.methods import build_pruner
        from lexilab.sweep.objectives import parse_objective
        from lexilab.sweep.storage import StorageSpec, open_storage, with_password

        self.context = context
        spec = dict(context["storage"])
        spec["url"] = with_password(spec["url"])  # config.yaml holds it without its password
        self.storage = open_storage(StorageSpec(**spec))
        self.trial_id = int(context["trial_id"])
        pruner = context.get("pruner") or {"kind": "none"}
        self.prunes = pruner["kind"] in STEP_PRUNERS
        names = context.get("objectives") or []
        self.objective = parse_objective(names[0])[0] if len(names) == 1 else None
        self.study = None
        if self.prunes and self.objective is not None:
            optuna.logging.set_verbosity(optuna.logging.WARNING)
            self.study = optuna.load_study(study_name=context["study"], storage=self.storage,
                                           pruner=build_pruner(pruner))
            self.trial = optuna.trial.Trial(self.study, self.trial_id)

    def finished_elsewhere(self) -> bool:
        return self.storage.get_trial(self.trial_id).state.is_finished()

    def __call__(self, trainer, record: dict) -> None:
        from lexilab.sweep.objectives import intermediate_value

        if self.finished_elsewhere():  # e.g. failed by its heartbeat and retried, or pruned
            raise RunPruned(trainer.step, "trial already finished")
        if self.study is None:
            return
        value = intermediate_value(self.objective, record, trainer)
        with warnings.catch_warnings():  # a later seed reports a step the first one reported: ignored
            warnings.simplefilter("ignore")
            self.trial.report(value, trainer.step)
        if self.trial.should_prune():
            raise RunPruned(trainer.step)


class _Heartbeat:
    """Records the trial's heartbeat every interval until stopped (daemon: dies with the job)."""

    def __init__(self, storage, trial_id: int):
        self.storage, self.trial_id = storage, trial_id
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, name=f"heartbeat-trial-{trial_id}", daemon=True)

    def _beat(self) -> None:
        interval = self.storage.get_heartbeat_interval()
        while not self.stop.is_set():
            try:
                self.storage.record_heartbeat(self.trial_id)
            except Exception:  # a finished trial or a network blip: the next beat tries again
                pass
            self.stop.wait(interval)


@contextlib.contextmanager
def trial_hook(meta: dict | None) -> Iterator[TrialReporter | None]:
    """The evaluation hook of a sweep trial's run (None for any other run)."""
    meta = meta if isinstance(meta, dict) else {}
    inner = meta.get("meta") if isinstance(meta.get("meta"), dict) else meta  # config.yaml's meta block
    context = inner.get(META_KEY)
    if not context:
        yield None
        return
    from lexilab.sweep.storage import uses_heartbeat

    reporter = TrialReporter(context)
    beat = None
    if uses_heartbeat(reporter.storage):
        beat = _Heartbeat(reporter.storage, reporter.trial_id)
        beat.thread.start()
    try:
        yield reporter
    finally:
        if beat is not None:
            beat.stop.set()
            beat.thread.join(timeout=5)
