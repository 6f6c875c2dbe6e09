"""The AutoTrain mapping (spec -> config.yml) and its option checks: pure, no AutoTrain needed."""

from __future__ import annotations

import pytest

from tunebridge.backends.autotrain.config import (
    autotrain_config,
    epochs_for,
    example_rows,
    options,
    project_name,
    valid_project_name,
)
from tunebridge.errors import SpecError
from tunebridge.examples import Examples
from tunebridge.spec import parse_spec


def spec(task="sft", **extra):
    data = {"path": "d.jsonl", "template": "instruction"} if task == "sft" else {"path": "d.jsonl"}
    body = {"task": task, "model": {"builtin": "tiny-llama"}, "data": data,
            "training": {"max_length": 96, "learning_rate": 1e-3, "batch_size": 2, "gradient_accumulation": 3,
                         "seed": 7, "warmup_ratio": 0.1, "lr_scheduler": "cosine", "epochs": 2},
            "backend": "autotrain"}
    if task == "sft":
        body["sft"] = {"completion_only_loss": False}
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(body.get(key), dict):
            body[key] = {**body[key], **value}
        else:
            body[key] = value
    return parse_spec(body)


def examples(n=10, eval_n=0, kind="prompt_completion"):
    row = {"prompt": "Q: hi\n", "completion": "A: hello"}
    return Examples(kind=kind, train=[row] * n, eval=[row] * eval_n)


def test_sft_maps_the_neutral_hyperparameters():
    cfg = autotrain_config(spec(), examples(), "/models/base")
    c = cfg.config
    assert c["task"] == "llm-sft" and c["backend"] == "local" and c["base_model"] == "/models/base"
    assert c["data"] == {"path": "data", "train_split": "train", "valid_split": None, "chat_template": None,
                         "column_mapping": {"text_column": "text"}}
    p = c["params"]
    assert (p["block_size"], p["model_max_length"], p["lr"], p["epochs"]) == (96, 96, 1e-3, 2)
    assert (p["batch_size"], p["gradient_accumulation"], p["seed"]) == (2, 3, 7)
    assert (p["warmup_ratio"], p["scheduler"]) == (0.1, "cosine")
    assert (p["mixed_precision"], p["quantization"]) == ("none", "none")
    assert p["peft"] is False and p["disable_gradient_checkpointing"] is True
    assert not any("always packs" in line for line in cfg.unhonoured)  # a capability: the core adapts it
    assert any("training.seed=7" in line for line in cfg.unhonoured)
    assert valid_project_name(c["project_name"]) and c["project_name"] == "tunebridge-sft"


def test_lora_fields_and_quantization_none():
    cfg = autotrain_config(spec(lora={"r": 4, "alpha": 8, "dropout": 0.05, "target_modules": ["q_proj", "v_proj"]}),
                           examples(), "m")
    p = cfg.config["params"]
    assert p["peft"] is True and (p["lora_r"], p["lora_alpha"], p["lora_dropout"]) == (4, 8, 0.05)
    assert p["target_modules"] == "q_proj,v_proj" and p["merge_adapter"] is True and p["quantization"] == "none"
    default_targets = autotrain_config(spec(lora={"r": 4, "alpha": 8.5}), examples(), "m")
    assert default_targets.config["params"]["target_modules"] == "all-linear"
    assert any("all-linear" in line for line in default_targets.unhonoured)
    assert any("lora.alpha=8.5" in line for line in default_targets.unhonoured)


def test_reward_and_preference_trainers():
    cfg = autotrain_config(spec("reward", data={"template": "preference"}), None, "m")
    assert cfg.config["task"] == "llm-reward"
    assert cfg.config["data"]["column_mapping"] == {"text_column": "chosen", "rejected_text_column": "rejected"}
    dpo = autotrain_config(spec("preference", preference={"beta": 0.3}), None, "m")
    params = dpo.config["params"]
    assert dpo.config["task"] == "llm-dpo" and params["dpo_beta"] == 0.3
    # trl 0.13 cuts prompts and answers at these whatever the total: only max_length (the core's rule) may cut
    assert params["max_prompt_length"] == params["max_completion_length"] == params["block_size"] == 96
    assert dpo.config["data"]["column_mapping"]["prompt_text_column"] == "prompt"
    assert any("reference model: a frozen copy" in note for note in dpo.notes)
    lora = autotrain_config(spec("preference", lora={"r": 4}), None, "m")
    assert any("adapter disabled" in note for note in lora.notes)
    orpo = autotrain_config(spec("preference", preference={"algorithm": "orpo"}), None, "m")
    assert orpo.config["task"] == "llm-orpo" and "dpo_beta" not in orpo.config["params"]


def test_the_old_backend_options_route_to_dpo_is_refused_with_the_way():
    for trainer in ("dpo", "orpo"):
        with pytest.raises(SpecError, match=f"write `task: preference` with `preference.algorithm: {trainer}`"):
            options(spec("reward", backend_options={"autotrain": {"trainer": trainer}}))
    with pytest.raises(SpecError, match="not accepted with task preference: set preference.algorithm"):
        options(spec("preference", backend_options={"autotrain": {"trainer": "dpo"}}))
    with pytest.raises(SpecError, match="backend_options.autotrain.params.dpo_beta: .*set preference.beta"):
        options(spec("preference", backend_options={"autotrain": {"params": {"dpo_beta": 0.5}}}))
    with pytest.raises(SpecError, match="preference.beta: AutoTrain's llm-orpo always uses beta 0.1"):
        options(spec("preference", preference={"algorithm": "orpo", "beta": 0.2}))


def test_rows_per_trainer_carry_the_prompt_and_eos():
    pair = [{"prompt": "P ", "chosen": "good", "rejected": "bad"}]
    assert example_rows("reward", pair, "</s>") == [{"chosen": "P good</s>", "rejected": "P bad</s>"}]
    assert example_rows("dpo", pair, "</s>") == [{"prompt": "P ", "chosen": "good", "rejected": "bad"}]
    assert example_rows("sft", [{"prompt": "P ", "completion": "C"}], "</s>") == [{"text": "P C"}]
    assert example_rows("sft", [{"text": "plain"}], "</s>") == [{"text": "plain"}]


def test_max_steps_becomes_whole_epochs_and_is_reported():
    s = spec(training={"max_steps": 10, "batch_size": 2, "gradient_accumulation": 1})
    assert epochs_for(s, 10) == (2, None)  # 5 steps per epoch
    epochs, line = epochs_for(s, 8)  # about 4 steps per epoch -> 3 epochs; packing decides the exact count
    assert epochs == 3 and "an estimate" in line
    exact = {"epochs": 3, "optimizer_steps": 12, "steps_per_epoch": 4, "rows": 8}  # steps.predict_steps's shape
    epochs, line = epochs_for(s, 8, exact)
    assert epochs == 3 and "= 12 steps" in line and "estimate" not in line
    assert epochs_for(s, 8, {**exact, "epochs": 2, "optimizer_steps": 10}) == (2, None)
    assert epochs_for(spec(training={"epochs": 1.5}), 10)[0] == 2
    cfg = autotrain_config(spec(training={"max_steps": 7}), examples(10), "m")
    assert any("max_steps=7" in line for line in cfg.unhonoured)


def test_eval_split_is_exported_but_reported_as_dropped():
    cfg = autotrain_config(spec(data={"eval_fraction": 0.2}), examples(8, 2), "m")
    assert cfg.config["data"]["valid_split"] == "valid"
    assert any("validation split" in line for line in cfg.unhonoured)


@pytest.mark.parametrize(("name", "expected"), [
    ("My run_v2 (test)", "my-run-v2-test"), ("x" * 80, "x" * 50), ("___", "tunebridge-sft"), ("Ünïcode", "n-code"),
])
def test_project_name_is_made_valid(name, expected):
    result = project_name(spec(name=name))
    assert result == expected and valid_project_name(result)


def test_bad_options_are_spec_errors():
    with pytest.raises(SpecError, match="backend_options.autotrain.bogus: unknown option"):
        options(spec(backend_options={"autotrain": {"bogus": 1}}))
    with pytest.raises(SpecError, match="'reward' is not an AutoTrain trainer for task 'sft'"):
        options(spec(backend_options={"autotrain": {"trainer": "reward"}}))
    with pytest.raises(SpecError, match="never put a hub token in a spec"):
        options(spec(backend_options={"autotrain": {"params": {"token": "hf_abcdefghijklmnopqrstuvwxyz"}}}))
    with pytest.raises(SpecError, match="letters, digits and hyphens"):
        options(spec(backend_options={"autotrain": {"project_name": "with_underscore"}}))


def test_params_override_but_core_owned_keys_are_refused_with_the_way_to_set_them():
    s = spec(backend_options={"autotrain": {"params": {"optimizer": "adamw_hf"}}})
    cfg = autotrain_config(s, examples(), "m")
    assert cfg.config["params"]["optimizer"] == "adamw_hf" and cfg.config["log"] == "tensorboard"
    owned = spec(backend_options={"autotrain": {"params": {"optimizer": "adamw_hf", "model": "other", "log": "wandb"}}})
    with pytest.raises(SpecError) as caught:
        options(owned)
    assert [path for path, _ in caught.value.problems] == ["backend_options.autotrain.params.model",
                                                            "backend_options.autotrain.params.log"]
    assert "params.model: set by tunebridge, not accepted: set model.path or model.builtin" in str(caught.value)


def test_push_to_hub_uses_environment_placeholders():
    cfg = autotrain_config(spec(backend_options={"autotrain": {"push_to_hub": True}}), examples(), "m")
    assert cfg.config["hub"] == {"username": "${HF_USERNAME}", "token": "${HF_TOKEN}", "push_to_hub": True}


def test_base_model_is_an_absolute_folder_or_a_hub_id(tmp_path, monkeypatch):
    from tunebridge.backends.autotrain.config import base_model_ref

    monkeypatch.chdir(tmp_path)
    (tmp_path / "local-model").mkdir()
    assert base_model_ref("local-model") == str(tmp_path / "local-model")
    assert base_model_ref("org/some-model") == "org/some-model"
    assert base_model_ref(None, "fallback") == "fallback"
