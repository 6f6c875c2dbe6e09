"""SIGTERM and SIGHUP stop a run the way Ctrl-C does.

Slurm, ``docker stop`` and ``timeout`` send SIGTERM; a closed terminal sends SIGHUP. Inside
``interrupt_on_signals()`` either raises ``RunInterrupted`` (a KeyboardInterrupt), so the run's interrupt path
runs: the worker's process group is stopped, run.json says ``interrupted`` (naming the signal), temporary job
folders are removed, and the command line exits with 128 + the signal number.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

HANDLED = tuple(s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s is not None)


class RunInterrupted(KeyboardInterrupt):
    """A run stopped by a signal (``signum``)."""

    def __init__(self, signum: int):
        self.signum = signum
        self.signame = signal.Signals(signum).name
        super().__init__(f"interrupted by {self.signame}")


def interrupted_by(exc: BaseException) -> str:
    """'SIGTERM' for a run stopped by SIGTERM, 'the user' for Ctrl-C."""
    return exc.signame if isinstance(exc, RunInterrupted) else "the user"


def exit_code(exc: BaseException) -> int:
    """128 + the signal number (130 for Ctrl-C)."""
    return 128 + (exc.signum if isinstance(exc, RunInterrupted) else signal.SIGINT)


@contextlib.contextmanager
def interrupt_on_signals() -> Iterator[None]:
    """Turn SIGTERM and SIGHUP into RunInterrupted while the block runs (main thread only).

    Only signals whose handler is the default are taken (a host application's own handler, or SIGHUP ignored by
    ``nohup``, stays as it is); the previous handlers come back afterwards. A repeated signal while the run is
    already stopping is ignored, so the clean-up finishes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired: list[int] = []

    def handler(signum: int, frame: object) -> None:
        if fired:
            return
        fired.append(signum)
        raise RunInterrupted(signum)

    previous = {}
    for signum in HANDLED:
        if signal.getsignal(signum) is signal.SIG_DFL:
            previous[signum] = signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
