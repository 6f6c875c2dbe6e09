"""A small in-memory search engine for argilla-server 2.8, for tunebridge's tests only.

Elasticsearch and OpenSearch cannot be installed on the test machines. argilla-server looks its search
engine up by name (``ARGILLA_SEARCH_ENGINE``) in ``SearchEngine.registered_classes``, so this module
registers one called ``memory``. It remembers which records each dataset holds, in insertion order, and
answers a search with all of them (offset/limit applied). Queries, filters, sorting, similarity search
and metrics are NOT implemented: they return everything or nothing. Only the database-backed paths the
tests use (datasets, settings, records, responses, users, workspaces, record listing) run real server code.
It runs inside the server's interpreter, never inside tunebridge.
"""

from __future__ import annotations

from typing import Any

from argilla_server.search_engine.base import SearchEngine, SearchResponseItem, SearchResponses, TermsMetrics

_RECORDS: dict[Any, dict[Any, None]] = {}  # dataset id -> record ids (per server process)


@SearchEngine.register(engine_name="memory")
class MemorySearchEngine(SearchEngine):
    """Keeps record ids per dataset; every search returns them all."""

    @classmethod
    async def new_instance(cls) -> MemorySearchEngine:
        return cls()

    async def close(self) -> None:
        return None

    async def ping(self) -> bool:
        return True

    async def info(self) -> dict:
        return {"distribution": "memory (tunebridge tests)", "version": "0"}

    async def create_index(self, dataset: Any) -> None:
        _RECORDS.setdefault(dataset.id, {})

    async def delete_index(self, dataset: Any) -> None:
        _RECORDS.pop(dataset.id, None)

    async def configure_metadata_property(self, dataset: Any, metadata_property: Any) -> None:
        return None

    async def index_records(self, dataset: Any, records: Any) -> None:
        ids = _RECORDS.setdefault(dataset.id, {})
        for record in records:
            ids[record.id] = None

    async def partial_record_update(self, record: Any, **update: Any) -> None:
        return None

    async def delete_records(self, dataset: Any, records: Any) -> None:
        ids = _RECORDS.get(dataset.id, {})
        for record in records:
            ids.pop(record.id, None)

    async def update_record_response(self, response: Any) -> None:
        return None

    async def delete_record_response(self, response: Any) -> None:
        return None

    async def update_record_suggestion(self, suggestion: Any) -> None:
        return None

    async def delete_record_suggestion(self, suggestion: Any) -> None:
        return None

    async def get_dataset_progress(self, dataset: Any) -> dict:
        return {"total": len(_RECORDS.get(dataset.id, {}))}

    async def get_dataset_user_progress(self, dataset: Any, user: Any) -> dict:
        return {"total": 0}

    async def search(self, dataset: Any, query: Any = None, filter: Any = None, sort: Any = None,  # noqa: A002
                     offset: int = 0, limit: int = 100, **_: Any) -> SearchResponses:
        ids = list(_RECORDS.get(dataset.id, {}))
        page = ids[offset: offset + limit]
        return SearchResponses(items=[SearchResponseItem(record_id=i, score=None) for i in page], total=len(ids))

    async def compute_metrics_for(self, metadata_property: Any) -> Any:
        return TermsMetrics(total=0)

    async def similarity_search(self, dataset: Any, vector_settings: Any, **_: Any) -> SearchResponses:
        return SearchResponses(items=[], total=0)
