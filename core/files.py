"""Writing the files of a run folder so that a full disk or a read-only folder never leaves a half-written one.

``write_atomic`` writes a temporary file in the same folder, syncs it and renames it over the target: a reader
sees the old file or the new one, never a cut-off one. Every OSError becomes a WriteError naming the path.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from .errors import TunebridgeError


class WriteError(TunebridgeError):
    """A file of the run could not be written (disk full, read-only folder, ...).

    The message names the path, the reason, and what the folder still holds (``kept``) or another ``detail``.
    """

    def __init__(self, path: Path | str, exc: OSError, kept: str = "", detail: str = ""):
        self.path = Path(path)
        self.errno = exc.errno
        self.reason = exc.strerror or str(exc)
        message = f"cannot write {path}: {self.reason}"
        if kept:
            message += f"; kept: {kept}"
        elif detail:
            message += f"; {detail}"
        super().__init__(message)

    def with_kept(self, kept: str) -> WriteError:
        """The same error, saying what the folder still holds."""
        return WriteError(self.path, OSError(self.errno, self.reason), kept)


def write_atomic(path: Path | str, text: str, mode: int = 0o666) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file and a rename; raise WriteError."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise WriteError(path, exc) from None
    with contextlib.suppress(OSError):  # the rename itself reaches the disk
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def write_json(path: Path | str, data: object, mode: int = 0o666) -> None:
    """``data`` as indented JSON, written atomically."""
    write_atomic(path, json.dumps(data, indent=2, default=str), mode)


def folder_contents(folder: Path) -> str:
    """What a run folder holds, for an error message: ``run.json (status 'running'), metrics.jsonl (3 lines)``."""
    from .lock import LOCK_NAME

    try:
        items = sorted(p for p in Path(folder).iterdir() if p.name != LOCK_NAME and not p.name.endswith(".tmp"))
    except OSError:
        return f"{folder} (unreadable)"
    parts = []
    for item in items:
        name = item.name + ("/" if item.is_dir() else "")
        if item.name == "run.json":
            try:
                name += f" (status {json.loads(item.read_text(encoding='utf-8')).get('status')!r})"
            except (OSError, ValueError, AttributeError):
                name += " (unreadable)"
        elif item.name == "metrics.jsonl":
            with contextlib.suppress(OSError):
                lines = item.read_bytes().count(b"\n")
                name += f" ({lines} lines)"
        parts.append(name)
    return f"{folder} holds " + (", ".join(parts) if parts else "nothing")
