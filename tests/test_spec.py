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
    assert "only one" in found["data"]
    found, _ = problems({**MINIMAL, "data": {"path": "d", "prompt": "{a}"}})
    assert "go together" in found["data"]


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
        assert load_spec(path).task in ("sft", "reward", "rl")


def test_spec_reference_doc_is_generated_from_the_code(repo):
    from tunebridge.specdoc import render

    assert (repo / "docs" / "spec.md").read_text() == render(), (
        "docs/spec.md is out of date: run `python -m tunebridge.specdoc > docs/spec.md`"
    )
