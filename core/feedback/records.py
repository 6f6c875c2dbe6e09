"""Reading Argilla data into one columnar shape, whatever its version or export.

- ``v1``: an Argilla 1.x ``FeedbackDataset`` in its Hugging Face format (``format_as("datasets")`` /
  ``push_to_huggingface``): each field a column; each question a column holding a list of
  ``{user_id, value, status}``; plus ``<q>-suggestion`` and ``<q>-suggestion-metadata`` columns.
- ``v2``: an Argilla 2.x ``to_datasets`` / ``to_hub`` table: fields and metadata as columns, and for each
  answered question ``<q>.responses``, ``<q>.responses.users``, ``<q>.responses.status`` (parallel lists).
- ``v2-disk``: a 2.x ``Dataset.to_disk`` folder: ``records.json`` (``{id, fields, metadata, responses:
  {q: [{value, user_id}]}, status}``) and ``.argilla/settings.json``. It keeps no response status, so every
  response there has the status ``unknown``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data import SUFFIXES, read_rows
from ..errors import DataError

# One answer: (user id, value, status).
Response = tuple[Any, Any, str]
V2_SUFFIXES = (".responses", ".responses.users", ".responses.status", ".suggestion", ".suggestion.score",
               ".suggestion.agent")
V2_RECORD_KEYS = ("id", "status", "_server_id")


@dataclass
class Records:
    """Annotated records, column by column: field values and each question's responses per record."""

    path: Path
    format: str
    ids: list[str]
    fields: dict[str, list[Any]]
    responses: dict[str, list[list[Response]]]
    question_types: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)

    def where(self, index: int) -> str:
        """How messages name record ``index``."""
        return f"record {self.ids[index]!r}"


def read_records(path: Path, fmt: str = "auto", limit: int | None = None) -> Records:
    """Read ``path`` (a file, a ``datasets`` folder or a 2.x ``to_disk`` folder) as Argilla records."""
    if not path.exists():
        raise DataError(f"data file not found: {path}")
    if fmt == "v2-disk" or (fmt == "auto" and path.is_dir() and (path / "records.json").is_file()):
        return _read_disk(path, limit)
    columns, n = _read_columns(path, limit)
    if fmt == "auto":
        fmt = detect_format(path, columns)
    records = _from_v2(path, columns, n) if fmt == "v2" else _from_v1(path, columns, n)
    if not records.responses:
        expected = "'<question>.responses' columns" if fmt == "v2" else "question columns with '<question>-suggestion'"
        raise DataError(f"{path}: no Argilla questions found for format {fmt} (expected {expected})")
    return records


def detect_format(path: Path, columns: dict[str, list[Any]]) -> str:
    """``v2`` when there are ``<q>.responses`` columns, ``v1`` when there are 1.x question columns."""
    if any(name.endswith(".responses") for name in columns):
        return "v2"
    if any(f"{name}-suggestion" in columns for name in columns) or any(_looks_v1(v) for v in columns.values()):
        return "v1"
    raise DataError(f"{path}: cannot tell which Argilla export this is: no '<question>.responses' columns (2.x) "
                    "and no question columns with '<question>-suggestion' (1.x); set data.argilla.format, "
                    f"columns found: {', '.join(list(columns)[:20])}")


def _looks_v1(values: list[Any]) -> bool:
    for value in values[:50]:
        if isinstance(value, list) and value:
            return isinstance(value[0], dict) and "user_id" in value[0] and "value" in value[0]
    return False


def _read_columns(path: Path, limit: int | None) -> tuple[dict[str, list[Any]], int]:
    """The table as {column: values}; parquet and ``datasets`` folders are read column-wise by pyarrow."""
    table = _arrow_table(path)
    if table is not None:
        if limit is not None:
            table = table.slice(0, limit)
        if table.num_rows == 0:
            raise DataError(f"{path}: no rows")
        return table.to_pydict(), table.num_rows
    raw = read_rows(path, limit)
    names = raw.columns
    return {name: [row.get(name) for row in raw.rows] for name in names}, len(raw.rows)


def _arrow_table(path: Path) -> Any:
    from ..data import _pyarrow

    if path.is_file() and SUFFIXES.get(path.suffix.lower()) == "parquet":
        pa = _pyarrow()
        try:
            return pa.parquet.read_table(path)
        except Exception as exc:
            raise DataError(f"{path}: cannot read parquet: {exc}") from None
    if path.is_dir() and (path / "dataset_dict.json").is_file():
        splits = json.loads((path / "dataset_dict.json").read_text())["splits"]
        return _arrow_table(path / ("train" if "train" in splits else splits[0]))
    if path.is_dir() and (path / "state.json").is_file():
        pa = _pyarrow()
        files = [path / f["filename"] for f in json.loads((path / "state.json").read_text()).get("_data_files", [])]
        try:
            tables = []
            for file in files:
                with pa.memory_map(str(file)) as source:
                    tables.append(pa.ipc.open_stream(source).read_all())
        except Exception as exc:
            raise DataError(f"{path}: cannot read arrow data: {exc}") from None
        return pa.concat_tables(tables) if tables else None
    return None


def _ids(columns: dict[str, list[Any]], keys: tuple[str, ...], n: int) -> list[str]:
    ids = [f"row {i + 1}" for i in range(n)]
    for key in reversed(keys):
        values = columns.get(key)
        if values is not None:
            ids = [str(v) if v is not None else old for v, old in zip(values, ids, strict=True)]
    return ids


def _from_v2(path: Path, columns: dict[str, list[Any]], n: int) -> Records:
    questions = [name[: -len(".responses")] for name in columns if name.endswith(".responses")]
    responses: dict[str, list[list[Response]]] = {}
    for q in questions:
        values = columns[f"{q}.responses"]
        users = columns.get(f"{q}.responses.users") or [None] * n
        statuses = columns.get(f"{q}.responses.status") or [None] * n
        per_record: list[list[Response]] = []
        for vals, us, sts in zip(values, users, statuses, strict=True):
            if not vals:
                per_record.append([])
                continue
            us = us or [None] * len(vals)
            sts = sts or ["unknown"] * len(vals)
            per_record.append(list(zip(us, vals, sts, strict=True)))
        responses[q] = per_record
    fields = {name: values for name, values in columns.items()
              if not name.endswith(V2_SUFFIXES) and name not in V2_RECORD_KEYS}
    return Records(path, "v2", _ids(columns, ("id", "_server_id"), n), fields, responses)


def _from_v1(path: Path, columns: dict[str, list[Any]], n: int) -> Records:
    questions = [name for name in columns
                 if f"{name}-suggestion" in columns or (not name.endswith("-suggestion") and _looks_v1(columns[name]))]
    responses: dict[str, list[list[Response]]] = {}
    for q in questions:
        responses[q] = [[(r.get("user_id"), r.get("value"), r.get("status") or "unknown") for r in (answers or [])]
                        for answers in columns[q]]
    skip = set(questions) | {f"{q}-suggestion" for q in questions} | {f"{q}-suggestion-metadata" for q in questions}
    fields = {name: values for name, values in columns.items()
              if name not in skip and name not in ("external_id", "metadata", "id")}
    return Records(path, "v1", _ids(columns, ("external_id", "id"), n), fields, responses)


def _read_disk(path: Path, limit: int | None) -> Records:
    file = path / "records.json"
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{file}: cannot read: {exc}") from None
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise DataError(f"{file}: expected a list of record objects (an Argilla 2.x to_disk folder)")
    data = data[:limit] if limit is not None else data
    if not data:
        raise DataError(f"{file}: no records")
    settings = _settings(path / ".argilla" / "settings.json")
    fields: dict[str, list[Any]] = {}
    names = list(settings.get("fields", [])) + sorted({k for r in data for k in (r.get("fields") or {})}
                                                       | {k for r in data for k in (r.get("metadata") or {})})
    for name in dict.fromkeys(names):
        fields[name] = [(r.get("fields") or {}).get(name, (r.get("metadata") or {}).get(name)) for r in data]
    questions = list(settings.get("questions", {})) + sorted({k for r in data for k in (r.get("responses") or {})})
    responses = {q: [[(a.get("user_id"), a.get("value"), a.get("status") or "unknown")
                      for a in ((r.get("responses") or {}).get(q) or [])] for r in data]
                 for q in dict.fromkeys(questions)}
    ids = [str(r.get("id") or r.get("_server_id") or f"row {i + 1}") for i, r in enumerate(data)]
    return Records(path, "v2-disk", ids, fields, responses, settings.get("questions", {}))


def _settings(file: Path) -> dict[str, Any]:
    """Field names and question types from ``.argilla/settings.json`` (empty when absent)."""
    if not file.is_file():
        return {}
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{file}: cannot read: {exc}") from None
    questions = {}
    for q in data.get("questions", []):
        kind = q.get("type") or (q.get("settings") or {}).get("type") or "unknown"
        questions[q["name"]] = kind
    return {"fields": [f["name"] for f in data.get("fields", []) if "name" in f], "questions": questions}
