"""One question's responses as flat arrow arrays (every response of every record, in record order).

Built from an arrow table without turning the response lists into Python objects: 1.x ``list<struct<user_id,
value, status>>`` columns and 2.x parallel ``<q>.responses`` / ``.responses.status`` lists. ``flat_v1`` and
``flat_v2`` return None for any shape whose row-by-row reading (records.py) they do not reproduce exactly;
the caller then reads the records row by row. pyarrow and numpy are imported here only, lazily.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Flat:
    """``values[j]``/``statuses[j]``: response j, of record ``parents[j]``; statuses as the rows read them."""

    parents: Any  # numpy int64, ascending
    values: Any  # pyarrow Array
    statuses: Any  # pyarrow string Array, no nulls
    n: int
    user_ids: Any = None  # pyarrow Array of user ids (null where none), or a function building it (2.x)

    @property
    def users(self) -> Any:
        """Each response's user id (read only under policy ``all``)."""
        if callable(self.user_ids):
            self.user_ids = self.user_ids()
        return self.user_ids

    def nonempty(self) -> Any:
        """numpy bool per response: the value is not ``is_empty`` (None, blank text, empty list/dict)."""
        return _nonempty(self.values)

    def counted(self, statuses: frozenset[str]) -> Any:
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        return np.asarray(pc.is_in(self.statuses, value_set=pa.array(sorted(statuses), pa.string())),
                          dtype=bool)



def not_counted(questions: list[tuple[Flat, Any]]) -> dict[str, int]:
    """``annotators.not_counted`` on flat arrays: (Flat, counted mask) per question read -> status -> responses.

    One annotator's answers to several questions of a record are one response; answers without a user count
    as many as the question with the most of them on that record.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    parts = []
    for q, (flat, counted) in enumerate(questions):
        left = np.flatnonzero(~counted)
        if not len(left):
            continue
        users = flat.users
        users = pa.nulls(len(left), pa.string()) if users is None else users.take(pa.array(left)).cast(pa.string())
        parts.append(pa.table({"question": np.full(len(left), q, dtype=np.int64), "record": flat.parents[left],
                               "user": users, "status": flat.statuses.take(pa.array(left)).cast(pa.string())}))
    if not parts:
        return {}
    table = pa.concat_tables(parts)
    has_user = table.column("user").is_valid()
    named = table.filter(has_user).group_by(["record", "user", "status"]).aggregate([])
    out: dict[str, int] = {}
    for status in named.column("status").to_pylist():
        out[status] = out.get(status, 0) + 1
    anonymous = table.filter(pc.invert(has_user))
    if anonymous.num_rows:
        per_question = anonymous.group_by(["question", "record", "status"]).aggregate([("user", "count_all")])
        most = per_question.group_by(["record", "status"]).aggregate([("user_count_all", "max")])
        for status, n in zip(most.column("status").to_pylist(), most.column("user_count_all_max").to_pylist(),
                             strict=True):
            out[status] = out.get(status, 0) + n
    return out


def _nonempty(values: Any) -> Any:
    import numpy as np
    import pyarrow.compute as pc
    import pyarrow.types as t

    kind = values.type
    valid = np.asarray(values.is_valid(), dtype=bool)
    if t.is_string(kind) or t.is_large_string(kind):
        blank = np.asarray(pc.fill_null(pc.equal(pc.utf8_trim_whitespace(values), ""), True), dtype=bool)
        out = valid & ~blank
        # Python's str.strip decides: check the non-ASCII texts one by one (few).
        odd = np.flatnonzero(valid & ~np.asarray(pc.fill_null(pc.string_is_ascii(values), True), dtype=bool))
        if len(odd):
            import pyarrow as pa

            for j, text in zip(odd.tolist(), values.take(pa.array(odd)).to_pylist(), strict=True):
                out[j] = bool(text.strip())
        return out
    if t.is_integer(kind) or t.is_floating(kind) or t.is_boolean(kind):
        return valid
    if t.is_list(kind) or t.is_large_list(kind):
        return valid & (np.asarray(pc.fill_null(pc.list_value_length(values), 0)) > 0)
    if t.is_struct(kind) and kind.num_fields > 0:
        return valid
    return None


def nonempty_column(table: Any, name: str) -> list[bool] | None:
    """Per row, whether column ``name`` holds a value that is not ``is_empty`` (None: a type not handled)."""
    mask = _nonempty(_combined(table, name))
    return None if mask is None else mask.tolist()


def _parents(column: Any) -> Any:
    import numpy as np
    import pyarrow.compute as pc

    return np.asarray(pc.list_parent_indices(column), dtype=np.int64)


def _is_list(kind: Any) -> bool:
    import pyarrow.types as t

    return t.is_list(kind) or t.is_large_list(kind)


def _combined(table: Any, name: str) -> Any:
    column = table.column(name)
    return column.combine_chunks() if hasattr(column, "combine_chunks") else column


def flat_v1(table: Any, question: str) -> Flat | None:
    """A 1.x question column (a list of {user_id, value, status} per record)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.types as t

    column = _combined(table, question)
    if not _is_list(column.type) or not t.is_struct(column.type.value_type):
        return None
    item = column.type.value_type
    if item.get_field_index("value") < 0 or item.get_field_index("user_id") < 0:
        return None
    responses = pc.list_flatten(column)
    if responses.null_count:
        return None
    values = pc.struct_field(responses, "value")
    if item.get_field_index("status") < 0:
        statuses = pa.array(["unknown"] * len(responses), pa.string())
    else:
        status = pc.struct_field(responses, "status")
        if not (t.is_string(status.type) or t.is_null(status.type)):
            return None
        status = status.cast(pa.string())
        unknown = pc.fill_null(pc.equal(status, ""), True)  # r.get("status") or "unknown"
        statuses = pc.if_else(unknown, pa.scalar("unknown"), status)
    users = pc.struct_field(responses, "user_id")
    flat = Flat(_parents(column), values, statuses, len(column), users)
    return flat if len(flat.parents) == len(values) else None


def flat_v2(table: Any, question: str) -> Flat | None:
    """A 2.x question: ``<q>.responses`` with its parallel ``.responses.users`` / ``.responses.status`` lists."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.types as t

    names = table.column_names
    column = _combined(table, f"{question}.responses")
    if not _is_list(column.type):
        return None
    n = len(column)
    values = pc.list_flatten(column)
    parents = _parents(column)
    if len(parents) != len(values):
        return None
    counts = np.bincount(parents, minlength=n)
    for suffix in (".responses.users", ".responses.status"):
        if f"{question}{suffix}" not in names:
            continue
        other = _combined(table, f"{question}{suffix}")
        if not (_is_list(other.type) or t.is_null(other.type)):
            return None
        if t.is_null(other.type):
            continue
        lengths = np.asarray(pc.fill_null(pc.list_value_length(other), 0))
        if np.any((counts > 0) & (lengths > 0) & (lengths != counts)):
            return None  # zip(strict=True) fails on these rows: read them row by row
    statuses = _aligned(table, f"{question}.responses.status", parents, counts, len(values))
    if statuses is False:
        return None
    if statuses is None:
        statuses = pa.array(["unknown"] * len(values), pa.string())
    else:
        if not (t.is_string(statuses.type) or t.is_null(statuses.type)):
            return None
        statuses = pc.fill_null(statuses.cast(pa.string()), "unknown")  # a record without statuses
    def users() -> Any:
        aligned = _aligned(table, f"{question}.responses.users", parents, counts, len(values))
        return aligned if aligned is not None else pa.nulls(len(values))

    return Flat(parents, values, statuses, n, users)


def _aligned(table: Any, name: str, parents: Any, counts: Any, size: int) -> Any:
    """The parallel list column ``name`` (``.responses.status`` / ``.users``) flattened in step with the
    responses: null where a record has no such list; None when the column is absent (or all null); False for a
    shape the row-by-row reading treats differently (a null inside a status list)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.types as t

    if name not in table.column_names or t.is_null(table.column(name).type):
        return None
    column = _combined(table, name)
    flat = pc.list_flatten(column)
    if name.endswith(".status") and flat.null_count:
        return False
    n = len(column)
    other_counts = np.bincount(_parents(column), minlength=n)
    starts = np.cumsum(counts) - counts
    other_starts = np.cumsum(other_counts) - other_counts
    position = np.arange(size) - starts[parents]
    has = other_counts[parents] > 0
    take = np.where(has, other_starts[parents] + position, 0)
    picked = flat.take(pa.array(take)) if len(flat) else pa.nulls(size, flat.type)
    return pc.if_else(pa.array(has), picked, pa.scalar(None, flat.type))


def value_ids(values: Any) -> Any:
    """numpy int64 per value: equal ids where the answers are equal as the annotator policies compare them
    (``annotators._key``: the value, or its JSON for lists and structs); None for a type not handled (or a NaN,
    which Python never finds equal to itself). Null is id 0."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.types as t

    kind = values.type
    valid = np.asarray(values.is_valid(), dtype=bool)
    if len(values) == 0:
        return np.zeros(0, dtype=np.int64)
    if t.is_string(kind) or t.is_large_string(kind) or t.is_integer(kind) or t.is_boolean(kind):
        codes = pc.dictionary_encode(values).indices
        return np.where(valid, np.asarray(pc.fill_null(codes, 0), dtype=np.int64) + 1, 0)
    if t.is_floating(kind):
        numbers = np.asarray(pc.fill_null(values, 0).to_numpy(zero_copy_only=False), dtype=float)
        if np.isnan(numbers).any():
            return None
        _, inverse = np.unique(numbers, return_inverse=True)
        return np.where(valid, inverse.reshape(-1) + 1, 0)
    if t.is_null(kind):
        return np.zeros(len(values), dtype=np.int64)
    if t.is_struct(kind):
        if kind.num_fields == 0:
            return None
        parts = [valid.astype(np.int64)]
        for i in range(kind.num_fields):
            child = value_ids(pc.struct_field(values, [i]))
            if child is None:
                return None
            parts.append(np.where(valid, child, 0))
        return _dense(np.stack(parts, axis=1))
    if _is_list(kind):
        lengths = np.asarray(pc.fill_null(pc.list_value_length(values), 0), dtype=np.int64)
        child = value_ids(pc.list_flatten(values))
        if child is None or len(child) != lengths.sum():
            return None
        width = int(lengths.max()) if len(lengths) else 0
        if width > 64:  # long lists: compare them as tuples
            starts = np.cumsum(lengths) - lengths
            seen: dict[Any, int] = {}
            items = child.tolist()
            keys = [(bool(v), tuple(items[s:s + n])) for v, s, n in zip(valid.tolist(), starts.tolist(),
                                                                        lengths.tolist(), strict=True)]
            return np.asarray([seen.setdefault(k, len(seen)) for k in keys], dtype=np.int64) + 1
        grid = np.full((len(values), width + 2), -1, dtype=np.int64)
        grid[:, 0] = valid
        grid[:, 1] = lengths
        rows = np.repeat(np.arange(len(values)), lengths)
        cols = np.arange(len(child)) - np.repeat(np.cumsum(lengths) - lengths, lengths) + 2
        grid[rows, cols] = child
        return _dense(grid)
    _ = pa  # pyarrow types not handled: lists of maps, unions, dictionaries ...
    return None


def _dense(grid: Any) -> Any:
    """Ids 1.. per row of the int matrix ``grid``, equal where the rows are equal (column by column: a sort of
    void rows, as ``np.unique(axis=0)`` does, is many times slower)."""
    import numpy as np

    ids = np.zeros(len(grid), dtype=np.int64)
    for column in grid.T:
        _, values = np.unique(column, return_inverse=True)
        _, ids = np.unique(ids * (int(values.max(initial=0)) + 1) + values.reshape(-1), return_inverse=True)
        ids = ids.reshape(-1)
    return ids + 1
