"""The step-boundary preemption hook: USR2 deferred for a cooperating trainer, immediate otherwise."""
from __future__ import annotations

import os
import signal

import pytest

from lexilab.dispatch import preemption


class SignalHandler:
    """Stands in for submitit's handler class (install() recognises it by name)."""

    def __init__(self):
        self.calls = []

    def checkpoint_and_try_requeue(self, signum, frame=None):
        self.calls.append(signum)


@pytest.fixture
def submitit_handler():
    handler = SignalHandler()
    before_usr2 = signal.signal(signal.SIGUSR2, handler.checkpoint_and_try_requeue)
    before_alrm = signal.getsignal(signal.SIGALRM)
    yield handler
    preemption.uninstall()
    signal.signal(signal.SIGUSR2, before_usr2)
    signal.signal(signal.SIGALRM, before_alrm)


def test_without_cooperation_the_signal_goes_straight_to_submitit(submitit_handler):
    assert preemption.install(signal.SIGUSR2)
    os.kill(os.getpid(), signal.SIGUSR2)
    assert submitit_handler.calls == [signal.SIGUSR2]
    assert not preemption.stop_requested()


def test_a_cooperating_trainer_gets_the_signal_at_its_next_step(submitit_handler):
    assert preemption.install(signal.SIGUSR2)
    preemption.cooperate()
    os.kill(os.getpid(), signal.SIGUSR2)
    assert preemption.stop_requested() and submitit_handler.calls == []  # deferred
    preemption.requeue_now()  # after the trainer saved its state
    assert submitit_handler.calls == [signal.SIGUSR2]


def test_the_grace_period_hands_over_when_no_step_boundary_comes(submitit_handler, monkeypatch):
    import time

    monkeypatch.setenv(preemption.GRACE_ENV, "0.2")
    assert preemption.install(signal.SIGUSR2)
    preemption.cooperate()
    os.kill(os.getpid(), signal.SIGUSR2)
    deadline = time.time() + 5
    while not submitit_handler.calls and time.time() < deadline:
        time.sleep(0.01)
    assert submitit_handler.calls == [signal.SIGUSR2]


def test_outside_submitit_nothing_is_installed():
    before = signal.getsignal(signal.SIGUSR2)
    assert not preemption.install(signal.SIGUSR2)
    assert signal.getsignal(signal.SIGUSR2) is before
    preemption.cooperate()
    assert not preemption.stop_requested()
