"""The ``data.argilla`` source: read Argilla records and convert them into rows the templates render."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..data import RawData
from .recipes import convert
from .records import read_records
from .spec import ArgillaSpec


def argilla_rows(path: Path, spec: ArgillaSpec, limit: int | None = None) -> tuple[RawData, dict[str, Any]]:
    """Rows converted from the Argilla data at ``path`` (``limit``: first N records) and the conversion report.

    Each row's location names its record (and annotator, under policy ``all``), so later errors point at it.
    """
    records = read_records(path, spec.format, limit)
    conversion = convert(records, spec)
    report = conversion.report
    if conversion.drop_examples:
        report["drop_examples"] = conversion.drop_examples
    return RawData(path, conversion.rows, conversion.locations), report
