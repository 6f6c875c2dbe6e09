"""`plan` predicts the optimizer steps a run really makes, on every backend this machine can run.

Epoch-based runs are used on purpose: with max_steps any trainer stops on time, so only an epoch count
shows whether the plan counted the rows the trainer draws batches from (packing, drops, RL repetition).
"""

from __future__ import annotations

import json
import os

import pytest

from tunebridge.run import Run
from tunebridge.spec import parse_spec
from tunebridge.testing import (
    contract_rows,
    preference_rows,
    reward_spec_dict,
    rl_spec_dict,
    sft_spec_dict,
    write_jsonl,
)


@pytest.fixture(scope="module")
def sft_data(tmp_path_factory):
    return write_jsonl(tmp_path_factory.mktemp("steps") / "rows.jsonl", contract_rows(23))


@pytest.fixture(scope="module")
def pair_data(tmp_path_factory):
    return write_jsonl(tmp_path_factory.mktemp("steps") / "pairs.jsonl", preference_rows(18))


def _epochs(spec: dict, **training) -> dict:
    spec["training"].pop("max_steps", None)
    spec["training"].update(training)
    return spec


def _check(spec: dict, tmp_path) -> tuple[int, dict]:
    run = Run(parse_spec(spec))
    predicted = run.plan().optimizer_steps
    result = run.train(tmp_path / "run")
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert predicted == record["global_step"] == record["plan"]["optimizer_steps"] == result.metrics["global_step"]
    assert not any("the plan predicted" in w for w in record["warnings"])
    return predicted, record


TRL_SFT_CASES = {
    "unpacked, 2 epochs, accumulation 2": dict(epochs=2, batch_size=3, gradient_accumulation=2),
    # max_length 24 cuts every prompt of the instruction template: TRL drops fully masked examples.
    "unpacked, short max_length": dict(epochs=1, batch_size=2, max_length=40),
}


@pytest.mark.parametrize("case", list(TRL_SFT_CASES))
def test_trl_sft_steps(case, sft_data, tmp_path, trl_available):
    steps, record = _check(_epochs(sft_spec_dict(sft_data, "trl"), **TRL_SFT_CASES[case]), tmp_path)
    assert record["examples_seen"] >= steps


def test_trl_packed_sft_steps(sft_data, tmp_path, trl_available):
    spec = _epochs(sft_spec_dict(sft_data, "trl"), epochs=2, batch_size=2, max_length=64)
    spec["sft"] = {"packing": True}
    steps, record = _check(spec, tmp_path)
    rows = record["plan"]["train_rows"]
    assert rows < record["plan"]["train_examples"]  # packed: fewer, longer rows
    assert steps == 2 * -(-rows // 2)
    assert "examples_dropped_by_backend" not in record["metrics"]  # packed rows are not drops


def test_trl_reward_steps_count_dropped_pairs(pair_data, tmp_path, trl_available):
    spec = _epochs(reward_spec_dict(pair_data, "trl"), epochs=1, batch_size=4, max_length=16)
    steps, record = _check(spec, tmp_path)
    assert record["plan"]["train_examples"] < 18  # some pairs were over max_length and dropped


@pytest.mark.parametrize("algorithm", ["grpo", "rloo"])
def test_trl_rl_steps(algorithm, sft_data, tmp_path, trl_available):
    spec = _epochs(rl_spec_dict(sft_data, "trl", algorithm=algorithm), epochs=1, batch_size=4,
                   gradient_accumulation=2)
    spec["rl"]["generation"]["max_new_tokens"] = 4
    _check(spec, tmp_path)


def test_autotrain_sft_steps(sft_data, tmp_path, autotrain_python):
    """AutoTrain packs with trl 0.13 and steps with transformers 4.48 (a partial accumulation makes no step):
    the neutral rule on the examples would be wrong here, the plan is not."""
    from tunebridge.schedule import expected_optimizer_steps

    spec = _epochs(sft_spec_dict(sft_data, "autotrain"), epochs=2, batch_size=2, gradient_accumulation=2,
                   max_length=32)
    steps, record = _check(spec, tmp_path)
    assert steps != expected_optimizer_steps(record["plan"]["train_examples"], 2, 2, 2, None)
    written = (tmp_path / "run" / "work" / "autotrain" / "data" / "train.jsonl").read_text().splitlines()
    assert len(written) == record["plan"]["train_examples"]  # the texts the plan counted are the ones trained
    assert record["spec"]["sft"]["packing"] is True  # adapted: AutoTrain always packs
    assert {d["setting"] for d in record["differences"]} == {"sft.packing", "sft.completion_only_loss"}
    # Versions come from the environment that trained, never mixed with this one's.
    from tunebridge.backends.autotrain.launch import installed_version

    assert record["versions"]["transformers"] == "4.48.0"
    assert record["versions"]["tokenizers"] == installed_version(autotrain_python, "tokenizers")


def test_autotrain_reward_steps(pair_data, tmp_path, autotrain_python):
    _check(_epochs(reward_spec_dict(pair_data, "autotrain"), epochs=1, batch_size=4), tmp_path)


needs_trlx = pytest.mark.skipif(not os.environ.get("TUNEBRIDGE_TRLX_PYTHON"),
                                reason="set TUNEBRIDGE_TRLX_PYTHON to an environment with trlx")


@needs_trlx
def test_trlx_sft_steps(sft_data, tmp_path):
    _check(_epochs(sft_spec_dict(sft_data, "trlx"), epochs=2, batch_size=3, gradient_accumulation=1), tmp_path)


@needs_trlx
def test_trlx_ppo_steps_and_prompt_truncation(sft_data, tmp_path):
    spec = rl_spec_dict(sft_data, "trlx", algorithm="ppo", model="tiny-gpt2", max_steps=4, batch_size=4)
    spec["training"]["max_length"] = 24  # prompts get 24 - 12 = 12 tokens: most instruction prompts are cut
    _, record = _check(spec, tmp_path)
    assert "prompts cut to seq_length - max_new_tokens = 12 tokens" in record["plan"]["truncation"]
    assert record["plan"]["effective"]["gradient_clipping"] is None  # trlx never clips
