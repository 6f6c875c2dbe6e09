"""Writing the examples a run would train on to a file (``tunebridge data``): CSV, JSON Lines or Parquet.

The examples are the final ones: rendered, split, ordered and length-checked exactly as ``train`` would use
them, so the file is what a framework's own UI (AutoTrain's CSV upload) or another tool should get. Columns
per task: sft ``prompt``, ``completion`` (or ``text``); reward ``prompt``, ``chosen``, ``rejected``; rl
``prompt`` (offline algorithms: ``prompt``, ``completion``, ``reward``). With ``split="all"`` a ``split``
column says which.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

from .errors import OutputExistsError, TunebridgeError
from .examples import Examples
from .files import WriteError

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".parquet": "parquet"}
SPLITS = ("train", "eval", "all")


def columns_for(task: str, kind: str, offline: bool) -> list[str]:
    """The columns written for ``task`` with examples of ``kind``."""
    if task == "sft":
        return ["text"] if kind == "text" else ["prompt", "completion"]
    if task in ("reward", "preference"):
        return ["prompt", "chosen", "rejected"]
    return ["prompt", "completion", "reward"] if offline else ["prompt"]


def file_format(path: Path) -> str:
    """``csv``, ``jsonl`` or ``parquet`` from the file's extension, or TunebridgeError naming the ones there are."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise TunebridgeError(f"{path}: cannot tell the format from {path.suffix or 'no extension'!r}; "
                              f"use {', '.join(FORMATS)}")
    return fmt


def rows_for(examples: Examples, columns: list[str], split: str) -> list[dict[str, Any]]:
    """The rows of ``split`` (train, eval or all) with ``columns`` (and ``split`` for all)."""
    if split not in SPLITS:
        raise TunebridgeError(f"--split {split!r}: choose one of {', '.join(SPLITS)}")
    parts = [("train", examples.train), ("eval", examples.eval)]
    if split != "all":
        parts = [p for p in parts if p[0] == split]
    rows = []
    for name, items in parts:
        for example in items:
            row = {c: example.get(c) for c in columns}
            if split == "all":
                row["split"] = name
            rows.append(row)
    return rows


def write_rows(rows: list[dict[str, Any]], columns: list[str], path: Path, overwrite: bool = False) -> Path:
    """Write ``rows`` to ``path`` in the format its extension names, through a temporary file and a rename.
    An existing file is kept unless ``overwrite``."""
    fmt = file_format(path)
    if path.is_dir():
        raise OutputExistsError(f"{path} is a folder; name a file (.csv, .jsonl or .parquet)")
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path} exists; pass --overwrite (Python: overwrite=True) to replace it")
    if not path.parent.is_dir():
        raise TunebridgeError(f"cannot write {path}: no folder {path.parent}")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        if fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            names = [*columns, "split"] if rows and "split" in rows[0] else list(columns)
            table = pa.table({c: [r.get(c) for r in rows] for c in names})
            pq.write_table(table, tmp)
        else:
            names = [*columns, "split"] if rows and "split" in rows[0] else list(columns)
            tmp.write_text(_text(rows, names, fmt), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise WriteError(path, exc) from None
    return path


def _text(rows: list[dict[str, Any]], names: list[str], fmt: str) -> str:
    if fmt == "jsonl":
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()
