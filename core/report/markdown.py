"""report.md: the document as GitHub-flavoured Markdown; plots are the PNG files in ``plots/`` beside it."""

from __future__ import annotations

from typing import Any


def _cell(text: str) -> str:
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", "<br>")


def _table(t: Any) -> list[str]:
    lines = [f"### {t.title}", ""] if t.title else []
    if t.rows:
        header = [h or " " for h in t.header]
        lines += ["| " + " | ".join(_cell(h) for h in header) + " |",
                  "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in t.rows]
        lines.append("")
    if t.note:
        lines += [t.note, ""]
    return lines


def to_markdown(doc: Any) -> str:
    """The whole report as Markdown."""
    lines = [f"# {doc.title}", ""]
    lines += [f"- **{k}**: {_cell(v)}" for k, v in doc.facts]
    lines.append("")
    summary, *backends = doc.tables
    lines += [f"## {doc.results_title}", ""] + _table(summary)
    lines += ["## Plots", ""]
    for plot in doc.plots:
        lines += [f"![{plot.caption}](plots/{plot.name}.png)", "", f"*{plot.caption}*", ""]
    if doc.plot_note:
        lines += [doc.plot_note, ""]
    if doc.differences:
        lines += ["## Differences", ""]
    for t in doc.differences:
        lines += _table(t)
    if doc.details_title:
        lines += [f"## {doc.details_title}", ""]
    for t in backends:
        lines += _table(t)
    return "\n".join(lines).rstrip() + "\n"
