"""Templates: how one data row becomes a training example. The core renders; backends never re-template."""

from __future__ import annotations

import operator
import string
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from .errors import SpecError
from .spec import DataSpec

INSTRUCTION_PROMPT = "### Instruction\n{instruction}\n\n### Context\n{context}\n\n### Response:\n"
INSTRUCTION_PROMPT_NO_CONTEXT = "### Instruction\n{instruction}\n\n### Response:\n"


class RowProblem(ValueError):
    """One row cannot be rendered; the message names the field."""


@dataclass(frozen=True)
class Template:
    """A resolved template: format strings plus which placeholders may be empty or absent.

    ``kind`` is what a rendered example holds: "prompt_completion", "text", "chat" (messages, before the
    tokenizer renders them), "preference" (prompt, chosen, rejected) or "prompt_only" (prompt + raw columns).
    """

    kind: str
    prompt: str | None = None
    completion: str | None = None
    text: str | None = None
    chosen: str | None = None
    rejected: str | None = None
    optional: frozenset[str] = frozenset()
    columns: dict[str, str] | None = None
    reward: str | None = None  # column with an offline reward, added to each example as "reward"
    dialogue: bool = False  # hh-dialogue: split Anthropic-style dialogues at the last Assistant turn

    def describe(self) -> dict[str, Any]:
        """A plain-data description for run.json and the model card."""
        fields = {"kind": self.kind, "prompt": self.prompt, "completion": self.completion, "text": self.text,
                  "chosen": self.chosen, "rejected": self.rejected, "columns": self.columns or None,
                  "split": "at the last Assistant turn (hh-dialogue)" if self.dialogue else None}
        return {k: v for k, v in fields.items() if v}

    def placeholders(self) -> list[str]:
        """Placeholder names used by the format strings."""
        names: list[str] = []
        for fmt in (self.prompt, self.completion, self.text, self.chosen, self.rejected):
            if fmt:
                names += [f for _, f, _, _ in string.Formatter().parse(fmt) if f and f not in names]
        return names


def _row_column(template: Template, name: str) -> str:
    return (template.columns or {}).get(name, name)


def nonempty_groups(template: Template) -> list[tuple[str, ...]]:
    """Groups of row columns that must not all be empty for a row to be an example.

    One group per part that must not come out blank and has no text of its own (a completion ``{response}``: its
    columns all empty = an empty completion), then every column the template reads: a row whose template
    columns are all empty renders only the template's own text and is no example. Chat and hh-dialogue
    templates read whole conversations: none.
    """
    if template.dialogue or template.kind == "chat":
        return []
    required = {"text": [template.text], "preference": [template.chosen, template.rejected],
                "prompt_only": [template.prompt], "prompt_completion": [template.completion]}[template.kind]
    groups = []
    for fmt in required:
        names = _names(fmt or "")
        if names and not "".join(literal for literal, *_ in string.Formatter().parse(fmt or "")).strip():
            groups.append(tuple(dict.fromkeys(_row_column(template, n) for n in names)))
    every = tuple(dict.fromkeys(_row_column(template, n) for n in template.placeholders()))
    if every:
        groups.append(every)
    return list(dict.fromkeys(groups))


def completion_column(template: Template) -> str | None:
    """The row column a prompt_completion template's completion reads, when it reads exactly one."""
    names = set(_names(template.completion or "")) if template.kind == "prompt_completion" else set()
    return _row_column(template, names.pop()) if len(names) == 1 else None


def _check_not_all_empty(row: dict[str, Any], template: Template) -> None:
    """A row whose template columns are all empty (null or blank) is no example; a missing one is for ``_value``."""
    names = template.placeholders()
    for name in names:
        column = _row_column(template, name)
        if column not in row:
            if name in template.optional:
                continue
            return
        value = row[column]
        if value is not None and not (isinstance(value, str) and not value.strip()):
            return
    if names:
        columns = ", ".join(dict.fromkeys(_row_column(template, n) for n in names))
        raise RowProblem(f"every template column is empty ({columns})")


def resolve_template(data: DataSpec, kind: str, task: str = "sft") -> Template:
    """Turn the spec's data block into a Template (``kind``: Spec.data_kind).

    A ``columns`` key that no placeholder uses is a SpecError.
    """
    template = _build_template(data, kind, task)
    if data.reward:
        from dataclasses import replace

        template = replace(template, reward=data.reward)
    used = set(template.placeholders()) | ({"messages"} if template.kind == "chat" else set())
    unused = sorted(set(data.columns) - used)
    if unused:
        raise SpecError([(f"data.columns.{name}", f"no placeholder {{{name}}} in the template "
                          f"(placeholders: {', '.join(sorted(used))})") for name in unused])
    return template


def _build_template(data: DataSpec, kind: str, task: str) -> Template:
    cols = dict(data.columns)
    # The Context block is dropped when the context is empty (see render_row).
    no_context = frozenset() if "context" in cols else frozenset({"context"})
    if kind == "instruction" and task == "rl":
        return Template("prompt_only", INSTRUCTION_PROMPT, optional=no_context, columns=cols)
    if kind == "instruction" and data.chosen is not None:
        return Template("preference", INSTRUCTION_PROMPT, chosen=data.chosen, rejected=data.rejected,
                        optional=no_context, columns=cols)
    if kind == "instruction":
        completion = "{response}"
        return Template("prompt_completion", INSTRUCTION_PROMPT, completion, optional=no_context, columns=cols)
    if kind == "prompt-completion":
        return Template("prompt_completion", "{prompt}", "{completion}", columns=cols)
    if kind == "inline":
        return Template("prompt_completion", data.prompt, data.completion, columns=cols)
    if kind == "text":
        return Template("text", text=data.text, columns=cols)
    if kind == "chat":
        return Template("chat", columns={"messages": cols.get("messages", data.messages)})
    if kind == "preference":  # a missing prompt column means the prompt is inside chosen/rejected
        return Template("preference", "{prompt}", chosen="{chosen}", rejected="{rejected}",
                        optional=frozenset({"prompt"}), columns=cols)
    if kind == "inline-preference":
        return Template("preference", data.prompt or "", chosen=data.chosen, rejected=data.rejected, columns=cols)
    if kind in ("prompt", "inline-prompt"):
        return Template("prompt_only", data.prompt if kind == "inline-prompt" else "{prompt}", columns=cols)
    if kind == "hh-dialogue":
        target = {"reward": "preference", "preference": "preference", "rl": "prompt_only"}.get(task,
                                                                                           "prompt_completion")
        return Template(target, chosen="{chosen}", rejected="{rejected}", columns=cols, dialogue=True)
    raise ValueError(f"unknown template kind {kind!r}")


def _value(row: dict[str, Any], name: str, template: Template) -> str:
    column = (template.columns or {}).get(name, name)
    if column not in row:
        if name in template.optional:
            return ""
        raise RowProblem(f"missing column {column!r}" + (f" (for {{{name}}})" if column != name else ""))
    value = row[column]
    if value is None:
        if name in template.optional:
            return ""
        raise RowProblem(f"column {column!r} is empty (null)")
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return str(value)
    raise RowProblem(f"column {column!r} holds a {type(value).__name__}, expected text")


@lru_cache(maxsize=256)
def _names(fmt: str) -> tuple[str, ...]:
    """The placeholder names of ``fmt``, in order (parsed once per format string)."""
    return tuple(f for _, f, _, _ in string.Formatter().parse(fmt) if f)


def _format(fmt: str, row: dict[str, Any], template: Template) -> str:
    values = {name: _value(row, name, template) for name in _names(fmt)}
    return fmt.format_map(values)


def _required(fmt: str | None, row: dict[str, Any], template: Template, label: str) -> str:
    """Render a part that must not come out empty (a completion, an answer, a prompt for RL)."""
    value = _format(fmt or "", row, template)
    if not value.strip():
        names = list(_names(fmt or ""))
        source = ", ".join(repr((template.columns or {}).get(n, n)) for n in names)
        raise RowProblem(f"{label} is empty (from {source or 'the ' + label + ' template'})")
    return value


def _prompt(row: dict[str, Any], template: Template) -> str:
    prompt_fmt = template.prompt or ""
    if prompt_fmt == INSTRUCTION_PROMPT and not _value(row, "context", template).strip():
        prompt_fmt = INSTRUCTION_PROMPT_NO_CONTEXT
    return _format(prompt_fmt, row, template)


def render_row(row: dict[str, Any], template: Template, chat: Callable[[list, bool], str] | None = None) -> dict:
    """Render one row into the example its template kind holds (see Template). Raises RowProblem."""
    if template.dialogue:
        return _render_dialogue(row, template)
    if template.kind != "chat":
        _check_not_all_empty(row, template)
    if template.kind == "text":
        return {"text": _required(template.text, row, template, "rendered text")}
    if template.kind == "chat":
        return _render_chat(row, template, chat)
    if template.kind == "preference":
        chosen = _required(template.chosen, row, template, "chosen answer")
        rejected = _required(template.rejected, row, template, "rejected answer")
        if chosen == rejected:
            raise RowProblem("chosen and rejected answers are identical")
        return {"prompt": _prompt(row, template), "chosen": chosen, "rejected": rejected}
    if template.kind == "prompt_only":
        prompt = _prompt(row, template)
        if not prompt.strip():
            raise RowProblem("prompt is empty")
        # The other columns travel with the prompt: reward functions receive them as keyword lists.
        extras = {k: v for k, v in row.items() if k not in ("prompt", "completion", "completions")}
        return {"prompt": prompt, **extras}
    completion = _required(template.completion, row, template, "completion")
    example = {"prompt": _prompt(row, template), "completion": completion}
    if template.reward:
        example["reward"] = _number(row, template.reward)
    return example


def _number(row: dict[str, Any], column: str) -> float:
    if column not in row:
        raise RowProblem(f"missing column {column!r} (data.reward)")
    value = row[column]
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise RowProblem(f"column {column!r} must hold a number, got {type(value).__name__}")
    try:
        number = float(value)
    except ValueError:
        raise RowProblem(f"column {column!r} must hold a number, got {value!r}") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise RowProblem(f"column {column!r} holds {value!r}, not a finite number")
    return number


def _render_dialogue(row: dict[str, Any], template: Template) -> dict:
    """hh-dialogue: the shared dialogue is the prompt, the last Assistant answers are the completions."""
    from .feedback.dialogue import DialogueProblem, split_last_turn, split_pair

    try:
        if template.kind == "preference":
            prompt, chosen, rejected = split_pair(_value(row, "chosen", template), _value(row, "rejected", template))
            return {"prompt": prompt, "chosen": chosen, "rejected": rejected}
        prompt, answer = split_last_turn(_value(row, "chosen", template), "chosen")
    except DialogueProblem as exc:
        raise RowProblem(str(exc)) from None
    if template.kind == "prompt_only":
        extras = {k: v for k, v in row.items() if k not in ("prompt", "completion", "completions")}
        return {**extras, "prompt": prompt}
    return {"prompt": prompt, "completion": answer}


def check_messages(messages: Any, column: str) -> list[dict[str, str]]:
    """Check a chat message list: a list of {role, content}, ending with an assistant turn."""
    if not isinstance(messages, list) or not messages:
        raise RowProblem(f"column {column!r} must be a non-empty list of messages")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise RowProblem(f"column {column!r} message {i}: expected {{role: str, content: str}}")
    if messages[-1]["role"] != "assistant":
        raise RowProblem(f"column {column!r}: the last message must be from the assistant (it is trained on)")
    if not messages[-1]["content"].strip():
        raise RowProblem(f"column {column!r}: the last (assistant) message is empty")
    return messages


def _render_chat(row: dict[str, Any], template: Template, chat: Callable[[list, bool], str] | None) -> dict:
    column = (template.columns or {})["messages"]
    if column not in row:
        raise RowProblem(f"missing column {column!r}")
    messages = check_messages(row[column], column)
    if chat is None:  # validation without a tokenizer: structure only
        return {"messages": messages}
    prompt = chat(messages[:-1], True)
    full = chat(messages, False)
    if not full.startswith(prompt):
        raise RowProblem("the tokenizer's chat template does not render the conversation as prompt + answer")
    return {"prompt": prompt, "completion": full[len(prompt):]}


# -- column by column --------------------------------------------------------------------------------------------
ABSENT = object()  # a row without the column


@lru_cache(maxsize=256)
def _pieces(fmt: str) -> tuple[str, tuple[str, ...]] | None:
    """``fmt`` as a %-format (its literal text escaped) and its placeholders in order, when it only pastes
    values in (``{name}``, no conversion, format spec, attribute or index); None otherwise."""
    out, names = [], []
    try:
        parsed = list(string.Formatter().parse(fmt))
    except ValueError:  # a malformed format string: render_row says what it says
        return None
    for literal, name, spec, conversion in parsed:
        out.append(literal.replace("%", "%%"))
        if name is None:
            continue
        if spec or conversion or not name or name.isdigit() or any(c in name for c in ".[]"):
            return None
        out.append("%s")
        names.append(name)
    return "".join(out), tuple(names)


class _ColumnRender:
    """Renders every row of a template at once; rows that may raise a RowProblem are left for ``render_row``."""

    def __init__(self, column: Callable[[str], list[Any] | None], n: int, template: Template):
        self.column, self.n, self.template = column, n, template
        self.suspect: set[int] = set()
        self._texts: dict[str, list[str]] = {}

    def texts(self, name: str) -> list[str]:
        """Placeholder ``name`` as text per row (``_value``); a row where ``_value`` raises is suspect."""
        if name in self._texts:
            return self._texts[name]
        template = self.template
        values = self.column((template.columns or {}).get(name, name))
        optional = name in template.optional
        if values is None:  # no row has the column
            if not optional:
                self.suspect.update(range(self.n))
            out = [""] * self.n
        elif set(map(type, values)) == {str}:
            out = values
        else:
            out = []
            for i, value in enumerate(values):
                if isinstance(value, str):
                    out.append(value)
                elif isinstance(value, bool | int | float):
                    out.append(str(value))
                else:
                    out.append("")
                    if not (optional and (value is None or value is ABSENT)):
                        self.suspect.add(i)
        self._texts[name] = out
        return out

    def format(self, fmt: str, rows: list[int] | None = None) -> list[str]:
        """``_format`` for every row (or the given ones)."""
        pieces = _pieces(fmt)
        assert pieces is not None
        pattern, names = pieces
        if not names:
            return [fmt.format_map({})] * (self.n if rows is None else len(rows))
        columns = [self.texts(name) for name in names]
        if rows is not None:
            columns = [[texts[i] for i in rows] for texts in columns]
        if pattern == "%s":
            return list(columns[0])
        if len(columns) == 1:
            return [pattern % (v,) for v in columns[0]]
        return [pattern % values for values in zip(*columns, strict=True)]

    def required(self, fmt: str | None) -> list[str]:
        """``_required``: a part that must not be blank; a blank one makes its row suspect."""
        out = self.format(fmt or "")
        self.blank(out)
        return out

    def all_blank(self, names: list[str]) -> None:
        """Rows where every one of ``names`` is blank are suspect (``_check_not_all_empty``)."""
        if not names:
            return
        columns = [self.texts(name) for name in names]
        if any(all(map(str.strip, texts)) for texts in columns):  # the usual case: a column never blank
            return
        for i, values in enumerate(zip(*columns, strict=True)):
            if not any(map(str.strip, values)):
                self.suspect.add(i)

    def blank(self, texts: list[str]) -> None:
        """Rows whose text is blank are suspect."""
        if not all(map(str.strip, texts)):
            self.suspect.update(i for i, text in enumerate(texts) if not text.strip())

    def prompt(self) -> list[str]:
        """``_prompt``: the instruction prompt without its Context block where the context is blank."""
        fmt = self.template.prompt or ""
        if fmt != INSTRUCTION_PROMPT:
            return self.format(fmt)
        context = self.texts("context")
        blank = [] if all(map(str.strip, context)) else [i for i, text in enumerate(context) if not text.strip()]
        out = self.format(fmt)
        if blank:
            for i, text in zip(blank, self.format(INSTRUCTION_PROMPT_NO_CONTEXT, blank), strict=True):
                out[i] = text
        return out

    def numbers(self, column: str) -> list[float]:
        """``_number``: a finite int or float; anything else makes its row suspect (render_row decides)."""
        values = self.column(column)
        if values is None:
            self.suspect.update(range(self.n))
            return [0.0] * self.n
        out = []
        for i, value in enumerate(values):
            if isinstance(value, int | float) and not isinstance(value, bool):
                number = float(value)
                if number == number and number not in (float("inf"), float("-inf")):
                    out.append(number)
                    continue
            self.suspect.add(i)
            out.append(0.0)
        return out


def render_columns(column: Callable[[str], list[Any] | None], n: int, template: Template,
                   extras: Callable[[list[str]], list[dict]] | None = None) -> tuple[list[dict], list[int]] | None:
    """Render ``n`` rows column by column: ``column(name)`` gives a column's values (``ABSENT`` where a row
    lacks it; None when no row has it). Returns the examples and the rows (ascending) that must go through
    ``render_row`` instead (it raises their RowProblem, or renders them when they are fine after all), or None
    when the template is only rendered row by row (chat, hh-dialogue, format strings with conversions or
    format specs). ``extras(prompts)`` builds prompt_only examples (the prompt, then the row's other columns)."""
    t = template
    if t.dialogue or t.kind == "chat" or (t.kind == "prompt_only" and extras is None):
        return None
    if any(fmt and _pieces(fmt) is None for fmt in (t.prompt, t.completion, t.text, t.chosen, t.rejected)):
        return None
    r = _ColumnRender(column, n, t)
    r.all_blank(t.placeholders())
    if t.kind == "text":
        examples = [{"text": text} for text in r.required(t.text)]
    elif t.kind == "preference":
        chosen, rejected = r.required(t.chosen), r.required(t.rejected)
        if any(map(operator.eq, chosen, rejected)):
            r.suspect.update(i for i, (a, b) in enumerate(zip(chosen, rejected, strict=True)) if a == b)
        examples = [{"prompt": p, "chosen": c, "rejected": j} for p, c, j in zip(r.prompt(), chosen, rejected,
                                                                                 strict=True)]
    elif t.kind == "prompt_only":
        prompts = r.prompt()
        r.blank(prompts)
        assert extras is not None
        examples = extras(prompts)
    else:
        completions = r.required(t.completion)
        prompts = r.prompt()
        if t.reward:
            examples = [{"prompt": p, "completion": c, "reward": w}
                        for p, c, w in zip(prompts, completions, r.numbers(t.reward), strict=True)]
        else:
            examples = [{"prompt": p, "completion": c} for p, c in zip(prompts, completions, strict=True)]
    return examples, sorted(r.suspect)
