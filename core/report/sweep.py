"""The sweep report: a table of trials, the metric against each parameter, every trial's loss curve."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import Document, Table, _s, attach_plots


def _param_cell(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else _s(value)


def _count(value: Any) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else _s(value)


def trials_table(record: dict[str, Any]) -> Table:
    """One row per trial: id, status, each parameter, the metric, the last training loss, steps, wall time."""
    keys = [p["key"] for p in record.get("params") or []]
    metric = record.get("metric") or "?"
    best = (record.get("best") or {}).get("id")
    header = ["trial", "status", *keys, metric, "final loss", "steps", "wall s", "reason"]
    rows = []
    for t in record.get("trials") or []:
        m = t.get("metrics") or {}
        rows.append([t["id"] + (" (best)" if t["id"] == best else ""), t.get("status", "?"),
                     *[_param_cell((t.get("params") or {}).get(k)) for k in keys], _s(m.get(metric)),
                     _s(m.get("final_loss")), _s(t.get("steps")), _s(t.get("wall_time_s"), 2),
                     " ".join((t.get("reason") or "").split())[:300]])
    return Table("", header, rows, f"{metric}: the run's final metric ({record.get('mode', 'min')} is best). "
                 "Each trial is an ordinary run folder under trials/<trial>/.")


def build_sweep_document(out: Path, record: dict[str, Any], draw_plots: bool = True) -> Document:
    """The report's content for a sweep (the same renderers as a comparison)."""
    spec = record.get("spec") or {}
    trials = record.get("trials") or []
    counts: dict[str, int] = {}
    for t in trials:
        counts[t.get("status", "?")] = counts.get(t.get("status", "?"), 0) + 1
    sched = record.get("scheduler") or {}
    model = spec.get("model") or {}
    params = "; ".join(f"{p['key']} {p['kind']} {', '.join(_param_cell(v) for v in p['values'])}"
                       for p in record.get("params") or [])
    facts = [
        ("spec", _s(record.get("spec_source") or spec.get("name"))),
        ("task", _s(record.get("task") or spec.get("task"))),
        ("backend", _s(record.get("backend"))),
        ("base model", ("builtin " + model["builtin"]) if model.get("builtin") else _s(model.get("path"))),
        ("parameters", params or "?"),
        ("trials", f"{len(trials)} of {_s(record.get('trial_count'))}: "
                   + ", ".join(f"{n} {status}" for status, n in counts.items())),
        ("metric", f"{record.get('metric')} ({record.get('mode')})"),
        ("scheduler", f"Ray {_s(sched.get('ray_version'))} at {_s(sched.get('address'))}, "
                      f"{_count(sched.get('cpus'))} CPUs" if sched else "?"),
        ("status", _s(record.get("status"))),
    ]
    best = record.get("best")
    if best:
        facts.append(("best", f"{best['id']}: {', '.join(f'{k}={_param_cell(v)}' for k, v in best['params'].items())} "
                              f"({record.get('metric')} {_s((best.get('metrics') or {}).get(record.get('metric')))})"))
    else:
        facts.append(("best", "none: no completed trial has the metric"))
    facts += [("warning", str(w)) for w in record.get("warnings") or []]
    doc = Document(f"tunebridge sweep: {spec.get('name') or spec.get('task') or 'spec'}", facts,
                   results_title="Trials", details_title="")
    doc.tables.append(trials_table(record))
    if draw_plots:
        attach_plots(doc, out, record, "draw_sweep")
    return doc
