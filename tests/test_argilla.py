"""Argilla data in: 1.x HF format, 2.x exports and to_disk folders; recipes, annotator policies, reports, errors."""

from __future__ import annotations

import json

import pytest

import tunebridge as tb
from tunebridge.examples import prepare_examples
from tunebridge.feedback.source import argilla_rows
from tunebridge.spec import parse_spec
from tunebridge.testing import write_jsonl
from tunebridge.testing.argilla import (
    DOLLY_QUESTIONS,
    PAIR_QUESTIONS,
    curated_dolly,
    pairwise,
    v1_rows,
    v2_rows,
    write_parquet,
    write_v2_disk,
)

pytest.importorskip("pyarrow", reason="parquet exports need pyarrow (the [trl] extra installs it)")

A, B, C = "user-a", "user-b", "user-c"
DOLLY_COLUMNS = {"instruction": ["new-instruction", "original-instruction"],
                 "context": ["new-context", "original-context"],
                 "response": ["new-response", "original-response"]}


def answer(user, value, status="submitted"):
    return {"user_id": user, "value": value, "status": status}


def dolly_record(rid, response="orig", answers=(), context=""):
    return {"id": rid, "fields": {"original-instruction": f"Do {rid}.", "original-context": context,
                                  "original-response": response},
            "responses": {"new-response": list(answers)}}


def pair_record(rid, ranking=(), ratings1=(), ratings2=(), labels=(), r1="good answer", r2="bad answer"):
    return {"id": rid, "fields": {"prompt": f"Question {rid}?", "response-1": r1, "response-2": r2},
            "responses": {"ranking": list(ranking), "rating-1": list(ratings1), "rating-2": list(ratings2),
                          "better": list(labels)}}


def write(tmp_path, records, questions, fmt="v2"):
    """Records in the given layout: v1 (jsonl), v1-parquet, v2 (parquet) or v2-disk (folder)."""
    if fmt == "v1":
        return write_jsonl(tmp_path / "v1.jsonl", v1_rows(records, questions))
    if fmt == "v1-parquet":
        return write_parquet(v1_rows(records, questions), tmp_path / "v1.parquet")
    if fmt == "v2-disk":
        return write_v2_disk(records, questions, tmp_path / "export")
    return write_parquet(v2_rows(records, questions), tmp_path / "v2.parquet")


def spec(path, task="reward", template=None, data=None, **argilla):
    block = {"path": str(path), "argilla": argilla, **(data or {})}
    if template:
        block["template"] = template
    extra = {"rl": {"reward": "tunebridge.testing.rewards:letter_e"}} if task == "rl" else {}
    return parse_spec({"task": task, "model": {"builtin": "tiny-llama"}, "data": block, **extra})


def examples(path, task="reward", **kw):
    return prepare_examples(spec(path, task, **kw))


def data_error(path, task="reward", **kw) -> str:
    with pytest.raises(tb.DataError) as info:
        examples(path, task, **kw)
    return str(info.value)


# -- SFT: the Dolly guide's recipe ------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["v1", "v1-parquet", "v2", "v2-disk"])
def test_dolly_sft_takes_the_first_submitted_answer_else_the_original(tmp_path, fmt):
    records = [dolly_record("a", answers=[answer(A, "draft text", "draft"), answer(B, "fixed a")]),
               dolly_record("b", answers=[answer(A, "thrown away", "discarded")], context="ctx b"),
               dolly_record("c")]
    path = write(tmp_path, records, DOLLY_QUESTIONS, fmt)
    statuses = {"statuses": ["unknown"]} if fmt == "v2-disk" else {}
    ex = examples(path, "sft", template="instruction", data={"eval_fraction": 0.0, "limit": 3},
                  recipe="sft", columns=DOLLY_COLUMNS, **statuses)
    by_prompt = {e["prompt"].split("\n")[1]: e for e in ex.train}
    if fmt == "v2-disk":  # no statuses on disk: every answer counts, the first one wins
        assert by_prompt["Do a."]["completion"] == "draft text"
        assert by_prompt["Do b."]["completion"] == "thrown away"
    else:
        assert by_prompt["Do a."]["completion"] == "fixed a"
        assert by_prompt["Do b."]["completion"] == "orig"
        report = ex.report["argilla"]
        assert report["ignored_responses"] == {"discarded": 1, "draft": 1}
        assert report["sources"]["response"] == {"new-response": 1, "original-response": 2}
    assert "### Context\nctx b" in by_prompt["Do b."]["prompt"]
    assert by_prompt["Do c."]["completion"] == "orig"
    assert ex.report["argilla"]["format"] == fmt.removesuffix("-parquet")
    assert ex.report["argilla"]["records"] == 3 and ex.report["argilla"]["rows"] == 3


def test_drafts_count_when_asked(tmp_path):
    path = write(tmp_path, [dolly_record("a", answers=[answer(A, "draft text", "draft")])], DOLLY_QUESTIONS)
    ex = examples(path, "sft", template="instruction", recipe="sft", columns=DOLLY_COLUMNS,
                  statuses=["submitted", "draft"])
    assert ex.train[0]["completion"] == "draft text"


def test_sft_row_whose_completion_columns_are_empty_is_a_counted_drop(tmp_path):
    records = [dolly_record("a", answers=[answer(A, "fine")]), dolly_record("b", response="  ")]
    ex = examples(write(tmp_path, records, DOLLY_QUESTIONS), "sft", template="instruction", recipe="sft",
                  columns=DOLLY_COLUMNS)
    assert len(ex.train) == 1
    assert ex.report["argilla"]["dropped"] == {"no submitted response (new-response)": 1}
    assert ex.report["argilla"]["drop_examples"] == [
        "record 'b': no submitted response to 'new-response', and field 'original-response' is empty"]


@pytest.mark.parametrize("fmt", ["v1", "v1-parquet", "v2"])  # (a to_disk folder keeps no status: drafts count)
def test_a_record_without_a_submitted_answer_has_one_reason_in_every_recipe(tmp_path, fmt):
    records = [dolly_record("a", response="old", answers=[answer(A, "new")]),
               dolly_record("b", answers=[answer(B, "draft", "draft")]), dolly_record("c")]
    path = write(tmp_path, records, DOLLY_QUESTIONS, fmt)
    statuses = ["submitted"]
    sft = examples(path, "sft", template="instruction", recipe="sft", statuses=statuses,
                   columns={"instruction": "original-instruction", "response": "new-response"})
    reward = examples(path, template="instruction", data={"chosen": "{chosen}", "rejected": "{rejected}"},
                      recipe="edited-vs-original", edited="new-response", original="original-response",
                      statuses=statuses, columns={"instruction": "original-instruction"})
    reason = "no submitted response (new-response)"
    assert sft.report["argilla"]["dropped"] == reward.report["argilla"]["dropped"] == {reason: 2}
    assert [e["completion"] for e in sft.train] == ["new"]


def test_responses_not_counted_are_counted_per_annotator_response_not_per_question(tmp_path):
    three = {q: [answer(B, f"{q} gone", "discarded")] for q in ("new_instruction", "new_context", "new_response")}
    records = [{"id": "a", "fields": {"original-instruction": "Do a.", "original-context": "", "original-response":
                                      "orig"},
                "responses": {q: three[q.replace("-", "_")] + ([answer(A, "fine")] if q == "new-response" else [])
                              for q in DOLLY_QUESTIONS}},
               dolly_record("b", answers=[answer(A, "draft", "draft"), answer(C, "another draft", "draft")])]
    for fmt in ("v1", "v1-parquet", "v2"):
        folder = tmp_path / fmt
        folder.mkdir()
        ex = examples(write(folder, records, DOLLY_QUESTIONS, fmt), "sft", template="instruction", recipe="sft",
                      columns=DOLLY_COLUMNS)
        # user-b's one discarded response answers three questions; two drafts on record b
        assert ex.report["argilla"]["ignored_responses"] == {"discarded": 1, "draft": 2}, fmt


def test_prompts_recipe_drops_records_whose_prompt_columns_are_all_empty(tmp_path):
    prompts = {"instruction": "new-instruction", "context": "new-context"}
    records = [{"id": "a", "fields": {"original-instruction": "Do a.", "original-context": "", "original-response":
                                      "x"}, "responses": {"new-instruction": [answer(A, "Do A better.")]}},
               dolly_record("b"), dolly_record("c", answers=[answer(A, "only a response")])]
    for fmt in ("v2", "v2-disk"):
        folder = tmp_path / fmt
        folder.mkdir()
        statuses = ["submitted", "unknown"] if fmt == "v2-disk" else ["submitted"]
        ex = examples(write(folder, records, DOLLY_QUESTIONS, fmt), "rl", template="instruction", recipe="prompts",
                      columns=prompts, statuses=statuses)
        assert [e["prompt"] for e in ex.train] == ["### Instruction\nDo A better.\n\n### Response:\n"]
        status = "/".join(statuses)
        assert ex.report["argilla"]["dropped"] == {f"no {status} response (new-instruction, new-context)": 2}
        assert ex.report["argilla"]["drop_examples"][0] == (
            f"record 'b': no {status} response to 'new-instruction' or 'new-context'")


def test_inline_sft_strings_drop_rows_whose_template_columns_are_all_empty(tmp_path):
    records = [dolly_record("a", answers=[answer(A, "fine")]), dolly_record("b")]
    ex = examples(write(tmp_path, records, DOLLY_QUESTIONS), "sft", recipe="sft",
                  data={"prompt": "Q: {question}\n", "completion": "Answer: {answer}"},
                  columns={"question": "new-instruction", "answer": "new-response"})
    assert ex.train == [{"prompt": "Q: \n", "completion": "Answer: fine"}]
    assert ex.report["argilla"]["dropped"] == {"no submitted response (new-instruction, new-response)": 1}


def test_only_empty_fields_give_the_empty_field_reason(tmp_path):
    records = [dolly_record("a", response="kept"), dolly_record("b", response=" ")]
    ex = examples(write(tmp_path, records, DOLLY_QUESTIONS), "sft", template="instruction", recipe="sft",
                  columns={"instruction": "original-instruction", "response": "original-response"})
    assert [e["completion"] for e in ex.train] == ["kept"]
    assert ex.report["argilla"]["dropped"] == {"empty field (original-response)": 1}


# -- preference recipes -----------------------------------------------------------------------------------

def test_edited_vs_original_keeps_only_real_edits(tmp_path):
    records = [dolly_record("a", answers=[answer(A, "better")]), dolly_record("b", answers=[answer(A, "orig ")]),
               dolly_record("c"), dolly_record("d", response="", answers=[answer(A, "new")])]
    ex = examples(write(tmp_path, records, DOLLY_QUESTIONS), template="instruction",
                  data={"chosen": "{chosen}", "rejected": "{rejected}"}, recipe="edited-vs-original",
                  edited="new-response", original="original-response",
                  columns={"instruction": DOLLY_COLUMNS["instruction"]})
    assert ex.train == [{"prompt": "### Instruction\nDo a.\n\n### Response:\n", "chosen": "better",
                         "rejected": "orig"}]
    assert ex.report["argilla"]["dropped"] == {"unchanged (new-response == original-response)": 1,
                                               "no submitted response (new-response)": 1,
                                               "empty field (original-response)": 1}
    assert "record 'b'" in ex.report["argilla"]["drop_examples"][0]


def three_way(rid, rankings):
    return {"id": rid, "fields": {"prompt": "P?", "x": "ex", "y": "why", "z": "zed"},
            "responses": {"rank": [answer(u, r) for u, r in rankings]}}


@pytest.mark.parametrize(("pairs", "expected"), [
    ("best-vs-each", [("ex", "why"), ("ex", "zed")]),
    ("best-vs-worst", [("ex", "zed")]),
    ("all", [("ex", "why"), ("ex", "zed"), ("why", "zed")]),
])
@pytest.mark.parametrize("fmt", ["v1", "v2"])
def test_ranking_pairs(tmp_path, pairs, expected, fmt):
    path = write(tmp_path, [three_way("r", [(A, ["x", "y", "z"])])], {"rank": "ranking"}, fmt)
    ex = examples(path, recipe="ranking", question="rank", pairs=pairs, columns={"prompt": "prompt"})
    assert sorted((e["chosen"], e["rejected"]) for e in ex.train) == expected
    assert all(e["prompt"] == "P?" for e in ex.train)


def test_ranking_in_its_1x_forms_with_ranks_and_ties(tmp_path):
    def rec(rid, value):
        return {"prompt": "P?", "x": "ex", "y": "why", "rank": [answer(A, value)], "rank-suggestion": None}
    rows = [rec("listed", [{"value": "y", "rank": 1}, {"value": "x", "rank": 2}]),
            rec("columnar", {"value": ["x", "y"], "rank": [2, 1]}),
            rec("tied", {"value": ["x", "y"], "rank": [1, 1]})]
    ex = examples(write_jsonl(tmp_path / "d.jsonl", rows), recipe="ranking", question="rank",
                  columns={"prompt": "prompt"})
    assert [(e["chosen"], e["rejected"]) for e in ex.train] == [("why", "ex"), ("why", "ex")]
    assert ex.report["argilla"]["dropped"] == {"tie": 1}


def test_ranking_candidates_map_values_to_fields(tmp_path):
    rec = {"id": "r", "fields": {"prompt": "P?", "a1": "one", "a2": "two"},
           "responses": {"rank": [answer(A, ["B", "A"])]}}
    path = write(tmp_path, [rec], {"rank": "ranking"})
    ex = examples(path, recipe="ranking", question="rank", candidates={"A": "a1", "B": "a2"},
                  columns={"prompt": "prompt"})
    assert ex.train == [{"prompt": "P?", "chosen": "two", "rejected": "one"}]


def test_rating_higher_is_chosen_and_ties_are_dropped(tmp_path):
    records = [pair_record("up", ratings1=[answer(A, 5)], ratings2=[answer(A, 2)]),
               pair_record("down", ratings1=[answer(A, 1)], ratings2=[answer(A, 4)]),
               pair_record("tie", ratings1=[answer(A, 3)], ratings2=[answer(A, 3)]),
               pair_record("half", ratings1=[answer(A, 3)])]
    ex = examples(write(tmp_path, records, PAIR_QUESTIONS), recipe="rating",
                  ratings={"response-1": "rating-1", "response-2": "rating-2"}, columns={"prompt": "prompt"})
    assert sorted((e["prompt"], e["chosen"]) for e in ex.train) == [("Question down?", "bad answer"),
                                                                    ("Question up?", "good answer")]
    assert ex.report["argilla"]["dropped"] == {"tie": 1, "fewer than two rated responses": 1}


def test_label_chooses_between_two_fields(tmp_path):
    records = [pair_record("one", labels=[answer(A, "response-1")]),
               pair_record("two", labels=[answer(A, "response-2")]),
               pair_record("neither", labels=[answer(A, "both bad")])]
    ex = examples(write(tmp_path, records, PAIR_QUESTIONS), recipe="label", question="better",
                  candidates=["response-1", "response-2"], columns={"prompt": "prompt"})
    assert sorted((e["chosen"], e["rejected"]) for e in ex.train) == [("bad answer", "good answer"),
                                                                      ("good answer", "bad answer")]
    assert ex.report["argilla"]["dropped"] == {"label names no candidate (better)": 1}


def test_identical_responses_make_no_pair(tmp_path):
    records = [pair_record("same", labels=[answer(A, "response-1")], r2="good answer"),
               pair_record("ok", labels=[answer(A, "response-1")])]
    ex = examples(write(tmp_path, records, PAIR_QUESTIONS), recipe="label", question="better",
                  candidates=["response-1", "response-2"], columns={"prompt": "prompt"})
    assert len(ex.train) == 1 and ex.report["argilla"]["dropped"] == {"identical responses": 1}


# -- RL prompts -------------------------------------------------------------------------------------------

def test_prompts_with_an_offline_reward(tmp_path):
    records = [pair_record("a", ratings1=[answer(A, 4)]), pair_record("b")]
    ex = examples(write(tmp_path, records, PAIR_QUESTIONS), "rl", recipe="prompts", reward="rating-1",
                  columns={"prompt": "prompt", "source": "response-1"})
    assert ex.train == [{"prompt": "Question a?", "source": "good answer", "reward": 4.0}]
    assert ex.report["argilla"]["dropped"] == {"no submitted response (rating-1)": 1}


def test_prompts_without_reward_keep_every_record(tmp_path):
    ex = examples(write(tmp_path, [pair_record("a"), pair_record("b")], PAIR_QUESTIONS), "rl",
                  recipe="prompts", columns={"prompt": "prompt"})
    assert sorted(e["prompt"] for e in ex.train) == ["Question a?", "Question b?"]


# -- rated samples for offline RL (the guide's TRLX dataset) -------------------------------------------------

def ilql_spec(path, template="instruction", data=None, **argilla):
    block = {"path": str(path), "template": template, **(data or {}),
             "argilla": {"recipe": "edited-vs-original", "edited": "new-response", "original": "original-response",
                         "columns": {"instruction": DOLLY_COLUMNS["instruction"]}, **argilla}}
    return parse_spec({"task": "rl", "rl": {"algorithm": "ilql"}, "model": {"builtin": "tiny-llama"}, "data": block})


EDITS = [dolly_record("a", response="wrong", answers=[answer(A, "right")]),
         dolly_record("b", response="same", answers=[answer(A, "same")]), dolly_record("c"),
         dolly_record("d", response="old", answers=[answer(A, "new"), answer(B, "newer")])]


@pytest.mark.parametrize("fmt", ["v1", "v1-parquet", "v2", "v2-disk"])
def test_edited_vs_original_for_rl_makes_two_rated_samples_per_edit(tmp_path, fmt):
    statuses = ["submitted", "unknown"] if fmt == "v2-disk" else ["submitted"]
    spec = ilql_spec(write(tmp_path, EDITS, DOLLY_QUESTIONS, fmt), statuses=statuses)
    assert spec.data.reward == "reward"  # the column the recipe writes
    ex = prepare_examples(spec)
    prompt = "### Instruction\nDo {}.\n\n### Response:\n"
    assert sorted((e["prompt"], e["completion"], e["reward"]) for e in ex.train) == [
        (prompt.format("a"), "right", 2.0), (prompt.format("a"), "wrong", 1.0),
        (prompt.format("d"), "new", 2.0), (prompt.format("d"), "old", 1.0)]
    report = ex.report["argilla"]
    assert (report["rows"], report["records_used"]) == (4, 2)
    status = "/".join(statuses)
    assert report["dropped"] == {"unchanged (new-response == original-response)": 1,
                                 f"no {status} response (new-response)": 1}


def test_rated_samples_take_the_rewards_given_and_every_annotator(tmp_path):
    path = write(tmp_path, EDITS, DOLLY_QUESTIONS)
    ex = prepare_examples(ilql_spec(path, template="prompt-completion", annotators="all",
                                    rewards={"original": 0, "edited": 1},
                                    columns={"prompt": ["new-instruction", "original-instruction"]}))
    by_prompt = sorted((e["prompt"], e["completion"], e["reward"]) for e in ex.train)
    assert by_prompt == [("Do a.", "right", 1.0), ("Do a.", "wrong", 0.0), ("Do d.", "new", 1.0),
                         ("Do d.", "newer", 1.0), ("Do d.", "old", 0.0), ("Do d.", "old", 0.0)]
    raw, _ = argilla_rows(ilql_spec(path, rewards={"edited": 5}))
    assert [(row["response"], row["reward"]) for row in raw.rows] == [("wrong", 1.0), ("right", 5.0),
                                                                         ("old", 1.0), ("new", 5.0)]


def test_rated_samples_spec_errors(tmp_path):
    path = write(tmp_path, EDITS, DOLLY_QUESTIONS)
    bad = [({"task": "rl", "rl": {"reward": "tunebridge.testing.rewards:letter_e"}}, {},
            "edited-vs-original makes rated samples (original and edit, each with a reward) for offline RL"),
           ({"task": "rl", "rl": {"algorithm": "ilql"}}, {"reward": "score"}, "leave data.reward out or set it"),
           ({"task": "reward"}, {"chosen": "{chosen}", "rejected": "{rejected}"},
            "data.argilla.rewards: rated samples are for task 'rl'"),
           ({"task": "sft"}, {}, "recipe 'edited-vs-original' makes rows for task 'reward' or 'rl'")]
    for top, data, message in bad:
        block = {"path": str(path), "template": "instruction", **data,
                 "argilla": {"recipe": "edited-vs-original", "edited": "new-response", "original": "original-response",
                             "rewards": {"original": 0, "edited": 1}}}
        with pytest.raises(tb.SpecError) as info:
            parse_spec({**top, "model": {"builtin": "tiny-llama"}, "data": block})
        assert message in str(info.value), str(info.value)
    with pytest.raises(tb.SpecError, match="columns: response is made by recipe edited-vs-original"):
        ilql_spec(path, columns={"response": "original-response"})
    with pytest.raises(tb.SpecError, match="rewards"):
        ilql_spec(path, rewards={"edit": 1})


# -- many annotators --------------------------------------------------------------------------------------

def votes(*values):
    return [answer(user, v) for user, v in zip((A, B, C), values, strict=False)]


@pytest.mark.parametrize(("policy", "expected", "dropped"), [
    ("first", [("P2", "why"), ("P3", "ex"), ("P1", "ex")], {}),
    ("majority", [("P1", "ex"), ("P3", "ex")], {"no majority (pick)": 1}),
    ("unanimous", [("P3", "ex")], {"annotators disagree (pick)": 2}),
])
def test_annotator_policies(tmp_path, policy, expected, dropped):
    def rec(rid, labels):
        return {"id": rid, "fields": {"prompt": rid, "x": "ex", "y": "why"}, "responses": {"pick": votes(*labels)}}
    records = [rec("P1", ["x", "x", "y"]), rec("P2", ["y", "x"]), rec("P3", ["x", "x"])]
    ex = examples(write(tmp_path, records, {"pick": "label_selection"}), recipe="label", question="pick",
                  candidates=["x", "y"], columns={"prompt": "prompt"}, annotators=policy)
    assert sorted((e["prompt"], e["chosen"]) for e in ex.train) == sorted(expected)
    assert ex.report["argilla"]["dropped"] == dropped


def test_policy_all_makes_one_example_per_annotator(tmp_path):
    records = [dolly_record("a", answers=[answer(A, "from a"), answer(B, "from b"), answer(C, "late", "draft")])]
    ex = examples(write(tmp_path, records, DOLLY_QUESTIONS), "sft", template="instruction", recipe="sft",
                  columns=DOLLY_COLUMNS, annotators="all")
    assert sorted(e["completion"] for e in ex.train) == ["from a", "from b"]
    assert ex.report["argilla"]["rows"] == 2 and ex.report["argilla"]["records_used"] == 1


def test_policy_all_ratings_pair_within_each_annotator(tmp_path):
    rec = pair_record("a", ratings1=[answer(A, 5), answer(B, 1)], ratings2=[answer(A, 1), answer(B, 1)])
    ex = examples(write(tmp_path, [rec], PAIR_QUESTIONS), recipe="rating", annotators="all",
                  ratings={"response-1": "rating-1", "response-2": "rating-2"}, columns={"prompt": "prompt"})
    assert [e["chosen"] for e in ex.train] == ["good answer"]
    assert ex.report["argilla"]["dropped"] == {"tie": 1}
    assert ex.report["argilla"]["drop_examples"] == ["record 'a' annotator user-b: every response has the same "
                                                     "rank or rating"]


# -- the real 2.8 export ----------------------------------------------------------------------------------

def test_real_v2_export(shared_data):
    path = shared_data / "argilla-v2-export.parquet"
    ex = examples(path, recipe="ranking", question="preference", columns={"prompt": "prompt"})
    assert ex.train == [{"prompt": "2+2?", "chosen": "5", "rejected": "4"}]  # the first annotator ranked 2 first
    report = ex.report["argilla"]
    assert report["format"] == "v2" and report["records"] == 3
    assert report["dropped"] == {"no submitted response (preference)": 2}
    assert report["ignored_responses"] == {"draft": 1}
    with pytest.raises(tb.DataError, match="made no examples"):
        examples(path, recipe="ranking", question="preference", columns={"prompt": "prompt"}, annotators="majority")
    ex = examples(path, recipe="label", question="good", candidates={"yes": "response1", "no": "response2"},
                  columns={"prompt": "prompt"}, statuses=["submitted", "draft"], annotators="all")
    assert sorted((e["prompt"], e["chosen"]) for e in ex.train) == [("2+2?", "4"), ("2+2?", "5"),
                                                                    ("capital of France?", "Paris")]
    ex = examples(path, "rl", recipe="prompts", reward="quality", columns={"prompt": "prompt", "source": "source"},
                  statuses=["submitted", "draft", "discarded"])
    assert sorted((e["prompt"], e["reward"]) for e in ex.train) == [("2+2?", 5.0), ("capital of France?", 3.0),
                                                                    ("colour of sky?", 1.0)]


# -- bad input --------------------------------------------------------------------------------------------

def test_missing_fields_and_questions_are_named(tmp_path):
    path = write(tmp_path, [pair_record("a", labels=[answer(A, "response-1")])], {"better": "label_selection"})
    msg = data_error(path, recipe="label", question="best", candidates=["response-1", "resp-2"],
                     columns={"prompt": "promt"})
    assert "columns.prompt: no field or question 'promt'" in msg
    assert "candidates: no field 'resp-2'" in msg and "question: no question 'best'" in msg
    assert "fields: prompt, response-1, response-2; questions: better" in msg
    assert "a 2.x export has no column for a question nobody answered" in msg


def test_question_of_the_wrong_type(tmp_path):
    path = write(tmp_path, [pair_record("a", ratings1=[answer(A, 4)], labels=[answer(A, "response-1")])],
                 PAIR_QUESTIONS)
    msg = data_error(path, recipe="ranking", question="rating-1", columns={"prompt": "prompt"})
    assert "question: question 'rating-1' holds int answers like 4; recipe ranking needs a ranking question" in msg
    msg = data_error(path, recipe="rating", ratings={"response-1": "better", "response-2": "rating-1"})
    assert "ratings.response-1: question 'better' holds str answers" in msg
    disk = write(tmp_path, [pair_record("a", ratings1=[answer(A, 4)])], PAIR_QUESTIONS, "v2-disk")
    msg = data_error(disk, recipe="label", question="rating-1", candidates=["response-1", "response-2"],
                     statuses=["unknown"])
    assert "question 'rating-1' is a rating question; recipe label needs a label_selection" in msg


def test_no_submitted_responses_at_all(tmp_path):
    path = write(tmp_path, [pair_record("a", labels=[answer(A, "response-1", "draft")])], PAIR_QUESTIONS)
    msg = data_error(path, recipe="label", question="better", candidates=["response-1", "response-2"])
    assert "question 'better' has no response with status submitted in 1 records (responses found: 1 draft)" in msg
    disk = write(tmp_path, [pair_record("a", labels=[answer(A, "response-1")])], PAIR_QUESTIONS, "v2-disk")
    msg = data_error(disk, recipe="label", question="better", candidates=["response-1", "response-2"])
    assert "a 2.x to_disk folder keeps no status: add 'unknown'" in msg


def test_an_empty_result_is_an_error_with_the_reasons(tmp_path):
    records = [dolly_record("a", answers=[answer(A, "orig")]), dolly_record("b", answers=[answer(A, "orig")])]
    msg = data_error(write(tmp_path, records, DOLLY_QUESTIONS), recipe="edited-vs-original", edited="new-response",
                     original="original-response", columns={"prompt": "original-instruction"})
    assert "the edited-vs-original recipe made no examples from 2 records" in msg
    assert "2 dropped: unchanged (new-response == original-response)" in msg and "record 'a'" in msg


def test_not_an_argilla_export(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "p", "chosen": "a", "rejected": "b"}])
    assert "cannot tell which Argilla export this is" in data_error(path, recipe="sft", task="sft",
                                                                    columns={"prompt": "prompt"})
    assert "data file not found" in data_error(tmp_path / "nope.parquet", recipe="sft", task="sft",
                                               columns={"prompt": "prompt"})


# -- the spec block ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("argilla", "task", "message"), [
    ({"recipe": "ranking", "question": "q", "colums": {}}, "reward", "data.argilla.colums: unknown key (did you "
                                                                     "mean 'columns'?)"),
    ({"recipe": "ranking"}, "reward", "recipe 'ranking' needs 'question'"),
    ({"recipe": "sft", "edited": "x", "columns": {"p": "p"}}, "sft", "recipe 'sft' does not take 'edited'"),
    ({"recipe": "label", "question": "q", "candidates": ["a"]}, "reward", "exactly two candidates"),
    ({"recipe": "rating", "ratings": {"a": "q"}}, "reward", "at least two ratings"),
    ({"recipe": "sft", "columns": {"prompt": "p"}}, "reward", "data.argilla.recipe: recipe 'sft' makes rows for "
                                                              "task 'sft', the spec's task is 'reward'"),
    ({"recipe": "sft"}, "sft", "recipe 'sft' needs `columns`"),
    ({"recipe": "label", "question": "q", "candidates": ["a", "b"], "columns": {"chosen": "x"}}, "reward",
     "chosen is made by recipe 'label'"),
    ({"recipe": "sft", "annotators": "most"}, "sft", "data.argilla.annotators"),
    ({"recipe": "sft", "statuses": ["done"]}, "sft", "data.argilla.statuses[0]"),
])
def test_spec_block_errors(argilla, task, message):
    with pytest.raises(tb.SpecError) as info:
        parse_spec({"task": task, "model": {"builtin": "tiny-llama"}, "data": {"path": "x", "argilla": argilla}})
    assert message in str(info.value)


# -- generated data at scale, CLI and run.json --------------------------------------------------------------

def test_generated_datasets_convert_in_every_layout(tmp_path):
    dolly, pairs = curated_dolly(200, seed=1), pairwise(200, seed=1)
    for fmt in ("v1", "v2"):
        sft = examples(write(tmp_path, dolly, DOLLY_QUESTIONS, fmt), "sft", template="instruction", recipe="sft",
                       columns=DOLLY_COLUMNS)
        assert len(sft.train) == 200
        ranked = examples(write(tmp_path, pairs, PAIR_QUESTIONS, fmt), recipe="ranking", question="ranking",
                          columns={"prompt": "prompt"}, annotators="majority")
        report = ranked.report["argilla"]
        assert report["rows"] + sum(report["dropped"].values()) == 200


def test_validate_prints_the_conversion(tmp_path):
    import subprocess
    import sys

    records = [dolly_record("a", answers=[answer(A, "better")]), dolly_record("b", answers=[answer(A, "orig")])]
    write(tmp_path, records, DOLLY_QUESTIONS)
    (tmp_path / "s.yaml").write_text(
        "task: reward\nmodel: {builtin: tiny-llama}\n"
        "data:\n  path: v2.parquet\n  argilla: {recipe: edited-vs-original, edited: new-response, "
        "original: original-response, columns: {prompt: original-instruction}}\n")
    proc = subprocess.run([sys.executable, "-m", "tunebridge", "validate", str(tmp_path / "s.yaml")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert ("argilla v2, recipe edited-vs-original, annotators first, counting submitted responses: "
            "2 records -> 1 rows (1 records used)") in proc.stdout
    assert "dropped 1: unchanged (new-response == original-response)" in proc.stdout


def test_run_json_keeps_the_conversion_report(tmp_path):
    pytest.importorskip("transformers", reason="runs load the tokenizer: needs the [trl] extra")
    from tunebridge.plugins import load_registry
    from tunebridge.run import Run

    import fake_backend

    records = [dolly_record(f"r{i}", answers=[answer(A, f"fixed {i}")] if i % 2 else []) for i in range(8)]
    path = write(tmp_path, records, DOLLY_QUESTIONS)
    s = parse_spec({"task": "sft", "model": {"builtin": "tiny-llama"}, "backend": "fake",
                    "training": {"max_steps": 2}, "data": {"path": str(path), "template": "instruction",
                    "argilla": {"recipe": "sft", "columns": DOLLY_COLUMNS}}})
    Run(s, registry=load_registry([fake_backend], entry_points=False)).train(tmp_path / "out")
    data = json.loads((tmp_path / "out" / "run.json").read_text())["data"]
    assert data["argilla"]["sources"]["response"] == {"new-response": 4, "original-response": 4}
    assert data["argilla"]["recipe"] == "sft" and data["train"] == 8


# -- the shipped example ----------------------------------------------------------------------------------

def test_example_data_is_what_its_script_writes(repo, tmp_path, monkeypatch):
    import runpy

    script = repo / "examples" / "data" / "make_curated_argilla.py"
    module = runpy.run_path(str(script))
    rows = [json.loads(line) for line in (repo / "examples" / "data" / "everyday-preferences.jsonl").open()][:40]
    expected = [json.dumps(module["record"](i, row, len(rows)), ensure_ascii=False) for i, row in enumerate(rows)]
    shipped = (repo / "examples" / "data" / "everyday-curated-argilla.jsonl").read_text(encoding="utf-8")
    assert shipped.splitlines() == expected


def test_example_specs_validate(repo):
    sft = prepare_examples(tb.load_spec(repo / "examples" / "argilla-sft.yaml"))
    assert len(sft.train) == 40 and sft.report["argilla"]["format"] == "v1"
    assert sft.report["argilla"]["sources"]["response"] == {"new-response": 31, "original-response": 9}
    reward = prepare_examples(tb.load_spec(repo / "examples" / "argilla-reward.yaml"))
    assert len(reward.train) == 21 and all(e["chosen"] != e["rejected"] for e in reward.train)
    assert reward.report["argilla"]["dropped"] == {"unchanged (new-response == original-response)": 10,
                                                   "no submitted response (new-response)": 9}


@pytest.mark.training
def test_reward_model_trains_on_argilla_pairs(repo, tmp_path, trl_available):
    spec = tb.load_spec(repo / "examples" / "argilla-reward.yaml")
    spec.training.max_steps = 2
    result = tb.RewardTrainer(spec, backend="trl").train(tmp_path / "rm")
    data = json.loads((tmp_path / "rm" / "run.json").read_text())["data"]
    assert data["argilla"]["recipe"] == "edited-vs-original" and data["argilla"]["rows"] == 21
    assert result.metrics["train_loss"] > 0


def test_1x_answers_in_column_wise_form_and_a_datasets_folder(tmp_path):
    rows = [{"prompt": "P?", "x": "ex", "y": "why", "external_id": "cw",
             "rank": {"user_id": [A, B], "value": [{"value": ["y", "x"], "rank": [1, 2]}, None],
                      "status": ["submitted", "draft"]}}]
    ex = examples(write_jsonl(tmp_path / "d.jsonl", rows), recipe="ranking", question="rank", format="v1",
                  columns={"prompt": "prompt"})
    assert ex.train == [{"prompt": "P?", "chosen": "why", "rejected": "ex"}]
    assert ex.report["argilla"]["ignored_responses"] == {"draft": 1}
    datasets = pytest.importorskip("datasets")
    folder = tmp_path / "saved"
    datasets.Dataset.from_list(v1_rows(pairwise(30, seed=3), PAIR_QUESTIONS)).save_to_disk(str(folder))
    ex = examples(folder, recipe="rating", ratings={"response-1": "rating-1", "response-2": "rating-2"},
                  columns={"prompt": "prompt"})
    assert ex.report["argilla"]["format"] == "v1" and ex.report["argilla"]["records"] == 30
    assert ex.report["argilla"]["rows"] + sum(ex.report["argilla"]["dropped"].values()) == 30


def test_date_like_text_stays_text(tmp_path):
    rec = {"id": "d", "fields": {"original-instruction": "When?", "original-context": "",
                                 "original-response": "2021-03-04"},
           "responses": {"new-response": [answer(A, "2021-03-04T10:00:00")]}}
    path = write(tmp_path, [rec], DOLLY_QUESTIONS, "v1")
    ex = examples(path, recipe="edited-vs-original", edited="new-response", original="original-response",
                  columns={"prompt": "original-instruction"})
    assert ex.train == [{"prompt": "When?", "chosen": "2021-03-04T10:00:00", "rejected": "2021-03-04"}]


def test_a_server_path_needs_the_argilla_block():
    with pytest.raises(tb.SpecError, match="reads a live Argilla server: add an `argilla:` block"):
        parse_spec({"task": "sft", "model": {"builtin": "tiny-llama"}, "data": {"path": "argilla://ws/ds"}})
    with pytest.raises(tb.DataError, match="format 'server' needs data.path argilla://WORKSPACE/DATASET"):
        examples("x.parquet", "sft", recipe="sft", format="server", columns={"prompt": "p"})


@pytest.mark.parametrize(("recipe", "records", "questions", "options"), [
    ("ranking", [three_way("r", [(A, ["x", "y", "z"])])], {"rank": "ranking"},
     {"question": "rank", "pairs": "best-vs-worst", "columns": {"prompt": "prompt"}}),
    ("edited-vs-original", [dolly_record("a", answers=[answer(A, "edited")])], DOLLY_QUESTIONS,
     {"edited": "new-response", "original": "original-response"}),
])
def test_reward_recipes_make_the_same_pairs_for_task_preference(tmp_path, recipe, records, questions, options):
    path = write(tmp_path, records, questions)
    reward = examples(path, recipe=recipe, **options)
    preference = examples(path, "preference", recipe=recipe, **options)
    assert preference.train == reward.train and preference.kind == "preference" and preference.train
