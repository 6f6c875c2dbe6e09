"""Reading data files and rendering examples: formats, templates, and errors naming file, row and field."""

from __future__ import annotations

import csv
import json

import pytest

import tunebridge as tb
from tunebridge.data import read_rows
from tunebridge.examples import prepare_examples, split_and_order
from tunebridge.spec import parse_spec
from tunebridge.testing import contract_rows, write_jsonl

ROWS = [
    {"instruction": "Say hi.", "context": "", "response": "Hi!"},
    {"instruction": "Add.", "context": "2 and 3", "response": "5"},
]


def spec_for(path, **data):
    data = {"path": str(path), "template": "instruction", **data}
    return parse_spec({"task": "sft", "model": {"builtin": "tiny-llama"}, "data": data})


def error_of(spec) -> str:
    with pytest.raises(tb.DataError) as info:
        prepare_examples(spec)
    return str(info.value)


def test_instruction_template_drops_an_empty_context(tmp_path):
    ex = prepare_examples(spec_for(write_jsonl(tmp_path / "d.jsonl", ROWS)))
    by_completion = {e["completion"]: e["prompt"] for e in ex.train}
    assert by_completion["Hi!"] == "### Instruction\nSay hi.\n\n### Response:\n"
    assert by_completion["5"] == "### Instruction\nAdd.\n\n### Context\n2 and 3\n\n### Response:\n"
    assert ex.kind == "prompt_completion"


def test_instruction_template_without_a_context_column(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"instruction": "a", "response": "b"}])
    assert prepare_examples(spec_for(path)).train[0]["prompt"] == "### Instruction\na\n\n### Response:\n"


def test_columns_map_template_fields(tmp_path):
    rows = [{"q": "Why?", "ctx": "", "a": "Because."}]
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    spec = spec_for(path, columns={"instruction": "q", "context": "ctx", "response": "a"})
    assert prepare_examples(spec).train[0] == {"prompt": "### Instruction\nWhy?\n\n### Response:\n",
                                               "completion": "Because."}


def test_inline_and_text_templates(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"q": "x", "a": 3}])
    spec = parse_spec({"task": "sft", "model": {"builtin": "tiny-llama"},
                       "data": {"path": str(path), "prompt": "Q: {q}\nA: ", "completion": "{a}"}})
    assert prepare_examples(spec).train == [{"prompt": "Q: x\nA: ", "completion": "3"}]
    spec = parse_spec({"task": "sft", "model": {"builtin": "tiny-llama"},
                       "data": {"path": str(path), "text": "{q} -> {a}"}})
    ex = prepare_examples(spec)
    assert ex.train == [{"text": "x -> 3"}] and ex.kind == "text"


def test_prompt_completion_template(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "p", "completion": "c"}])
    spec = parse_spec({"task": "sft", "model": {"builtin": "tiny-llama"},
                       "data": {"path": str(path), "template": "prompt-completion"}})
    assert prepare_examples(spec).train == [{"prompt": "p", "completion": "c"}]


def test_missing_column_names_file_line_and_column(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [ROWS[0], {"instruction": "x", "context": ""}])
    msg = error_of(spec_for(path))
    assert "d.jsonl line 2" in msg and "missing column 'response'" in msg and "1 of 2 rows" in msg


def test_null_empty_and_wrong_type_values(tmp_path):
    rows = [{"instruction": None, "response": "a"}, {"instruction": "x", "response": "  "},
            {"instruction": ["a list"], "response": "a"}]
    msg = error_of(spec_for(write_jsonl(tmp_path / "d.jsonl", rows)))
    assert "line 1: column 'instruction' is empty (null)" in msg
    assert "line 2: completion is empty (from 'response')" in msg
    assert "line 3: column 'instruction' holds a list, expected text" in msg


def test_a_row_whose_template_columns_are_all_empty_is_bad_input(tmp_path):
    rows = [ROWS[0], {"instruction": " ", "context": None, "response": ""}, {"q": "", "a": None}, {"q": "x", "a": ""}]
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    msg = error_of(spec_for(path))
    assert "d.jsonl: 3 of 4 rows cannot be used" in msg
    assert "line 2: every template column is empty (instruction, context, response)" in msg
    # a completion with text of its own still needs a value in one of the columns
    inline = {"prompt": "Q: {q}\n", "completion": "Answer: {a}"}
    msg = error_of(spec_for(write_jsonl(tmp_path / "i.jsonl", rows[2:]), template=None, **inline))
    assert "i.jsonl: 1 of 2 rows cannot be used" in msg and "line 1: every template column is empty (q, a)" in msg
    # rl prompts: the instruction template's own text alone is no prompt
    rl = parse_spec({"task": "rl", "model": {"builtin": "tiny-llama"}, "rl": {"reward": "tunebridge.testing.rewards:"
                     "letter_e"}, "data": {"path": str(path), "template": "instruction"}})
    assert "line 2: every template column is empty (instruction, context)" in error_of(rl)


def test_mapped_missing_column_names_both_names(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"q": "x", "a": "y"}])
    msg = error_of(spec_for(path, columns={"instruction": "question", "response": "a"}))
    assert "missing column 'question' (for {instruction})" in msg


def test_many_bad_rows_are_counted_and_the_first_shown(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"instruction": "x"}] * 25)
    err = pytest.raises(tb.DataError, prepare_examples, spec_for(path)).value
    assert err.total == 25 and len(err.problems) == 10 and "and 15 more" in str(err)


def test_unreadable_jsonl_line_and_non_object(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n{not json\n[1, 2]\n\n")
    msg = error_of(spec_for(path))
    assert "d.jsonl line 2: not valid JSON" in msg and "d.jsonl line 3: expected a JSON object" in msg


def test_empty_and_missing_and_unknown_files(tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n")
    assert "no rows" in error_of(spec_for(tmp_path / "empty.jsonl"))
    assert "not found" in error_of(spec_for(tmp_path / "missing.jsonl"))
    (tmp_path / "d.txt").write_text("x")
    assert "unknown data format '.txt'" in error_of(spec_for(tmp_path / "d.txt"))


def test_json_csv_parquet_and_datasets_folder_read_the_same_rows(tmp_path):
    (tmp_path / "d.json").write_text(json.dumps(ROWS))
    with (tmp_path / "d.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["instruction", "context", "response"])
        writer.writeheader()
        writer.writerows(ROWS)
    pa = pytest.importorskip("pyarrow", reason="parquet needs pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(ROWS), tmp_path / "d.parquet")
    datasets = pytest.importorskip("datasets", reason="writing a datasets folder needs `datasets`")
    datasets.Dataset.from_list(ROWS).save_to_disk(str(tmp_path / "saved"))
    datasets.DatasetDict({"train": datasets.Dataset.from_list(ROWS)}).save_to_disk(str(tmp_path / "saved_dict"))
    for name in ("d.json", "d.csv", "d.parquet", "saved", "saved_dict"):
        assert read_rows(tmp_path / name).rows == ROWS, name


def test_csv_with_extra_cells_names_the_row(tmp_path):
    (tmp_path / "d.csv").write_text("instruction,response\na,b\nc,d,e\n")
    assert "d.csv row 2 (line 3): more cells than header columns" in error_of(spec_for(tmp_path / "d.csv"))


def test_bad_parquet_and_folder(tmp_path):
    (tmp_path / "d.parquet").write_bytes(b"not parquet")
    assert "cannot read parquet" in error_of(spec_for(tmp_path / "d.parquet"))
    (tmp_path / "folder").mkdir()
    assert "saved by `datasets`" in error_of(spec_for(tmp_path / "folder"))


def test_chat_messages_are_checked_without_a_tokenizer(tmp_path):
    good = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    bad_last = {"messages": [{"role": "user", "content": "hi"}]}
    bad_shape = {"messages": [{"role": "user"}, {"role": "assistant", "content": "x"}]}
    path = write_jsonl(tmp_path / "d.jsonl", [good, bad_last, bad_shape, {"other": 1}])
    msg = error_of(parse_spec({"task": "sft", "model": {"builtin": "tiny-llama"},
                               "data": {"path": str(path), "template": "chat"}}))
    assert "line 2: column 'messages': the last message must be from the assistant" in msg
    assert "line 3: column 'messages' message 0: expected {role: str, content: str}" in msg
    assert "line 4: missing column 'messages'" in msg


def test_split_is_seeded_disjoint_and_complete():
    items = [{"i": i} for i in range(50)]
    train, held = split_and_order(items, 0.2, seed=3, shuffle=True)
    assert len(held) == 10 and len(train) == 40
    assert sorted(x["i"] for x in train + held) == list(range(50))
    assert (train, held) == split_and_order(items, 0.2, seed=3, shuffle=True)
    assert held != split_and_order(items, 0.2, seed=4, shuffle=True)[1]
    ordered, _ = split_and_order(items, 0.0, seed=3, shuffle=False)
    assert ordered == items


def test_eval_fraction_that_leaves_nothing_is_an_error(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", ROWS[:1])
    assert "leaves no training rows" in error_of(spec_for(path, eval_fraction=0.5))


def test_limit_and_report(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", contract_rows(20))
    ex = prepare_examples(spec_for(path, limit=10, eval_fraction=0.2))
    assert ex.report == {"source": str(path), "rows": 10, "examples": 10, "train": 8, "eval": 2,
                         "template": "instruction", "shuffled": True}


def test_real_dolly_sample_renders(shared_data):
    spec = spec_for(shared_data / "dolly-100.jsonl")
    ex = prepare_examples(spec)
    assert ex.report["examples"] == 100
    assert all(e["prompt"].startswith("### Instruction\n") and e["completion"] for e in ex.train)
    with_context = [e for e in ex.train if "### Context\n" in e["prompt"]]
    assert 0 < len(with_context) < 100


def test_a_columns_entry_no_placeholder_uses_is_a_spec_error(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", ROWS)
    with pytest.raises(tb.SpecError) as info:
        prepare_examples(spec_for(path, columns={"instrucion": "q"}))
    assert info.value.problems[0][0] == "data.columns.instrucion"
    assert "placeholders: context, instruction, response" in info.value.problems[0][1]


def test_preference_template_with_and_without_a_prompt_column(tmp_path):
    rows = [{"prompt": "Q? ", "chosen": "good", "rejected": "bad"}, {"chosen": "Q: yes", "rejected": "Q: no"}]
    spec = parse_spec({"task": "reward", "model": {"builtin": "tiny-llama"},
                       "data": {"path": str(write_jsonl(tmp_path / "p.jsonl", rows))}})
    ex = prepare_examples(spec)
    assert ex.kind == "preference" and sorted(ex.train, key=lambda e: e["chosen"]) == [
        {"prompt": "", "chosen": "Q: yes", "rejected": "Q: no"}, {"prompt": "Q? ", "chosen": "good", "rejected": "bad"}]


def test_preference_rows_with_empty_or_identical_answers_are_errors(tmp_path):
    rows = [{"instruction": "a", "chosen": "x", "rejected": ""}, {"instruction": "b", "chosen": "y", "rejected": "y"},
            {"instruction": "c", "chosen": "z"}]
    spec = parse_spec({"task": "reward", "model": {"builtin": "tiny-llama"},
                       "data": {"path": str(write_jsonl(tmp_path / "p.jsonl", rows)), "template": "instruction",
                                "chosen": "{chosen}", "rejected": "{rejected}"}})
    msg = error_of(spec)
    assert "line 1: rejected answer is empty (from 'rejected')" in msg
    assert "line 2: chosen and rejected answers are identical" in msg
    assert "line 3: missing column 'rejected'" in msg


def test_rl_prompts_keep_the_other_columns_for_the_reward(tmp_path):
    rows = [{"instruction": "Say hi.", "context": "", "response": "Hi!", "score": 3}]
    spec = parse_spec({"task": "rl", "model": {"builtin": "tiny-llama"}, "rl": {"reward": "a.b:c"},
                       "data": {"path": str(write_jsonl(tmp_path / "p.jsonl", rows)), "template": "instruction"}})
    ex = prepare_examples(spec)
    assert ex.kind == "prompt_only"
    assert ex.train == [{"prompt": "### Instruction\nSay hi.\n\n### Response:\n", "instruction": "Say hi.",
                         "context": "", "response": "Hi!", "score": 3}]
    inline = parse_spec({"task": "rl", "model": {"builtin": "tiny-llama"}, "rl": {"reward": "a.b:c"},
                         "data": {"path": str(tmp_path / "p.jsonl"), "prompt": "{instruction}"}})
    assert prepare_examples(inline).train[0]["prompt"] == "Say hi."


# --- rendering column by column ---------------------------------------------------------------------------------
ODD_ROWS = [
    {"instruction": "Say hi.", "context": "", "response": "Hi!", "chosen": "a", "rejected": "b", "score": 1},
    {"instruction": "Add.", "context": " \u3000", "response": "5", "chosen": "x", "rejected": "x", "score": "2.5"},
    {"instruction": "100% {sure}", "context": None, "response": "  ", "chosen": "", "rejected": "b", "score": True},
    {"instruction": 7, "context": 1.5, "response": False, "chosen": "c", "rejected": "d", "score": float("nan")},
    {"instruction": None, "context": "ctx", "response": "r", "chosen": "c", "rejected": "d", "score": 2},
    {"instruction": ["a list"], "context": "ctx", "response": {"a": 1}, "chosen": "c", "rejected": "e", "score": 3.5},
    {"context": "no instruction", "response": "r", "chosen": "c", "rejected": "f", "score": None},
    {"instruction": "ok", "context": "%s %%", "response": "\u00a0", "chosen": "g", "rejected": "h", "score": 4},
]


@pytest.mark.parametrize("data,task", [
    ({"template": "instruction"}, "sft"),
    ({"template": "instruction", "columns": {"context": "context"}}, "sft"),
    ({"template": "instruction", "reward": "score"}, "sft"),  # (an offline reward column, as ilql renders it)
    ({"template": "instruction", "chosen": "{chosen}", "rejected": "{rejected}"}, "reward"),
    ({"prompt": "Q {{literal}} 100%: {instruction} / {context}\n", "completion": "{response}"}, "sft"),
    ({"text": "{instruction}{response}"}, "sft"),
    ({"template": "preference", "columns": {"prompt": "instruction"}}, "reward"),
    ({"template": "instruction"}, "rl"),
])
def test_column_wise_rendering_equals_rendering_row_by_row(tmp_path, data, task):
    from dataclasses import replace

    from tunebridge.data import ColumnData, RawData
    from tunebridge.examples import _render
    from tunebridge.templates import RowProblem, render_row, resolve_template

    extra = {"rl": {"reward": "tunebridge.testing.rewards:letter_e"}} if task == "rl" else {}
    data = dict(data)
    reward = data.pop("reward", None)
    spec = parse_spec({"task": task, "model": {"builtin": "tiny-llama"},
                       "data": {"path": str(tmp_path / "d.jsonl"), **data}, **extra})
    template = resolve_template(spec.data, spec.data_kind, spec.template_task)
    template = replace(template, reward=reward) if reward else template
    want, problems = [], []
    for i, row in enumerate(ODD_ROWS):
        try:
            want.append(render_row(row, template))
        except RowProblem as exc:
            problems.append((i, str(exc)))
    assert want and problems  # the rows hold both
    names = ["instruction", "context", "response", "chosen", "rejected", "score"]
    full = [row for row in ODD_ROWS if "instruction" in row]
    columns = {name: [row[name] for row in full] for name in names}
    by_columns = ColumnData(tmp_path, columns, [f"row {i}" for i in range(len(full))])
    for raw, expected in ((RawData(tmp_path, ODD_ROWS), (want, problems)), (by_columns, None)):
        got, bad = _render(raw, template, None, None)
        if expected is None:  # the column-held rows are ODD_ROWS without the row that lacks a column
            kept = [render_row(row, template) for row in full if _renders(row, template)]
            assert got == kept
            continue
        assert got == expected[0]
        assert [(i, str(exc)) for i, exc in bad] == expected[1]


def _renders(row, template) -> bool:
    from tunebridge.templates import RowProblem, render_row

    try:
        render_row(row, template)
    except RowProblem:
        return False
    return True


def test_column_wise_rendering_skips_templates_it_cannot_paste():
    from tunebridge.templates import Template, render_columns

    rows = {"a": ["x", "y"]}
    assert render_columns(rows.get, 2, Template("text", text="{a!r}")) is None
    assert render_columns(rows.get, 2, Template("text", text="{a:>5}")) is None
    assert render_columns(rows.get, 2, Template("chat", columns={"messages": "a"})) is None
    examples, suspect = render_columns(rows.get, 2, Template("text", text="[{a}] 5%"))
    assert examples == [{"text": "[x] 5%"}, {"text": "[y] 5%"}] and suspect == []
