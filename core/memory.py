"""Peak resident memory of a run: this process and every process it started (workers, AutoTrain, torchrun)."""

from __future__ import annotations

import os
import resource
import threading
from pathlib import Path

PROC = Path("/proc")


def _rss_kib(pid: int) -> int:
    try:
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in (PROC / str(pid) / "task").glob("*/children"):
        try:
            found += [int(p) for p in task.read_text().split()]
        except (OSError, ValueError):
            continue
    return found


def tree_rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` and all its descendants, in KiB (0 where /proc is unreadable)."""
    total, todo, seen = 0, [pid], set()
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        total += _rss_kib(current)
        todo += _children(current)
    return total


class PeakMemory:
    """Samples the resident memory of this process tree while a run lasts: ``with PeakMemory() as peak: ...``,
    then ``peak.mb``. Where /proc is missing, falls back to getrusage's high-water marks."""

    def __init__(self, interval_s: float = 0.2):
        self.interval_s = interval_s
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._proc = (PROC / str(os.getpid()) / "status").is_file()

    def _sample(self) -> None:
        self.peak_kib = max(self.peak_kib, tree_rss_kib(os.getpid()))

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def __enter__(self) -> PeakMemory:
        if self._proc:
            self._sample()
            self._thread = threading.Thread(target=self._loop, name="tunebridge-peak-memory", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._sample()
        else:
            own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            self.peak_kib = max(own, children)

    @property
    def mb(self) -> float:
        """The peak in MiB, rounded to 0.1."""
        return round(self.peak_kib / 1024, 1)
