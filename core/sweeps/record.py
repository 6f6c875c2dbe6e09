"""The end-of-sweep table: one line per trial (status, values, metric), the best marked, reasons below."""

from __future__ import annotations

from typing import Any


def _fmt(value: Any) -> str:
    if value is None:
        return "?"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def summary_table(record: dict[str, Any]) -> str:
    """The trials as aligned text."""
    keys = [p["key"] for p in record.get("params") or []]
    metric = record.get("metric") or "?"
    best = (record.get("best") or {}).get("id")
    header = ["trial", "status", *keys, metric, "steps"]
    rows = [[t["id"] + (" *" if t["id"] == best else ""), t["status"],
             *[_fmt((t.get("params") or {}).get(k)) for k in keys], _fmt((t.get("metrics") or {}).get(metric)),
             _fmt(t.get("steps"))] for t in record.get("trials") or []]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in [header, *rows]]
    for t in record.get("trials") or []:
        if t["status"] != "completed" and t.get("reason"):
            lines.append(f"{t['id']} {t['status']}: {' '.join(t['reason'].split())}")
    if best:
        lines.append(f"* best by {metric} ({record.get('mode')}): {best}")
    else:
        lines.append(f"no best trial: no completed trial has {metric}")
    for w in record.get("warnings") or []:
        lines.append(f"warning: {w}")
    return "\n".join(lines)
