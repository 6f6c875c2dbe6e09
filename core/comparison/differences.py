"""Where backends differ: the normalised settings each one really used, adapted defaults, settings not honoured."""

from __future__ import annotations

import json
from typing import Any

UNKNOWN = None


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def effective_settings(run: dict[str, Any]) -> dict[str, Any]:
    """The flat ``plan.effective`` dict a run.json holds (empty when the backend did not report one)."""
    plan = run.get("plan") if isinstance(run.get("plan"), dict) else {}
    effective = plan.get("effective") if isinstance(plan.get("effective"), dict) else {}
    return dict(effective)


def build_differences(runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """``runs``: backend name -> run.json of each completed backend.

    Returns ``settings`` (one row per normalised setting whose value is not the same on every backend, with
    each backend's value, null when a backend did not report it), ``adapted`` (per backend: the spec defaults it
    changed, from run.json ``differences``), ``not_honoured`` (per backend: run.json ``unhonoured``) and
    ``reported_by`` (the backends that reported their effective settings at all).
    """
    effective = {name: effective_settings(run) for name, run in runs.items()}
    reported = [name for name, eff in effective.items() if eff]
    keys: list[str] = []
    for name in reported:
        keys += [k for k in effective[name] if k not in keys]
    settings = []
    if len(reported) > 1:
        for key in keys:
            values = {name: effective[name].get(key, UNKNOWN) for name in reported}
            first = next(iter(values.values()))
            if not all(_same(v, first) for v in values.values()):
                settings.append({"setting": key, "values": values})
    adapted = {name: [d for d in run.get("differences") or [] if isinstance(d, dict)] for name, run in runs.items()}
    not_honoured = {name: [str(u) for u in run.get("unhonoured") or []] for name, run in runs.items()}
    return {
        "settings": settings,
        "adapted": {k: v for k, v in adapted.items() if v},
        "not_honoured": {k: v for k, v in not_honoured.items() if v},
        "reported_by": reported,
    }
