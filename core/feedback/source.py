"""The ``data.argilla`` source: read Argilla records and convert them into rows the templates render."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..data import ColumnData, RawData
from ..errors import DataError
from .live import is_live, read_live
from .recipes import RowNeeds, convert
from .records import read_records

if TYPE_CHECKING:
    from ..spec import Spec


def argilla_rows(spec: Spec) -> tuple[RawData, dict[str, Any]]:
    """Rows converted from the spec's Argilla data (``data.limit``: first N records) and the conversion report.

    ``data.path`` is an export file or folder, or ``argilla://WORKSPACE/DATASET`` on a live server. Each
    row's location names its record (and annotator, under policy ``all``), so later errors point at it.
    """
    block, limit = spec.data.argilla, spec.data.limit
    assert block is not None
    if is_live(spec.data.path):
        if block.format not in ("auto", "server"):
            raise DataError(f"{spec.data.path}: data.argilla.format {block.format!r} is for files; "
                            "a live server's dataset is read as format 'server'")
        key = block.api_key.get_secret_value() if block.api_key else None
        records = read_live(spec.data.path, block.api_url, key, limit)
    elif block.format == "server":
        raise DataError(f"{spec.data.path}: format 'server' needs data.path argilla://WORKSPACE/DATASET")
    else:
        records = read_records(spec.resolve_path(spec.data.path), block.format, limit)
    conversion = convert(records, block, row_needs(spec))
    report = conversion.report
    if conversion.drop_examples:
        report["drop_examples"] = conversion.drop_examples
    if conversion.columns is not None:  # converted column by column: the rows stay columns for the templates
        return ColumnData(records.path, conversion.columns, conversion.locations), report
    return RawData(records.path, conversion.rows, conversion.locations), report


def row_needs(spec: Spec) -> RowNeeds:
    """What the spec's task and template need of each converted row (a template the spec gets wrong needs
    nothing here: rendering says what is wrong with it)."""
    from ..errors import SpecError
    from ..templates import completion_column, nonempty_groups, resolve_template

    try:
        template = resolve_template(spec.data, spec.data_kind, spec.template_task)
    except SpecError:
        return RowNeeds(spec.pair_task)
    return RowNeeds(spec.pair_task, tuple(nonempty_groups(template)), completion_column(template) or "completion")
