"""The Argilla conversions give exactly what they gave before they were vectorised.

``tests/data/argilla_equivalence.json`` was written by the row-by-row implementation (before the pyarrow
one): for each case (a generated dataset, a layout, a ``data.argilla`` block and template) it holds the
conversion report and a hash of everything the conversion and ``prepare_examples`` produce (rows in order,
their locations, the report, the rendered train/eval examples, or the error and its problems). Regenerate
only on purpose, with the implementation you trust::

    python tests/test_argilla_equivalence.py --write
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("pyarrow", reason="parquet exports need pyarrow (the [trl] extra installs it)")

import tunebridge as tb  # noqa: E402
from tunebridge.examples import prepare_examples  # noqa: E402
from tunebridge.feedback.source import argilla_rows  # noqa: E402
from tunebridge.spec import parse_spec  # noqa: E402
from tunebridge.testing import write_jsonl  # noqa: E402
from tunebridge.testing.argilla import (  # noqa: E402
    DOLLY_QUESTIONS,
    PAIR_QUESTIONS,
    curated_dolly,
    pairwise,
    v1_rows,
    v2_rows,
    write_parquet,
    write_v2_disk,
)

FIXTURE = Path(__file__).parent / "data" / "argilla_equivalence.json"
A, B, C = "user-a", "user-b", "user-c"
DOLLY = {"instruction": ["new-instruction", "original-instruction"],
         "context": ["new-context", "original-context"],
         "response": ["new-response", "original-response"]}
RATINGS = {"response-1": "rating-1", "response-2": "rating-2"}


def _a(user: str, value: Any, status: str = "submitted") -> dict[str, Any]:
    return {"user_id": user, "value": value, "status": status}


def _dolly_edges() -> list[dict[str, Any]]:
    """Empty strings, whitespace, missing responses, drafts/discarded only, several annotators, no-ops."""
    def rec(rid, fields, **responses):
        base = {"original-instruction": f"Do {rid}.", "original-context": "", "original-response": "orig"}
        return {"id": rid, "fields": {**base, **fields},
                "responses": {q: responses.get(q.replace("-", "_"), []) for q in DOLLY_QUESTIONS}}
    return [
        rec("e1", {}),
        rec("e2", {"original-response": ""}, new_response=[_a(A, "")]),
        rec("e3", {"original-response": "  "}, new_response=[_a(A, "   "), _a(B, "fixed")]),
        rec("e4", {}, new_response=[_a(A, "draft one", "draft"), _a(B, "gone", "discarded")]),
        rec("e5", {"original-context": "ctx"}, new_context=[_a(A, "")], new_response=[_a(A, "orig ")]),
        rec("e6", {"original-instruction": ""}, new_instruction=[_a(A, ""), _a(B, "")]),
        rec("e7", {}, new_response=[_a(A, "x"), _a(B, "y"), _a(C, "x")]),
        rec("e8", {}, new_response=[_a(A, "x"), _a(B, "y")]),
        rec("e9", {"original-context": "  "}, new_instruction=[_a(B, "Instr B"), _a(A, "Instr A")],
            new_response=[_a(A, "resp A"), _a(B, "resp B", "draft")]),
        rec("e10", {"original-response": "orig"}, new_response=[_a(A, "orig"), _a(B, "orig")]),
    ]


def _pair_edges() -> list[dict[str, Any]]:
    def rec(rid, r1="good answer", r2="bad answer", **responses):
        return {"id": rid, "fields": {"prompt": f"Question {rid}?", "response-1": r1, "response-2": r2},
                "responses": {q: responses.get(q.replace("-", "_"), []) for q in PAIR_QUESTIONS}}
    return [
        rec("p1"),
        rec("p2", ranking=[_a(A, ["response-2", "response-1"])], rating_1=[_a(A, 2)], rating_2=[_a(A, 2)],
            better=[_a(A, "response-2")]),
        rec("p3", r2="", ranking=[_a(A, ["response-1", "response-2"])], rating_1=[_a(A, 5)], rating_2=[_a(A, 1)],
            better=[_a(A, "response-1")]),
        rec("p4", r2="good answer ", ranking=[_a(A, ["response-1", "response-2"])], rating_1=[_a(A, 4)],
            rating_2=[_a(A, 1)], better=[_a(A, "response-1")]),
        rec("p5", ranking=[_a(A, ["response-1", "response-2"]), _a(B, ["response-2", "response-1"])],
            rating_1=[_a(A, 5), _a(B, 1)], rating_2=[_a(A, 1), _a(B, 5)],
            better=[_a(A, "response-1"), _a(B, "response-2")]),
        rec("p6", ranking=[_a(A, ["response-1", "response-2"], "draft")], rating_1=[_a(A, 3, "discarded")],
            rating_2=[_a(B, 2)], better=[_a(C, "response-2", "draft")]),
        rec("p7", ranking=[_a(A, ["response-1", "nope"])], rating_1=[_a(A, 1), _a(B, 5), _a(C, 5)],
            rating_2=[_a(A, 3), _a(B, 3), _a(C, 3)], better=[_a(A, "response-3")]),
        rec("p8", ranking=[_a(A, ["response-2", "response-1"]), _a(B, ["response-2", "response-1"]),
                           _a(C, ["response-1", "response-2"])],
            rating_1=[_a(B, 1)], rating_2=[_a(B, 4)], better=[_a(A, "response-1"), _a(B, "response-1")]),
    ]


THREE = {"rank3": "ranking"}


def _three_way() -> list[dict[str, Any]]:
    """Three responses ranked (two of them alike in some records, so some pairs are skipped)."""
    names = ["r1", "r2", "r3"]
    out = []
    for i in range(24):
        texts = {"r1": f"first {i}", "r2": f"second {i}", "r3": f"first {i}" if i % 3 == 0 else f"third {i}"}
        if i % 5 == 0:
            texts["r2"] = ""
        order = names[i % 3:] + names[: i % 3]
        answers = [_a(A, order), _a(B, list(reversed(order)), "draft" if i % 2 else "submitted")]
        out.append({"id": f"t{i}", "fields": {"prompt": f"Q{i}", **texts}, "responses": {"rank3": answers}})
    return out


def _datasets() -> dict[str, tuple[list[dict[str, Any]], dict[str, str]]]:
    out: dict[str, tuple[list[dict[str, Any]], dict[str, str]]] = {}
    for seed in (0, 1, 2):
        out[f"dolly{seed}"] = (curated_dolly(60, seed=seed), DOLLY_QUESTIONS)
        out[f"pairs{seed}"] = (pairwise(60, seed=seed), PAIR_QUESTIONS)
    out["dolly-edges"] = (_dolly_edges() + curated_dolly(8, seed=7), DOLLY_QUESTIONS)
    out["pairs-edges"] = (_pair_edges() + pairwise(8, seed=7), PAIR_QUESTIONS)
    out["three"] = (_three_way(), THREE)
    return out


def _specs(kind: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(name, task, data block without path) for a dataset kind."""
    out: list[tuple[str, str, dict[str, Any]]] = []
    if kind == "three":
        for policy in ("first", "majority", "all"):
            for pairs in ("best-vs-each", "best-vs-worst", "all"):
                out.append((f"rank3-{policy}-{pairs}", "reward", {"argilla": {
                    "recipe": "ranking", "question": "rank3", "annotators": policy, "pairs": pairs,
                    "columns": {"prompt": "prompt"}}}))
        return out
    if kind == "dolly":
        for policy in ("first", "majority", "unanimous", "all"):
            for statuses in (["submitted"], ["submitted", "draft"]):
                tag = f"{policy}-{'+'.join(statuses)}"
                out.append((f"sft-{tag}", "sft", {"template": "instruction", "argilla": {
                    "recipe": "sft", "columns": DOLLY, "annotators": policy, "statuses": statuses}}))
                out.append((f"edit-{tag}", "reward", {
                    "template": "instruction", "chosen": "{chosen}", "rejected": "{rejected}",
                    "argilla": {"recipe": "edited-vs-original", "edited": "new-response",
                                "original": "original-response", "annotators": policy, "statuses": statuses,
                                "columns": {"instruction": DOLLY["instruction"], "context": DOLLY["context"]}}}))
        out.append(("sft-single-sources", "sft", {"template": "instruction", "argilla": {
            "recipe": "sft", "columns": {"instruction": "original-instruction", "response": "new-response"}}}))
        out.append(("sft-context-kept", "sft", {"template": "instruction", "argilla": {
            "recipe": "sft", "columns": {**DOLLY, "context": ["original-context", "new-context"]}}}))
        out.append(("prompts", "rl", {"template": "instruction", "argilla": {
            "recipe": "prompts", "columns": {"instruction": DOLLY["instruction"], "context": DOLLY["context"]}}}))
        out.append(("sft-inline", "sft", {"prompt": "Q: {instruction}\n", "completion": "{response}",
                                          "argilla": {"recipe": "sft", "columns": DOLLY}}))
        return out
    for policy in ("first", "majority", "unanimous", "all"):
        for pairs in ("best-vs-each", "best-vs-worst", "all"):
            out.append((f"ranking-{policy}-{pairs}", "reward", {"argilla": {
                "recipe": "ranking", "question": "ranking", "annotators": policy, "pairs": pairs,
                "columns": {"prompt": "prompt"}}}))
            out.append((f"rating-{policy}-{pairs}", "reward", {"argilla": {
                "recipe": "rating", "ratings": RATINGS, "annotators": policy, "pairs": pairs,
                "columns": {"prompt": "prompt"}}}))
        out.append((f"label-{policy}", "reward", {"argilla": {
            "recipe": "label", "question": "better", "candidates": ["response-1", "response-2"],
            "annotators": policy, "columns": {"prompt": "prompt"}}}))
        out.append((f"prompts-reward-{policy}", "rl", {"argilla": {
            "recipe": "prompts", "reward": "rating-1", "annotators": policy, "columns": {"prompt": "prompt"}}}))
    out.append(("ranking-drafts-candidates", "reward", {"argilla": {
        "recipe": "ranking", "question": "ranking", "statuses": ["submitted", "draft", "discarded"],
        "candidates": {"response-1": "response-1", "response-2": "response-2"},
        "columns": {"prompt": ["prompt", "response-1"]}}}))
    out.append(("sft-from-pairs", "sft", {"prompt": "{p}", "completion": "{c}", "argilla": {
        "recipe": "sft", "columns": {"p": "prompt", "c": ["better", "response-1"]}}}))
    return out


LAYOUTS = ("v1-parquet", "v1-jsonl", "v2-parquet", "v2-disk")


def _write(records: list[dict[str, Any]], questions: dict[str, str], layout: str, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if layout == "v1-parquet":
        return write_parquet(v1_rows(records, questions), folder / "v1.parquet")
    if layout == "v1-jsonl":
        return write_jsonl(folder / "v1.jsonl", v1_rows(records, questions))
    if layout == "v2-parquet":
        return write_parquet(v2_rows(records, questions), folder / "v2.parquet")
    return write_v2_disk(records, questions, folder / "export")


def _outcome(path: Path, task: str, data: dict[str, Any], tmp: Path) -> dict[str, Any]:
    statuses = data["argilla"].get("statuses", ["submitted"])
    if path.is_dir() and "unknown" not in statuses:  # to_disk keeps no status
        data = {**data, "argilla": {**data["argilla"], "statuses": [*statuses, "unknown"]}}
    extra = {"rl": {"reward": "tunebridge.testing.rewards:letter_e"}} if task == "rl" else {}
    out: dict[str, Any] = {}
    try:
        spec = parse_spec({"task": task, "model": {"builtin": "tiny-llama"},
                           "data": {"path": str(path), "eval_fraction": 0.1, **data}, **extra})
        raw, report = argilla_rows(spec)
        out["convert"] = {"rows": raw.rows, "locations": raw.locations, "report": report}
        ex = prepare_examples(spec)
        out["examples"] = {"train": ex.train, "eval": ex.eval, "report": ex.report}
    except (tb.DataError, tb.SpecError) as exc:
        out["error"] = {"type": type(exc).__name__, "message": str(exc),
                        "problems": [str(p) for p in getattr(exc, "problems", [])]}
    return json.loads(json.dumps(out, default=repr).replace(str(tmp), "<tmp>"))


def _summary(outcome: dict[str, Any]) -> dict[str, Any]:
    text = json.dumps(outcome, ensure_ascii=False)
    summary = {"sha256": hashlib.sha256(text.encode()).hexdigest()}
    if "error" in outcome:
        summary["error"] = outcome["error"]["message"]
    else:
        summary["report"] = outcome["convert"]["report"]
        summary["rows"] = len(outcome["convert"]["rows"])
    return summary


def _all_cases(tmp: Path) -> dict[str, dict[str, Any]]:
    results = {}
    for name, (records, questions) in _datasets().items():
        kind = "dolly" if name.startswith("dolly") else "three" if name == "three" else "pairs"
        for layout in LAYOUTS:
            path = _write(records, questions, layout, tmp / name / layout)
            for spec_name, task, data in _specs(kind):
                results[f"{name}/{layout}/{spec_name}"] = _outcome(path, task, data, tmp)
    return results


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[str, dict[str, Any]]:
    return _all_cases(tmp_path_factory.mktemp("equiv"))


def test_every_case_is_as_before(outcomes):
    expected = json.loads(FIXTURE.read_text(encoding="utf-8"))
    assert sorted(outcomes) == sorted(expected)
    differ = []
    for case, outcome in outcomes.items():
        got = _summary(outcome)
        if got != expected[case]:
            differ.append(f"{case}: {json.dumps(got)[:300]} != {json.dumps(expected[case])[:300]}")
    assert not differ, f"{len(differ)} cases differ:\n" + "\n".join(differ[:10])


def test_the_cases_cover_drops_errors_and_sources():
    expected = json.loads(FIXTURE.read_text(encoding="utf-8"))
    reports = [s["report"] for s in expected.values() if "report" in s]
    assert any(s.get("error") for s in expected.values())
    assert any(r.get("sources") for r in reports) and any(r.get("skipped_pairs") for r in reports)
    assert any(r.get("drop_examples") for r in reports) and any(r.get("ignored_responses") for r in reports)
    reasons = {reason for r in reports for reason in r["dropped"]}
    for word in ("no majority", "annotators disagree", "tie", "identical", "unchanged", "no submitted", "empty field",
                 "unknown candidate", "label names no candidate", "fewer than two"):
        assert any(word in reason for reason in reasons), word


if __name__ == "__main__" and "--write" in sys.argv:
    with tempfile.TemporaryDirectory() as folder:
        cases = _all_cases(Path(folder))
    FIXTURE.parent.mkdir(exist_ok=True)
    FIXTURE.write_text(json.dumps({k: _summary(v) for k, v in sorted(cases.items())}, indent=0,
                                  ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {len(cases)} cases to {FIXTURE}")
