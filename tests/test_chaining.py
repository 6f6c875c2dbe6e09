"""Chaining backends: a model folder written by one backend starts a run on another.

TRL SFT -> AutoTrain SFT runs wherever the AutoTrain environment is built (CI builds it); TRL SFT -> trlx PPO
needs the trlx environment (TUNEBRIDGE_TRLX_PYTHON) and skips without it. The tokenizer check runs in the
AutoTrain environment's transformers 4.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tunebridge.hf_compat import make_tokenizer_portable
from tunebridge.run import Run
from tunebridge.spec import parse_spec
from tunebridge.testing import contract_rows, sft_spec_dict, write_jsonl

pytestmark = pytest.mark.usefixtures("trl_available")


@pytest.fixture(scope="module")
def trl_model(tmp_path_factory) -> Path:
    """The model/ folder of a 3-step TRL SFT run on the builtin tiny-gpt2 (a family trlx's PPO runs)."""
    folder = tmp_path_factory.mktemp("chain")
    spec = sft_spec_dict(write_jsonl(folder / "rows.jsonl", contract_rows(12)), "trl", max_steps=3, max_length=64)
    spec["model"] = {"builtin": "tiny-gpt2"}
    Run(parse_spec(spec)).train(folder / "sft-trl")
    return folder / "sft-trl" / "model"


def test_a_saved_tokenizer_gives_no_token_type_ids_on_transformers_4(trl_model, autotrain_python, tmp_path):
    """A PreTrainedTokenizerFast saved without model_input_names returns token_type_ids on transformers 4, and
    generate(**tokenizer(text)) then fails on Llama: the saved config names the model's inputs."""
    folder = tmp_path / "tok"
    folder.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (trl_model / name).is_file():
            shutil.copy(trl_model / name, folder / name)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    assert config["model_input_names"] == ["input_ids", "attention_mask"]  # the TRL run made it portable
    config.pop("model_input_names")  # as transformers 4 saves it
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    probe = ("import sys; from transformers import AutoTokenizer; "
             "print(sorted(AutoTokenizer.from_pretrained(sys.argv[1])('hi').keys()))")
    keys = subprocess.run([str(autotrain_python), "-c", probe, str(folder)], capture_output=True, text=True,
                          check=True).stdout.strip().splitlines()[-1]
    assert "token_type_ids" in keys  # the problem is real on transformers 4
    make_tokenizer_portable(folder)
    keys = subprocess.run([str(autotrain_python), "-c", probe, str(folder)], capture_output=True, text=True,
                          check=True).stdout.strip().splitlines()[-1]
    assert keys == "['attention_mask', 'input_ids']"


def test_trl_sft_starts_an_autotrain_run(trl_model, autotrain_python, tmp_path):
    data = write_jsonl(tmp_path / "rows.jsonl", contract_rows(12))
    spec = sft_spec_dict(data, "autotrain", max_steps=None, epochs=1, batch_size=2, max_length=64)
    spec["model"] = {"path": str(trl_model)}
    result = Run(parse_spec(spec)).train(tmp_path / "autotrain")
    assert result.metrics["global_step"] >= 1 and (tmp_path / "autotrain" / "model" / "config.json").is_file()
    record = json.loads((tmp_path / "autotrain" / "run.json").read_text())
    assert record["status"] == "completed" and record["base_model"] == str(trl_model)


def test_trl_sft_starts_a_trlx_ppo_run(trl_model, tmp_path):
    from tunebridge.execution import status
    from tunebridge.plugins import get_registry

    ready = status(get_registry().get("trlx"))
    if not ready.ready:
        pytest.skip(f"needs the trlx environment (TUNEBRIDGE_TRLX_PYTHON; docs/environments.md): {ready.describe()}")
    assert not (trl_model / "pytorch_model.bin").exists()  # TRL saves safetensors only
    data = write_jsonl(tmp_path / "rows.jsonl", contract_rows(8))
    spec = {"task": "rl", "model": {"path": str(trl_model)}, "data": {"path": str(data), "template": "instruction"},
            "backend": "trlx",
            "rl": {"algorithm": "ppo", "reward": "tunebridge.testing.rewards:letter_e",
                   "generation": {"max_new_tokens": 8, "num_generations": 2}},
            "training": {"max_steps": 2, "batch_size": 4, "max_length": 64, "seed": 3}}
    result = Run(parse_spec(spec)).train(tmp_path / "ppo")
    assert result.metrics["global_step"] == 2
    assert not (trl_model / "pytorch_model.bin").exists()  # the user's folder is untouched
    assert "prepared" in (tmp_path / "ppo" / "worker.log").read_text()
