"""Start argilla-server 2.8 with the in-memory search engine (tunebridge tests only).

Usage: ``<server python> run_server.py PORT``. The environment (``ARGILLA_DATABASE_URL``,
``ARGILLA_REDIS_URL``, ``ARGILLA_SEARCH_ENGINE=memory``, ...) is set by the test fixture.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import memory_engine  # noqa: E402,F401  (registers the "memory" search engine)
import uvicorn  # noqa: E402

if __name__ == "__main__":
    uvicorn.run("argilla_server:app", host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
