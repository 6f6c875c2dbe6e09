"""`tunebridge export --backend autotrain` and Run.export: the project folder, its data, and what is refused.

These need no AutoTrain environment (the builtin tiny model is built with the main environment).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tunebridge.errors import OutputExistsError, SpecError, UnsupportedFeature
from tunebridge.run import Run
from tunebridge.spec import parse_spec
from tunebridge.testing import contract_rows, preference_rows, reward_spec_dict, sft_spec_dict, write_jsonl

pytestmark = pytest.mark.usefixtures("trl_available")  # the builtin model needs torch + transformers


def sft_spec(tmp_path: Path, **extra) -> dict:
    spec = sft_spec_dict(write_jsonl(tmp_path / "rows.jsonl", contract_rows(12)), "autotrain", max_steps=None,
                         epochs=2, batch_size=2)
    spec["sft"] = {"completion_only_loss": False}
    spec.update(extra)
    return spec


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_sft_export_writes_config_data_and_readme(tmp_path):
    spec = sft_spec(tmp_path, name="Tiny SFT export", data={
        "path": str(tmp_path / "rows.jsonl"), "template": "instruction", "eval_fraction": 0.25})
    config_path = Run(parse_spec(spec)).export(tmp_path / "out")
    out = tmp_path / "out"
    assert config_path == out / "config.yml"
    config = yaml.safe_load(config_path.read_text())
    assert config["task"] == "llm-sft" and config["project_name"] == "tiny-sft-export"
    assert config["base_model"] == "base-model" and (out / "base-model" / "config.json").is_file()
    train, valid = read_jsonl(out / "data" / "train.jsonl"), read_jsonl(out / "data" / "valid.jsonl")
    assert (len(train), len(valid)) == (9, 3) and set(train[0]) == {"text"}
    assert train[0]["text"].startswith("### Instruction\n") and "### Response:\n" in train[0]["text"]
    readme = (out / "README.md").read_text()
    assert "autotrain --config config.yml" in readme and "exits 0 even when training failed" in readme
    assert "validation split" in readme and "always packs" in readme
    assert not (out / "metrics.jsonl").exists() and not (out / "run.json").exists()


def test_reward_export_puts_prompt_and_eos_into_each_answer(tmp_path):
    spec = reward_spec_dict(write_jsonl(tmp_path / "pairs.jsonl", preference_rows(8)), "autotrain")
    Run(parse_spec(spec)).export(tmp_path / "out")
    config = yaml.safe_load((tmp_path / "out" / "config.yml").read_text())
    assert config["task"] == "llm-reward"
    rows = read_jsonl(tmp_path / "out" / "data" / "train.jsonl")
    pairs = {(p["prompt"] + p["chosen"] + "</s>", p["prompt"] + p["rejected"] + "</s>") for p in preference_rows(8)}
    assert {(r["chosen"], r["rejected"]) for r in rows} == pairs


def test_rl_is_refused_before_anything_is_written(tmp_path):
    spec = sft_spec(tmp_path)
    spec.pop("sft")
    spec.update(task="rl", rl={"reward": "tunebridge.testing.rewards:letter_e"})
    with pytest.raises(UnsupportedFeature) as info:
        Run(parse_spec(spec)).export(tmp_path / "out")
    assert "backend 'autotrain' does not support task 'rl'" in str(info.value) and "trl" in str(info.value)
    assert not (tmp_path / "out").exists()


def test_completion_only_loss_written_is_refused_and_the_default_adapts(tmp_path):
    spec = sft_spec(tmp_path)
    spec["sft"] = {"completion_only_loss": True}
    with pytest.raises(UnsupportedFeature, match="completion-only loss"):
        Run(parse_spec(spec)).export(tmp_path / "out")
    assert not (tmp_path / "out").exists()
    spec.pop("sft")  # the default: adapted to AutoTrain's loss on every token, and said so
    run = Run(parse_spec(spec))
    run.export(tmp_path / "out")
    assert [d.setting for d in run.differences] == ["sft.packing", "sft.completion_only_loss"]
    assert "every token is trained on" in (tmp_path / "out" / "README.md").read_text()


def test_bad_backend_options_fail_before_the_folder_is_made(tmp_path):
    spec = sft_spec(tmp_path, backend_options={"autotrain": {"trainer": "orpo"}})
    with pytest.raises(SpecError, match="write `task: preference` with `preference.algorithm: orpo`"):
        Run(parse_spec(spec)).export(tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_no_secret_lands_in_the_export(tmp_path, monkeypatch):
    secret = "hf_" + "x" * 30
    monkeypatch.setenv("HF_TOKEN", secret)
    spec = sft_spec(tmp_path, backend_options={"autotrain": {"push_to_hub": True, "hub_username": "me"}})
    Run(parse_spec(spec)).export(tmp_path / "out")
    config = yaml.safe_load((tmp_path / "out" / "config.yml").read_text())
    assert config["hub"] == {"username": "me", "token": "${HF_TOKEN}", "push_to_hub": True}
    for path in (tmp_path / "out").rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


def test_a_non_empty_folder_needs_overwrite(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "mine.txt").write_text("keep")
    spec = parse_spec(sft_spec(tmp_path))
    with pytest.raises(OutputExistsError):
        Run(spec).export(tmp_path / "out")
    Run(spec).export(tmp_path / "out", overwrite=True)
    assert not (tmp_path / "out" / "mine.txt").exists() and (tmp_path / "out" / "config.yml").is_file()


def test_export_from_the_cli(tmp_path):
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(sft_spec(tmp_path)))
    env = {**os.environ}
    cmd = [sys.executable, "-m", "tunebridge", "export", str(spec_path), "--backend", "autotrain", "--output",
           str(tmp_path / "cli-out")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "exported: task sft for backend autotrain" in proc.stdout and "README.md" in proc.stdout
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 1 and "not empty; pass --overwrite" in proc.stderr
    proc = subprocess.run(cmd[:-4] + ["--output", str(tmp_path / "x")], capture_output=True, text=True, env=env,
                          timeout=600)  # the spec's own backend (autotrain) is used without --backend
    assert proc.returncode == 0, proc.stderr


def test_the_trl_backend_has_no_export(tmp_path):
    with pytest.raises(UnsupportedFeature, match="backend 'trl' does not support export; backends that do: autotrain"):
        Run(parse_spec(sft_spec(tmp_path)), backend="trl").export(tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_train_without_an_autotrain_environment_says_what_to_set(tmp_path, monkeypatch):
    from tunebridge.errors import BackendUnavailable

    monkeypatch.delenv("TUNEBRIDGE_AUTOTRAIN_PYTHON", raising=False)
    spec = parse_spec(sft_spec(tmp_path))
    with pytest.raises(BackendUnavailable, match="TUNEBRIDGE_AUTOTRAIN_PYTHON") as info:
        Run(spec).train(tmp_path / "out")
    assert "autotrain-env.sh" in str(info.value) and not (tmp_path / "out").exists()
    spec = parse_spec(sft_spec(tmp_path, backend_options={"autotrain": {"python": str(tmp_path / "no-python")}}))
    with pytest.raises(BackendUnavailable, match="does not exist"):
        Run(spec).train(tmp_path / "out")
