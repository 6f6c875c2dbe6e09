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
from collections.abc import Callable, Iterator, Mapping
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


class Lazy(Mapping):
    """A read-only mapping whose values are built on first access (only the columns a recipe reads)."""

    def __init__(self, names: list[str], build: Callable[[str], Any]):
        self._names = list(dict.fromkeys(names))
        self._build = build
        self._cache: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        if name not in self._cache:
            if name not in self._names:
                raise KeyError(name)
            self._cache[name] = self._build(name)
        return self._cache[name]

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


class Columns(Lazy):
    """A table's columns as Python lists, converted from arrow only when read."""

    def __init__(self, table: Any = None, rows: dict[str, list[Any]] | None = None):
        self._table = table
        if table is not None:
            super().__init__(table.column_names, lambda name: table.column(name).to_pylist())
            self.num_rows = table.num_rows
        else:
            rows = rows or {}
            super().__init__(list(rows), rows.__getitem__)
            self.num_rows = len(next(iter(rows.values()), []))


    def holds_responses(self, name: str) -> bool:
        """Whether column ``name`` holds 1.x response lists ({user_id, value, status}); arrow: from the schema."""
        if self._table is None:
            return _looks_v1(self[name])
        kind = self._table.schema.field(name).type
        item = kind if hasattr(kind, "get_field_index") else getattr(kind, "value_type", None)  # struct of lists
        return item is not None and hasattr(item, "get_field_index") and item.get_field_index("user_id") >= 0 \
            and item.get_field_index("value") >= 0


@dataclass
class Records:
    """Annotated records, column by column: field values and each question's responses per record.

    ``fields`` and ``responses`` are mappings that build a column when it is first read.
    """

    path: Path
    format: str
    ids: list[str]
    fields: Mapping[str, list[Any]]
    responses: Mapping[str, list[list[Response]]]
    question_types: dict[str, str] = field(default_factory=dict)
    # Each question's responses as flat arrow arrays (feedback.flat), None where only row by row reads them.
    flat: Mapping[str, Any] | None = None
    table: Any = None  # the arrow table the fields are columns of, when there is one

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
    columns = _read_columns(path, limit)
    n = columns.num_rows
    if fmt == "auto":
        fmt = detect_format(path, columns)
    records = _from_v2(path, columns, n) if fmt == "v2" else _from_v1(path, columns, n)
    if not records.responses:
        expected = "'<question>.responses' columns" if fmt == "v2" else "question columns with '<question>-suggestion'"
        raise DataError(f"{path}: no Argilla questions found for format {fmt} (expected {expected})")
    return records


def detect_format(path: Path, columns: Columns) -> str:
    """``v2`` when there are ``<q>.responses`` columns, ``v1`` when there are 1.x question columns."""
    if any(name.endswith(".responses") for name in columns):
        return "v2"
    if any(f"{name}-suggestion" in columns for name in columns) or any(map(columns.holds_responses, columns)):
        return "v1"
    raise DataError(f"{path}: cannot tell which Argilla export this is: no '<question>.responses' columns (2.x) "
                    "and no question columns with '<question>-suggestion' (1.x); set data.argilla.format, "
                    f"columns found: {', '.join(list(columns)[:20])}")


def _looks_v1(values: list[Any]) -> bool:
    for value in values[:50]:
        if isinstance(value, dict):  # `datasets`' Sequence({...}) as Python: {user_id: [...], value: [...], ...}
            return "user_id" in value and "value" in value
        if isinstance(value, list) and value:
            return isinstance(value[0], dict) and "user_id" in value[0] and "value" in value[0]
    return False


def _answer_list(answers: Any) -> list[dict[str, Any]]:
    """1.x answers as a list of {user_id, value, status}, also from the column-wise dict form."""
    if not answers:
        return []
    if isinstance(answers, dict):
        keys = list(answers)
        return [dict(zip(keys, values, strict=False)) for values in zip(*answers.values(), strict=False)]
    return answers


def _read_columns(path: Path, limit: int | None) -> Columns:
    """The table's columns; parquet and ``datasets`` folders stay arrow until a column is read."""
    table = _arrow_table(path)
    if table is not None:
        if limit is not None:
            table = table.slice(0, limit)
        if table.num_rows == 0:
            raise DataError(f"{path}: no rows")
        return Columns(table)
    raw = read_rows(path, limit)
    return Columns(rows={name: [row.get(name) for row in raw.rows] for name in raw.columns})


def _arrow_table(path: Path) -> Any:
    from ..data import _pyarrow

    if path.is_file() and SUFFIXES.get(path.suffix.lower()) == "parquet":
        pa = _pyarrow()
        try:
            return pa.parquet.read_table(path)
        except Exception as exc:
            raise DataError(f"{path}: cannot read parquet: {exc}") from None
    if path.is_file() and SUFFIXES.get(path.suffix.lower()) == "jsonl":
        return _arrow_jsonl(path)
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


def _arrow_jsonl(path: Path) -> Any:
    """A .jsonl file through pyarrow's (threaded) reader; None, so that the plain reader names the bad line,
    when pyarrow is missing or cannot read it (bad JSON, a column whose type changes)."""
    try:
        import pyarrow.json as pajson
    except ImportError:
        return None
    try:
        table = pajson.read_json(path, read_options=pajson.ReadOptions(block_size=1 << 24))
    except Exception:
        return None
    # pyarrow turns ISO-date-like strings into timestamps; such text must stay text: use the plain reader.
    return None if any(_has_time(f.type) for f in table.schema) else table


def _has_time(kind: Any) -> bool:
    import pyarrow.types as t

    if t.is_timestamp(kind) or t.is_date(kind) or t.is_time(kind):
        return True
    if t.is_struct(kind):
        return any(_has_time(kind.field(i).type) for i in range(kind.num_fields))
    child = getattr(kind, "value_type", None)
    return child is not None and _has_time(child)


def _ids(columns: Columns, keys: tuple[str, ...], n: int) -> list[str]:
    """Each record's id: the first of ``keys`` that it has, else its row number."""
    table = columns._table
    if table is not None:  # the usual case: the first key is a text column without nulls
        import pyarrow.types as t

        present = [key for key in keys if key in columns]
        if present:
            column = table.column(present[0])
            if (t.is_string(column.type) or t.is_large_string(column.type)) and column.null_count == 0:
                return column.to_pylist()
    ids = [f"row {i + 1}" for i in range(n)]
    for key in reversed(keys):
        if key in columns:
            values = columns[key]
            ids = [str(v) if v is not None else old for v, old in zip(values, ids, strict=True)]
    return ids


def _from_v2(path: Path, columns: Columns, n: int) -> Records:
    questions = [name[: -len(".responses")] for name in columns if name.endswith(".responses")]

    def responses(q: str) -> list[list[Response]]:
        values = columns[f"{q}.responses"]
        users = columns[f"{q}.responses.users"] if f"{q}.responses.users" in columns else [None] * n
        statuses = columns[f"{q}.responses.status"] if f"{q}.responses.status" in columns else [None] * n
        per_record: list[list[Response]] = []
        for vals, us, sts in zip(values, users, statuses, strict=True):
            if not vals:
                per_record.append([])
                continue
            per_record.append(list(zip(us or [None] * len(vals), vals, sts or ["unknown"] * len(vals), strict=True)))
        return per_record

    fields = [name for name in columns if not name.endswith(V2_SUFFIXES) and name not in V2_RECORD_KEYS]
    flat = None
    if columns._table is not None:
        from .flat import flat_v2

        flat = Lazy(questions, lambda q: flat_v2(columns._table, q))
    return Records(path, "v2", _ids(columns, ("id", "_server_id"), n), Lazy(fields, columns.__getitem__),
                   Lazy(questions, responses), flat=flat, table=columns._table)


def _from_v1(path: Path, columns: Columns, n: int) -> Records:
    questions = [name for name in columns if f"{name}-suggestion" in columns
                 or (not name.endswith("-suggestion") and columns.holds_responses(name))]

    def responses(q: str) -> list[list[Response]]:
        return [[(r.get("user_id"), r.get("value"), r.get("status") or "unknown") for r in _answer_list(answers)]
                for answers in columns[q]]

    skip = set(questions) | {f"{q}-suggestion" for q in questions} | {f"{q}-suggestion-metadata" for q in questions}
    fields = [name for name in columns if name not in skip and name not in ("external_id", "metadata", "id")]
    flat = None
    if columns._table is not None:
        from .flat import flat_v1

        flat = Lazy(questions, lambda q: flat_v1(columns._table, q))
    return Records(path, "v1", _ids(columns, ("external_id", "id"), n), Lazy(fields, columns.__getitem__),
                   Lazy(questions, responses), flat=flat, table=columns._table)


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
