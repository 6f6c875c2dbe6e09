"""The TRLX backend. Without trlx (CI): config mapping, data and reward adaptation, metric reading, checks.
With trlx (TUNEBRIDGE_TRLX_PYTHON pointing at an environment that has it): real runs, see test_trlx_contract.py."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

import tunebridge as tb
from tunebridge.backends.trlx_backend.adapters import StepMetrics, make_reward_fn, normalise, ppo_prompts, sft_samples
from tunebridge.backends.trlx_backend.config import native_config, trlx_config
from tunebridge.examples import Examples
from tunebridge.run import Run
from tunebridge.spec import parse_spec
from tunebridge.testing import contract_rows, write_jsonl

SFT = {"task": "sft", "model": {"builtin": "tiny-llama"}, "data": {"path": "d.jsonl", "template": "instruction"},
       "backend": "trlx"}
RL = {"task": "rl", "model": {"builtin": "tiny-llama"}, "data": {"path": "d.jsonl", "template": "instruction"},
      "rl": {"reward": "tunebridge.testing.rewards:letter_e"}, "backend": "trlx"}


def test_sft_hyperparameters_map_onto_trlconfig():
    spec = parse_spec({**SFT, "training": {"max_steps": 12, "batch_size": 4, "gradient_accumulation": 2,
                                           "learning_rate": 1e-3, "max_length": 128, "seed": 7,
                                           "weight_decay": 0.01, "lr_scheduler": "cosine", "save_steps": 5}})
    cfg = trlx_config(spec, None, Path("w"))
    train = cfg["train"]
    assert (train["total_steps"], train["batch_size"], train["minibatch_size"]) == (12, 8, 4)
    assert (train["seq_length"], train["seed"], train["checkpoint_interval"]) == (128, 7, 5)
    assert train["trainer"] == "AccelerateSFTTrainer" and train["tracker"] is None
    assert train["save_optimizer"] is False and train["checkpoint_dir"] == str(Path("w") / "checkpoints")
    assert cfg["optimizer"] == {"name": "adamw", "kwargs": {"lr": 1e-3, "betas": [0.9, 0.999], "eps": 1e-8,
                                                            "weight_decay": 0.01}}
    assert cfg["scheduler"] == {"name": "cosine_annealing", "kwargs": {"T_max": 12, "eta_min": 0.0}}
    assert cfg["method"]["name"] == "SFTConfig" and cfg["model"]["num_layers_unfrozen"] == -1


def test_epochs_become_total_steps_by_the_core_rule():
    spec = parse_spec({**SFT, "training": {"epochs": 2, "batch_size": 4}})
    examples = Examples("prompt_completion", [{"prompt": "p", "completion": "c"}] * 10)
    cfg = trlx_config(spec, examples, Path("w"))
    assert cfg["train"]["total_steps"] == 6 and cfg["train"]["epochs"] == 2
    linear = cfg["scheduler"]
    assert linear["name"] == "linear" and linear["kwargs"]["total_iters"] == 6


def test_ppo_and_ilql_carry_the_workarounds_from_the_notes():
    ppo = trlx_config(parse_spec({**RL, "rl": {**RL["rl"], "kl_coef": 0.1,
                                               "generation": {"max_new_tokens": 8, "top_p": 0.9}}}), None, Path("w"))
    assert ppo["train"]["trainer"] == "AcceleratePPOTrainer" and ppo["method"]["name"] == "PPOConfig"
    assert ppo["model"]["num_layers_unfrozen"] >= 1
    assert ppo["model"]["model_extra_configs"] == {"attn_implementation": "eager", "use_cache": False}
    assert ppo["method"]["init_kl_coef"] == 0.1 and ppo["method"]["gen_kwargs"]["max_new_tokens"] == 8
    ilql = trlx_config(parse_spec({**RL, "rl": {"algorithm": "ilql"},
                                   "data": {"path": "d", "template": "instruction", "reward": "score"}}),
                       None, Path("w"))
    assert ilql["train"]["trainer"] == "AccelerateILQLTrainer" and ilql["method"]["name"] == "ILQLConfig"


def test_overrides_unhonoured_settings_and_runner_keys():
    spec = parse_spec({**SFT, "training": {"warmup_ratio": 0.1, "precision": "bf16"},
                       "backend_options": {"trlx": {"python": "/somewhere/python", "method.gen_kwargs.top_k": 5,
                                                    "train.hub_token": "hf_" + "x" * 30}}})
    native, unhonoured, notes = native_config(spec, None, Path("w"))
    assert native["TRLConfig"]["method"]["gen_kwargs"]["top_k"] == 5
    assert "python" not in json.dumps(native["TRLConfig"])
    assert any("warmup_ratio" in u for u in unhonoured) and any("precision 'bf16'" in u for u in unhonoured)
    assert not any("hf_xxx" in n for n in notes) and any("'***'" in n for n in notes)
    with pytest.raises(tb.SpecError, match="backend_options.trlx.gen_kwargs: use 'section.key'"):
        native_config(parse_spec({**SFT, "backend_options": {"trlx": {"gen_kwargs": 1}}}), None, Path("w"))


def test_trlx_limits_are_spec_errors_before_training():
    with pytest.raises(tb.SpecError, match="training.max_length: trlx needs max_length"):
        short = {**RL, "training": {"max_length": 16}, "rl": {**RL["rl"], "generation": {"max_new_tokens": 32}}}
        Run(parse_spec(short)).check_support()
    with pytest.raises(tb.UnsupportedFeature, match="rl.algorithm 'grpo'; backends that do: trl"):
        Run(parse_spec({**RL, "rl": {**RL["rl"], "algorithm": "grpo"}})).check_support()
    with pytest.raises(tb.UnsupportedFeature, match="LoRA"):
        Run(parse_spec({**SFT, "lora": {"r": 4}})).check_support()


def test_ilql_needs_an_offline_reward_column(tmp_path):
    with pytest.raises(tb.SpecError, match="data.reward: rl.algorithm 'ilql' learns from offline rewards"):
        parse_spec({**RL, "rl": {"algorithm": "ilql"}})
    rows = [{**r, "score": i % 3} for i, r in enumerate(contract_rows(6))] + [{**contract_rows(1)[0], "score": "x"}]
    spec = parse_spec({**RL, "rl": {"algorithm": "ilql"}, "data": {
        "path": str(write_jsonl(tmp_path / "d.jsonl", rows)), "template": "instruction", "reward": "score"}})
    with pytest.raises(tb.DataError, match="d.jsonl line 7: column 'score' must hold a number, got 'x'"):
        Run(spec).validate()
    ok = parse_spec({**spec.to_dict(), "data": {**spec.to_dict()["data"], "limit": 6}})
    examples = Run(ok).validate()
    assert sorted(ex["reward"] for ex in examples.train) == [0, 0, 1, 1, 2, 2]
    assert set(examples.train[0]) == {"prompt", "completion", "reward"}


def test_samples_prompts_and_rewards_adapt_to_trlx():
    ex = Examples("prompt_completion", [{"prompt": "Q: ", "completion": "A"}])
    assert sft_samples(ex) == [["Q: ", "A"]]
    assert sft_samples(Examples("text", [{"text": "plain"}]), "</s>") == ["plain</s>"]
    rows = [{"prompt": "p1", "response": "r1"}]
    prompts = ppo_prompts(rows)
    prompts[0].pop("prompt")
    assert rows == [{"prompt": "p1", "response": "r1"}], "trlx pops 'prompt' from its dicts; ours must be copies"
    seen = {}

    def reward(prompts, completions, **columns):
        seen.update(completions=completions, columns=columns)
        return [float(len(c)) for c in completions]

    fn = make_reward_fn([(reward, 2.0), (lambda p, c, **k: [float("nan")] * len(c), 1.0)], "</s>")
    out = fn(samples=["p1ab</s>", "p2x"], prompts=["p1", "p2"], outputs=["ab</s>", "x"], tokenizer=object(),
             response=["r1", "r2"])
    assert out == [4.0, 2.0] and seen["completions"] == ["ab", "x"] and seen["columns"] == {"response": ["r1", "r2"]}


def test_step_metrics_merge_rollouts_and_mark_evaluations():
    sent = []
    merger = StepMetrics(lambda step, record: sent.append((step, record)))
    merger.add(0, {"reward/mean": 0.1, "time/generate": 0.5})                     # evaluation at step 0
    merger.add(0, {"rollout_scores/mean": 0.2, "rollout_scores/std": 0.05, "policy/sqrt_kl": 0.5})  # rollouts
    merger.add(1, {"losses/total_loss": 1.5, "learning_rate_group_0": 1e-3, "policy/approx_kl": 0.01})
    merger.add(2, {"losses/total_loss": 1.2, "learning_rate_group_0": 1e-3, "samples": object()})
    merger.add(2, {"rollout_scores/mean": 0.4, "rollout_scores/std": 0.1})         # next round, after step 2
    merger.add(3, {"losses/total_loss": 1.0, "learning_rate_group_0": 1e-3})
    merger.flush()
    assert sent[0] == (0, {"eval_reward_mean": 0.1, "eval_time/generate": 0.5})
    assert sent[1] == (1, {"loss": 1.5, "learning_rate": 1e-3, "approx_kl": 0.01, "reward_mean": 0.2,
                           "reward_std": 0.05, "kl": 0.25})
    assert sent[2][1]["reward_mean"] == 0.2 and "samples" not in sent[2][1]
    assert sent[3] == (3, {"loss": 1.0, "learning_rate": 1e-3, "reward_mean": 0.4, "reward_std": 0.1})
    assert "kl" not in sent[3][1]  # the second round logged no KL to the reference
    assert normalise({"loss": 2, "flag": True, "text": "x"}) == {"loss": 2.0}
    assert not math.isnan(sent[1][1]["loss"])


def test_without_trlx_the_backend_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.delenv("TUNEBRIDGE_TRLX_PYTHON", raising=False)
    spec = parse_spec({**SFT, "data": {"path": str(write_jsonl(tmp_path / "d.jsonl", contract_rows(4))),
                                       "template": "instruction"}})
    run = Run(spec)
    if run.backend.check().ready:
        pytest.skip("trlx is installed in this interpreter")
    with pytest.raises(tb.BackendUnavailable, match="set TUNEBRIDGE_TRLX_PYTHON"):
        run.train(tmp_path / "out")
    plan = run.plan()  # planning is pure: it works without trlx
    assert plan.native_config["TRLConfig"]["train"]["trainer"] == "AccelerateSFTTrainer"


needs_trlx = pytest.mark.skipif(not os.environ.get("TUNEBRIDGE_TRLX_PYTHON"),
                                reason="set TUNEBRIDGE_TRLX_PYTHON to an environment with trlx")


@needs_trlx
@pytest.mark.usefixtures("trl_available")
def test_sft_first_batch_loss_matches_trl(tmp_path):
    """Same weights, same rendered text, same masking: the first-batch loss agrees within 1e-3 relative."""
    data = write_jsonl(tmp_path / "rows.jsonl", contract_rows(8))
    spec = {"task": "sft", "model": {"builtin": "tiny-llama"}, "data": {"path": str(data), "template": "instruction"},
            "training": {"max_steps": 1, "batch_size": 8, "learning_rate": 1e-3, "max_length": 128, "seed": 3}}
    trl = tb.SFTTrainer({**spec, "backend": "trl"}).train(tmp_path / "trl")
    trlx = tb.SFTTrainer({**spec, "backend": "trlx"}).train(tmp_path / "trlx")
    a = next(r["loss"] for r in trl.log_history if "loss" in r)
    b = next(r["loss"] for r in trlx.log_history if "loss" in r)
    print(f"first-batch loss: trl {a:.6f}, trlx {b:.6f}, relative difference {abs(a - b) / a:.2e}")
    assert math.isclose(a, b, rel_tol=1e-3), (a, b)


@needs_trlx
def test_ilql_trains_on_offline_rewards_and_the_model_reloads(tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    rows = [{**r, "score": float(i % 3)} for i, r in enumerate(contract_rows(16))]
    spec = {"task": "rl", "model": {"builtin": "tiny-llama"}, "backend": "trlx",
            "data": {"path": str(write_jsonl(tmp_path / "d.jsonl", rows)), "template": "instruction",
                     "reward": "score"},
            "rl": {"algorithm": "ilql", "generation": {"max_new_tokens": 8}},
            "training": {"max_steps": 4, "batch_size": 4, "learning_rate": 1e-3, "max_length": 64}}
    result = tb.RLTrainer(spec).train(tmp_path / "out")
    assert result.metrics["global_step"] == 4
    losses = [r["loss"] for r in result.log_history if "loss" in r]
    assert len(losses) == 4 and all(math.isfinite(x) for x in losses)
    ids = torch.tensor([[1, 2, 3]])
    after = AutoModelForCausalLM.from_pretrained(result.model_dir)(ids).logits
    before = AutoModelForCausalLM.from_pretrained(result.base_model)(ids).logits
    assert (after - before).abs().max() > 1e-4


def test_ppo_needs_max_steps_and_a_gpt_family_model(tmp_path):
    with pytest.raises(tb.SpecError, match="training.max_steps: PPO on trlx counts steps in rounds"):
        Run(parse_spec({**RL, "model": {"builtin": "tiny-gpt2"}})).check_support()
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text('{"model_type": "gpt2"}')
    spec = parse_spec({**RL, "model": {"path": str(tmp_path / "m")}, "training": {"max_steps": 2}})
    Run(spec).check_support()  # no pytorch_model.bin is fine: the runner prepares one (tests/test_chaining.py)
    llama = parse_spec({**RL, "training": {"max_steps": 2}})
    with pytest.raises(tb.SpecError, match="Llama branch does not run"):
        Run(llama).check_support()


def test_plan_reports_what_trlx_cannot_honour():
    spec = parse_spec({**SFT, "data": {"path": "d", "template": "instruction", "eval_fraction": 0.2}})
    examples = Examples("prompt_completion", [{"prompt": "p", "completion": "c"}] * 4,
                        [{"prompt": "p", "completion": "c"}])
    native, unhonoured, notes = native_config(spec, examples, Path("w"))
    assert any("never clips gradients" in u for u in unhonoured)
    assert any("does not evaluate on the held-out split" in u for u in unhonoured)
    assert native["TRLConfig"]["tokenizer"]["padding_side"] == "right"
    assert any("core's order" in n for n in notes)
    # dropout: trlx computes losses in eval mode; tunebridge runs SFT's in train mode, PPO/ILQL say so
    assert any("train mode (dropout on)" in n for n in notes)
    ilql = parse_spec({**RL, "rl": {"algorithm": "ilql"}, "data": {"path": "d", "template": "instruction",
                                                                   "reward": "score"}})
    _, _, ilql_notes = native_config(ilql, None, Path("w"))
    assert any("ILQL: trlx computes the loss with the model in eval mode" in n for n in ilql_notes)


GUIDE_ILQL = Path(__file__).resolve().parents[1] / "examples" / "argilla-ilql.yaml"


def test_the_guides_rated_samples_are_what_ilql_gets(tmp_path):
    """examples/argilla-ilql.yaml: each corrected record gives trlx two samples, original 1 and edit 2."""
    pytest.importorskip("pyarrow", reason="the Argilla jsonl export is read with pyarrow (the [trl] extra)")
    from tunebridge.examples import prepare_examples

    spec = tb.load_spec(GUIDE_ILQL)
    examples = prepare_examples(spec)
    samples = sft_samples(examples, "</s>")
    rewards = [ex["reward"] for ex in examples.train]
    assert len(samples) == len(rewards) == 42 and sorted(set(rewards)) == [1.0, 2.0]
    assert rewards.count(1.0) == rewards.count(2.0) == 21
    by_prompt: dict[str, dict[float, str]] = {}
    for (prompt, answer), reward in zip(samples, rewards, strict=True):
        by_prompt.setdefault(prompt, {})[reward] = answer
    assert all(len(pair) == 2 and pair[1.0] != pair[2.0] for pair in by_prompt.values())


@needs_trlx
def test_the_guides_rated_samples_train_ilql_on_trlx(tmp_path):
    spec = tb.load_spec(GUIDE_ILQL).model_copy(deep=True)
    spec.training.max_steps = 3
    result = tb.RLTrainer(spec).train(tmp_path / "out")
    losses = [r["loss"] for r in result.log_history if "loss" in r]
    assert result.metrics["global_step"] == 3 and len(losses) == 3 and all(math.isfinite(x) for x in losses)
