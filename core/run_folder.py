"""The run folder: created, locked for the run's life, emptied only when asked (and never under a live run)."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

from .errors import OutputExistsError, TunebridgeError
from .lock import LOCK_NAME, OutputLock, check_not_in_use, holder, in_use
from .progress import note
from .resume import overwrite_note


def prepare_output_dir(output_dir: Path, overwrite: bool, protect: list[Path] | None = None,
                       keep: bool = False) -> OutputLock:
    """Create ``output_dir`` and lock it for this run (see tunebridge.lock); refuse a non-empty one unless
    ``overwrite`` (then empty it first, the lock kept, saying what of an unfinished run it deletes) or ``keep``
    (a resumed run: nothing is deleted). Returns the held lock: release it when the run ends."""
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise OutputExistsError(f"output path {output_dir} exists and is not a folder")
    if output_dir.is_dir():  # refuse before writing anything into the folder
        info = holder(output_dir)
        if info is not None:
            raise in_use(output_dir, info)
        if not keep and any(p.name != LOCK_NAME for p in output_dir.iterdir()):
            _check_overwrite(output_dir, overwrite, protect or [])
    created = not output_dir.exists()
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TunebridgeError(f"cannot create output folder {output_dir}: {exc.strerror or exc}") from None
    try:
        lock = OutputLock(output_dir).acquire()
    except BaseException:
        if created:
            _remove_quietly(output_dir)
        raise
    try:
        check_not_in_use(output_dir)
        contents = [] if keep else [p for p in output_dir.iterdir() if p.name != LOCK_NAME]
        if contents:
            _check_overwrite(output_dir, overwrite, protect or [])
            lock.deleting = overwrite_note(output_dir) or ""
            if lock.deleting:
                note(lock.deleting)
            for item in contents:
                try:
                    shutil.rmtree(item) if item.is_dir() and not item.is_symlink() else item.unlink()
                except OSError as exc:
                    raise TunebridgeError(f"cannot empty output folder {output_dir}: cannot delete {item}: "
                                          f"{exc.strerror or exc}") from None
    except BaseException:
        lock.release()
        if created:
            _remove_quietly(output_dir)
        raise
    return lock


def _remove_quietly(folder: Path) -> None:
    with contextlib.suppress(OSError):
        folder.rmdir()


def _check_overwrite(output_dir: Path, overwrite: bool, protect: list[Path]) -> None:
    if not overwrite:
        raise OutputExistsError(
            f"output folder {output_dir} is not empty; pass --overwrite (Python: overwrite=True) "
            "to replace its contents, or choose another folder"
        )
    resolved = output_dir.resolve()
    for p in protect:
        p = p.resolve()
        if p == resolved or resolved in p.parents or (p.is_dir() and p in resolved.parents):
            raise OutputExistsError(f"refusing to overwrite {output_dir}: it holds (or is inside) {p}")
    if resolved == Path.home().resolve() or resolved == Path(resolved.anchor) or resolved == Path.cwd().resolve():
        raise OutputExistsError(f"refusing to overwrite {output_dir}: choose a dedicated output folder")
