"""Optional step-boundary preemption: save on the signal, then requeue (no steps lost).

By default the preemption/time-limit signal (USR2) goes straight to submitit, which calls
`RunJob.checkpoint()`, requeues the job and exits; the requeued run resumes from the trainer's
last periodic checkpoint and replays the steps since then (exact, but repeated work).

A trainer that calls `cooperate()` when training starts gets the signal deferred instead:
`stop_requested()` turns True, and at its next step boundary the trainer saves its full state
and calls `requeue_now()`, which hands over to submitit (checkpoint, requeue, exit). If no step
boundary comes within the grace period (half the job's signal delay; $LEXILAB_PREEMPT_GRACE_S),
submitit's handler runs anyway, so the requeue always happens before the kill.

    preemption.cooperate()
    for step in ...:
        ...one optimizer step...
        if preemption.stop_requested():
            save_checkpoint(); preemption.requeue_now()
"""
from __future__ import annotations

import os
import signal
from typing import Any, Callable

GRACE_ENV = "LEXILAB_PREEMPT_GRACE_S"
_state: dict[str, Any] = {"signum": None, "original": None, "cooperative": False, "requested": False}


def install(signum: int) -> bool:
    """Wrap the handler submitit installed for ``signum`` (called by RunJob inside a job)."""
    original = signal.getsignal(signum)
    if not callable(original) or getattr(original, "__self__", None).__class__.__name__ != "SignalHandler":
        return False  # not under submitit (inline executor): nothing to defer
    _state.update(signum=signum, original=original, cooperative=False, requested=False)
    signal.signal(signum, _on_signal)
    return True


def uninstall() -> None:
    if _state["signum"] is not None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(_state["signum"], _state["original"])
    _state.update(signum=None, original=None, cooperative=False, requested=False)


def cooperate() -> None:
    """The caller (the trainer) promises to poll `stop_requested()` at every step boundary."""
    _state["cooperative"] = _state["signum"] is not None


def stop_requested() -> bool:
    return bool(_state["requested"])


def requeue_now() -> None:
    """Hand the deferred signal to submitit: checkpoint(), requeue, SystemExit."""
    signal.setitimer(signal.ITIMER_REAL, 0)
    handler: Callable = _state["original"]
    handler(_state["signum"], None)


def _on_signal(signum: int, frame: Any) -> None:
    if not _state["cooperative"]:
        _state["original"](signum, frame)
        return
    _state["requested"] = True
    # a safety net: if no step boundary comes in time, let submitit act now
    signal.signal(signal.SIGALRM, lambda *_: requeue_now())
    signal.setitimer(signal.ITIMER_REAL, grace_s())


def grace_s() -> float:
    """How long a deferred signal waits for a step boundary: set per job (half the signal delay)."""
    if GRACE_ENV in os.environ:
        return float(os.environ[GRACE_ENV])
    local_delay = os.environ.get("SUBMITIT_LOCAL_SIGNAL_DELAY_S")  # submitit's local executor
    return max(1.0, float(local_delay) / 2) if local_delay else 30.0
