"""The column-by-column Argilla conversion (feedback/vector.py) against the record-by-record one (recipes.py).

tests/test_argilla_equivalence.py holds both to the rows the old code made; here each case is converted both
ways on the same records, on the shapes where column-wise code goes wrong first: majority ties (also between
list answers), unanimous disagreements, annotators who answered only some questions, missing and blank
answers, several candidates, equal ranks, unknown candidates and labels. Shapes that the column-wise code
hands back (NaN ratings, answers without a user under policy all) must still give the same result.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

pytest.importorskip("pyarrow", reason="parquet exports need pyarrow (the [trl] extra installs it)")

import pyarrow as pa  # noqa: E402

import tunebridge as tb  # noqa: E402
from tunebridge.feedback import recipes, vector  # noqa: E402
from tunebridge.feedback.flat import value_ids  # noqa: E402
from tunebridge.feedback.recipes import RowNeeds  # noqa: E402
from tunebridge.feedback.records import read_records  # noqa: E402
from tunebridge.feedback.spec import ArgillaSpec  # noqa: E402
from tunebridge.testing import write_jsonl  # noqa: E402
from tunebridge.testing.argilla import v1_rows, v2_rows, write_parquet  # noqa: E402

A, B, C, D = "user-a", "user-b", "user-c", "user-d"
QUESTIONS = {"ranking": "ranking", "rating-1": "rating", "rating-2": "rating", "rating-3": "rating",
             "better": "label_selection", "note": "text"}
THREE = {"response-1": "rating-1", "response-2": "rating-2", "response-3": "rating-3"}


def _a(user: Any, value: Any, status: str = "submitted") -> dict[str, Any]:
    return {"user_id": user, "value": value, "status": status}


def _rec(rid: str, r1: str = "one", r2: str = "two", r3: str = "three", **answers: list) -> dict[str, Any]:
    return {"id": rid, "fields": {"prompt": f"Q {rid}?", "response-1": r1, "response-2": r2, "response-3": r3},
            "responses": {q: answers.get(q.replace("-", "_"), []) for q in QUESTIONS}}


R123, R321, R213 = ["response-1", "response-2", "response-3"], ["response-3", "response-2", "response-1"], \
    ["response-2", "response-1", "response-3"]

RECORDS = [
    _rec("tie2", ranking=[_a(A, R123), _a(B, R321), _a(C, R123), _a(D, R321)],
         rating_1=[_a(A, 5), _a(B, 1), _a(C, 5), _a(D, 1)], rating_2=[_a(A, 2), _a(B, 2)],
         better=[_a(A, "response-1"), _a(B, "response-2")], note=[_a(A, "x"), _a(B, "y")]),
    _rec("major", ranking=[_a(A, R123), _a(B, R321), _a(C, R321)], rating_1=[_a(A, 1), _a(B, 4), _a(C, 4)],
         rating_2=[_a(A, 3), _a(B, 3), _a(C, 2)], rating_3=[_a(C, 5)],
         better=[_a(A, "response-2"), _a(B, "response-2")], note=[_a(A, "same"), _a(B, "same")]),
    _rec("blank", ranking=[_a(A, []), _a(B, R213)], rating_1=[_a(A, 2)], rating_2=[_a(B, 4)],
         better=[_a(A, "  "), _a(B, "response-1")], note=[_a(A, " \u3000"), _a(B, "")]),
    _rec("drafts", ranking=[_a(A, R123, "draft")], rating_1=[_a(A, 3, "discarded")], rating_2=[_a(B, 2, "draft")],
         better=[_a(C, "response-2", "draft")]),
    _rec("nobody"),
    _rec("partial", ranking=[_a(B, ["response-1", "response-9"])], rating_1=[_a(A, 4), _a(B, 4)],
         rating_2=[_a(B, 1)], rating_3=[_a(A, 1)], better=[_a(B, "response-3")], note=[_a(D, "only d")]),
    _rec("alike", r2="one ", ranking=[_a(A, R123)], rating_1=[_a(A, 5)], rating_2=[_a(A, 3)], rating_3=[_a(A, 1)],
         better=[_a(A, "response-2")]),
    _rec("empty-field", r1="", ranking=[_a(A, R213), _a(C, R123)], rating_1=[_a(A, 5)], rating_2=[_a(A, 1)],
         better=[_a(A, "response-1")]),
    _rec("ties3", ranking=[_a(A, R321), _a(B, R123), _a(C, R213)], rating_1=[_a(A, 3), _a(B, 3)],
         rating_2=[_a(A, 3), _a(B, 3)], rating_3=[_a(A, 3), _a(B, 4)], better=[_a(A, "response-1")]),
    _rec("plain", ranking=[_a(A, R213)], rating_1=[_a(A, 4)], rating_2=[_a(A, 5)], rating_3=[_a(A, 1)],
         better=[_a(A, "response-2")], note=[_a(A, "fine")]),
    _rec("kept", ranking=[_a(A, R321)], rating_1=[_a(A, 1)], rating_2=[_a(A, 2)], note=[_a(A, " one"), _a(B, "new")]),
]

BLOCKS = []
for _policy in ("first", "majority", "unanimous", "all"):
    for _pairs in ("best-vs-each", "best-vs-worst", "all"):
        BLOCKS.append({"recipe": "ranking", "question": "ranking", "annotators": _policy, "pairs": _pairs,
                       "columns": {"prompt": ["note", "prompt"]}})
        BLOCKS.append({"recipe": "rating", "ratings": THREE, "annotators": _policy, "pairs": _pairs,
                       "columns": {"prompt": "prompt", "note": ["note", "response-3"]}})
    BLOCKS.append({"recipe": "label", "question": "better", "candidates": ["response-1", "response-2"],
                   "annotators": _policy, "columns": {"prompt": ["prompt"], "note": ["note"]}})
    BLOCKS.append({"recipe": "label", "question": "better", "annotators": _policy,
                   "candidates": {"response-1": "response-2", "response-2": "response-1"},
                   "columns": {"prompt": "prompt"}})
    BLOCKS.append({"recipe": "prompts", "reward": "rating-1", "annotators": _policy,
                   "columns": {"prompt": ["note", "prompt"]}})
    BLOCKS.append({"recipe": "sft", "annotators": _policy, "statuses": ["submitted", "draft"],
                   "columns": {"prompt": ["note", "prompt"], "response": ["better", "response-3"]}})
    BLOCKS.append({"recipe": "edited-vs-original", "edited": "note", "original": "response-1", "annotators": _policy,
                   "columns": {"prompt": "prompt"}})
BLOCKS.append({"recipe": "ranking", "question": "ranking", "candidates": {"response-1": "response-1",
               "response-2": "response-2"}, "columns": {"prompt": "prompt"}})
# What the spec's task and template need of each row (``_needs``, a RowNeeds): columns that must not all be empty,
# and edited-vs-original for rl (two rated samples per edit).
for _policy in ("first", "majority", "unanimous", "all"):
    BLOCKS.append({"recipe": "sft", "annotators": _policy, "columns": {"prompt": "note", "response": "better"},
                   "_needs": RowNeeds("sft", (("response",), ("prompt", "response")))})
    BLOCKS.append({"recipe": "sft", "annotators": _policy, "columns": {"prompt": ["note", "response-3"],
                   "response": "response-2"}, "_needs": RowNeeds("sft", (("response",), ("prompt", "response")))})
    BLOCKS.append({"recipe": "prompts", "annotators": _policy, "columns": {"prompt": "note", "extra": ["better"]},
                   "_needs": RowNeeds("rl", (("prompt", "extra"),))})
    BLOCKS.append({"recipe": "edited-vs-original", "edited": "note", "original": "response-1", "annotators": _policy,
                   "columns": {"prompt": ["better", "prompt"]}, "rewards": {"original": 0, "edited": 1},
                   "_needs": RowNeeds("rl", (("prompt",),))})


def _write(records: list[dict[str, Any]], layout: str, folder) -> Any:
    if layout == "v1-parquet":
        return write_parquet(v1_rows(records, QUESTIONS), folder / "v1.parquet")
    if layout == "v1-jsonl":
        return write_jsonl(folder / "v1.jsonl", v1_rows(records, QUESTIONS))
    return write_parquet(v2_rows(records, QUESTIONS), folder / "v2.parquet")


def _both(path, block: dict[str, Any]) -> tuple[Any, Any]:
    """(column-wise, record-by-record) outcome: the rows, locations and report, or the error."""
    block = dict(block)
    needs = block.pop("_needs", None)
    spec = ArgillaSpec(**block)
    out = []
    for columnwise in (True, False):
        records = read_records(path)
        try:
            recipe = recipes._Recipe(records, spec, columnwise=columnwise, needs=needs)
            if columnwise:
                assert recipe.flat is not None
                conversion = vector.convert_columns(recipe)
                rows = [dict(zip(conversion.columns, values, strict=True))
                        for values in zip(*conversion.columns.values(), strict=True)]
            else:
                conversion = _by_record(records, spec, needs)
                rows = conversion.rows
            out.append({"rows": rows, "locations": conversion.locations, "report": conversion.report,
                        "examples": conversion.drop_examples})
        except tb.DataError as exc:
            out.append({"error": str(exc), "problems": [str(p) for p in exc.problems]})
    return out[0], out[1]


def _by_record(records, spec, needs=None):
    """recipes.convert with the column-wise path switched off."""
    original = recipes._Recipe.__init__

    def init(self, records, spec, columnwise=True, needs=None):
        original(self, records, spec, columnwise=False, needs=needs)

    recipes._Recipe.__init__ = init
    try:
        return recipes.convert(records, spec, needs)
    finally:
        recipes._Recipe.__init__ = original


@pytest.mark.parametrize("layout", ["v1-parquet", "v1-jsonl", "v2-parquet"])
def test_column_wise_conversion_equals_the_record_by_record_one(tmp_path, layout):
    path = _write(RECORDS, layout, tmp_path)
    differ = []
    for block in BLOCKS:
        columns, rows = _both(path, block)
        if columns != rows:
            differ.append(f"{block}:\n  columns {columns}\n  records {rows}")
    assert not differ, f"{len(differ)} of {len(BLOCKS)} differ:\n" + "\n".join(differ[:3])


def test_the_cases_cover_ties_disagreements_and_partial_annotators(tmp_path):
    path = _write(RECORDS, "v2-parquet", tmp_path)
    reasons, skipped, sources = set(), set(), 0
    for block in BLOCKS:
        columns, _ = _both(path, block)
        report = columns.get("report", {})
        reasons |= set(report.get("dropped", {}))
        skipped |= set(report.get("skipped_pairs", {}))
        sources += bool(report.get("sources"))
    for word in ("no majority (ranking)", "no majority (rating-1)", "annotators disagree (note)", "tie",
                 "unknown candidate", "label names no candidate", "fewer than two", "empty field (response-1)",
                 "no submitted response (ranking)", "unchanged", "no submitted response (note, better)"):
        assert any(word in reason for reason in reasons), word
    assert skipped and sources


def test_policy_all_makes_a_unit_per_annotator_in_first_seen_order(tmp_path):
    path = _write(RECORDS, "v2-parquet", tmp_path)
    columns, rows = _both(path, {"recipe": "rating", "ratings": THREE, "annotators": "all",
                                 "columns": {"prompt": "prompt"}})
    assert columns == rows
    assert "record 'partial' annotator user-a" in columns["locations"]
    assert "record 'partial' annotator user-b" in columns["locations"]


def test_nan_ratings_and_answers_without_users_are_converted_record_by_record(tmp_path):
    nan = [_rec("n1", rating_1=[_a(A, math.nan), _a(B, 2.0)], rating_2=[_a(A, 1.5)], rating_3=[_a(A, 1.0)]),
           _rec("n2", rating_1=[_a(None, 3.0)], rating_2=[_a(None, 1.0)], rating_3=[_a(A, 2.0)])]
    path = _write(nan, "v1-parquet", tmp_path)
    for policy in ("first", "majority", "all"):
        # pairs all: with best-vs-each a NaN best rating fails record by record too (IndexError, known)
        block = {"recipe": "rating", "ratings": THREE, "annotators": policy, "pairs": "all",
                 "columns": {"prompt": "prompt"}}
        spec = ArgillaSpec(**block)
        with pytest.raises(vector.Unsupported):
            vector.convert_columns(recipes._Recipe(read_records(path), spec))
        # convert() notices and goes record by record: the same as with the column-wise path off
        got = recipes.convert(read_records(path), spec)
        want = _by_record(read_records(path), spec)
        assert (got.rows, got.locations, got.report) == (want.rows, want.locations, want.report)


def test_value_ids_compare_answers_as_the_policies_do():
    def same(values, kind=None):
        ids = value_ids(pa.array(values, kind))
        return [[ids[i] == ids[j] for j in range(len(values))] for i in range(len(values))]

    def python(values):
        from tunebridge.feedback.annotators import _key

        return [[_key(a) == _key(b) for b in values] for a in values]

    lists = [["a", "b"], ["a", "b", "c"], ["a"], ["b", "a"], ["a", "b"], [], None, ["a", None], ["a", None]]
    assert same(lists) == python(lists)
    structs = [[{"value": "a", "rank": 1}, {"value": "b", "rank": 2}], [{"value": "a", "rank": 2}],
               [{"value": "a", "rank": 1}, {"value": "b", "rank": 2}], [{"value": "a", "rank": None}],
               [{"value": "a", "rank": 2}]]
    assert same(structs) == python(structs)
    numbers = [1.0, 2.5, 1.0, -0.0, 0.0, None]
    assert same(numbers)[:5] == python(numbers)[:5]
    assert value_ids(pa.array([1.0, math.nan])) is None  # NaN equals nothing in Python: record by record
    assert same(["x", "y", "x"]) == python(["x", "y", "x"])


def test_a_spec_error_is_the_same_both_ways(tmp_path):
    path = _write(RECORDS, "v2-parquet", tmp_path)
    columns, rows = _both(path, {"recipe": "ranking", "question": "rating-1", "columns": {"prompt": "promt"}})
    assert columns == rows and "does not fit" in columns["error"]
    columns, rows = _both(path, {"recipe": "ranking", "question": "ranking", "statuses": ["discarded"],
                                 "columns": {"prompt": "prompt"}})
    assert columns == rows and "no response with status discarded" in columns["error"]
