"""Reading training data files into rows, with locations that error messages can name.

Nothing here imports torch or datasets; parquet and ``datasets`` folders need pyarrow, imported lazily.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import DataError

SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


@dataclass
class RawData:
    """Rows read from one data source, each with a human location ("line 7", "row 7")."""

    path: Path
    rows: list[dict[str, Any]]
    locations: list[str] = field(default_factory=list)

    def where(self, index: int) -> str:
        """Where row ``index`` (0-based) came from, for error messages."""
        loc = self.locations[index] if self.locations else f"row {index + 1}"
        return f"{self.path.name} {loc}"

    @property
    def columns(self) -> list[str]:
        """Column names seen in the rows, in first-seen order."""
        seen: dict[str, None] = {}
        for row in self.rows[:1000]:
            seen.update(dict.fromkeys(row))
        return list(seen)

    @property
    def size(self) -> int:
        """How many rows."""
        return len(self.rows)

    @property
    def table(self) -> dict[str, list[Any]] | None:
        """The rows column by column when they are held that way (every row with the same keys), else None."""
        return None

    def row(self, index: int) -> dict[str, Any]:
        """Row ``index``."""
        return self.rows[index]


class ColumnData(RawData):
    """Rows held column by column (converted Argilla records): every row has the same keys, in ``columns``
    order. ``rows`` builds the row dicts on first use; rendering reads the columns (``table``) directly."""

    def __init__(self, path: Path, columns: dict[str, list[Any]], locations: list[str]):
        self.path, self.locations = path, locations
        self._table = columns
        self._rows: list[dict[str, Any]] | None = None

    @property  # type: ignore[override]
    def rows(self) -> list[dict[str, Any]]:
        if self._rows is None:
            self._rows = row_dicts(self._table, len(self.locations))
        return self._rows

    @rows.setter
    def rows(self, value: list[dict[str, Any]]) -> None:
        self._rows = value

    @property
    def size(self) -> int:
        return len(self.locations) if self._rows is None else len(self._rows)

    @property
    def table(self) -> dict[str, list[Any]] | None:
        return self._table if self._rows is None else None

    @property
    def columns(self) -> list[str]:
        return list(self._table)

    def row(self, index: int) -> dict[str, Any]:
        if self._rows is not None:
            return self._rows[index]
        return {name: values[index] for name, values in self._table.items()}


def row_dicts(columns: dict[str, list[Any]], n: int) -> list[dict[str, Any]]:
    """``n`` row dicts from equally long column lists (keys in ``columns`` order)."""
    if not columns:
        return [{} for _ in range(n)]
    names = list(columns)
    # A comprehension with the keys as constants builds the dicts about twice as fast as dict(zip(...)).
    keys = ", ".join(f"k{i}=k{i}" for i in range(len(names)))
    items = ", ".join(f"k{i}: v{i}" for i in range(len(names)))
    values = ", ".join(f"v{i}" for i in range(len(names)))
    scope = {f"k{i}": name for i, name in enumerate(names)}
    build = eval(f"lambda columns, {keys}: [{{{items}}} for {values}, in zip(*columns)]", scope)  # noqa: S307
    return build([columns[name] for name in names])


def read_rows(path: Path, limit: int | None = None) -> RawData:
    """Read a .jsonl/.json/.csv/.parquet file or a ``datasets`` folder into rows."""
    if not path.exists():
        raise DataError(f"data file not found: {path}")
    if path.is_dir():
        data = _read_datasets_folder(path)
    else:
        kind = SUFFIXES.get(path.suffix.lower())
        if kind is None:
            raise DataError(
                f"{path}: unknown data format {path.suffix!r}; use .jsonl, .json, .csv, .parquet "
                "or a folder saved by `datasets`"
            )
        reader = {"jsonl": _read_jsonl, "json": _read_json, "csv": _read_csv, "parquet": _read_parquet}[kind]
        try:
            data = reader(path)
        except DataError:
            raise
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"{path}: cannot read: {exc}") from None
    if limit is not None:
        data.rows = data.rows[:limit]
        data.locations = data.locations[:limit]
    if not data.rows:
        raise DataError(f"{path}: no rows")
    return data


def _read_jsonl(path: Path) -> RawData:
    rows, locs, problems = [], [], []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                problems.append(f"{path.name} line {lineno}: not valid JSON ({exc.msg} at column {exc.colno})")
                continue
            if not isinstance(value, dict):
                problems.append(f"{path.name} line {lineno}: expected a JSON object, got {type(value).__name__}")
                continue
            rows.append(value)
            locs.append(f"line {lineno}")
    if problems:
        raise DataError(f"{path}: {len(problems)} unreadable line(s)", problems[:10], len(problems))
    return RawData(path, rows, locs)


def _read_json(path: Path) -> RawData:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno} column {exc.colno})") from None
    if isinstance(value, dict) and len(value) == 1 and isinstance(next(iter(value.values())), list):
        value = next(iter(value.values()))  # {"data": [...]} / {"train": [...]}
    if not isinstance(value, list):
        raise DataError(f"{path}: expected a JSON list of objects, got {type(value).__name__}")
    bad = [f"{path.name} row {i + 1}: expected an object, got {type(v).__name__}"
           for i, v in enumerate(value) if not isinstance(v, dict)]
    if bad:
        raise DataError(f"{path}: {len(bad)} row(s) are not objects", bad[:10], len(bad))
    return RawData(path, value, [f"row {i + 1}" for i in range(len(value))])


def _read_csv(path: Path) -> RawData:
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames:
            raise DataError(f"{path}: no header row")
        rows, locs = [], []
        for i, row in enumerate(reader, start=1):
            if None in row:
                raise DataError(f"{path.name} row {i} (line {reader.line_num}): more cells than header columns")
            rows.append(row)
            locs.append(f"row {i} (line {reader.line_num})")
    return RawData(path, rows, locs)


def _pyarrow():
    try:
        import pyarrow  # noqa: F401
        import pyarrow.ipc
        import pyarrow.parquet
    except ImportError:
        raise DataError("reading parquet files or `datasets` folders needs pyarrow: pip install pyarrow") from None
    return pyarrow


def _read_parquet(path: Path) -> RawData:
    pa = _pyarrow()
    try:
        table = pa.parquet.read_table(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid and friends
        raise DataError(f"{path}: cannot read parquet: {exc}") from None
    rows = table.to_pylist()
    return RawData(path, rows, [f"row {i + 1}" for i in range(len(rows))])


def _read_datasets_folder(path: Path) -> RawData:
    """A folder written by ``Dataset.save_to_disk`` (or a DatasetDict: its ``train`` split)."""
    if (path / "dataset_dict.json").is_file():
        splits = json.loads((path / "dataset_dict.json").read_text())["splits"]
        split = "train" if "train" in splits else splits[0]
        data = _read_datasets_folder(path / split)
        data.path = path
        return data
    state = path / "state.json"
    if not state.is_file():
        raise DataError(f"{path}: a folder must be one saved by `datasets` (no state.json found)")
    pa = _pyarrow()
    files = [path / f["filename"] for f in json.loads(state.read_text()).get("_data_files", [])]
    rows: list[dict[str, Any]] = []
    for file in files:
        try:
            with pa.memory_map(str(file)) as source:
                rows.extend(pa.ipc.open_stream(source).read_all().to_pylist())
        except Exception as exc:
            raise DataError(f"{file}: cannot read arrow data: {exc}") from None
    return RawData(path, rows, [f"row {i + 1}" for i in range(len(rows))])
