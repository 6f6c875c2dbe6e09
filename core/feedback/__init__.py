"""Human-feedback sources: Argilla 1.x / 2.x records turned into the neutral rows the templates render.

``spec`` holds the ``data.argilla`` spec block, ``records`` reads the Argilla formats into one columnar
shape, ``annotators`` applies the many-annotator policies, ``recipes`` turns records into rows and counts
what it kept and dropped (record by record), ``flat`` and ``vector`` do the same column by column on arrow
data, ``dialogue`` splits Anthropic-style dialogue pairs. Nothing here imports an ML framework; pyarrow
and numpy are imported lazily, only for parquet, jsonl and ``datasets`` folders.
"""

from __future__ import annotations

from .spec import ArgillaSpec

__all__ = ["ArgillaSpec"]
