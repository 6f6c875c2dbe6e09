"""Many annotators: which responses count, and how several answers to one question become one (or many).

Policies:
- ``first``: the first counted response, in the order the export stores them.
- ``majority``: the most common answer; a tie for the top is dropped (counted).
- ``unanimous``: the answer only when every counted response agrees; otherwise dropped (counted).
- ``all``: one example per annotator (see ``annotator_units``).
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from .records import Response

MISSING = object()


class Drop(Exception):
    """This record (or annotator unit) makes no example; ``reason`` is the counted reason."""

    def __init__(self, reason: str, detail: str = ""):
        self.reason = reason
        self.detail = detail or reason
        super().__init__(self.detail)


def is_empty(value: Any) -> bool:
    """None, an empty or whitespace-only string, or an empty list/dict."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    return isinstance(value, list | dict) and not value


def _key(value: Any) -> Any:
    if isinstance(value, list | dict):
        return json.dumps(value, sort_keys=True, default=str)
    return value


def counted(responses: list[Response], statuses: frozenset[str]) -> list[Response]:
    """The responses whose status counts."""
    return [response for response in responses if response[2] in statuses]


def not_counted(by_question: list[list[list[Response]]], statuses: frozenset[str]) -> Counter:
    """The annotator responses whose status does not count, per status.

    ``by_question``: for each question read, each record's answers. One annotator's answers to several
    questions of a record are one response (Argilla keeps one response per user and record); answers without
    a user count as many as the question with the most of them on that record.
    """
    out: Counter = Counter()
    for answers in zip(*by_question, strict=True):
        named: set[tuple[Any, str]] = set()
        anonymous: Counter = Counter()
        for responses in answers:
            here: Counter = Counter()
            for user, _, status in responses:
                if status in statuses:
                    continue
                if user is None:
                    here[status] += 1
                else:
                    named.add((user, status))
            for status, n in here.items():
                anonymous[status] = max(anonymous[status], n)
        out.update(status for _, status in named)
        out.update(anonymous)
    return out


def aggregate(question: str, responses: list[Response], policy: str) -> Any:
    """One value from the counted, non-empty ``responses`` (MISSING when there are none). Raises Drop."""
    values = [value for _, value, _ in responses if not is_empty(value)]
    if not values:
        return MISSING
    if policy == "first" or len(values) == 1:
        return values[0]
    keys = [_key(v) for v in values]
    if policy == "unanimous":
        if len(set(keys)) > 1:
            raise Drop(f"annotators disagree ({question})", f"{len(values)} annotators disagree on {question!r}")
        return values[0]
    # majority
    top = Counter(keys).most_common(2)
    if len(top) > 1 and top[0][1] == top[1][1]:
        raise Drop(f"no majority ({question})", f"no majority answer to {question!r} ({len(values)} annotators)")
    return values[keys.index(top[0][0])]


def annotator_units(responses_by_question: list[list[Response]]) -> list[Any]:
    """The annotators (user ids, in first-seen order) who answered any of the given questions."""
    users: dict[Any, None] = {}
    for responses in responses_by_question:
        for user, value, _ in responses:
            if not is_empty(value):
                users.setdefault(user, None)
    return list(users)


def value_of(responses: list[Response], user: Any) -> Any:
    """The value ``user`` gave among ``responses`` (MISSING when none)."""
    for u, value, _ in responses:
        if u == user and not is_empty(value):
            return value
    return MISSING
