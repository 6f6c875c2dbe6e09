"""The neutral spec -> TRL SFTConfig mapping (pure; needs no TRL), and that TRL accepts it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunebridge.backends.trl.config import lora_kwargs, native_config, sft_config_kwargs
from tunebridge.examples import Examples
from tunebridge.spec import parse_spec

BASE = {"task": "sft", "model": {"builtin": "tiny-llama"}, "data": {"path": "d.jsonl", "template": "instruction"}}


def spec(**extra):
    return parse_spec({**BASE, **extra})


def test_hyperparameters_map_one_to_one():
    kw = sft_config_kwargs(spec(training={
        "epochs": 3, "learning_rate": 1e-3, "batch_size": 2, "gradient_accumulation": 4, "max_length": 64,
        "seed": 9, "warmup_ratio": 0.1, "lr_scheduler": "cosine", "weight_decay": 0.01, "logging_steps": 2,
        "save_steps": 5, "max_grad_norm": 0.5}), Path("w"), has_eval=False)
    assert kw["num_train_epochs"] == 3 and kw["max_steps"] == -1
    assert (kw["learning_rate"], kw["per_device_train_batch_size"], kw["gradient_accumulation_steps"]) == (1e-3, 2, 4)
    assert kw["max_length"] == 64 and kw["seed"] == 9 and kw["data_seed"] == 9
    assert kw["warmup_steps"] == 0.1 and kw["lr_scheduler_type"] == "cosine" and kw["weight_decay"] == 0.01
    assert kw["logging_steps"] == 2 and kw["save_strategy"] == "steps" and kw["save_steps"] == 5
    assert kw["max_grad_norm"] == 0.5 and kw["output_dir"] == str(Path("w") / "checkpoints")


def test_cpu_safe_defaults():
    kw = sft_config_kwargs(spec(), Path("w"), has_eval=False)
    assert kw["bf16"] is False and kw["fp16"] is False and kw["use_cpu"] is True
    assert kw["activation_checkpointing"] is False and kw["report_to"] == "none"
    assert kw["train_sampling_strategy"] == "sequential" and kw["save_strategy"] == "no"
    assert kw["completion_only_loss"] is True and kw["packing"] is False and kw["eval_strategy"] == "no"
    assert sft_config_kwargs(spec(training={"precision": "bf16"}), Path("w"), False, cuda=True)["use_cpu"] is False


def test_text_data_has_no_completion_only_flag_and_max_steps_wins():
    text = spec(data={"path": "d.jsonl", "text": "{a}"}, training={"max_steps": 7, "epochs": 4})
    kw = sft_config_kwargs(text, Path("w"), has_eval=False)
    assert "completion_only_loss" not in kw and kw["max_steps"] == 7


def test_eval_steps_only_with_an_eval_split():
    s = spec(training={"eval_steps": 3})
    assert sft_config_kwargs(s, Path("w"), has_eval=True)["eval_strategy"] == "steps"
    assert sft_config_kwargs(s, Path("w"), has_eval=True)["eval_steps"] == 3
    assert sft_config_kwargs(s, Path("w"), has_eval=False)["eval_strategy"] == "no"


def test_lora_mapping():
    assert lora_kwargs(spec()) is None
    kw = lora_kwargs(spec(lora={"r": 4, "alpha": 8, "dropout": 0.1, "target_modules": ["q_proj"]}))
    assert kw == {"r": 4, "lora_alpha": 8, "lora_dropout": 0.1, "target_modules": ["q_proj"], "task_type": "CAUSAL_LM"}


def test_backend_options_pass_through_and_core_owned_keys_are_reported():
    s = spec(backend_options={"trl": {"optim": "adafactor", "seed": 1, "train_sampling_strategy": "random"}})
    examples = Examples("prompt_completion", [{"prompt": "p", "completion": "c"}], [{"prompt": "p", "completion": "c"}])
    native, unhonoured, notes = native_config(s, examples, Path("w"))
    assert native["SFTConfig"]["optim"] == "adafactor"
    assert native["SFTConfig"]["seed"] == 42 and native["SFTConfig"]["train_sampling_strategy"] == "sequential"
    assert any("backend_options.trl.seed" in u for u in unhonoured)
    assert any("train_sampling_strategy" in u for u in unhonoured)
    assert any("optim" in n for n in notes) and native["evaluate_at_end"] is True
    assert native["dataset_columns"] == ["input_ids", "labels"]  # the core tokenises sft examples for TRL
    assert native["SFTConfig"]["dataset_kwargs"] == {"skip_prepare_dataset": True}


@pytest.mark.usefixtures("trl_available")
def test_trl_accepts_every_mapped_config(tmp_path):
    from trl import SFTConfig

    for extra in ({}, {"training": {"precision": "bf16", "warmup_ratio": 0.2, "save_steps": 2, "eval_steps": 2}},
                  {"sft": {"packing": True}}, {"data": {"path": "d", "text": "{a}"}}):
        native, _, _ = native_config(spec(**extra), None, tmp_path)
        config = SFTConfig(**native["SFTConfig"])
        assert config.gradient_checkpointing is False and config.activation_checkpointing is False
        assert config.report_to == [] and config.bf16 == (extra.get("training", {}).get("precision") == "bf16")
        assert config.train_sampling_strategy == "sequential" and config.max_length == 512


def test_plan_notes_never_show_a_secret():
    secret = "hf_" + "b" * 30
    s = spec(backend_options={"trl": {"hub_token": secret, "push_to_hub": False}})
    native, _, notes = native_config(s, None, Path("w"))
    assert secret not in " ".join(notes) and any("hub_token='***'" in n for n in notes)


RL = {"task": "rl", "model": {"builtin": "tiny-llama"}, "data": {"path": "d.jsonl"},
      "rl": {"reward": "tunebridge.testing.rewards:letter_e"}}


def test_grpo_and_rloo_mapping():
    from tunebridge.backends.trl.config import rl_config_kwargs

    s = parse_spec({**RL, "training": {"batch_size": 8, "learning_rate": 1e-3},
                    "rl": {**RL["rl"], "generation": {"max_new_tokens": 16, "num_generations": 4,
                                                      "temperature": 0.7, "top_p": 0.9}}})
    kw = rl_config_kwargs(s, Path("w"))
    assert (kw["num_generations"], kw["max_completion_length"], kw["temperature"], kw["top_p"]) == (4, 16, 0.7, 0.9)
    assert kw["beta"] == 0.0 and kw["shuffle_dataset"] is False and "train_sampling_strategy" not in kw
    assert kw["per_device_train_batch_size"] == 8 and kw["learning_rate"] == 1e-3 and kw["reward_weights"] == [1.0]
    rloo = parse_spec({**RL, "rl": {**RL["rl"], "algorithm": "rloo"}})
    assert rl_config_kwargs(rloo, Path("w"))["beta"] == 0.05
    weighted = parse_spec({**RL, "rl": {"reward": [{"function": "a:b", "weight": 2}, {"model": "m", "weight": 0.5}],
                                        "kl_coef": 0.1}})
    kw = rl_config_kwargs(weighted, Path("w"))
    assert kw["reward_weights"] == [2.0, 0.5] and kw["beta"] == 0.1
    native, unhonoured, notes = native_config(weighted, None, Path("w"))
    assert native["trainer"] == "trl.GRPOTrainer" and native["reward_funcs"] == ["a:b", "m"]
    assert any("max_length is not applied" in n for n in notes)


def test_reward_mapping_and_lora_task_type():
    s = parse_spec({"task": "reward", "model": {"builtin": "tiny-llama"}, "data": {"path": "d"},
                    "training": {"max_length": 64}, "lora": {"r": 4}})
    native, _, _ = native_config(s, None, Path("w"))
    assert native["trainer"] == "trl.RewardTrainer" and native["RewardConfig"]["max_length"] == 64
    assert native["peft.LoraConfig"]["task_type"] == "SEQ_CLS"


def test_batch_must_split_into_groups_of_generations():
    from tunebridge.backends.trl.config import generation_batch_problem

    ok = parse_spec({**RL, "training": {"batch_size": 4, "gradient_accumulation": 2},
                     "rl": {**RL["rl"], "generation": {"num_generations": 8}}})
    assert generation_batch_problem(ok) is None
    bad = parse_spec({**RL, "training": {"batch_size": 4}, "rl": {**RL["rl"], "generation": {"num_generations": 3}}})
    problem = generation_batch_problem(bad)
    assert problem.startswith("3 must divide training.batch_size x training.gradient_accumulation = 4")
    assert "counts completions, not prompts" in problem


@pytest.mark.usefixtures("trl_available")
def test_trl_accepts_the_reward_and_rl_configs(tmp_path):
    from trl import GRPOConfig, RewardConfig, RLOOConfig

    s = parse_spec({**RL, "training": {"batch_size": 8}})
    native, _, _ = native_config(s, None, tmp_path)
    assert GRPOConfig(**native["GRPOConfig"]).generation_batch_size == 8
    native, _, _ = native_config(parse_spec({**RL, "rl": {**RL["rl"], "algorithm": "rloo"}}), None, tmp_path)
    RLOOConfig(**native["RLOOConfig"])
    native, _, _ = native_config(parse_spec({"task": "reward", "model": {"builtin": "tiny-llama"},
                                             "data": {"path": "d"}}), None, tmp_path)
    assert RewardConfig(**native["RewardConfig"]).max_length == 512
