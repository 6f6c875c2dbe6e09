"""The spec: validation errors name the field path; files load; the schema and docs stay in sync."""

from __future__ import annotations

import json

import pytest

import tunebridge as tb
from tunebridge.spec import json_schema, load_spec, parse_spec

MINIMAL = {"task": "sft", "model": {"builtin": "tiny-llama"}, "data": {"path": "d.jsonl", "template": "instruction"}}


def problems(data):
    with pytest.raises(tb.SpecError) as info:
        parse_spec(data)
    return dict(info.value.problems), str(info.value)


def test_minimal_spec_fills_defaults():
    spec = parse_spec(MINIMAL)
    assert spec.training.seed == 42 and spec.training.logging_steps == 1
    assert spec.sft.completion_only_loss is True and spec.sft.packing is False
    assert spec.backend == "trl" and spec.lora is None
    assert spec.training.precision == "fp32" and spec.training.gradient_checkpointing is False


def test_unknown_key_is_an_error_with_its_path_and_a_suggestion():
    found, text = problems({**MINIMAL, "training": {"learning_rat": 1e-3}})
    assert "training.learning_rat" in found
    assert "unknown key" in found["training.learning_rat"] and "learning_rate" in found["training.learning_rat"]
    assert "training.learning_rat" in text


def test_unknown_top_level_key():
    found, _ = problems({**MINIMAL, "epochs": 3})
    assert found["epochs"].startswith("unknown key")


def test_missing_required_fields_are_named():
    found, _ = problems({"task": "sft"})
    assert found["model"] == "required" and found["data"] == "required"


def test_wrong_types_and_ranges_name_the_field():
    found, _ = problems({**MINIMAL, "training": {"batch_size": "four", "learning_rate": -1}})
    assert "training.batch_size" in found and "training.learning_rate" in found
    found, _ = problems({**MINIMAL, "data": {"path": "d.jsonl", "template": "instruction", "eval_fraction": 1.5}})
    assert "data.eval_fraction" in found


def test_task_must_be_known():
    found, _ = problems({**MINIMAL, "task": "dpo"})
    assert "task" in found and "sft" in found["task"]


def test_model_needs_exactly_one_source():
    found, _ = problems({**MINIMAL, "model": {"path": "x", "builtin": "tiny-llama"}})
    assert "exactly one" in found["model"]
    found, _ = problems({**MINIMAL, "model": {}})
    assert "exactly one" in found["model"]


def test_data_templates_are_exclusive_and_paired():
    found, _ = problems({**MINIMAL, "data": {"path": "d", "template": "instruction", "text": "{a}"}})
    assert "`text` stands alone" in found["data"]
    found, _ = problems({**MINIMAL, "data": {"path": "d", "template": "prompt-completion", "prompt": "{a}"}})
    assert "not both" in found["data"]
    found, _ = problems({**MINIMAL, "data": {"path": "d", "chosen": "{a}"}})
    assert "`chosen` and `rejected` go together" in found["data"]
    found, _ = problems({**MINIMAL, "data": {"path": "d", "prompt": "{a}"}})
    assert "task 'sft' cannot use a prompt string alone" in found["data"]


def test_yaml_and_json_files_resolve_paths_against_their_folder(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "spec.yaml").write_text(
        "task: sft\nmodel: {builtin: tiny-llama}\ndata: {path: rows.jsonl, template: instruction}\n"
    )
    (tmp_path / "sub" / "spec.json").write_text(json.dumps(MINIMAL))
    spec = load_spec(tmp_path / "sub" / "spec.yaml")
    assert spec.resolve_path(spec.data.path) == (tmp_path / "sub" / "rows.jsonl").resolve()
    assert load_spec(tmp_path / "sub" / "spec.json").data.path == "d.jsonl"


def test_bad_yaml_and_missing_file_are_spec_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: sft\nmodel: {builtin: tiny-llama\n")
    with pytest.raises(tb.SpecError, match="cannot parse"):
        load_spec(bad)
    with pytest.raises(tb.SpecError, match="no such spec file"):
        load_spec(tmp_path / "nope.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(tb.SpecError, match="expected a mapping"):
        load_spec(tmp_path / "list.yaml")


def test_with_backend_keeps_the_base_dir(tmp_path):
    spec = parse_spec(MINIMAL, base_dir=tmp_path)
    other = spec.with_backend("trlx")
    assert other.backend == "trlx" and spec.backend == "trl"
    assert other.base_dir == tmp_path.resolve()


def test_schema_describes_every_section():
    schema = json_schema()
    assert {"task", "model", "data", "training", "lora", "sft", "backend", "backend_options"} <= set(
        schema["properties"]
    )
    assert schema.get("additionalProperties") is False


def test_every_example_spec_validates(repo):
    specs = sorted((repo / "examples").glob("*.yaml"))
    assert specs
    for path in specs:
        assert load_spec(path).task in ("sft", "reward", "rl", "preference")


def test_spec_reference_doc_is_generated_from_the_code(repo):
    from tunebridge.specdoc import render

    assert (repo / "docs" / "spec.md").read_text() == render(), (
        "docs/spec.md is out of date: run `python -m tunebridge.specdoc > docs/spec.md`"
    )


RL = {"task": "rl", "model": {"builtin": "tiny-llama"}, "data": {"path": "d.jsonl"},
      "rl": {"reward": "pkg.mod:fn"}}


def test_each_task_has_a_default_template_and_refuses_the_others():
    assert parse_spec({**MINIMAL, "data": {"path": "d"}}).data_kind == "prompt-completion"
    assert parse_spec({**MINIMAL, "task": "reward", "data": {"path": "d"}}).data_kind == "preference"
    assert parse_spec(RL).data_kind == "prompt"
    found, _ = problems({**MINIMAL, "task": "reward", "data": {"path": "d", "template": "chat"}})
    assert "task 'reward' cannot use template 'chat'" in found["data"]
    found, _ = problems({**RL, "data": {"path": "d", "text": "{a}"}})
    assert "task 'rl' cannot use text" in found["data"]
    found, _ = problems({**MINIMAL, "task": "reward"})
    assert "needs `chosen` and `rejected`" in found["data"]
    spec = parse_spec({**MINIMAL, "task": "reward",
                       "data": {"path": "d", "template": "instruction", "chosen": "{a}", "rejected": "{b}"}})
    assert spec.data_kind == "instruction"


def test_task_blocks_belong_to_their_task():
    found, _ = problems({**MINIMAL, "rl": {"reward": "a.b:c"}})
    assert "for task 'rl'" in found["rl"]
    found, _ = problems({**RL, "sft": {"packing": True}})
    assert "for task 'sft'" in found["sft"]
    found, _ = problems({**MINIMAL, "reward": {"over_length": "truncate"}})
    assert "for task 'reward'" in found["reward"]


def test_rl_reward_forms():
    spec = parse_spec({**RL, "rl": {"reward": [{"function": "a.b:c", "weight": 2}, {"model": "rm"}, "x:y"]}})
    assert [(r.name, r.weight) for r in spec.rl.reward] == [("c", 2.0), ("rm", 1.0), ("y", 1.0)]
    assert parse_spec({**RL, "rl": {"reward": {"model": "runs/rm/model"}}}).rl.reward[0].name == "model"
    found, _ = problems({**RL, "rl": {}})
    assert "needs a reward" in found["rl.reward"]
    found, _ = problems({**RL, "rl": {"reward": "no_colon"}})
    assert "pkg.module:function" in found["rl.reward[0]"]
    found, _ = problems({**RL, "rl": {"reward": {"function": "a:b", "model": "m"}}})
    assert "exactly one" in found["rl.reward[0]"]
    found, _ = problems({**RL, "rl": {"reward": "a:b", "algorithm": "dpo"}})
    assert "rl.algorithm" in found
    found, _ = problems({**RL, "rl": {"reward": "a:b", "generation": {"num_generations": 1}}})
    assert "rl.generation.num_generations" in found


def test_a_callable_reward_is_recorded_by_name():
    def my_reward(prompts, completions, **columns):
        return [0.0] * len(completions)

    spec = parse_spec({**RL, "rl": {"reward": my_reward}})
    assert spec.rl.reward[0].function is my_reward and spec.rl.reward[0].name == "my_reward"
    assert spec.to_dict()["rl"]["reward"][0]["function"].endswith(":test_a_callable_reward_is_recorded_by_name."
                                                                  "<locals>.my_reward")


def test_chosen_and_rejected_belong_to_the_reward_task():
    for task in ("sft", "rl"):
        extra = {"rl": {"reward": "a:b"}} if task == "rl" else {}
        found, _ = problems({**MINIMAL, **extra, "task": task, "data": {
            "path": "d", "template": "instruction", "chosen": "{a}", "rejected": "{b}"}})
        assert f"are for tasks 'reward' and 'preference', not '{task}'" in found["data"]
