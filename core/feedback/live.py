"""Reading a dataset from a running Argilla 2.x server through the argilla SDK (``pip install 'tunebridge[argilla]'``).

``data.path: argilla://WORKSPACE/DATASET`` names the dataset. The server URL and API key come from the
spec (``data.argilla.api_url`` / ``api_key``) or from ``ARGILLA_API_URL`` / ``ARGILLA_API_KEY``. The key is
handed to the SDK and nowhere else: it is never part of a report, a message or anything tunebridge writes.

The records are fetched with their responses and flattened by the SDK itself (``to_list(flatten=True)``),
which is exactly the 2.x export layout, so the same code as for exports reads them.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from ..errors import DataError
from .records import Columns, Records, _from_v2

SCHEME = "argilla://"


def is_live(path: str) -> bool:
    """Whether ``data.path`` names a dataset on an Argilla server."""
    return path.startswith(SCHEME)


def parse_location(path: str) -> tuple[str | None, str]:
    """(workspace or None, dataset) from ``argilla://WORKSPACE/DATASET`` or ``argilla://DATASET``."""
    rest = path[len(SCHEME):].strip("/")
    workspace, _, dataset = rest.rpartition("/")
    if not dataset:
        raise DataError(f"{path}: name the dataset: argilla://WORKSPACE/DATASET")
    return workspace or None, dataset


def connection(api_url: str | None, api_key: str | None) -> tuple[str, str]:
    """URL and key, from the spec or else the environment; a clear error when either is missing."""
    url = api_url or os.environ.get("ARGILLA_API_URL")
    key = api_key or os.environ.get("ARGILLA_API_KEY")
    missing = [name for name, value in (("ARGILLA_API_URL (or data.argilla.api_url)", url),
                                        ("ARGILLA_API_KEY (or data.argilla.api_key)", key)) if not value]
    if missing:
        raise DataError(f"reading from an Argilla server needs {' and '.join(missing)}")
    return str(url), str(key)


def read_live(path: str, api_url: str | None, api_key: str | None, limit: int | None = None) -> Records:
    """The records of dataset ``path`` (``argilla://WORKSPACE/DATASET``) on a live server, with responses."""
    workspace, name = parse_location(path)
    url, key = connection(api_url, api_key)
    try:
        import argilla as rg
    except ImportError as exc:
        raise DataError(f"reading from an Argilla server needs the argilla SDK: pip install 'tunebridge[argilla]' "
                        f"({exc})") from None
    try:
        client = rg.Argilla(api_url=url, api_key=key, timeout=30, retries=1)
        with warnings.catch_warnings():  # "Dataset ... not found": we raise our own error below
            warnings.simplefilter("ignore")
            dataset = client.datasets(name=name, workspace=workspace)
        if dataset is None:
            where = f"workspace {workspace!r}" if workspace else "any workspace"
            raise DataError(f"{path}: no dataset {name!r} in {where} on the Argilla server at {url}")
        records = dataset.records(with_responses=True, with_suggestions=False, with_vectors=False, limit=limit)
        rows = records.to_list(flatten=True)
        types = {q.name: getattr(getattr(q, "_model", None), "type", None) or "unknown"
                 for q in dataset.settings.questions}
        answered = {f"{q}.responses" for q in types}
    except DataError:
        raise
    except Exception as exc:  # the SDK raises httpx and its own errors; never echo the key
        message = str(exc).replace(key, "***")
        raise DataError(f"{path}: cannot read from the Argilla server at {url}: "
                        f"{type(exc).__name__}: {message}") from None
    if not rows:
        raise DataError(f"{path}: the dataset has no records")
    names = list(dict.fromkeys(k for row in rows for k in row))
    # A question nobody answered yet still gets its (empty) columns: the server tells us it exists.
    names += [n for n in sorted(answered) if n not in names]
    columns = Columns(rows={n: [row.get(n) for row in rows] for n in names})
    records_out = _from_v2(Path(path), columns, len(rows))
    records_out.format = "server"
    records_out.question_types = types
    return records_out

