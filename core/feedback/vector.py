"""Argilla conversions column by column: every recipe and annotator policy on the flat response arrays.

``convert_columns`` gives exactly the rows, locations and report of the record-by-record conversion in
recipes.py (tests/test_argilla_equivalence.py holds it to that), but decides each step for all units (records,
or record x annotator under policy ``all``) at once with numpy and pyarrow.compute, in the order the
record-by-record code takes them, so that a unit is dropped for the same first reason. A unit's drop reason is
a code into ``_Columns.reasons``; details that name a value are only written for the few drop examples kept.

It raises ``Unsupported`` for a shape whose record-by-record reading it does not reproduce exactly (a NaN
answer, an answer without a user under policy ``all``, a 1.x ranking stored as a dict of lists, answers of a
type the recipe would reject record by record ...); the caller then converts record by record.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from .recipes import Conversion, _as_list, empty_conversion, finish_conversion

if TYPE_CHECKING:
    from .recipes import _Recipe

MAX_DROP_EXAMPLES = 10


class Unsupported(Exception):
    """This data needs the record-by-record conversion."""


def _objects(values: list[Any]) -> Any:
    """A 1-D numpy object array holding ``values`` as they are (lists stay elements)."""
    import numpy as np

    return np.fromiter(values, dtype=object, count=len(values))


def _kind(values: Any) -> str:
    import pyarrow.types as t

    kind = values.type
    if t.is_string(kind) or t.is_large_string(kind):
        return "text"
    if t.is_integer(kind) or t.is_floating(kind):
        return "number"
    if t.is_list(kind) or t.is_large_list(kind):
        return "list"
    if t.is_null(kind):
        return "null"
    return "other"


class _Columns:
    """One conversion: the units, each question's chosen response per unit, and each unit's drop code."""

    def __init__(self, recipe: _Recipe):
        import numpy as np

        self.r, self.spec, self.records = recipe, recipe.spec, recipe.records
        self.n = len(recipe.records)
        self.flat = {q: recipe.flat[q][0] for q in recipe.questions}
        self.good = {q: recipe.flat[q][2] & recipe.flat[q][1] for q in recipe.questions}
        self.policy = self.spec.annotators
        self.status = "/".join(sorted(recipe.statuses))
        self.reasons: list[tuple[str, Any]] = [("", "")]  # code -> (reason, detail: text or unit -> text)
        self._codes: dict[tuple[str, str], int] = {}
        self.user_names: list[Any] = []
        if self.policy == "all":
            self._annotator_units()
        else:
            self.unit_record = np.arange(self.n, dtype=np.int64)
            self.unit_user = np.full(self.n, -1, dtype=np.int64)
        self.nu = len(self.unit_record)
        self.code = np.zeros(self.nu, dtype=np.int64)
        self.sel: dict[str, Any] = {}
        self.agg: dict[str, tuple[Any, str, Any]] = {}  # question -> (drop mask, reason, detail)
        for q in recipe.questions:
            self._select(q)
        self._fields: dict[str, tuple[Any, Any]] = {}
        self._texts: dict[str, tuple[Any, Any]] = {}

    # -- units and answers -------------------------------------------------------------------------
    def _user_ids(self) -> dict[str, Any]:
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        names: dict[Any, None] = {}
        for q, flat in self.flat.items():
            users = flat.users
            if users is None or _kind(users) not in ("text", "null"):
                raise Unsupported(f"users of {q}")
            if _kind(users) == "text":
                names.update(dict.fromkeys(pc.unique(users.drop_null()).to_pylist()))
        self.user_names = list(names)
        value_set = pa.array(self.user_names, pa.string())
        out = {}
        for q, flat in self.flat.items():
            if _kind(flat.users) == "null":
                out[q] = np.full(len(flat.users), -1, dtype=np.int64)
                continue
            index = pc.index_in(flat.users.cast(pa.string()), value_set=value_set)
            out[q] = np.asarray(pc.fill_null(index, -1), dtype=np.int64)
        return out

    def _annotator_units(self) -> None:
        """Policy all: one unit per annotator with a counted answer to a unit question, in first-seen order
        (``annotators.annotator_units``); a record nobody answered is one unit without a user."""
        import numpy as np

        self.uid = self._user_ids()
        unit_questions = [q for q, _ in self.r._typed_questions()] or self.r.questions
        parents, questions, positions, users = [], [], [], []
        for qi, q in enumerate(unit_questions):
            good = np.flatnonzero(self.good[q])
            if np.any(self.uid[q][good] < 0):
                raise Unsupported(f"an answer to {q} without a user")
            parents.append(self.flat[q].parents[good])
            questions.append(np.full(len(good), qi, dtype=np.int64))
            positions.append(good)
            users.append(self.uid[q][good])
        p, qs, j, u = (np.concatenate(x) if x else np.zeros(0, np.int64) for x in (parents, questions, positions,
                                                                                  users))
        order = np.lexsort((j, qs, p))
        p, u = p[order], u[order]
        width = max(len(self.user_names), 1)
        _, first = np.unique(p * width + u, return_index=True)
        first.sort()
        rec, usr = p[first], u[first]
        answered = np.zeros(self.n, dtype=bool)
        answered[rec] = True
        nobody = np.flatnonzero(~answered)
        rec = np.concatenate([rec, nobody])
        usr = np.concatenate([usr, np.full(len(nobody), -1, dtype=np.int64)])
        order = np.argsort(rec, kind="stable")
        self.unit_record, self.unit_user = rec[order], usr[order]

    def _select(self, q: str) -> None:
        """``sel[q]``: per unit the response the policy answers with (-1: none); ``agg[q]``: the units whose
        answers the policy refuses (majority: a tie; unanimous: a disagreement)."""
        import numpy as np

        from .flat import value_ids

        flat, n = self.flat[q], self.n
        good = np.flatnonzero(self.good[q])
        parents = flat.parents[good]
        first = np.full(n, -1, dtype=np.int64)
        records, index = np.unique(parents, return_index=True)
        first[records] = good[index]
        if self.policy == "all":
            sel = first[self.unit_record]
            users = self.uid[q][good]
            mine = users >= 0
            width = max(len(self.user_names), 1)
            keys, index = np.unique(parents[mine] * width + users[mine], return_index=True)
            want = self.unit_user >= 0
            unit_keys = self.unit_record[want] * width + self.unit_user[want]
            at = np.minimum(np.searchsorted(keys, unit_keys), max(len(keys) - 1, 0))
            found = (keys[at] == unit_keys) if len(keys) else np.zeros(len(unit_keys), dtype=bool)
            sel[want] = np.where(found, good[mine][index[at]] if len(keys) else -1, -1)
            self.sel[q] = sel
            return
        if self.policy == "first":
            self.sel[q] = first
            return
        ids = value_ids(flat.values.take(_indices(good)))
        if ids is None:
            raise Unsupported(f"answers of {q}")
        counts = np.bincount(parents, minlength=n)
        width = int(ids.max()) + 1 if len(ids) else 1
        groups, group_first, group_counts = np.unique(parents * width + ids, return_index=True, return_counts=True)
        group_record = groups // width
        if self.policy == "unanimous":
            refused = np.bincount(group_record, minlength=n) > 1
            detail = (f"annotators disagree ({q})", lambda u, q=q, c=counts: f"{c[self.unit_record[u]]} annotators "
                      f"disagree on {q!r}")
            self.sel[q] = first
        else:  # majority
            top = np.zeros(n, dtype=np.int64)
            np.maximum.at(top, group_record, group_counts)
            at_top = group_counts == top[group_record]
            refused = np.bincount(group_record[at_top], minlength=n) > 1
            sel = np.full(n, -1, dtype=np.int64)
            winners = at_top & ~refused[group_record]
            sel[group_record[winners]] = good[group_first[winners]]
            self.sel[q] = sel
            detail = (f"no majority ({q})", lambda u, q=q, c=counts: f"no majority answer to {q!r} "
                      f"({c[self.unit_record[u]]} annotators)")
        self.agg[q] = (refused, *detail)

    # -- drops -------------------------------------------------------------------------------------
    def code_of(self, reason: str, detail: Any) -> int:
        key = (reason, detail) if isinstance(detail, str) else None
        if key is not None and key in self._codes:
            return self._codes[key]
        self.reasons.append((reason, detail))
        if key is not None:
            self._codes[key] = len(self.reasons) - 1
        return len(self.reasons) - 1

    def fail(self, mask: Any, reason: str, detail: Any) -> None:
        """Drop the units of ``mask`` still alive, for ``reason``."""
        hit = mask & (self.code == 0)
        if hit.any():
            self.code[hit] = self.code_of(reason, detail)

    def alive(self) -> Any:
        return self.code == 0

    def refused(self, q: str) -> None:
        """The policy refuses to answer ``q`` (a tie, a disagreement): drop those units (``answer`` raises)."""
        if q in self.agg:
            mask, reason, detail = self.agg[q]
            self.fail(mask[self.unit_record], reason, detail)

    def needed(self, q: str) -> Any:
        self.refused(q)
        self.fail(self.sel[q] < 0, f"no {self.status} response ({q})", f"no {self.status} response to {q!r}")
        return self.sel[q]

    def values(self, q: str, units: Any) -> Any:
        """The answers to ``q`` of ``units`` (each has one) as a pyarrow array."""
        return self.flat[q].values.take(_indices(self.sel[q][units]))

    # -- fields ------------------------------------------------------------------------------------
    def field(self, name: str) -> tuple[Any, Any]:
        """(values, non-empty) of field ``name`` per record, as numpy arrays."""
        import numpy as np

        if name not in self._fields:
            values = self.records.fields[name]
            ok = None
            table = self.records.table
            if table is not None and name in table.column_names:
                from .flat import nonempty_column

                ok = nonempty_column(table, name)
            if ok is None:
                from .annotators import is_empty

                ok = [not is_empty(v) for v in values]
            self._fields[name] = (_objects(values), np.asarray(ok, dtype=bool))
        return self._fields[name]

    def field_text(self, name: str) -> tuple[Any, Any]:
        """(text, stripped text) of field ``name`` per record (``_Recipe.field_text``; '' where empty)."""
        if name not in self._texts:
            values = self.records.fields[name]
            if set(map(type, values)) == {str}:
                text = values
            else:
                text = [v if isinstance(v, str) else "" if v is None else str(v) for v in values]
            self._texts[name] = (_objects(text), _objects(list(map(str.strip, text))))
        return self._texts[name]

    def empty_field(self, mask: Any, name: str) -> None:
        self.fail(mask, f"empty field ({name})", f"field {name!r} is empty")

    # -- the recipe's steps ------------------------------------------------------------------------
    def columns(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The row columns of each unit (``_Recipe.columns``): per column, the index of the source serving
        each unit (-1: none, the value is '') and, for the units alive at the end, the values."""
        import numpy as np

        chosen: dict[str, Any] = {}
        for column, sources in self.spec.columns.items():
            src = np.full(self.nu, -1, dtype=np.int64)
            undecided = self.alive()
            for s, name in enumerate(_as_list(sources)):
                if name in self.r._question_set:
                    if name in self.agg:  # reached, the policy refuses to answer: ``answer`` raises
                        mask, reason, detail = self.agg[name]
                        self.fail(undecided & mask[self.unit_record], reason, detail)
                        undecided &= self.alive()
                    has = undecided & (self.sel[name] >= 0)
                else:
                    has = undecided & self.field(name)[1][self.unit_record]
                src[has] = s
                undecided &= ~has
            chosen[column] = src
        for group in self.r.nonempty:  # ``_Recipe.columns``: the columns of a group all empty drop the unit
            empty = self.alive()
            for column in group:
                empty &= chosen[column] < 0
            self.fail(empty, *self.r.empty_reason(group))
        alive = np.flatnonzero(self.alive())
        values: dict[str, Any] = {}
        for column, sources in self.spec.columns.items():
            src = chosen[column][alive]
            out = np.full(len(alive), "", dtype=object)
            for s, name in enumerate(_as_list(sources)):
                at = np.flatnonzero(src == s)
                if not len(at):
                    continue
                units = alive[at]
                if name in self.r._question_set:
                    out[at] = _objects(self.values(name, units).to_pylist())
                else:
                    out[at] = self.field(name)[0][self.unit_record[units]]
            values[column] = out
        return chosen, values

    def sources(self, chosen: dict[str, Any]) -> dict[str, dict[str, int]]:
        """Which source served each column, counted once per unit that made rows, in first-seen order."""
        import numpy as np

        alive = self.alive()
        out = {}
        for column, sources in self.spec.columns.items():
            names = _as_list(sources)
            if len(names) < 2:
                continue
            src = chosen[column][alive]
            src = src[src >= 0]
            kinds, first, counts = np.unique(src, return_index=True, return_counts=True)
            order = np.argsort(first)
            counted = {names[int(kinds[i])]: int(counts[i]) for i in order}
            if counted:
                out[column] = counted
        return out

    def pair_codes(self, records: Any, chosen: Any, rejected: Any, names: list[str]) -> Any:
        """``_Recipe._pair`` for many pairs (field indexes into ``names``): 0 where the pair is made, else the
        code of the first reason it is not."""
        import numpy as np

        ok = np.stack([self.field(name)[1] for name in names]) if names else np.zeros((0, self.n), dtype=bool)
        codes = np.zeros(len(records), dtype=np.int64)
        for which in (chosen, rejected):
            empty = ~ok[which, records] & (codes == 0)
            for f in np.unique(which[empty]).tolist():
                codes[empty & (which == f)] = self.code_of(f"empty field ({names[f]})", f"field {names[f]!r} is empty")
        live = np.flatnonzero(codes == 0)
        if len(live):
            stripped = np.stack([self.field_text(name)[1] for name in names])
            same = stripped[chosen[live], records[live]] == stripped[rejected[live], records[live]]
            same_at = live[np.asarray(same, dtype=bool)]
            for c, r in set(zip(chosen[same_at].tolist(), rejected[same_at].tolist(), strict=True)):
                mask = (chosen[same_at] == c) & (rejected[same_at] == r)
                codes[same_at[mask]] = self.code_of(
                    "identical responses", f"responses {names[c]!r} and {names[r]!r} are identical")
        return codes

    def text(self, names: list[str], which: Any, records: Any) -> Any:
        import numpy as np

        if not len(which):
            return np.zeros(0, dtype=object)
        return np.stack([self.field_text(name)[0] for name in names])[which, records]


def _indices(index: Any) -> Any:
    import pyarrow as pa

    return pa.array(index, type=pa.int64())


def convert_columns(recipe: _Recipe) -> Conversion:
    """The conversion of ``recipe`` (whose records have flat response arrays), column by column."""
    import numpy as np

    c = _Columns(recipe)
    spec = c.spec
    extras: dict[str, Any] = {}
    row_unit = None  # units making one row each (None: every unit alive at the end)
    skipped: Counter = Counter()
    recipe_name = spec.recipe
    if recipe_name == "prompts" and spec.reward:
        sel = c.needed(spec.reward)
        if _kind(c.flat[spec.reward].values) != "number":
            raise Unsupported("reward answers")
        reward = np.zeros(c.nu)
        have = sel >= 0
        reward[have] = np.asarray(c.values(spec.reward, np.flatnonzero(have)).to_numpy(zero_copy_only=False),
                                  dtype=float)
        extras["reward"] = reward
    elif recipe_name == "edited-vs-original":
        edited, original = spec.edited or "", spec.original or ""
        sel = c.needed(edited)
        if _kind(c.flat[edited].values) != "text":
            raise Unsupported("edited answers")
        c.empty_field(~c.field(original)[1][c.unit_record], original)
        alive = np.flatnonzero(c.alive())
        edits = _objects(c.values(edited, alive).to_pylist())
        originals = c.field_text(original)[1][c.unit_record[alive]]
        same = np.asarray([e.strip() == o for e, o in zip(edits.tolist(), originals.tolist(), strict=True)],
                          dtype=bool)
        unchanged = np.zeros(c.nu, dtype=bool)
        unchanged[alive[same]] = True
        c.fail(unchanged, f"unchanged ({edited} == {original})", f"{edited!r} equals the original {original!r}")
        chosen_text = np.full(c.nu, None, dtype=object)
        chosen_text[alive] = edits
        originals = c.field_text(original)[0][c.unit_record]
        if recipe.rated:  # two rated samples per unit: the original, then the edit
            row_unit = np.repeat(np.arange(c.nu), 2)
            extras[recipe.needs.answer] = np.stack([originals, chosen_text], axis=1).reshape(-1)
            rewards = spec.sample_rewards
            extras["reward"] = np.tile([rewards["original"], rewards["edited"]], c.nu)
        else:
            extras["chosen"] = chosen_text
            extras["rejected"] = originals
    elif recipe_name == "label":
        question, mapping = spec.question or "", spec.candidate_map
        targets = list(mapping.values())
        if len(set(targets)) < 2:
            raise Unsupported("label candidates naming one field")
        c.needed(question)
        if _kind(c.flat[question].values) != "text":
            raise Unsupported("label answers")
        alive = np.flatnonzero(c.alive())
        labels = c.values(question, alive).to_pylist()
        known = np.asarray([label in mapping for label in labels], dtype=bool)
        for label in dict.fromkeys(label for label, k in zip(labels, known.tolist(), strict=True) if not k):
            mask = np.zeros(c.nu, dtype=bool)
            mask[alive[[x == label for x in labels]]] = True
            c.fail(mask, f"label names no candidate ({question})",
                   f"label {label!r} of {question!r} is none of {', '.join(mapping)}")
        names = list(dict.fromkeys(targets))
        chosen = np.zeros(c.nu, dtype=np.int64)
        chosen[alive[known]] = [names.index(mapping[label]) for label, k in zip(labels, known.tolist(), strict=True)
                                if k]
        rejected = np.where(chosen == 0, 1, 0)  # the other of the two fields
        live = np.flatnonzero(c.alive())
        codes = c.pair_codes(c.unit_record[live], chosen[live], rejected[live], names)
        for code in np.unique(codes[codes > 0]).tolist():
            c.code[live[codes == code]] = code
        extras["chosen"] = _fill(c.nu, c.text(names, chosen[live], c.unit_record[live]), live)
        extras["rejected"] = _fill(c.nu, c.text(names, rejected[live], c.unit_record[live]), live)
    elif recipe_name in ("ranking", "rating"):
        elements = _ranked(c) if recipe_name == "ranking" else _rated(c)
        row_unit, extras, skipped = _pairs(c, *elements)
    chosen_sources, values = c.columns()
    return _finish(c, chosen_sources, values, extras, row_unit, skipped)


def _fill(size: int, values: Any, at: Any) -> Any:
    import numpy as np

    out = np.full(size, None, dtype=object)
    out[at] = values
    return out


def _ranked(c: _Columns) -> tuple[Any, Any, Any, list[str]]:
    """``_Recipe._ranked`` for every unit: (unit, field index, score) per ranked candidate, best first."""
    import numpy as np
    import pyarrow.compute as pc
    import pyarrow.types as t

    question, mapping = c.spec.question or "", c.spec.candidate_map
    c.needed(question)
    values = c.flat[question].values
    if _kind(values) != "list":
        raise Unsupported("ranking answers")
    alive = np.flatnonzero(c.alive())
    answers = c.values(question, alive)
    items = pc.list_flatten(answers)
    lengths = np.asarray(pc.fill_null(pc.list_value_length(answers), 0), dtype=np.int64)
    unit = np.repeat(alive, lengths)
    position = np.arange(len(items)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    rank = (position + 1).astype(float)
    if t.is_struct(items.type):
        if items.null_count or items.type.get_field_index("value") < 0:
            raise Unsupported("ranking items")
        if items.type.get_field_index("rank") >= 0:
            ranks = pc.struct_field(items, "rank")
            if not (t.is_integer(ranks.type) or t.is_floating(ranks.type) or t.is_null(ranks.type)):
                raise Unsupported("ranks")
            given = np.asarray(ranks.is_valid(), dtype=bool)
            if given.any():
                numbers = np.asarray(pc.fill_null(ranks, 0).to_numpy(zero_copy_only=False), dtype=float)
                rank = np.where(given, numbers, rank)
        candidates = pc.struct_field(items, "value")
    elif t.is_struct(items.type) or _kind(items) == "list" or t.is_map(items.type):
        raise Unsupported("ranking items")
    else:
        candidates = items
    if _kind(candidates) not in ("text", "number", "null"):  # record by record: what it does with such names
        raise Unsupported("ranked candidates")
    if np.isnan(rank).any():
        raise Unsupported("NaN ranks")
    order = np.lexsort((position, rank, unit))
    unit, rank = unit[order], rank[order]
    distinct = pc.unique(candidates)
    known = distinct.to_pylist()
    which = np.asarray(pc.fill_null(pc.index_in(candidates, value_set=distinct, skip_nulls=False), 0),
                       dtype=np.int64)[order]
    names: list[str] = []
    field_of = np.full(len(known), -1, dtype=np.int64)
    for k, value in enumerate(known):
        name = mapping.get(value, value if not mapping else None)
        if name is not None and name in c.records.fields:
            if name not in names:
                names.append(name)
            field_of[k] = names.index(name)
    field = field_of[which]
    bad = field < 0
    if bad.any():  # the first candidate (best first) naming no response field drops the unit
        units, first = np.unique(unit[bad], return_index=True)
        for k in np.unique(which[bad][first]).tolist():
            mask = np.zeros(c.nu, dtype=bool)
            mask[units[which[bad][first] == k]] = True
            c.fail(mask, f"unknown candidate ({question})", f"{question!r} ranks {known[k]!r}, which is no "
                   "response field" + (" in candidates" if mapping else ""))
    return unit, field, -rank, names


def _rated(c: _Columns) -> tuple[Any, Any, Any, list[str]]:
    """``_Recipe._rated`` for every unit: (unit, field index, rating) per rated response, in ``ratings`` order."""
    import numpy as np

    units, fields, scores = [], [], []
    ratings = list((c.spec.ratings or {}).items())
    names = [name for name, _ in ratings]
    for j, (_, question) in enumerate(ratings):
        c.refused(question)
        if _kind(c.flat[question].values) != "number":
            raise Unsupported("ratings")
        have = np.flatnonzero(c.alive() & (c.sel[question] >= 0))
        units.append(have)
        fields.append(np.full(len(have), j, dtype=np.int64))
        scores.append(np.asarray(c.values(question, have).to_numpy(zero_copy_only=False), dtype=float))
    unit, field, score = np.concatenate(units), np.concatenate(fields), np.concatenate(scores)
    if np.isnan(score).any():
        raise Unsupported("NaN ratings")
    counts = np.bincount(unit[c.alive()[unit]], minlength=c.nu)
    c.fail(counts < 2, "fewer than two rated responses", "fewer than two of the responses have a counted rating")
    order = np.lexsort((field, unit))
    return unit[order], field[order], score[order], names


def _pairs(c: _Columns, unit: Any, field: Any, score: Any, names: list[str]) -> tuple[Any, dict[str, Any], Counter]:
    """``_Recipe._pairs`` for every unit: the pairs made (their units, chosen and rejected texts) and the
    pairs skipped in units that made others, by reason."""
    import numpy as np

    keep = c.alive()[unit]
    unit, field, score = unit[keep], field[keep], score[keep]
    order = np.lexsort((score, unit))
    su, ss = unit[order], score[order]
    new = np.ones(len(su), dtype=bool)
    new[1:] = (su[1:] != su[:-1]) | (ss[1:] != ss[:-1])
    distinct = np.bincount(su[new], minlength=c.nu)
    c.fail(c.alive() & (distinct < 2), "tie", "every response has the same rank or rating")
    keep = c.alive()[unit]
    unit, field, score = unit[keep], field[keep], score[keep]
    top = np.full(c.nu, -np.inf)
    low = np.full(c.nu, np.inf)
    np.maximum.at(top, unit, score)
    np.minimum.at(low, unit, score)
    k = np.bincount(unit, minlength=c.nu)[unit]  # candidates in each element's unit
    start = np.searchsorted(unit, unit)  # each element's unit's first element (units are sorted)
    a = np.repeat(np.arange(len(unit)), k)
    b = np.repeat(start, k) + (np.arange(len(a)) - np.repeat(np.cumsum(k) - k, k))
    u = unit[a]
    how = c.spec.pairs
    if how == "best-vs-worst":
        pick = (score[a] == top[u]) & (score[b] == low[u])
    elif how == "best-vs-each":
        pick = (score[a] == top[u]) & (score[b] < top[u])
    else:
        pick = score[a] > score[b]
    a, b, u = a[pick], b[pick], u[pick]
    records = c.unit_record[u]
    codes = c.pair_codes(records, field[a], field[b], names)
    made = np.bincount(u[codes == 0], minlength=c.nu)
    units, first = np.unique(u, return_index=True)
    none = made[units] == 0
    for code in np.unique(codes[first[none]]).tolist():
        c.code[units[none][codes[first[none]] == code]] = code
    skipped_at = (codes > 0) & (made[u] > 0)
    skipped = Counter(c.reasons[code][0] for code in codes[skipped_at].tolist())
    ok = codes == 0
    extras = {"chosen": c.text(names, field[a[ok]], records[ok]),
              "rejected": c.text(names, field[b[ok]], records[ok])}
    return u[ok], extras, skipped


def _finish(c: _Columns, chosen: dict[str, Any], values: dict[str, Any], extras: dict[str, Any], row_unit: Any,
            skipped: Counter) -> Conversion:
    import numpy as np

    spec, records = c.spec, c.records
    alive_mask = c.alive()
    alive = np.flatnonzero(alive_mask)
    out = empty_conversion(records, spec)
    report = out.report
    dropped = np.flatnonzero(~alive_mask)
    codes = c.code[dropped]
    kinds, first, counts = np.unique(codes, return_index=True, return_counts=True)
    for i in np.argsort(first).tolist():
        reason = c.reasons[int(kinds[i])][0]
        report["dropped"][reason] = report["dropped"].get(reason, 0) + int(counts[i])
    for u in dropped[:MAX_DROP_EXAMPLES].tolist():
        detail = c.reasons[int(c.code[u])][1]
        out.drop_examples.append(f"{_label(c, u)}: {detail if isinstance(detail, str) else detail(u)}")
    # rows: one per unit alive at the end, or one per pair made by a unit alive at the end
    if row_unit is None:
        cols = {name: column for name, column in values.items()}
        cols.update({name: column[alive] for name, column in extras.items()})
        units = alive
    else:
        live = alive_mask[row_unit]
        units = row_unit[live]
        where = np.searchsorted(alive, units)
        cols = {name: column[where] for name, column in values.items()}
        cols.update({name: column[live] for name, column in extras.items()})
    out.columns = {name: column.tolist() for name, column in cols.items()}
    out.locations = _labels(c, units)
    return finish_conversion(out, records, spec, int(len(np.unique(c.unit_record[alive]))), len(out.locations),
                             c.r.ignored, skipped, c.sources(chosen))


def _label(c: _Columns, unit: int) -> str:
    where = c.records.where(int(c.unit_record[unit]))
    user = int(c.unit_user[unit])
    return f"{where} annotator {c.user_names[user]}" if user >= 0 else where


def _labels(c: _Columns, units: Any) -> list[str]:
    """``_label`` of many units (ascending)."""
    ids = c.records.ids
    records = c.unit_record[units].tolist()
    if c.policy != "all":
        return [f"record {ids[i]!r}" for i in records]
    names = [f" annotator {name}" for name in c.user_names] + [""]
    return [f"record {ids[i]!r}{names[u]}" for i, u in zip(records, c.unit_user[units].tolist(), strict=True)]
