"""An exclusive lock on an output folder for the whole life of a run (train, export, compare).

The lock is ``<folder>/.tunebridge.lock``: an ``fcntl.flock`` held on an open file for as long as the run lives
(the kernel releases it when the process dies, however it dies), holding who took it (pid, host, start time,
command) for the message a second run gets. A second run into a folder in use is refused at once, with or
without ``--overwrite``. A lock file left behind by a process that died on this host is taken over with a note,
and a ``run.json`` that the dead run left at status ``running`` is marked ``interrupted`` (atomically, before
the new run goes on; a run without ``--overwrite`` is still refused a non-empty folder first). One written on
another host is refused, naming it (delete it when you know that run is gone).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import TunebridgeError

LOCK_NAME = ".tunebridge.lock"
RUN_RECORD = "run.json"  # a dead holder's record still saying "running" is marked interrupted on takeover
_HELD: dict[Path, OutputLock] = {}  # folders this process holds, by resolved path
_FOR: set[Path] = set()  # folders another process holds on this process's behalf (a sweep's folder, to its trials)


class OutputInUse(TunebridgeError):
    """Another live run holds the output folder."""


def _describe(info: dict[str, Any]) -> str:
    parts = [f"pid {info.get('pid', '?')} on host {info.get('host', '?')}"]
    if info.get("started"):
        parts.append(f"started {info['started']}")
    if info.get("command"):
        parts.append(f"`{info['command']}`")
    return ", ".join(parts)


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _pid_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def _mark_interrupted(record: Path, previous: dict[str, Any], locked_at: float | None) -> bool:
    """Mark ``record`` (run.json) ``interrupted`` when it still says ``running`` and was written under the dead
    holder's lock (not before it was taken); atomically. Whether it was marked."""
    from .files import WriteError, write_atomic

    try:
        if locked_at is not None and record.stat().st_mtime < locked_at - 1:
            return False  # older than the dead holder's lock: not its record
        data = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(data, dict) or data.get("status") != "running":
        return False
    now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    data["status"] = "interrupted"
    data["error"] = (f"the process (pid {previous.get('pid', '?')} on {previous.get('host', '?')}) died without "
                     f"finishing; its lock was taken over at {now}")
    try:
        write_atomic(record, json.dumps(data, indent=2, default=str))
    except WriteError:
        return False
    return True


def _flock(fd: int) -> bool:
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _cannot_write(path: Path, exc: OSError) -> TunebridgeError:
    from .files import WriteError

    return WriteError(path, exc, detail="nothing was written")


class OutputLock:
    """The lock on one output folder; ``release()`` (or leaving the ``with`` block) gives it back."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.note = ""  # set when a stale lock was taken over
        self.deleting = ""  # set when --overwrite empties a folder holding an unfinished run's checkpoints
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock now."""
        return self._fd is not None

    def acquire(self) -> OutputLock:
        """Take the lock (the folder must exist) or raise OutputInUse naming the holder."""
        for _ in range(5):  # the holder may remove the file between our open and our flock
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as exc:
                raise _cannot_write(self.path, exc) from None
            if not _flock(fd):
                os.close(fd)
                raise in_use(self.folder, _read(self.path))
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        else:  # pragma: no cover - a holder that keeps replacing the file
            raise OutputInUse(f"output folder {self.folder} is in use by another tunebridge run (its lock keeps "
                              "changing)")
        previous = _read(self.path)
        if previous:
            if previous.get("host") not in (None, socket.gethostname()):
                os.close(fd)
                raise OutputInUse(f"output folder {self.folder} is locked by a tunebridge run on another host "
                                  f"({_describe(previous)}); if that run is gone, delete {self.path}")
            alive = _pid_alive(previous.get("pid"))
            state = "still running, but not holding it" if alive else "no longer running"
            self.note = f"took over the stale lock {self.path} of {_describe(previous)} ({state})"
            if not alive:
                try:
                    taken = os.fstat(fd).st_mtime  # when the dead holder wrote its lock file
                except OSError:
                    taken = None
                marked = _mark_interrupted(self.folder / RUN_RECORD, previous, taken)
                if marked:
                    self.note += f"; its {RUN_RECORD}, left at status running, now says interrupted"
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": " ".join(
                    ["tunebridge", *sys.argv[1:]] if Path(sys.argv[0]).name in ("tunebridge", "__main__.py")
                    else sys.argv)[:300]}
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info).encode(), 0)
            os.fsync(fd)
        except OSError as exc:
            os.close(fd)
            with contextlib.suppress(OSError):
                self.path.unlink()
            raise _cannot_write(self.path, exc) from None
        self._fd = fd
        _HELD[self.folder.resolve()] = self
        return self

    def release(self) -> None:
        """Remove the lock file and give the lock back (safe to call twice)."""
        if self._fd is None:
            return
        try:
            if os.fstat(self._fd).st_ino == os.stat(self.path).st_ino:
                self.path.unlink()
        except OSError:
            pass
        os.close(self._fd)
        self._fd = None
        _HELD.pop(self.folder.resolve(), None)

    def __enter__(self) -> OutputLock:
        return self if self.held else self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def in_use(folder: Path, info: dict[str, Any]) -> OutputInUse:
    """The error for a folder another live run holds."""
    return OutputInUse(f"output folder {folder} is in use by another tunebridge run "
                       f"({_describe(info) if info else 'holder unknown'}); wait for it to finish or choose another "
                       "folder (--overwrite does not take a folder in use)")


def holder(folder: Path) -> dict[str, Any] | None:
    """Who holds the lock of ``folder`` when another process does (its lock file's content), else None."""
    path = Path(folder) / LOCK_NAME
    if Path(folder).resolve() in _HELD or Path(folder).resolve() in _FOR or not path.is_file():
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if _flock(fd):
            return None
        return _read(path) or {}
    finally:
        os.close(fd)


def check_not_in_use(folder: Path) -> None:
    """Refuse when a live run of another process holds ``folder``, a folder inside it, or one above it."""
    folder = Path(folder)
    candidates = [p.parent for p in folder.rglob(LOCK_NAME)] if folder.is_dir() else []
    candidates += [p for p in folder.resolve().parents if (p / LOCK_NAME).is_file()]
    for place in candidates:
        info = holder(place)
        if info is not None:
            raise OutputInUse(f"refusing to use {folder}: {place} is in use by another tunebridge run "
                              f"({_describe(info) if info else 'holder unknown'})")


@contextlib.contextmanager
def working_for(folder: Path) -> Iterator[None]:
    """Inside the block, ``folder``'s lock counts as this process's own: a sweep (or a compare on Ray) holds its
    output folder in the driver, and the runs it hands to Ray workers write their run folders inside it."""
    resolved = Path(folder).resolve()
    added = resolved not in _FOR
    _FOR.add(resolved)
    try:
        yield
    finally:
        if added:
            _FOR.discard(resolved)
