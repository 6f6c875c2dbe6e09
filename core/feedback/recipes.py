"""Recipes: annotated records -> rows for the templates, with a count of what was kept and dropped, and why.

Every recipe fills the row columns named in ``columns`` (each from a field or from the answer to a
question, falling back along the list), then adds its own:

- ``sft``: nothing more (the template renders the columns, e.g. instruction/context/response).
- ``prompts``: ``reward`` (a float) when ``reward`` names a RatingQuestion.
- ``edited-vs-original``: ``chosen`` = the edit, ``rejected`` = the original, only where they differ; for task
  ``rl`` two rated samples instead (the original, then the edit, each with its ``reward``), the answer in the
  column the template's completion reads.
- ``ranking``: ``chosen``/``rejected`` from the ranked response fields (best vs each worse, best vs worst, all).
- ``rating``: the same from one RatingQuestion per response field; the higher rating is chosen, ties make no pair.
- ``label``: the LabelQuestion names the better of two response fields; the other is rejected.

A unit whose template columns are all empty (or all the columns of a part the template needs, such as the
completion) makes no row: ``no submitted response (q)`` when a question would have filled them, else
``empty field (f)``, the same names the other recipes use.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ..errors import DataError
from .annotators import MISSING, Drop, aggregate, annotator_units, counted, is_empty, not_counted, value_of
from .records import Records
from .spec import ArgillaSpec

MAX_DROP_EXAMPLES = 10
# What each recipe needs a question to hold, and the Argilla question type that holds it.
KINDS = {"text": "text", "ranking": "ranking", "label": "label_selection", "rating": "rating"}


@dataclass(frozen=True)
class RowNeeds:
    """What the spec needs of each converted row: its task, and which row columns must not all be empty."""

    task: str  # the spec's task as its data sees it: sft, reward (preference too) or rl
    nonempty: tuple[tuple[str, ...], ...] = ()  # templates.nonempty_groups, in row-column names
    answer: str = "completion"  # edited-vs-original for rl: the column the template's completion reads


@dataclass
class Conversion:
    """Rows made from records, where each came from, and the report (kept / dropped per reason).

    Converted column by column (feedback.vector), the rows are in ``columns`` and ``rows`` is empty.
    """

    rows: list[dict[str, Any]]
    locations: list[str]
    report: dict[str, Any]
    drop_examples: list[str] = field(default_factory=list)
    columns: dict[str, list[Any]] | None = None  # the rows column by column, when converted column by column

    def drop(self, reason: str, where: str, detail: str) -> None:
        """Count a unit (record, or record x annotator) that made no example."""
        dropped = self.report["dropped"]
        dropped[reason] = dropped.get(reason, 0) + 1
        if len(self.drop_examples) < MAX_DROP_EXAMPLES:
            self.drop_examples.append(f"{where}: {detail}")


class _Recipe:
    """Resolves names against the records and builds the rows of one recipe."""

    def __init__(self, records: Records, spec: ArgillaSpec, columnwise: bool = True, needs: RowNeeds | None = None):
        self.records, self.spec = records, spec
        self.needs = needs or RowNeeds(spec.tasks[0])
        # edited-vs-original for rl: two rated samples per edit instead of a pair
        self.rated = spec.recipe == "edited-vs-original" and self.needs.task == "rl"
        # the groups of ``columns`` that must not all be empty (groups naming other columns are the template's)
        self.nonempty = [g for g in self.needs.nonempty if g and set(g) <= set(spec.columns)]
        self.statuses = frozenset(spec.statuses)
        self.ignored: Counter = Counter()
        self.skipped_pairs: Counter = Counter()
        self.sources: dict[str, Counter] = {column: Counter() for column in spec.columns}
        self.last_sources: list[tuple[str, str]] = []
        self._question_set = set(self.questions)
        self._sources: list[tuple[str, list[tuple[str, Any, Any]]]] | None = None
        # Arrow data: each question's responses as flat arrays (feedback.flat), for the column-wise conversion
        # (feedback.vector); None: record by record, from ``kept``.
        self.flat = self._flat_questions() if columnwise else None
        self._check_names()
        self.kept: dict[str, list[list[Any]]] = {}
        if self.flat is not None:
            from .flat import not_counted as flat_not_counted

            for q in self.questions:
                flat, nonempty = self.flat[q]
                self.flat[q] = (flat, nonempty, flat.counted(self.statuses))
            self.ignored.update(flat_not_counted([(self.flat[q][0], self.flat[q][2]) for q in self.questions]))
        else:
            self.kept = {q: [counted(r, self.statuses) for r in records.responses[q]] for q in self.questions}
            self.ignored.update(not_counted([records.responses[q] for q in self.questions], self.statuses))
        self._check_answered()

    def _flat_questions(self) -> dict[str, Any] | None:
        """question -> (Flat, non-empty mask) when every question read has a flat form."""
        if self.records.flat is None:
            return None
        out = {}
        for q in self.questions:
            try:
                flat = self.records.flat[q]
            except Exception:  # an arrow shape the flat reading does not know: read row by row
                return None
            nonempty = flat.nonempty() if flat is not None else None
            if nonempty is None:
                return None
            out[q] = (flat, nonempty)
        return out

    # -- names and types ---------------------------------------------------------------------------
    @property
    def questions(self) -> list[str]:
        """Every question the recipe reads, in spec order."""
        names = [s for sources in self.spec.columns.values() for s in _as_list(sources)
                 if s in self.records.responses]
        names += [q for q, _ in self._typed_questions()]
        return list(dict.fromkeys(names))

    def _typed_questions(self) -> list[tuple[str, str]]:
        s = self.spec
        pairs = {"edited-vs-original": [(s.edited, "text")], "ranking": [(s.question, "ranking")],
                 "label": [(s.question, "label")], "rating": [(q, "rating") for q in (s.ratings or {}).values()],
                 "prompts": [(s.reward, "rating")] if s.reward else [], "sft": []}[s.recipe]
        return [(q, kind) for q, kind in pairs if q is not None]

    def _fields_needed(self) -> list[tuple[str, str]]:
        s = self.spec
        if s.recipe == "edited-vs-original":
            return [(s.original or "", "original")]
        if s.recipe == "rating":
            return [(f, "ratings") for f in (s.ratings or {})]
        if s.recipe in ("ranking", "label") and s.candidates is not None:
            return [(f, "candidates") for f in s.candidate_map.values()]
        return []

    def _check_names(self) -> None:
        r, problems = self.records, []
        fields, questions = r.fields, r.responses
        for column, sources in self.spec.columns.items():
            for name in _as_list(sources):
                if name not in fields and name not in questions:
                    problems.append(f"columns.{column}: no field or question {name!r}")
        for name, key in self._fields_needed():
            if name not in fields:
                hint = " (it is a question; give a field)" if name in questions else ""
                problems.append(f"{key}: no field {name!r}{hint}")
        for name, kind in self._typed_questions():
            if name not in questions:
                hint = " (it is a field; give a question)" if name in fields else ""
                problems.append(f"{_key_of(self.spec, name)}: no question {name!r}{hint}")
            else:
                wrong = self._wrong_type(name, kind)
                if wrong:
                    problems.append(f"{_key_of(self.spec, name)}: {wrong}")
        if problems:
            gone = " (a 2.x export has no column for a question nobody answered)" if r.format == "v2" else ""
            problems.append(f"fields: {', '.join(fields) or '-'}; questions: {', '.join(questions) or '-'}{gone}")
            raise DataError(f"{r.path}: data.argilla (recipe {self.spec.recipe}) does not fit the {r.format} data",
                            problems)

    def _wrong_type(self, question: str, kind: str) -> str:
        declared = self.records.question_types.get(question)
        if declared and declared != "unknown" and declared != KINDS[kind]:
            return f"question {question!r} is a {declared} question; recipe {self.spec.recipe} needs a {KINDS[kind]}"
        if self.flat is not None:
            flat, nonempty = self.flat[question][:2]
            index = nonempty.nonzero()[0]
            value = flat.values[int(index[0])].as_py() if len(index) else MISSING
        else:
            value = next((v for answers in self.records.responses[question] for _, v, _ in answers
                          if not is_empty(v)), MISSING)
        if value is MISSING:
            return ""
        ok = {"text": isinstance(value, str), "label": isinstance(value, str),
              "rating": isinstance(value, int | float) and not isinstance(value, bool),
              "ranking": isinstance(value, list | dict)}[kind]
        if ok:
            return ""
        return (f"question {question!r} holds {type(value).__name__} answers like {value!r:.60}; recipe "
                f"{self.spec.recipe} needs a {KINDS[kind]} question")

    def _check_answered(self) -> None:
        for question, _ in self._typed_questions():
            answered = bool(self.flat[question][2].any()) if self.flat is not None else any(self.kept[question])
            if not answered:
                total = (Counter(self.flat[question][0].statuses.to_pylist()) if self.flat is not None else
                         Counter(st for answers in self.records.responses[question] for _, _, st in answers))
                found = ", ".join(f"{n} {st}" for st, n in total.items()) or "none at all"
                raise DataError(
                    f"{self.records.path}: question {question!r} has no response with status "
                    f"{' or '.join(sorted(self.statuses))} in {len(self.records)} records (responses found: {found})",
                    [f"data.argilla.statuses: {sorted(self.statuses)} says which responses count"
                     + ("; a 2.x to_disk folder keeps no status: add 'unknown'" if "unknown" in total else "")])

    # -- values ------------------------------------------------------------------------------------
    def answer(self, question: str, i: int, user: Any) -> Any:
        """The answer to ``question`` on record ``i``: the policy's, or ``user``'s under policy all."""
        if user is not None:
            return value_of(self.kept[question][i], user)
        policy = self.spec.annotators if self.spec.annotators != "all" else "first"  # "all" with nobody: no answer
        return aggregate(question, self.kept[question][i], policy)

    def needed(self, question: str, i: int, user: Any) -> Any:
        """Like ``answer`` but a missing answer drops the unit."""
        value = self.answer(question, i, user)
        if value is MISSING:
            status = "/".join(sorted(self.statuses))
            raise Drop(f"no {status} response ({question})", f"no {status} response to {question!r}")
        return value

    def columns(self, i: int, user: Any) -> dict[str, Any]:
        """The ``columns`` of one row, each from the first source that has a value ('' when none has).

        Which source served each column is kept in ``last_sources`` (counted once the unit makes rows).
        """
        row: dict[str, Any] = {}
        self.last_sources = []
        if self._sources is None:
            self._sources = [(column, [self._source(name) for name in _as_list(sources)])
                             for column, sources in self.spec.columns.items()]
        for column, sources in self._sources:
            row[column] = ""
            for name, values, ok in sources:
                if values is None:  # a question read row by row
                    value = self.answer(name, i, user)
                    if value is MISSING or is_empty(value):
                        continue
                else:
                    if not ok[i]:
                        continue
                    value = values[i]
                row[column] = value
                self.last_sources.append((column, name))
                break
        if self.nonempty:
            served = {column for column, _ in self.last_sources}
            for group in self.nonempty:
                if not served.intersection(group):
                    raise Drop(*self.empty_reason(group))
        return row

    def empty_reason(self, group: tuple[str, ...]) -> tuple[str, str]:
        """(reason, detail) for a unit whose columns ``group`` all came out empty: the questions that would
        have filled them had no counted answer (``needed``'s reason), else their fields are empty."""
        sources = [name for column in group for name in _as_list(self.spec.columns[column])]
        questions = list(dict.fromkeys(n for n in sources if n in self._question_set))
        fields = list(dict.fromkeys(n for n in sources if n not in self._question_set))
        if questions:
            status = "/".join(sorted(self.statuses))
            detail = f"no {status} response to {_either(questions)}"
            if fields:
                detail += f", and {_fields_empty(fields)}"
            return f"no {status} response ({', '.join(questions)})", detail
        return f"empty field ({', '.join(fields)})", _fields_empty(fields)

    def _source(self, name: str) -> tuple[str, Any, Any]:
        """(name, values per record, whether each is a value) for a column source; values None: ask ``answer``."""
        if name in self._question_set:
            return name, None, None
        values = self.records.fields[name]
        ok = None
        if self.records.table is not None and name in self.records.table.column_names:
            from .flat import nonempty_column

            ok = nonempty_column(self.records.table, name)
        return name, values, ok if ok is not None else [not is_empty(v) for v in values]

    def field_text(self, name: str, i: int) -> str:
        """A response field's text; an empty one drops the unit."""
        value = self.records.fields[name][i]
        if is_empty(value):
            raise Drop(f"empty field ({name})", f"field {name!r} is empty")
        return value if isinstance(value, str) else str(value)

    # -- recipes -----------------------------------------------------------------------------------
    def build(self, i: int, user: Any) -> list[dict[str, Any]]:
        """The rows record ``i`` makes (for one annotator under policy all). Raises Drop."""
        recipe = self.spec.recipe
        if recipe == "sft":
            return [self.columns(i, user)]
        if recipe == "prompts":
            reward = float(self.needed(self.spec.reward, i, user)) if self.spec.reward else None
            row = self.columns(i, user)
            return [row if reward is None else {**row, "reward": reward}]
        if recipe == "edited-vs-original":
            edited = self.needed(self.spec.edited or "", i, user)
            original = self.field_text(self.spec.original or "", i)
            if edited.strip() == original.strip():
                raise Drop(f"unchanged ({self.spec.edited} == {self.spec.original})",
                           f"{self.spec.edited!r} equals the original {self.spec.original!r}")
            columns = self.columns(i, user)
            if self.rated:
                rewards = self.spec.sample_rewards
                answer = self.needs.answer
                return [{**columns, answer: original, "reward": rewards["original"]},
                        {**columns, answer: edited, "reward": rewards["edited"]}]
            return [{**columns, "chosen": edited, "rejected": original}]
        if recipe == "label":
            return self._label(i, user)
        scored = self._ranked(i, user) if recipe == "ranking" else self._rated(i, user)
        return self._pairs(i, scored, user)

    def _label(self, i: int, user: Any) -> list[dict[str, Any]]:
        question, mapping = self.spec.question or "", self.spec.candidate_map
        label = self.needed(question, i, user)
        if label not in mapping:
            raise Drop(f"label names no candidate ({question})",
                       f"label {label!r} of {question!r} is none of {', '.join(mapping)}")
        chosen = mapping[label]
        rejected = next(f for f in mapping.values() if f != chosen)
        pair = self._pair(i, chosen, rejected)
        return [{**self.columns(i, user), **pair}]

    def _ranked(self, i: int, user: Any) -> list[tuple[str, float]]:
        question = self.spec.question or ""
        ranking = _ranking(self.needed(question, i, user), question)
        mapping = self.spec.candidate_map
        scored = []
        for value, rank in ranking:
            name = mapping.get(value, value if not mapping else None)
            if name is None or name not in self.records.fields:
                raise Drop(f"unknown candidate ({question})",
                           f"{question!r} ranks {value!r}, which is no response field"
                           + (" in candidates" if mapping else ""))
            scored.append((name, -float(rank)))
        return scored

    def _rated(self, i: int, user: Any) -> list[tuple[str, float]]:
        scored = []
        for name, question in (self.spec.ratings or {}).items():
            value = self.answer(question, i, user)
            if value is not MISSING:
                scored.append((name, float(value)))
        if len(scored) < 2:
            raise Drop("fewer than two rated responses", "fewer than two of the responses have a counted rating")
        return scored

    def _pairs(self, i: int, scored: list[tuple[str, float]], user: Any) -> list[dict[str, Any]]:
        scores = sorted({s for _, s in scored}, reverse=True)
        if len(scores) < 2:
            raise Drop("tie", "every response has the same rank or rating")
        how = self.spec.pairs
        best = [n for n, s in scored if s == scores[0]]
        if how == "best-vs-worst":
            pairs = [(c, r) for c in best for r in (n for n, s in scored if s == scores[-1])]
        elif how == "best-vs-each":
            pairs = [(c, r) for c in best for r, s in scored if s < scores[0]]
        else:
            pairs = [(c, r) for c, sc in scored for r, sr in scored if sc > sr]
        made, skipped = [], []
        for chosen, rejected in pairs:
            try:
                made.append(self._pair(i, chosen, rejected))
            except Drop as drop:
                skipped.append(drop)
        if not made:
            raise skipped[0]
        for drop in skipped:  # pairs not made in a record that made others
            self.skipped_pairs[drop.reason] += 1
        columns = self.columns(i, user)
        return [{**columns, **pair} for pair in made]

    def _pair(self, i: int, chosen: str, rejected: str) -> dict[str, str]:
        chosen_text, rejected_text = self.field_text(chosen, i), self.field_text(rejected, i)
        if chosen_text.strip() == rejected_text.strip():
            raise Drop("identical responses", f"responses {chosen!r} and {rejected!r} are identical")
        return {"chosen": chosen_text, "rejected": rejected_text}


def convert(records: Records, spec: ArgillaSpec, needs: RowNeeds | None = None) -> Conversion:
    """Turn ``records`` into rows with the spec's recipe and annotator policy; report kept and dropped.

    ``needs``: the spec's task and the row columns its template needs (default: the recipe's first task, none).
    Arrow data goes column by column (feedback.vector); other data, and arrow shapes that the column-wise
    conversion does not reproduce exactly, record by record here. Both give the same rows and report.
    """
    recipe = _Recipe(records, spec, needs=needs)
    if recipe.flat is not None:
        from .vector import Unsupported, convert_columns

        try:
            return convert_columns(recipe)
        except Unsupported:
            recipe = _Recipe(records, spec, columnwise=False, needs=needs)
    out = empty_conversion(records, spec)
    unit_questions = [q for q, _ in recipe._typed_questions()] or recipe.questions
    per_annotator = spec.annotators == "all"
    used = 0
    for i in range(len(records)):
        where = records.where(i)
        users = annotator_units([recipe.kept[q][i] for q in unit_questions]) if per_annotator else []
        made = False
        for user in users or [None]:
            label = f"{where} annotator {user}" if user is not None else where
            try:
                rows = recipe.build(i, user)
            except Drop as drop:
                out.drop(drop.reason, label, drop.detail)
                continue
            out.rows += rows
            out.locations += [label] * len(rows)
            for column, name in recipe.last_sources:
                recipe.sources[column][name] += 1
            made = made or bool(rows)
        used += made
    sources = {c: dict(n) for c, n in recipe.sources.items() if n and len(_as_list(spec.columns[c])) > 1}
    return finish_conversion(out, records, spec, used, len(out.rows), recipe.ignored, recipe.skipped_pairs, sources)


def empty_conversion(records: Records, spec: ArgillaSpec) -> Conversion:
    """A conversion of ``records`` with no rows yet: the report's header and an empty drop count."""
    report: dict[str, Any] = {"format": records.format, "recipe": spec.recipe, "annotators": spec.annotators,
                              "statuses": list(spec.statuses), "records": len(records), "dropped": {}}
    return Conversion([], [], report)


def finish_conversion(out: Conversion, records: Records, spec: ArgillaSpec, used: int, rows: int,
                      ignored: Counter, skipped: Counter, sources: dict[str, dict[str, int]]) -> Conversion:
    """Close the report (records used, rows, responses not counted, pairs skipped, sources); no row at all
    is a DataError giving the counts per reason and the first dropped records."""
    report = out.report
    report["records_used"] = used
    report["rows"] = rows
    report["ignored_responses"] = dict(sorted(ignored.items()))
    if skipped:
        report["skipped_pairs"] = dict(skipped)
    if sources:
        report["sources"] = sources
    if not rows:
        reasons = [f"{n} dropped: {reason}" for reason, n in report["dropped"].items()]
        raise DataError(f"{records.path}: the {spec.recipe} recipe made no examples from {len(records)} records",
                        reasons + out.drop_examples)
    return out


def _as_list(sources: str | list[str]) -> list[str]:
    return [sources] if isinstance(sources, str) else list(sources)


def _either(names: list[str]) -> str:
    quoted = [repr(n) for n in names]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"


def _fields_empty(names: list[str]) -> str:
    if len(names) == 1:
        return f"field {names[0]!r} is empty"
    return f"fields {', '.join(map(repr, names[:-1]))} and {names[-1]!r} are empty"


def _key_of(spec: ArgillaSpec, name: str) -> str:
    for key in ("edited", "question", "reward"):
        if getattr(spec, key) == name:
            return key
    return f"ratings.{next((f for f, q in (spec.ratings or {}).items() if q == name), name)}"


def _ranking(value: Any, question: str) -> list[tuple[Any, float]]:
    """(candidate, rank) pairs, best first, from any stored form of a RankingQuestion answer.

    1.x: ``[{"value": v, "rank": r}, ...]`` or, through ``datasets``, ``{"value": [...], "rank": [...]}``;
    2.x: a list of candidates, best first (the export keeps no ranks).
    """
    if isinstance(value, dict) and "value" in value:
        ranks = value.get("rank") or [None] * len(value["value"])
        items = list(zip(value["value"], ranks, strict=False))
    elif isinstance(value, list) and all(isinstance(v, dict) for v in value):
        items = [(v.get("value"), v.get("rank")) for v in value]
    elif isinstance(value, list):
        items = [(v, None) for v in value]
    else:
        raise Drop(f"not a ranking ({question})", f"{question!r} holds {value!r:.60}, not a ranking")
    out = [(v, float(r) if r is not None else float(pos + 1)) for pos, (v, r) in enumerate(items)]
    return sorted(out, key=lambda item: item[1])
