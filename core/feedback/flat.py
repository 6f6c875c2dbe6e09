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

    def nonempty(self) -> Any:
        """numpy bool per response: the value is not ``is_empty`` (None, blank text, empty list/dict)."""
        return _nonempty(self.values)

    def counted(self, statuses: frozenset[str]) -> Any:
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        return np.asarray(pc.is_in(self.statuses, value_set=pa.array(sorted(statuses), pa.string())),
                          dtype=bool)

    def ignored(self, counted: Any) -> dict[str, int]:
        """Responses not counted, per status."""
        import numpy as np
        import pyarrow as pa

        left = self.statuses.filter(pa.array(~counted)) if not counted.all() else None
        if left is None or len(left) == 0:
            return {}
        names, counts = np.unique(np.asarray(left.to_pylist(), dtype=object), return_counts=True)
        return dict(zip(names.tolist(), counts.tolist(), strict=True))


def first_values(flat: Flat, good: Any, missing: Any) -> list[Any]:
    """Per record, the value of its first response where ``good`` holds, else ``missing``."""
    import numpy as np
    import pyarrow as pa

    out = [missing] * flat.n
    index = np.flatnonzero(good)
    if len(index) == 0:
        return out
    records, first = np.unique(flat.parents[index], return_index=True)
    values = flat.values.take(pa.array(index[first])).to_pylist()
    for record, value in zip(records.tolist(), values, strict=True):
        out[record] = value
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
    flat = Flat(_parents(column), values, statuses, len(column))
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
    if f"{question}.responses.status" not in names or t.is_null(table.column(f"{question}.responses.status").type):
        statuses = pa.array(["unknown"] * len(values), pa.string())
    else:
        status = _combined(table, f"{question}.responses.status")
        flat_status = pc.list_flatten(status)
        if flat_status.null_count or not (t.is_string(flat_status.type) or t.is_null(flat_status.type)):
            return None
        flat_status = flat_status.cast(pa.string())
        status_parents = _parents(status)
        status_counts = np.bincount(status_parents, minlength=n)
        starts = np.cumsum(counts) - counts
        status_starts = np.cumsum(status_counts) - status_counts
        position = np.arange(len(values)) - starts[parents]
        has = status_counts[parents] > 0
        take = np.where(has, status_starts[parents] + position, 0)
        picked = flat_status.take(pa.array(take)) if len(flat_status) else pa.nulls(len(values), pa.string())
        statuses = pc.if_else(pa.array(has), picked, pa.scalar("unknown"))
    return Flat(parents, values, statuses, n)
