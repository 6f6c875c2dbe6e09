"""Rendered training examples: the neutral data every backend trains on, split and ordered by the core."""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .data import RawData, read_rows, row_dicts
from .errors import DataError, SpecError
from .spec import Spec
from .templates import ABSENT, RowProblem, Template, render_columns, render_row, resolve_template

MAX_REPORTED_PROBLEMS = 10
RENDER_REPORT_EVERY = 20000  # rows between two "rendering N/M rows" progress calls

# ``progress(stage, done, total)``: "reading" (done = rows read, None before), "rendering", "tokenising" ...
Preparing = Callable[[str, "int | None", "int | None"], None]


@dataclass
class Examples:
    """Rendered examples in the order every backend must read them, plus a report of how they were made."""

    kind: str  # a Template kind; "chat" becomes "prompt_completion" once a tokenizer renders it
    train: list[dict[str, Any]]
    eval: list[dict[str, Any]] = field(default_factory=list)
    template: Template | None = None
    report: dict[str, Any] = field(default_factory=dict)
    tokenizer_path: Any = None  # the tokenizer folder once the core has applied the token-length rules
    token_lengths: list[int] | None = None  # tokens each training example puts in front of the model
    tokens: Any = None  # sft: the train split under the tokenisation rule (tunebridge.tokenize.Tokenised)
    eval_tokens: Any = None  # the same for the held-out split
    # Chat data checked without a tokenizer: the rows as read (and the conversion report before rendering),
    # so that finish_examples renders them with the tokenizer's chat template without reading the data again.
    source: tuple[RawData, dict[str, Any] | None] | None = field(default=None, repr=False, compare=False)

    @property
    def columns(self) -> list[str]:
        """The columns of each example."""
        return list(self.train[0]) if self.train else []


def _rendering(progress: Preparing | None, i: int, n: int) -> None:
    if progress is not None and (i % RENDER_REPORT_EVERY == 0 or i == n):
        progress("rendering", i, n)


def _render(raw: RawData, template: Template, chat: Callable[[list, bool], str] | None,
            progress: Preparing | None) -> tuple[list[dict], list[tuple[int, RowProblem]]]:
    """Every row rendered (in order, without the bad ones) and the bad rows' problems.

    Column by column where the template allows it (templates.render_columns): only the rows that may be bad
    go through ``render_row``, which gives their exact problem. Chat and hh-dialogue templates go row by row.
    """
    n = raw.size
    fast = render_columns(_column_reader(raw), n, template, _extras_builder(raw)) if chat is None or \
        template.kind != "chat" else None
    out: list[Any]
    problems: list[tuple[int, RowProblem]] = []
    if fast is not None:
        out, suspect = fast
        for i in suspect:
            try:
                out[i] = render_row(raw.row(i), template, chat)
            except RowProblem as exc:
                out[i] = None
                problems.append((i, exc))
        if progress is not None:
            for i in range(RENDER_REPORT_EVERY, n, RENDER_REPORT_EVERY):
                _rendering(progress, i, n)
    else:
        out = []
        for i, row in enumerate(raw.rows):
            if i and progress is not None:
                _rendering(progress, i, n)
            try:
                out.append(render_row(row, template, chat))
            except RowProblem as exc:
                out.append(None)
                problems.append((i, exc))
    _rendering(progress, n, n)
    return ([e for e in out if e is not None] if problems else out), problems


def _column_reader(raw: RawData) -> Callable[[str], list | None]:
    table = raw.table
    if table is not None:
        return table.get
    rows = raw.rows

    def column(name: str) -> list | None:
        values = [row.get(name, ABSENT) for row in rows]
        return values if any(v is not ABSENT for v in values) else None

    return column


def _extras_builder(raw: RawData) -> Callable[[list[str]], list[dict]]:
    """prompt_only examples: the prompt, then the row's other columns (reward functions receive them)."""
    skipped = ("prompt", "completion", "completions")

    def build(prompts: list[str]) -> list[dict]:
        table = raw.table
        if table is not None:
            return row_dicts({"prompt": prompts, **{k: v for k, v in table.items() if k not in skipped}},
                             len(prompts))
        return [{"prompt": p, **{k: v for k, v in row.items() if k not in skipped}}
                for p, row in zip(prompts, raw.rows, strict=True)]

    return build


def render_all(raw: RawData, template: Template, chat: Callable[[list, bool], str] | None = None,
               progress: Preparing | None = None) -> list[dict]:
    """Render every row; collect every bad row, then fail once with the first few named."""
    out, problems = _render(raw, template, chat, progress)
    if problems:
        named = [f"{raw.where(i)}: {exc}" for i, exc in problems[:MAX_REPORTED_PROBLEMS]]
        raise DataError(f"{raw.path}: {len(problems)} of {raw.size} rows cannot be used", named, len(problems))
    return out


def render_counting(raw: RawData, template: Template, report: dict[str, Any],
                    chat: Callable[[list, bool], str] | None = None, progress: Preparing | None = None) -> list[dict]:
    """Render every row; a row that cannot be rendered is dropped and counted in ``report`` (converted data)."""
    out, problems = _render(raw, template, chat, progress)
    dropped, examples = report.setdefault("dropped", {}), report.setdefault("drop_examples", [])
    for i, exc in problems:
        reason = f"template: {exc}"
        dropped[reason] = dropped.get(reason, 0) + 1
        if len(examples) < MAX_REPORTED_PROBLEMS:
            examples.append(f"{raw.where(i)}: {exc}")
    if not examples:
        report.pop("drop_examples")
    return out


def _read(spec: Spec, progress: Preparing | None = None) -> tuple[RawData, dict[str, Any] | None]:
    """The spec's rows, and the conversion report when they come from annotated (Argilla) records."""
    if progress is not None:
        progress("reading", None, None)
    if spec.data.argilla is None:
        raw, converted = read_rows(spec.resolve_path(spec.data.path), spec.data.limit), None
    else:
        from .feedback.source import argilla_rows

        raw, converted = argilla_rows(spec)
    if progress is not None:
        progress("reading", raw.size, raw.size)
    return raw, converted


def split_and_order(examples: list[dict], eval_fraction: float, seed: int, shuffle: bool) -> tuple[list, list]:
    """Hold out ``eval_fraction`` of the examples (seeded), then shuffle the rest once if asked."""
    indices = list(range(len(examples)))
    n_eval = 0
    if eval_fraction > 0:
        n_eval = max(1, round(len(examples) * eval_fraction))
        if n_eval >= len(examples):
            raise DataError(
                f"data.eval_fraction={eval_fraction} leaves no training rows out of {len(examples)}"
            )
        random.Random(seed).shuffle(indices)
    eval_idx, train_idx = sorted(indices[:n_eval]), indices[n_eval:]
    train_idx.sort()
    if shuffle:
        random.Random(seed + 1).shuffle(train_idx)
    return [examples[i] for i in train_idx], [examples[i] for i in eval_idx]


def prepare_examples(spec: Spec, chat: Callable[[list, bool], str] | None = None,
                     progress: Preparing | None = None,
                     source: tuple[RawData, dict[str, Any] | None] | None = None) -> Examples:
    """Read the spec's data, render it with its template, split and order it.

    ``chat(messages, add_generation_prompt)`` renders a message list with the tokenizer's chat template;
    without it, chat data is only checked for structure (and the rows are kept in ``Examples.source``).
    ``source``: those rows, rendered again instead of reading the data a second time. ``progress(stage,
    done, total)`` hears "reading" and "rendering" as they go.
    """
    if source is None:
        raw, converted = _read(spec, progress)
    else:
        raw, converted = source[0], copy.deepcopy(source[1])
    try:
        template = resolve_template(spec.data, spec.data_kind, spec.template_task)
    except SpecError as exc:
        raise SpecError(exc.problems, spec.source) from None
    keep = (raw, copy.deepcopy(converted)) if template.kind == "chat" and chat is None else None
    # Converted records and dialogue pairs (real ones hold a few unsplittable pairs) drop and count bad rows.
    counted = converted if converted is not None else ({} if template.dialogue else None)
    rendered = (render_all(raw, template, chat, progress) if counted is None
                else render_counting(raw, template, counted, chat, progress))
    if not rendered:
        reasons = [f"{n} dropped: {why}" for why, n in (counted or {}).get("dropped", {}).items()]
        raise DataError(f"{raw.path}: no examples to train on", reasons + (counted or {}).get("drop_examples", []))
    n_rows = raw.size
    del raw  # the rows are rendered: do not hold both copies while splitting (chat rows stay in `keep`)
    train, held_out = split_and_order(rendered, spec.data.eval_fraction, spec.training.seed, spec.training.shuffle)
    kind = template.kind if template.kind != "chat" or chat is None else "prompt_completion"
    report = {
        "source": spec.data.path,
        "rows": n_rows,
        "examples": len(rendered),
        "train": len(train),
        "eval": len(held_out),
        "template": spec.data_kind,
        "shuffled": spec.training.shuffle,
    }
    if converted is not None:
        report["argilla"] = converted
    elif counted is not None:
        report["dialogue"] = {"rows": n_rows, "pairs": len(rendered), **counted}
        if counted.get("dropped"):
            report["warnings"] = [f"{n_rows - len(rendered)} of {n_rows} dialogue rows cannot be "
                                  "split at the last Assistant turn and were dropped (see data.dialogue in run.json)"]
    return Examples(kind=kind, train=train, eval=held_out, template=template, report=report, source=keep)
