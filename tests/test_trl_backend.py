"""TRL backend behaviour beyond the shared contracts: Python API, eval split, LoRA, packing, text, chat, masking."""

from __future__ import annotations

import json

import pytest

import tunebridge as tb
from tunebridge.run import Run
from tunebridge.spec import parse_spec
from tunebridge.testing import contract_rows, sft_spec_dict, write_jsonl

pytestmark = pytest.mark.usefixtures("trl_available")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_jsonl(tmp_path_factory.mktemp("trl-data") / "rows.jsonl", contract_rows(20))


def make(data_path, **extra):
    base = sft_spec_dict(data_path, "trl", max_steps=4)
    for key, value in extra.items():
        if key != "model" and isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return parse_spec(base)


def test_python_api_result_and_eval_split(data, tmp_path):
    spec = make(data, data={"eval_fraction": 0.25})
    result = tb.SFTTrainer(spec, backend="trl").train(tmp_path / "out")
    assert result.backend == "trl" and result.model_dir == tmp_path / "out" / "model"
    assert result.metrics["global_step"] == 4 and "train_loss" in result.metrics and "eval_loss" in result.metrics
    assert result.native_config["SFTConfig"]["max_steps"] == 4
    assert result.versions["trl"] == "1.16.0" and result.versions["transformers"].startswith("5.")
    assert result.data["train"] == 15 and result.data["eval"] == 5
    evals = [r for r in result.log_history if "eval_loss" in r]
    assert len(evals) == 1 and evals[0]["step"] == 4
    record = json.loads((tmp_path / "out" / "run.json").read_text())
    assert record["model_format"] == "full" and record["metrics"]["eval_loss"] == result.metrics["eval_loss"]


def test_lora_merged_and_adapter(data, tmp_path):
    from transformers import AutoModelForCausalLM

    merged = tb.SFTTrainer(make(data, lora={"r": 4, "alpha": 8}), backend="trl").train(tmp_path / "merged")
    assert merged.model_format == "merged" and not (merged.model_dir / "adapter_config.json").exists()
    AutoModelForCausalLM.from_pretrained(merged.model_dir)
    adapter = tb.SFTTrainer(make(data, lora={"r": 4, "alpha": 8, "merge": False}), backend="trl").train(
        tmp_path / "adapter")
    assert adapter.model_format == "adapter"
    config = json.loads((adapter.model_dir / "adapter_config.json").read_text())
    assert config["r"] == 4 and sorted(config["target_modules"]) == ["q_proj", "v_proj"]
    assert (adapter.model_dir / "tokenizer.json").is_file()
    assert json.loads((tmp_path / "adapter" / "run.json").read_text())["model_format"] == "adapter"


def test_full_loss_and_plain_text_train_on_the_prompt_too(data):
    from transformers import AutoTokenizer

    for spec in (make(data, sft={"completion_only_loss": False}),
                 make(data, data={"template": None, "text": "{instruction} {response}"})):
        batch = Run(spec).first_batch()
        tok = AutoTokenizer.from_pretrained(batch["tokenizer_path"])
        ids, labels = batch["input_ids"][0], batch["labels"][0]
        real = [i for i in ids if i != tok.pad_token_id]
        trained = [i for i, lab in zip(ids, labels, strict=True) if lab != -100]
        assert trained == real


def test_packing_runs_and_reports_steps(data, tmp_path):
    result = tb.SFTTrainer(make(data, sft={"packing": True}), backend="trl").train(tmp_path / "out")
    assert result.metrics["global_step"] == 4
    assert result.native_config["SFTConfig"]["packing"] is True


def test_chat_data_uses_the_tokenizer_template_and_masks_the_prompt(tmp_path):
    from transformers import AutoTokenizer

    rows = [{"messages": [{"role": "user", "content": f"Say {w}."}, {"role": "assistant", "content": f"{w}!"}]}
            for w in ("hi", "yes", "no", "maybe", "soon", "later", "now", "never")]
    path = write_jsonl(tmp_path / "chat.jsonl", rows)
    spec = parse_spec({**sft_spec_dict(path, "trl", max_steps=2), "data": {"path": str(path), "template": "chat"}})
    batch = Run(spec).first_batch()
    tok = AutoTokenizer.from_pretrained(batch["tokenizer_path"])
    first = batch["examples"][0]
    assert first["prompt"].startswith("<|user|>Say ") and first["prompt"].endswith("</s><|assistant|>")
    trained = [i for i, lab in zip(batch["input_ids"][0], batch["labels"][0], strict=True) if lab != -100]
    assert tok.decode(trained) == first["completion"] and first["completion"].endswith("!</s>")
    result = tb.SFTTrainer(spec).train(tmp_path / "out")
    assert result.data["template"] == "chat" and result.metrics["global_step"] == 2


def test_truncation_is_counted_and_checkpoints_kept_when_asked(data, tmp_path):
    result = tb.SFTTrainer(make(data, training={"max_length": 30, "save_steps": 2}), backend="trl").train(
        tmp_path / "out")
    assert 0 < result.data["truncated"] < 20 and result.data["longest_tokens"] > 30
    assert result.data["completion_truncated_away"] == 0
    checkpoints = (tmp_path / "out" / "work" / "checkpoints").glob("checkpoint-*")
    assert sorted(p.name for p in checkpoints) == ["checkpoint-2", "checkpoint-4"]


def test_examples_that_lose_their_whole_completion_are_warned_about(data, tmp_path):
    result = tb.SFTTrainer(make(data, training={"max_length": 28}), backend="trl").train(tmp_path / "out")
    lost = result.data["completion_truncated_away"]
    assert 0 < lost < 20
    assert f"{lost} of 20 training examples have a prompt of max_length=28" in result.data["warnings"][0]


@pytest.mark.parametrize("sft", [{"completion_only_loss": False}, {"packing": True}])
def test_nothing_is_called_cut_off_where_nothing_is(data, sft):
    """Loss on the prompt trains on what max_length keeps; packing cuts no completion away."""
    from tunebridge.run import Run as _Run

    run = _Run(make(data, training={"max_length": 28}, sft=sft))
    _, _, examples = run.prepared(run.validate())
    assert not any("cut off entirely" in w for w in examples.report.get("warnings", []))
    assert "completion_truncated_away" not in examples.report


def test_periodic_evaluation_is_logged_once_per_eval_step(data, tmp_path):
    spec = make(data, data={"eval_fraction": 0.25}, training={"eval_steps": 2})
    result = tb.SFTTrainer(spec, backend="trl").train(tmp_path / "out")
    assert [r["step"] for r in result.log_history if "eval_loss" in r] == [2, 4]
    assert result.metrics["eval_loss"] == result.log_history[-1]["eval_loss"]


def test_max_length_shorter_than_every_prompt_fails_before_training(data, tmp_path):
    # Token lengths are checked while planning, so nothing at all is written.
    with pytest.raises(tb.DataError, match="training.max_length=8 is shorter than every prompt"):
        tb.SFTTrainer(make(data, training={"max_length": 8}), backend="trl").train(tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_missing_local_model_is_a_spec_error_before_anything_is_written(data, tmp_path):
    spec = make(data, model={"path": "./no-such-model"})
    with pytest.raises(tb.SpecError, match="model.path: no such folder"):
        Run(spec).train(tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_folder_without_a_tokenizer_is_a_spec_error_before_anything_is_written(data, tmp_path):
    not_a_model = tmp_path / "empty-model"
    not_a_model.mkdir()
    with pytest.raises(tb.SpecError, match="model.path: .*empty-model is not a model folder \\(it has no config.json"):
        Run(make(data, model={"path": str(not_a_model)})).validate()
    (not_a_model / "config.json").write_text("{}")  # a model folder without tokenizer files
    with pytest.raises(tb.SpecError, match="model.path: cannot load a tokenizer from"):
        Run(make(data, model={"path": str(not_a_model)})).train(tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_crash_inside_trl_leaves_a_failed_run_record(data, tmp_path):
    import shutil

    from tunebridge.builtin_models import build_builtin

    built = build_builtin("tiny-llama", ["some words to train a tokenizer on"] * 8, seed=0)
    not_a_model = tmp_path / "no-weights"  # the config and the tokenizer load, the weights do not exist
    not_a_model.mkdir()
    for item in built.iterdir():
        if item.name.startswith(("tokenizer", "special_tokens", "config.json")):
            shutil.copy(item, not_a_model / item.name)
    with pytest.raises(tb.RunFailed) as info:
        Run(make(data, model={"path": str(not_a_model)})).train(tmp_path / "out")
    assert str(tmp_path / "out") in str(info.value)
    assert json.loads((tmp_path / "out" / "run.json").read_text())["status"] == "failed"


def test_a_trained_reward_model_scores_text_and_serves_as_an_rl_reward(tmp_path):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from tunebridge.testing import preference_rows, reward_spec_dict, rl_spec_dict

    pairs = write_jsonl(tmp_path / "pairs.jsonl", preference_rows(16))
    rm = tb.RewardTrainer(reward_spec_dict(pairs, "trl", max_steps=6)).train(tmp_path / "rm")
    tok = AutoTokenizer.from_pretrained(rm.model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(rm.model_dir)
    with torch.no_grad():
        scores = model(**tok(["a text", "another text here"], return_tensors="pt", padding=True)).logits
    assert scores.shape == (2, 1)
    prompts = write_jsonl(tmp_path / "prompts.jsonl", contract_rows(8))
    spec = rl_spec_dict(prompts, "trl", max_steps=2, reward=[
        {"model": str(rm.model_dir), "weight": 0.5}, {"function": "tunebridge.testing.rewards:letter_e"}])
    result = tb.RLTrainer(spec).train(tmp_path / "rl")
    assert result.native_config["GRPOConfig"]["reward_weights"] == [0.5, 1.0]
    keys = set(result.log_history[0])
    assert {"rewards/rm/mean", "rewards/letter_e/mean", "reward_mean"} <= keys  # rm/model: named after its run


def test_rl_with_a_kl_coefficient_logs_kl(tmp_path):
    from tunebridge.testing import rl_spec_dict

    prompts = write_jsonl(tmp_path / "prompts.jsonl", contract_rows(8))
    spec = rl_spec_dict(prompts, "trl", max_steps=2)
    spec["rl"]["kl_coef"] = 0.05
    result = tb.RLTrainer(spec).train(tmp_path / "rl")
    assert all("kl" in r for r in result.log_history)


def test_packed_steps_without_a_trainable_token_are_not_a_loss_of_zero(tmp_path):
    """Rows cut at max_length before their completion train on nothing: TRL logs loss 0.0 for them and
    averages it into train_loss; tunebridge records them as steps without trainable tokens instead."""
    long_prompt = {"prompt": "Q: " + " ".join(["word"] * 60) + "\nA: ", "completion": "yes"}
    short = {"prompt": "Q: short?\nA: ", "completion": "a short answer here"}
    data = write_jsonl(tmp_path / "rows.jsonl", [long_prompt] * 3 + [short] * 5)
    spec = {"task": "sft", "model": {"builtin": "tiny-llama"},
            "data": {"path": str(data), "template": "prompt-completion"},
            "training": {"epochs": 1, "batch_size": 1, "max_length": 16, "learning_rate": 1e-3, "shuffle": False},
            "sft": {"packing": True}}
    result = Run(parse_spec(spec)).train(tmp_path / "out")
    empty = [r for r in result.log_history if r.get("trainable_tokens") == 0]
    assert len(empty) == 3 and all(r["loss"] is None for r in empty)
    losses = [r["loss"] for r in result.log_history if r.get("loss") is not None]
    assert len(losses) == 5 and min(losses) > 1.0
    assert result.metrics["steps_without_trainable_tokens"] == 3
    assert result.metrics["train_loss"] == pytest.approx(sum(losses) / 5)
    assert result.metrics["first_loss"] == losses[0]
