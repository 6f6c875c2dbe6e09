"""The comparison report: ``report.md`` (+ ``plots/*.png``) and a self-contained ``report.html``.

Both are rendered from ``comparison.json`` and the runs' ``metrics.jsonl`` (``tunebridge report DIR`` does it
again). The HTML loads nothing: styles are inline and the plots are base64 ``data:`` URIs. Plots need
matplotlib (``pip install 'tunebridge[report]'``); without it the report has the tables and says so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..comparison.record import eval_cells, eval_headers, summary_rows
from ..errors import TunebridgeError
from ..files import WriteError, write_atomic


class ReportError(TunebridgeError):
    """A folder holds no comparison to report on."""


@dataclass
class Table:
    """A titled table of plain strings."""

    title: str
    header: list[str]
    rows: list[list[str]]
    note: str = ""


@dataclass
class Document:
    """What both renderings show, in order."""

    title: str
    facts: list[tuple[str, str]]
    tables: list[Table] = field(default_factory=list)
    plots: list[Any] = field(default_factory=list)
    plot_note: str = ""
    differences: list[Table] = field(default_factory=list)
    results_title: str = "Results"
    details_title: str = "Backends"  # the heading of the tables after the first ("" for none)


def load_record(out: str | Path) -> dict[str, Any]:
    """sweep.json of a sweep folder or comparison.json of a compare folder, or ReportError."""
    if (Path(out) / "sweep.json").is_file() and not (Path(out) / "comparison.json").is_file():
        return load_sweep(out)
    return load_comparison(out)


def load_sweep(out: str | Path) -> dict[str, Any]:
    """sweep.json of a sweep folder, or ReportError."""
    path = Path(out) / "sweep.json"
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ReportError(f"cannot read {path}: {exc}") from None
    if not isinstance(record, dict) or not isinstance(record.get("trials"), list) or "spec" not in record:
        raise ReportError(f"{path} is not a tunebridge sweep (no `spec` / `trials`)")
    return record


def is_sweep(record: dict[str, Any]) -> bool:
    """Whether ``record`` is a sweep.json (else a comparison.json)."""
    return record.get("kind") == "sweep" or ("trials" in record and "backends" not in record)


def load_comparison(out: str | Path) -> dict[str, Any]:
    """comparison.json of a compare folder, or ReportError."""
    path = Path(out) / "comparison.json"
    if not path.is_file():
        raise ReportError(f"{out} holds no comparison.json or sweep.json (make one with `tunebridge compare SPEC "
                          f"--backends ... --output {out}` or `tunebridge sweep SPEC --param ... --output {out}`)")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ReportError(f"cannot read {path}: {exc}") from None
    if not isinstance(record, dict) or not isinstance(record.get("backends"), list) or "spec" not in record:
        raise ReportError(f"{path} is not a tunebridge comparison (no `spec` / `backends`)")
    return record


def _s(value: Any, digits: int = 4) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None or value == "":
        return "?"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) >= 1e4 or abs(value) < 1e-3 else f"{value:.{digits}f}"
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return str(value)


def _percent(value: Any) -> str:
    return f"{value * 100:g} %" if isinstance(value, int | float) else "?"


def _backend_table(b: dict[str, Any], task: str) -> Table:
    e = b.get("eval")
    rows = [
        ["status", b.get("status", "?") + (f": {b['reason']}" if b.get("reason") else "")],
        ["run folder", _s(b.get("run_dir"))],
        ["algorithm", _s(b.get("algorithm"))],
        ["optimizer steps", _s(b.get("steps"))],
        ["effective batch size", _s(b.get("effective_batch_size"))],
        ["examples seen", _s(b.get("examples_seen"))],
        ["tokens seen", _s(b.get("tokens_seen"))],
        ["wall time (s)", _s(b.get("wall_time_s"), 2)],
        ["peak memory (MB)", _s(b.get("peak_memory_mb"), 1)],
        ["training loss, last logged", _s(b.get("train_loss_final"))],
        ["train_loss (backend's average)", _s(b.get("train_loss"))],
        ["eval_loss (backend's own)", _s(b.get("backend_eval_loss"))],
    ]
    if task == "rl":
        rows.append(["mean reward, last logged", _s(b.get("reward_mean_final"))])
    if task in ("reward", "preference"):
        rows.append(["accuracy, last logged", _s(b.get("accuracy_final"))])
    for name, cell in zip(eval_headers(task), eval_cells(task, e), strict=True):
        rows.append([f"neutral {name}", cell])
    if b.get("eval_error"):
        rows.append(["neutral evaluation", f"not computed: {b['eval_error']}"])
    rows.append(["model format", _s(b.get("model_format"))])
    versions = ", ".join(f"{k} {v}" for k, v in (b.get("versions") or {}).items() if v)
    rows.append(["versions", versions or "?"])
    for w in b.get("warnings") or []:
        rows.append(["warning", str(w)])
    return Table(f"Backend: {b.get('name', '?')}", ["", "value"], rows)


def _difference_tables(record: dict[str, Any]) -> list[Table]:
    d = record.get("differences") or {}
    tables = []
    completed = [b["name"] for b in record["backends"] if b.get("status") == "completed"]
    settings = d.get("settings") or []
    reported = d.get("reported_by") or []
    if settings:
        names = [n for n in completed if n in reported] or reported
        rows = [[s["setting"], *[_s(s["values"].get(n)) for n in names]] for s in settings]
        tables.append(Table("Settings that differ between backends", ["setting", *names], rows,
                            "Normalised settings each backend really used (run.json `plan.effective`); only those "
                            "that are not the same everywhere. `?`: the backend did not report it."))
    else:
        why = ("every backend that reported its effective settings used the same ones" if len(reported) > 1 else
               "fewer than two completed backends reported their effective settings (run.json `plan.effective`)")
        tables.append(Table("Settings that differ between backends", ["setting"], [], f"None listed: {why}."))
    adapted = [[name, _s(a.get("setting")), _s(a.get("default")), _s(a.get("used")), _s(a.get("why"))]
               for name, items in (d.get("adapted") or {}).items() for a in items]
    tables.append(Table("Defaults a backend adapted", ["backend", "setting", "default", "used", "why"], adapted,
                        "" if adapted else "None."))
    unhonoured = [[name, item] for name, items in (d.get("not_honoured") or {}).items() for item in items]
    tables.append(Table("Settings not honoured", ["backend", "setting"], unhonoured, "" if unhonoured else "None."))
    return tables


def build_document(out: Path, record: dict[str, Any], draw_plots: bool = True) -> Document:
    """The report's content, independent of the format."""
    spec = record["spec"]
    task = spec["task"]
    ev = record.get("eval") or {}
    held = ("the spec's own split (data.eval_fraction)" if ev.get("held_out_by") == "spec"
            else "compare (the spec has no split, so compare held out this share, seeded)")
    model = spec.get("model") or {}
    facts = [
        ("spec", _s(record.get("spec_source") or spec.get("name"))),
        ("task", task),
        ("base model", ("builtin " + model["builtin"]) if model.get("builtin") else _s(model.get("path"))),
        ("held-out examples", f"{_s(ev.get('examples'))} ({_percent(ev.get('fraction'))} of the data), held out by "
                              f"{held}; in {ev.get('file', 'eval.jsonl')}"),
        ("backends", ", ".join(f"{b['name']} ({b['status']})" for b in record["backends"])),
        ("exit status", "0: every backend completed" if record.get("all_completed") else
         "1: not every backend completed"),
    ]
    sched = record.get("scheduler") or {}
    if sched.get("kind") == "ray":
        facts.append(("scheduler", f"Ray {_s(sched.get('ray_version'))} at {_s(sched.get('address'))}: one task per "
                                   "backend (compare --ray)"))
    facts += [("warning", str(w)) for w in record.get("warnings") or []]
    if record.get("baseline_error"):
        facts.append(("baseline", f"not computed: {record['baseline_error']}"))
    header, rows = summary_rows(record)
    doc = Document(f"tunebridge compare: {spec.get('name') or task}", facts)
    doc.tables.append(Table("Summary", header, rows, "Training loss: the last logged step. Eval: tunebridge's neutral "
                            "evaluation of each saved model on the same held-out examples (docs/compare.md)."))
    doc.tables += [_backend_table(b, task) for b in record["backends"]]
    doc.differences = _difference_tables(record)
    if draw_plots:
        attach_plots(doc, out, record, "draw")
    return doc


def attach_plots(doc: Document, out: Path, record: dict[str, Any], drawer: str) -> None:
    """``doc.plots`` from ``report.plots.<drawer>`` (matplotlib, imported only here), or a note without it."""
    from . import plots

    try:
        doc.plots = getattr(plots, drawer)(out, record)
    except ImportError:
        doc.plot_note = "No plots: matplotlib is not installed (pip install 'tunebridge[report]')."


def write_record_with_report(out: Path, filename: str, record: dict[str, Any]) -> None:
    """``out/filename`` (comparison.json, sweep.json), then the report: a report that cannot be drawn never
    loses the record (its error is added to the record, which is written again)."""
    from ..files import write_json

    write_json(out / filename, record)
    try:
        render_report(out, record)
    except OSError as exc:
        raise WriteError(exc.filename or out, exc, f"{out / filename} (complete)") from None
    except Exception as exc:
        record["report_error"] = f"{type(exc).__name__}: {exc}"
        write_json(out / filename, record)
        raise


def render_report(out: str | Path, record: dict[str, Any] | None = None) -> tuple[Path, Path]:
    """Write ``report.md`` (+ ``plots/``) and ``report.html`` in ``out`` (a compare or a sweep folder); returns
    their paths."""
    from .htmlpage import to_html
    from .markdown import to_markdown

    out = Path(out)
    record = record if record is not None else load_record(out)
    if is_sweep(record):
        from .sweep import build_sweep_document

        doc = build_sweep_document(out, record)
    else:
        doc = build_document(out, record)
    plots_dir = out / "plots"
    try:
        if doc.plots:
            plots_dir.mkdir(exist_ok=True)
            for plot in doc.plots:
                (plots_dir / f"{plot.name}.png").write_bytes(plot.png)
    except OSError as exc:
        raise WriteError(exc.filename or plots_dir, exc) from None
    md, html = out / "report.md", out / "report.html"
    write_atomic(md, to_markdown(doc))
    write_atomic(html, to_html(doc))
    return md, html


__all__ = ["ReportError", "build_document", "is_sweep", "load_comparison", "load_record", "load_sweep",
           "render_report"]
