"""Signals during a run: SIGTERM, SIGUSR2 and Ctrl-C recorded, so the loop stops at a
checkpoint.

SIGUSR2 is what SLURM sends a job some time before its time limit when asked
(`sbatch --signal=USR2@<seconds>`; `python -m hncl_jax.sweep --launcher=slurm` asks for it
`--slurm.signal_delay_s` seconds ahead, 120 by default, through submitit). SLURM's
preemption and `scancel` send SIGTERM. On either the run saves and exits; the SLURM
launcher then hands the job to submitit, which requeues it, and the requeued job resumes.

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


# The signals a run stops on (SIGUSR2 where the platform has it).
STOP_SIGNALS = tuple(
    s for s in (signal.SIGTERM, signal.SIGINT, getattr(signal, "SIGUSR2", None)) if s is not None
)


class Signals:
    """The signal (SIGTERM, SIGINT, SIGUSR2) received while `catch_signals` was active.

    `deferring` turns True once the loop has run a step: from then on a signal stops
    the run at a step it checkpoints. Before (while the first step compiles), a command
    line that called `cli.exit_on_interrupt` exits at once on Ctrl-C or SIGTERM instead.
    """

    signal: int | None = None
    deferring: bool = False


@contextlib.contextmanager
def catch_signals(enabled: bool = True) -> Iterator[Signals]:
    """Records SIGTERM, SIGUSR2 and Ctrl-C instead of dying, and restores the old handlers
    on exit (so a handler installed before the run, such as submitit's, runs after it).

    The loop reads `.signal` after each dispatch and stops at a step it can checkpoint.
    Off the main thread (some notebook runners) the handlers cannot be installed and
    the signals keep their default action.
    """
    caught = Signals()

    def on_signal(signum, _frame):
        caught.signal = signum

    on_signal.signals = caught  # type: ignore[attr-defined]  (read by cli's watcher)

    old: dict[int, Any] = {}
    if enabled:
        for s in STOP_SIGNALS:
            try:
                old[s] = signal.signal(s, on_signal)
            except ValueError:  # not in the main thread
                pass
    try:
        yield caught
    finally:
        for s, h in old.items():
            signal.signal(s, h)
