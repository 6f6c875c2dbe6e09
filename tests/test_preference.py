"""Task preference without training: the spec, refusals before anything is written (CLI `error: ...`), the plan,
the neutral evaluation (held-out margin and accuracy), compare's cells and the model card."""

from __future__ import annotations

import json
import math
import shutil

import pytest

from tunebridge.cli import main
from tunebridge.comparison.record import eval_cells, eval_headers
from tunebridge.errors import SpecError, UnsupportedFeature
from tunebridge.modelcard import model_card
from tunebridge.run import Run
from tunebridge.spec import parse_spec
from tunebridge.testing import preference_rows, preference_spec_dict, write_jsonl


@pytest.fixture
def pairs(tmp_path):
    return write_jsonl(tmp_path / "pairs.jsonl", preference_rows(12))


def spec_dict(pairs, backend="trl", algorithm="auto", **training):
    return preference_spec_dict(pairs, backend, algorithm, **training)


def test_the_spec_takes_reward_data_and_a_preference_block(pairs):
    spec = parse_spec(spec_dict(pairs, algorithm="kto"))
    assert spec.task == "preference" and spec.preference.resolved_algorithm == "kto" and spec.data_kind == "preference"
    assert parse_spec(spec_dict(pairs)).requested_algorithm == "dpo"  # auto = dpo
    inline = spec_dict(pairs)
    inline["data"] = {"path": str(pairs), "prompt": "Q: {prompt}", "chosen": "{chosen}", "rejected": "{rejected}"}
    assert parse_spec(inline).data_kind == "inline-preference"
    for bad, message in [
        ({"task": "sft", "data": {"path": str(pairs), "template": "prompt-completion"}},
         "preference: this block is for task 'preference', the spec's task is 'sft'"),
        ({"data": {"path": str(pairs), "template": "prompt-completion"}}, "task 'preference' cannot use template"),
        ({"data": {"path": str(pairs), "template": "instruction"}}, "needs `chosen` and `rejected` strings"),
        ({"preference": {"algorithm": "ppo"}}, "preference.algorithm"),
        ({"preference": {"beta": 0}}, "preference.beta"),
    ]:
        body = {**spec_dict(pairs, algorithm="dpo"), **bad}
        with pytest.raises(SpecError, match=message):
            parse_spec(body)


@pytest.mark.parametrize(("backend", "algorithm", "names", "others"), [
    ("trlx", "auto", "task 'preference'", ("trl", "autotrain")),
    ("autotrain", "kto", "preference.algorithm 'kto'", ("trl",)),
])
def test_a_backend_without_it_is_refused_naming_those_that_can(pairs, backend, algorithm, names, others):
    with pytest.raises(UnsupportedFeature) as info:
        Run(parse_spec(spec_dict(pairs, backend, algorithm))).check_support()
    assert names in str(info.value) and backend in str(info.value)
    assert all(name in str(info.value).split("does not support")[-1] for name in others), str(info.value)


@pytest.mark.parametrize(("change", "message"), [
    ({"backend": "trlx"}, "backend 'trlx' does not support task 'preference'"),
    ({"backend": "autotrain", "preference": {"algorithm": "kto"}},
     "backend 'autotrain' does not support preference.algorithm 'kto'"),
    ({"task": "sft", "data": {"template": "prompt-completion"}}, "preference: this block is for task 'preference'"),
    ({"training": {"batch_size": 1}, "preference": {"algorithm": "kto"}},
     "training.batch_size: KTO estimates its KL term"),
    ({"task": "reward", "preference": None, "backend": "autotrain",
      "backend_options": {"autotrain": {"trainer": "dpo"}}},
     "write `task: preference` with `preference.algorithm: dpo`"),
])
def test_bad_input_is_an_error_before_anything_is_written(pairs, tmp_path, capsys, change, message):
    body = spec_dict(pairs, algorithm="dpo")
    for key, value in change.items():
        if value is None:
            body.pop(key)
        elif isinstance(value, dict) and isinstance(body.get(key), dict):
            body[key] = {**body[key], **value}
        else:
            body[key] = value
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(body))
    out = tmp_path / "out"
    assert main(["train", str(spec), "--output", str(out)]) == 1
    err = capsys.readouterr().err
    assert "error: " in err and message in err, err
    assert not out.exists()


def test_plan_says_how_kto_unpairs_and_counts_its_rows(pairs, trl_available):
    plan = Run(parse_spec(spec_dict(pairs, algorithm="kto", max_steps=None, epochs=1))).plan()
    assert plan.native_config["trainer"] == "trl.KTOTrainer" and plan.native_config["KTOConfig"]["beta"] == 0.1
    assert plan.train_examples == 12 and plan.train_rows == 24 and plan.optimizer_steps == 6  # 24 rows / 4
    assert any("twice as many unpaired examples" in note for note in plan.notes)
    assert plan.native_config["dataset_columns"] == ["prompt", "completion", "label"]
    dpo = Run(parse_spec({**spec_dict(pairs), "lora": {"r": 4}})).plan()
    assert "adapter disabled" in dpo.native_config["reference_model"] and dpo.optimizer_steps == 12
    assert dpo.truncation.startswith("pairs over 128 tokens: drop")
    orpo = Run(parse_spec(spec_dict(pairs, algorithm="orpo"))).plan()
    assert orpo.native_config["trainer"] == "trl.experimental.orpo.ORPOTrainer"
    assert orpo.native_config["reference_model"].startswith("none")


def test_over_length_pairs_follow_the_reward_rules(pairs, trl_available):
    dropped = Run(parse_spec(spec_dict(pairs, max_length=16))).plan()
    assert dropped.train_examples < 12 and "dropped" in dropped.truncation
    body = spec_dict(pairs, max_length=16)
    body["preference"]["over_length"] = "truncate"
    cut = Run(parse_spec(body)).plan()
    assert cut.train_examples > dropped.train_examples and "cut to fit" in cut.truncation


def fake_run_folder(tmp_path, pairs, model_dir):
    """A completed run folder whose model is the builtin starting model (no training needed to evaluate it)."""
    body = spec_dict(pairs)
    body["data"]["eval_fraction"] = 0.25
    run = tmp_path / "run"
    shutil.copytree(model_dir, run / "model")
    (run / "run.json").write_text(json.dumps({"status": "completed", "backend": "trl", "spec": body}))
    return run, parse_spec(body)


def test_evaluate_reports_the_held_out_margin_and_accuracy(pairs, tmp_path, capsys, trl_available):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunebridge.evaluation import evaluate, held_out_examples
    from tunebridge.prepare import resolve_model

    spec = parse_spec(spec_dict(pairs))
    model_dir, _ = resolve_model(spec, Run(spec).validate())
    run, spec = fake_run_folder(tmp_path, pairs, model_dir)
    result = evaluate(run)
    assert result["task"] == "preference" and result["pairs"] == 3
    # by hand: the summed log-probabilities of answer + EOS after the prompt
    tok = AutoTokenizer.from_pretrained(run / "model")
    model = AutoModelForCausalLM.from_pretrained(run / "model").eval()

    def logp(prompt, answer):
        p = tok(prompt)["input_ids"]
        ids = tok(prompt + answer)["input_ids"] + [tok.eos_token_id]
        with torch.no_grad():
            out = torch.log_softmax(model(torch.tensor([ids])).logits[0, :-1], -1)
        return sum(out[i - 1, ids[i]].item() for i in range(len(p), len(ids)))

    held_out = held_out_examples(spec, run / "model")
    margins = [logp(ex["prompt"], ex["chosen"]) - logp(ex["prompt"], ex["rejected"]) for ex in held_out]
    assert math.isclose(result["margin"], sum(margins) / len(margins), rel_tol=1e-4)
    assert result["accuracy"] == sum(m > 0 for m in margins) / len(margins)
    assert main(["evaluate", str(run)]) == 0
    assert "log-prob margin" in capsys.readouterr().out


def test_compare_cells_and_model_card():
    assert eval_headers("preference") == ["eval acc", "logp margin"]
    assert eval_cells("preference", {"accuracy": 0.5, "margin": -1.25}) == ["0.500", "-1.250"]
    record = {"spec": {"task": "preference", "name": None, "model": {"builtin": "tiny-llama"},
                       "data": {"path": "p.jsonl"}, "training": {}, "lora": None,
                       "preference": {"algorithm": "kto", "beta": 0.1, "over_length": "drop"}},
              "backend": "trl", "algorithm": "kto", "versions": {"tunebridge": "0.1.0"}, "data": {},
              "native_config": {"reference_model": "a frozen copy of the starting model"}}
    card = model_card(record)
    assert "AutoModelForCausalLM" in card and "with kto" in card and "two unpaired examples" in card
    assert "reference model: a frozen copy" in card


def test_compare_reports_the_held_out_margin_and_accuracy(pairs, tmp_path, trl_available):
    import tunebridge as tb
    from tunebridge.plugins import load_registry

    import fake_backend

    class FakePreference(fake_backend.FakeBackend):  # saves the starting model unchanged
        name = "fakepref"
        capabilities = tb.Capabilities(tasks=frozenset({"preference"}), algorithms={"preference": ("dpo",)})

    registry = load_registry([fake_backend.plugin_with(FakePreference)], entry_points=False)
    body = spec_dict(pairs, "fakepref", max_steps=2)
    record = tb.compare(body, backends="fakepref", output_dir=tmp_path / "out", registry=registry)
    row = record["backends"][0]
    assert row["status"] == "completed" and row["algorithm"] == "dpo"
    assert set(record["baseline"]) >= {"margin", "accuracy", "pairs"} and row["eval"] == record["baseline"]
    summary = (tmp_path / "out" / "report.md").read_text()
    assert "logp margin" in summary and f"{record['baseline']['margin']:.3f}" in summary


def test_the_python_facade(pairs):
    import tunebridge as tb

    trainer = tb.PreferenceTrainer(spec_dict(pairs, algorithm="orpo"), backend="autotrain")
    assert trainer.spec.backend == "autotrain" and trainer.spec.preference.algorithm == "orpo"
    with pytest.raises(SpecError, match="RewardTrainer runs task 'reward', the spec says 'preference'"):
        tb.RewardTrainer(spec_dict(pairs))


def test_backend_options_are_checked_against_the_algorithms_config(pairs, trl_available):
    body = {**spec_dict(pairs, algorithm="orpo"), "backend_options": {"trl": {"max_completion_lenght": 8}}}
    with pytest.raises(SpecError, match="trl.ORPOConfig has no setting 'max_completion_lenght' \\(did you mean "
                                        "'max_completion_length'\\?\\)"):
        Run(parse_spec(body)).plan()
    body = {**spec_dict(pairs, algorithm="kto"), "backend_options": {"trl": {"desirable_weight": 1.5}}}
    plan = Run(parse_spec(body)).plan()
    assert plan.native_config["KTOConfig"]["desirable_weight"] == 1.5
