"""Rendered training examples: the neutral data every backend trains on, split and ordered by the core."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .data import RawData, read_rows
from .errors import DataError, SpecError
from .spec import Spec
from .templates import RowProblem, Template, render_row, resolve_template

MAX_REPORTED_PROBLEMS = 10


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

    @property
    def columns(self) -> list[str]:
        """The columns of each example."""
        return list(self.train[0]) if self.train else []


def render_all(raw: RawData, template: Template, chat: Callable[[list, bool], str] | None = None) -> list[dict]:
    """Render every row; collect every bad row, then fail once with the first few named."""
    out, problems, bad = [], [], 0
    for i, row in enumerate(raw.rows):
        try:
            out.append(render_row(row, template, chat))
        except RowProblem as exc:
            bad += 1
            if len(problems) < MAX_REPORTED_PROBLEMS:
                problems.append(f"{raw.where(i)}: {exc}")
    if bad:
        raise DataError(f"{raw.path}: {bad} of {len(raw.rows)} rows cannot be used", problems, bad)
    return out


def render_counting(raw: RawData, template: Template, report: dict[str, Any],
                    chat: Callable[[list, bool], str] | None = None) -> list[dict]:
    """Render every row; a row that cannot be rendered is dropped and counted in ``report`` (converted data)."""
    out = []
    dropped, examples = report.setdefault("dropped", {}), report.setdefault("drop_examples", [])
    for i, row in enumerate(raw.rows):
        try:
            out.append(render_row(row, template, chat))
        except RowProblem as exc:
            reason = f"template: {exc}"
            dropped[reason] = dropped.get(reason, 0) + 1
            if len(examples) < MAX_REPORTED_PROBLEMS:
                examples.append(f"{raw.where(i)}: {exc}")
    if not examples:
        report.pop("drop_examples")
    return out


def _read(spec: Spec) -> tuple[RawData, dict[str, Any] | None]:
    """The spec's rows, and the conversion report when they come from annotated (Argilla) records."""
    if spec.data.argilla is None:
        return read_rows(spec.resolve_path(spec.data.path), spec.data.limit), None
    from .feedback.source import argilla_rows

    return argilla_rows(spec)


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


def prepare_examples(spec: Spec, chat: Callable[[list, bool], str] | None = None) -> Examples:
    """Read the spec's data, render it with its template, split and order it.

    ``chat(messages, add_generation_prompt)`` renders a message list with the tokenizer's chat template;
    without it, chat data is only checked for structure.
    """
    raw, converted = _read(spec)
    try:
        template = resolve_template(spec.data, spec.data_kind, spec.template_task)
    except SpecError as exc:
        raise SpecError(exc.problems, spec.source) from None
    # Converted records and dialogue pairs (real ones hold a few unsplittable pairs) drop and count bad rows.
    counted = converted if converted is not None else ({} if template.dialogue else None)
    rendered = render_all(raw, template, chat) if counted is None else render_counting(raw, template, counted, chat)
    if not rendered:
        reasons = [f"{n} dropped: {why}" for why, n in (counted or {}).get("dropped", {}).items()]
        raise DataError(f"{raw.path}: no examples to train on", reasons + (counted or {}).get("drop_examples", []))
    train, held_out = split_and_order(rendered, spec.data.eval_fraction, spec.training.seed, spec.training.shuffle)
    kind = template.kind if template.kind != "chat" or chat is None else "prompt_completion"
    report = {
        "source": spec.data.path,
        "rows": len(raw.rows),
        "examples": len(rendered),
        "train": len(train),
        "eval": len(held_out),
        "template": spec.data_kind,
        "shuffled": spec.training.shuffle,
    }
    if converted is not None:
        report["argilla"] = converted
    elif counted is not None:
        report["dialogue"] = {"rows": len(raw.rows), "pairs": len(rendered), **counted}
        if counted.get("dropped"):
            report["warnings"] = [f"{len(raw.rows) - len(rendered)} of {len(raw.rows)} dialogue rows cannot be "
                                  "split at the last Assistant turn and were dropped (see data.dialogue in run.json)"]
    return Examples(kind=kind, train=train, eval=held_out, template=template, report=report)
