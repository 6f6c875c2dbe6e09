"""One way to run a child process for a run: stream its output, redact secrets, enforce a timeout, stop its
whole process group on Ctrl-C / SIGTERM / SIGHUP. Every subprocess a run starts goes through ``stream``.

The child leads its own session, so what it starts (accelerate, torchrun's ranks, AutoTrain's trainer) is
stopped with it. Output lines are redacted before anything sees them: token-like words (``hf_...``,
``sk-...``) and the values of secret environment variables given in ``secrets``.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import TunebridgeError
from ..redact import REDACTED, SECRET_IN_TEXT, SECRET_VALUE
from ..signals import interrupted_by

TAIL_LINES = 30
STOP_GRACE_S = 10


class ProcessFailed(TunebridgeError):
    """A child process timed out, or died in a way its caller turns into an error."""


@dataclass
class Streamed:
    """What a finished child left: its exit code and the last lines of its (redacted) output."""

    returncode: int
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))


def secret_values(env: dict[str, str]) -> list[str]:
    """Values in ``env`` that must never be printed or logged (tokens, keys)."""
    from ..redact import is_secret_key

    return [v for k, v in env.items() if len(v) >= 8 and (SECRET_VALUE.match(v) or is_secret_key(k))]


def redact_line(line: str, secrets: Sequence[str] = ()) -> str:
    """``line`` with token-like values and the given secret values replaced by ``***``."""
    line = SECRET_IN_TEXT.sub(REDACTED, line)
    for secret in secrets:
        line = line.replace(secret, REDACTED)
    return line


def stop_group(proc: subprocess.Popen) -> None:
    """End ``proc`` and every process it started (it leads its own session): SIGTERM, then SIGKILL."""
    if proc.poll() is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # leftovers of a finished leader
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=STOP_GRACE_S)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def stream(argv: Sequence[str], *, log_path: Path, on_line: Callable[[str], bool] | None = None,
           env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float | None = None,
           name: str = "process", log_mode: str = "a") -> Streamed:
    """Run ``argv``; every redacted output line goes to ``on_line`` and, unless it returns True (an event it
    consumed), to ``log_path``. Returns the exit code and the log's tail.

    Raises ProcessFailed after ``timeout`` seconds (the group stopped). On KeyboardInterrupt (Ctrl-C, or
    SIGTERM/SIGHUP through tunebridge.signals) the group is stopped, its last output kept, and the interrupt
    re-raised.
    """
    env = dict(os.environ if env is None else env)
    env.setdefault("PYTHONUNBUFFERED", "1")
    secrets = secret_values(env)
    result = Streamed(returncode=-1)
    proc = subprocess.Popen(list(argv), cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, encoding="utf-8", errors="replace", start_new_session=True)
    lines: queue.Queue[str | None] = queue.Queue()
    assert proc.stdout is not None
    reader = threading.Thread(target=_read, args=(proc.stdout, lines), daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout if timeout else None
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open(log_mode, encoding="utf-8") as log:
        def take(raw: str) -> None:
            line = redact_line(raw, secrets)
            if on_line is not None and on_line(line):
                return
            if line.strip():
                log.write(line if line.endswith("\n") else line + "\n")
                log.flush()
                result.tail.append(line.rstrip("\n"))

        try:
            while True:
                wait = None if deadline is None else max(deadline - time.monotonic(), 0)
                try:
                    raw = lines.get(timeout=wait)
                except queue.Empty:
                    stop_group(proc)
                    raise ProcessFailed(f"the {name} timed out after {timeout:g} s") from None
                if raw is None:
                    break
                take(raw)
            result.returncode = proc.wait()
            stop_group(proc)  # nothing it started may outlive it
        except KeyboardInterrupt as exc:
            stop_group(proc)
            _drain(lines, take)
            log.write(f"[tunebridge] stopped the {name} (pid {proc.pid}) and its process group: "
                      f"interrupted by {interrupted_by(exc)}\n")
            raise
    return result


def _read(stdout, lines: queue.Queue[str | None]) -> None:
    with contextlib.suppress(ValueError, OSError):
        for raw in stdout:
            lines.put(raw)
    lines.put(None)


def _drain(lines: queue.Queue[str | None], take: Callable[[str], None], seconds: float = 5) -> None:
    """Keep what a stopped child printed last (at most ``seconds``)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            raw = lines.get(timeout=max(deadline - time.monotonic(), 0))
        except queue.Empty:
            return
        if raw is None:
            return
        with contextlib.suppress(OSError):
            take(raw)


def tail_text(tail: Sequence[str], log_path: Path) -> str:
    """The last lines of a child's log, indented, for an error message."""
    shown = "\n".join(f"  | {line}" for line in tail) or "  | (no output)"
    return f"last lines of its log ({log_path}):\n{shown}"
