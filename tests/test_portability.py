"""Portable by default, strict about what the user wrote: one rule in the core for every backend."""

from __future__ import annotations

import json

import pytest

from tunebridge.backend import Backend, BackendOutput, Capabilities, Plan
from tunebridge.cli import main
from tunebridge.errors import UnsupportedFeature
from tunebridge.plugins import load_registry
from tunebridge.run import Run
from tunebridge.spec import load_spec, parse_spec
from tunebridge.support import adapt_to_backend, user_wrote
from tunebridge.testing import contract_rows, sft_spec_dict, write_jsonl

from fake_backend import FakeBackend, plugin_with


class EveryTokenPacker(FakeBackend):
    """Like AutoTrain: always packs, trains on every token."""

    name = "packer-only"
    capabilities = Capabilities(tasks=frozenset({"sft"}), packing=True, unpacked=False, completion_only_loss=False,
                                plain_text=True)

    def plan(self, spec, examples=None):
        return Plan(self.name, {"packing": spec.sft.packing, "completion_only_loss": spec.sft.completion_only_loss},
                    train_rows=2, effective={"data_order": "its own"})

    def train(self, job):
        plan = self.plan(job.spec)
        for step in (1, 2):
            job.reporter.log(step, {"loss": 1.0 / step})
        import shutil

        shutil.copytree(job.model_path, job.model_dir)
        return BackendOutput({"global_step": 2}, plan.native_config, global_step=2)


class NoText(Backend):
    name = "no-text"
    capabilities = Capabilities(tasks=frozenset({"sft"}))

    def plan(self, spec, examples=None):
        raise NotImplementedError

    def train(self, job):
        raise NotImplementedError


@pytest.fixture
def registry():
    return load_registry([plugin_with(FakeBackend, EveryTokenPacker, NoText)], entry_points=False)


@pytest.fixture
def data(tmp_path):
    return write_jsonl(tmp_path / "rows.jsonl", contract_rows(12))


def test_user_wrote_reads_pydantic_fields_set(data):
    written = parse_spec({**sft_spec_dict(data, "fake"), "sft": {"completion_only_loss": True}})
    assert user_wrote(written, "sft.completion_only_loss") and not user_wrote(written, "sft.packing")
    assert not user_wrote(parse_spec(sft_spec_dict(data, "fake")), "sft.completion_only_loss")
    assert user_wrote(written, "training.max_steps") and not user_wrote(written, "training.shuffle")
    assert not user_wrote(parse_spec({**sft_spec_dict(data, "fake"), "sft": {}}), "sft.completion_only_loss")


def test_defaults_adapt_and_are_recorded(data, registry):
    spec = parse_spec(sft_spec_dict(data, "packer-only"))
    adapted, differences = adapt_to_backend(spec, registry.get("packer-only"), registry)
    assert {d.setting: (d.default, d.used) for d in differences} == {
        "sft.packing": (False, True), "sft.completion_only_loss": (True, False)}
    assert adapted.sft.packing is True and adapted.sft.completion_only_loss is False
    assert spec.sft.packing is False and spec.sft.completion_only_loss is True  # the user's spec is untouched
    # The adapted values still count as defaults (a second check of the adapted spec adapts nothing more).
    assert not user_wrote(adapted, "sft.packing")
    assert adapt_to_backend(adapted, registry.get("packer-only"), registry)[1] == []
    assert adapted.source == spec.source and adapted.base_dir == spec.base_dir


@pytest.mark.parametrize("written, label", [
    ({"completion_only_loss": True}, "completion-only loss"),
    ({"packing": False}, "unpacked examples"),
])
def test_a_setting_the_user_wrote_still_fails_naming_the_backends_that_can(data, registry, written, label):
    spec = parse_spec({**sft_spec_dict(data, "packer-only"), "sft": written})
    with pytest.raises(UnsupportedFeature, match=label) as info:
        adapt_to_backend(spec, registry.get("packer-only"), registry)
    assert "fake" in str(info.value)


def test_a_feature_without_a_fallback_fails_even_as_a_default(data, registry):
    spec = parse_spec({**sft_spec_dict(data, "no-text"), "sft": {"completion_only_loss": False}})
    # no-text has no completion-only loss but the user turned it off; plain packing false is fine (unpacked).
    assert adapt_to_backend(spec, registry.get("no-text"), registry)[1] == []
    text = parse_spec({**sft_spec_dict(data, "no-text"), "data": {"path": str(data), "text": "{response}"}})
    with pytest.raises(UnsupportedFeature, match="plain-text"):
        adapt_to_backend(text, registry.get("no-text"), registry)


def test_differences_reach_plan_run_json_and_the_model_card(data, registry, tmp_path):
    run = Run(parse_spec(sft_spec_dict(data, "packer-only", max_steps=None, epochs=1)), registry=registry)
    plan = run.plan()
    assert [d["setting"] for d in plan.differences] == ["sft.packing", "sft.completion_only_loss"]
    assert plan.effective["packing"] is True and plan.effective["loss_on_prompt"] is True
    assert plan.effective["data_order"] == "its own"  # the backend's own override wins
    assert plan.optimizer_steps == 1  # 2 packed rows, batch 4: the backend's rows, the neutral rule
    assert plan.native_config == {"packing": True, "completion_only_loss": False}  # it planned the adapted spec
    result = run.train(tmp_path / "out")
    record = json.loads((tmp_path / "out" / "run.json").read_text())
    assert record["differences"] == plan.differences == result.differences
    assert record["spec"]["sft"] == {"packing": True, "completion_only_loss": False}
    assert record["plan"]["optimizer_steps"] == 1 and record["global_step"] == 2
    assert {"python", "tokenizers", "transformers", "torch"} <= set(record["versions"])  # in-process: this env
    assert record["examples_seen"] == 4 and record["peak_memory_mb"] > 10  # 2 rows per epoch, 2 steps of one batch
    assert any("the plan predicted 1 optimizer steps; backend 'packer-only' made 2" in w for w in record["warnings"])
    card = (tmp_path / "out" / "README.md").read_text()
    assert "optimizer steps made: 2 (planned 1)" in card
    assert "adapted `sft.packing`" in card and "adapted `sft.completion_only_loss`" in card


def test_plan_json_from_the_cli(data, tmp_path, capsys, monkeypatch, registry):
    import tunebridge.plugins as plugins

    monkeypatch.setattr(plugins, "_cached", registry)
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(sft_spec_dict(data, "packer-only", max_steps=3)))
    assert main(["plan", str(spec_file), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["optimizer_steps"] == 3 and out["train_examples"] == 12 and out["eval_examples"] == 0
    assert {d["setting"] for d in out["differences"]} == {"sft.packing", "sft.completion_only_loss"}
    assert set(out["effective"]) >= {"effective_batch_size", "loss_on_prompt", "packing", "truncation", "length"}
    written = tmp_path / "strict.json"
    written.write_text(json.dumps({**sft_spec_dict(data, "packer-only"), "sft": {"completion_only_loss": True}}))
    assert main(["plan", str(written)]) == 1
    assert "error: backend 'packer-only' does not support completion-only loss" in capsys.readouterr().err
    assert main(["plan", str(spec_file)]) == 0
    text = capsys.readouterr().out
    assert "defaults adapted to this backend:" in text and "sft.packing: default false, true here" in text


def test_the_default_example_spec_plans_on_every_backend(repo):
    """examples/sft-tiny.yaml writes no sft block, so it adapts wherever the backend differs."""
    spec = load_spec(repo / "examples" / "sft-tiny.yaml")
    assert not user_wrote(spec, "sft.completion_only_loss")
    from tunebridge.plugins import get_registry

    reg = get_registry()
    for name in ("trl", "trlx", "autotrain"):
        adapted, diffs = adapt_to_backend(spec.with_backend(name), reg.get(name), reg)
        assert adapted.task == "sft"
        assert bool(diffs) == (name == "autotrain")


@pytest.mark.parametrize("backend", ["trl", "trlx", "autotrain"])
def test_the_default_spec_trains_on_every_backend_with_only_the_flag_changed(repo, tmp_path, backend, capsys):
    """The README's promise: `tunebridge train examples/sft-tiny.yaml --backend X` on each backend."""
    from tunebridge.execution import status as backend_status
    from tunebridge.plugins import get_registry

    status = backend_status(get_registry().get(backend))
    if not status.ready:
        pytest.skip(f"needs the {backend} backend ready here ({status.describe()}); see docs/environments.md")
    out = tmp_path / backend
    assert main(["train", str(repo / "examples" / "sft-tiny.yaml"), "--backend", backend, "--output", str(out),
                 "--quiet"]) == 0, capsys.readouterr().err
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "completed" and record["global_step"] == record["plan"]["optimizer_steps"]
    assert record["metrics"]["final_loss"] < record["metrics"]["first_loss"]
    summary = capsys.readouterr().out
    assert f"(planned {record['plan']['optimizer_steps']})" in summary
    if backend == "autotrain":  # adapted defaults are said, not silent
        assert "adapted        sft.completion_only_loss: default true, false here" in summary


def test_the_model_card_carries_the_data_provenance(repo, registry, tmp_path):
    """An Argilla-converted run's card names the recipe, the annotator policy and every drop by reason."""
    spec = load_spec(repo / "examples" / "argilla-sft.yaml")
    Run(spec, backend="fake", registry=registry).train(tmp_path / "out")
    record = json.loads((tmp_path / "out" / "run.json").read_text())
    conversion = record["data"]["argilla"]
    card = (tmp_path / "out" / "README.md").read_text()
    assert f"recipe `{conversion['recipe']}`, annotators `{conversion['annotators']}`" in card
    assert f"{conversion['records']} records -> {conversion['rows']} rows" in card
    assert "responses not counted: 5 discarded, 7 draft" in card
    assert "response from: new-response 31, original-response 9" in card
    for reason, n in conversion["dropped"].items():  # none in this example; the hh and ranking ones have some
        assert f"records dropped ({reason}): {n}" in card
    assert "optimizer steps made: 20 (planned 20)" in card


def test_the_model_card_lists_every_drop_by_reason():
    from tunebridge.modelcard import _provenance

    lines = _provenance({"argilla": {"format": "v2", "recipe": "ranking", "annotators": "majority",
                                     "statuses": ["submitted"], "records": 9, "rows": 5,
                                     "dropped": {"no submitted ranking": 3}, "skipped_pairs": {"tie": 1}},
                         "dropped": {"train_over_max_length": 2}})
    assert "  - records dropped (no submitted ranking): 3" in lines and "  - pairs not made (tie): 1" in lines
    assert "- dropped (train_over_max_length): 2" in lines and any("9 records -> 5 rows" in x for x in lines)
