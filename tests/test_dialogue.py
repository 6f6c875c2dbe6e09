"""Anthropic-style dialogue pairs: split into the shared prompt and the two last answers (template hh-dialogue)."""

from __future__ import annotations

import json

import pytest

import tunebridge as tb
from tunebridge.examples import prepare_examples
from tunebridge.feedback.dialogue import DialogueProblem, split_last_turn, split_pair
from tunebridge.spec import parse_spec
from tunebridge.testing import write_jsonl

SHARED = "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Name a fruit."
PAIR = {"chosen": SHARED + "\n\nAssistant: An apple.", "rejected": SHARED + "\n\nAssistant: No."}


def spec_for(path, task="reward", **data):
    extra = {"rl": {"reward": "tunebridge.testing.rewards:letter_e"}} if task == "rl" else {}
    return parse_spec({"task": task, "model": {"builtin": "tiny-llama"},
                       "data": {"path": str(path), "template": "hh-dialogue", **data}, **extra})


def test_split_pair_gives_back_the_originals():
    prompt, chosen, rejected = split_pair(PAIR["chosen"], PAIR["rejected"])
    assert prompt == SHARED + "\n\nAssistant:" and chosen == " An apple." and rejected == " No."
    assert prompt + chosen == PAIR["chosen"] and prompt + rejected == PAIR["rejected"]


@pytest.mark.parametrize(("chosen", "rejected", "message"), [
    ("\n\nHuman: a\n\nAssistant: b", "\n\nHuman: x\n\nAssistant: c", "differ before the last Assistant turn"),
    ("\n\nHuman: a", "\n\nHuman: a\n\nAssistant: c", "chosen has no '\\n\\nAssistant:' turn"),
    ("\n\nHuman: a\n\nAssistant:  ", "\n\nHuman: a\n\nAssistant: c", "chosen: the last Assistant answer is empty"),
    ("\n\nHuman: a\n\nAssistant: b", "\n\nHuman: a\n\nAssistant: b ", "answers are identical"),
    ("\n\nAssistant: b", "\n\nAssistant: c", "no '\\n\\nHuman:' turn"),
])
def test_pairs_that_cannot_be_split(chosen, rejected, message):
    with pytest.raises(DialogueProblem, match=message.replace("\\", "\\\\")):
        split_pair(chosen, rejected)
    with pytest.raises(DialogueProblem):
        split_last_turn(3)


def test_template_for_reward_sft_and_rl(tmp_path):
    path = write_jsonl(tmp_path / "hh.jsonl", [PAIR])
    ex = prepare_examples(spec_for(path))
    assert ex.kind == "preference"
    assert ex.train == [{"prompt": SHARED + "\n\nAssistant:", "chosen": " An apple.", "rejected": " No."}]
    assert ex.template.describe()["split"].startswith("at the last Assistant turn")
    sft = prepare_examples(spec_for(path, task="sft"))
    assert sft.train == [{"prompt": SHARED + "\n\nAssistant:", "completion": " An apple."}]
    rl = prepare_examples(spec_for(path, task="rl"))
    assert rl.train[0]["prompt"] == SHARED + "\n\nAssistant:" and rl.kind == "prompt_only"


def test_columns_rename_and_bad_rows_are_counted_drops(tmp_path):
    rows = [{"good": PAIR["chosen"], "bad": PAIR["rejected"]}, {"good": PAIR["chosen"], "bad": "\n\nHuman: other"}]
    path = write_jsonl(tmp_path / "hh.jsonl", rows)
    ex = prepare_examples(spec_for(path, columns={"chosen": "good", "rejected": "bad"}))
    assert len(ex.train) == 1
    assert ex.report["dialogue"]["drop_examples"] == ["hh.jsonl line 2: rejected has no '\\n\\nAssistant:' turn"]
    write_jsonl(path, rows[1:])
    with pytest.raises(tb.DataError) as info:
        prepare_examples(spec_for(path, columns={"chosen": "good", "rejected": "bad"}))
    assert "no examples to train on" in str(info.value) and "1 dropped: template: rejected has no" in str(info.value)


def test_real_hh_rlhf_pairs(shared_data):
    ex = prepare_examples(spec_for(shared_data / "hh-harmless-300.jsonl"))
    assert len(ex.train) == 299  # line 87's chosen dialogue ends with an empty Assistant turn
    assert ex.report["dialogue"]["dropped"] == {"template: chosen: the last Assistant answer is empty": 1}
    assert ex.report["dialogue"]["drop_examples"] == ["hh-harmless-300.jsonl line 87: chosen: the last Assistant "
                                                      "answer is empty"]
    assert "1 of 300 dialogue rows cannot be split" in ex.report["warnings"][0]
    originals = {json.loads(line)["chosen"] for line in (shared_data / "hh-harmless-300.jsonl").open()}
    for e in ex.train:
        assert e["prompt"].endswith("\n\nAssistant:") and e["prompt"] + e["chosen"] in originals
        assert "\n\nAssistant:" not in e["chosen"] and e["chosen"] != e["rejected"]


def test_validate_prints_the_dropped_dialogue_rows(tmp_path):
    import subprocess
    import sys

    write_jsonl(tmp_path / "hh.jsonl", [PAIR, {"chosen": PAIR["chosen"], "rejected": PAIR["chosen"]}])
    (tmp_path / "s.yaml").write_text("task: reward\nmodel: {builtin: tiny-llama}\n"
                                     "data: {path: hh.jsonl, template: hh-dialogue}\n")
    proc = subprocess.run([sys.executable, "-m", "tunebridge", "validate", str(tmp_path / "s.yaml")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "data ok: 2 rows -> 1 train / 0 eval examples, template hh-dialogue" in proc.stdout
    assert "dialogue rows dropped 1: template: chosen and rejected answers are identical" in proc.stdout
