"""report.html: one self-contained page. Inline styles, plots as base64 PNG data URIs, every text escaped."""

from __future__ import annotations

import base64
from html import escape
from typing import Any

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 72rem;
       padding: 0 1rem; color: #1f2328; line-height: 1.45; }
h1 { font-size: 1.6rem; } h2 { margin-top: 2rem; border-bottom: 1px solid #d0d7de; padding-bottom: .2rem; }
table { border-collapse: collapse; margin: .5rem 0 1rem; font-size: .92rem; }
th, td { border: 1px solid #d0d7de; padding: .3rem .6rem; text-align: left; vertical-align: top; }
th { background: #f6f8fa; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.failed td { background: #fff1f0; } tr.skipped td { background: #fffbe6; }
figure { margin: 1rem 0; } figcaption { font-size: .9rem; color: #57606a; }
img { max-width: 100%; height: auto; border: 1px solid #eaeef2; }
.note { color: #57606a; font-size: .9rem; }
dl { display: grid; grid-template-columns: max-content auto; gap: .2rem 1rem; }
dt { font-weight: 600; } dd { margin: 0; }
"""


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _table(t: Any, level: str = "h3", status_column: int | None = None) -> list[str]:
    parts = [f"<section class=\"table\"><{level}>{escape(t.title)}</{level}>"] if t.title else ["<section>"]
    if t.rows:
        parts.append("<table><thead><tr>" + "".join(f"<th>{escape(h)}</th>" for h in t.header) + "</tr></thead>"
                     "<tbody>")
        for row in t.rows:
            cls = f' class="{escape(row[status_column])}"' if status_column is not None else ""
            cells = "".join(f'<td class="num">{escape(c)}</td>' if _numeric(c) else f"<td>{escape(c)}</td>"
                            for c in row)
            parts.append(f"<tr{cls}>{cells}</tr>")
        parts.append("</tbody></table>")
    if t.note:
        parts.append(f'<p class="note">{escape(t.note)}</p>')
    parts.append("</section>")
    return parts


def to_html(doc: Any) -> str:
    """The whole report as one HTML page that needs nothing else."""
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{escape(doc.title)}</title><style>{STYLE}</style></head><body>",
             f"<h1>{escape(doc.title)}</h1>", "<dl>"]
    parts += [f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in doc.facts]
    parts.append("</dl>")
    summary, *backends = doc.tables
    parts.append(f"<h2>{escape(doc.results_title)}</h2>")
    parts += _table(summary, status_column=1)
    parts.append("<h2>Plots</h2>")
    for plot in doc.plots:
        data = base64.b64encode(plot.png).decode("ascii")
        parts.append(f'<figure><img alt="{escape(plot.caption)}" src="data:image/png;base64,{data}">'
                     f"<figcaption>{escape(plot.caption)}</figcaption></figure>")
    if doc.plot_note:
        parts.append(f'<p class="note">{escape(doc.plot_note)}</p>')
    if doc.differences:
        parts.append("<h2>Differences</h2>")
    for t in doc.differences:
        parts += _table(t)
    if doc.details_title:
        parts.append(f"<h2>{escape(doc.details_title)}</h2>")
    for t in backends:
        parts += _table(t)
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
