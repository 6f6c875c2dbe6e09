"""What a spec says about where a backend runs: its interpreter and timeout (``backend_options.<name>``).

``python`` and ``timeout`` belong to the execution layer; a backend's own options are the rest
(``native_options``).
"""

from __future__ import annotations

import os
from typing import Any

RUNNER_KEYS = ("python", "timeout")  # backend_options keys the core reads; backends never see them


def native_options(spec: Any, name: str) -> dict[str, Any]:
    """``backend_options.<name>`` without the keys that belong to the execution layer (python, timeout)."""
    return {k: v for k, v in spec.backend_options.get(name, {}).items() if k not in RUNNER_KEYS}


def interpreter_for(spec: Any, name: str) -> str | None:
    """The Python interpreter a backend should run in: ``backend_options.<name>.python`` (relative to the spec
    file) or ``$TUNEBRIDGE_<NAME>_PYTHON``; None for this one. ``spec`` may be None (no spec: environment only)."""
    from_spec = spec.backend_options.get(name, {}).get("python") if spec is not None else None
    if from_spec:
        return str(spec.resolve_path(from_spec)) if os.sep in from_spec or from_spec.startswith(".") else from_spec
    return os.environ.get(f"TUNEBRIDGE_{name.upper()}_PYTHON") or None


def timeout_for(spec: Any, name: str) -> float | None:
    """Seconds a backend's process may run: ``backend_options.<name>.timeout`` or $TUNEBRIDGE_WORKER_TIMEOUT;
    None for no limit."""
    written = spec.backend_options.get(name, {}).get("timeout") if spec is not None else None
    value = written or os.environ.get("TUNEBRIDGE_WORKER_TIMEOUT")
    if not value:
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = float("nan")
    if not seconds > 0:
        from ..errors import SpecError

        field = f"backend_options.{name}.timeout" if written else "TUNEBRIDGE_WORKER_TIMEOUT"
        raise SpecError([(field, f"{value!r} is not a number of seconds above 0")], spec.source if spec else None)
    return seconds
