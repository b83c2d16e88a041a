"""Signals during a run: SIGTERM and Ctrl-C recorded, so the loop stops at a checkpoint.

`catch_signals` installs the handlers for the length of a run and restores the old
ones on exit; the loop (`loop._run_loop`) reads `.signal` after each dispatch and
raises `Preempted` at a step it can checkpoint, and `train_and_evaluate` then saves a
checkpoint and exits with 128 + the signal's number.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from typing import Any


class Preempted(Exception):
    """A signal arrived: the loop stopped at the step it reached, to checkpoint it."""


class Signals:
    """The signal (SIGTERM, SIGINT) received while `catch_signals` was active, if any."""

    signal: int | None = None


@contextlib.contextmanager
def catch_signals(enabled: bool = True) -> Iterator[Signals]:
    """Records SIGTERM and Ctrl-C instead of dying, and restores the old handlers on exit.

    The loop reads `.signal` after each dispatch and stops at a step it can checkpoint.
    Off the main thread (some notebook runners) the handlers cannot be installed and
    the signals keep their default action.
    """
    caught = Signals()

    def on_signal(signum, _frame):
        caught.signal = signum

    old: dict[int, Any] = {}
    if enabled:
        for s in (signal.SIGTERM, signal.SIGINT):
            try:
                old[s] = signal.signal(s, on_signal)
            except ValueError:  # not in the main thread
                pass
    try:
        yield caught
    finally:
        for s, h in old.items():
            signal.signal(s, h)
