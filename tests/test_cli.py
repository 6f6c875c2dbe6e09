"""The command line, end to end, in subprocesses (what a user types)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tunebridge.testing import contract_rows, write_jsonl


def tb(*args, cwd=None):
    env = {**os.environ}
    return subprocess.run([sys.executable, "-m", "tunebridge", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=600)


def test_help_lists_the_commands():
    proc = tb("--help")
    assert proc.returncode == 0
    for command in ("backends", "validate", "schema", "plan", "train"):
        assert command in proc.stdout
    assert tb().returncode == 2


def test_validate_ok(repo):
    proc = tb("validate", repo / "examples" / "sft-tiny.yaml")
    assert proc.returncode == 0, proc.stderr
    assert "data ok: 52 rows -> 47 train / 5 eval examples, template instruction" in proc.stdout


def test_validate_reports_spec_and_data_errors(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text("task: sft\nmodel: {builtin: tiny-llama}\ndata: {path: d.jsonl, template: instruction}\n"
                    "training: {batchsize: 2}\n")
    proc = tb("validate", spec)
    assert proc.returncode == 1
    assert "training.batchsize: unknown key (did you mean 'batch_size'?)" in proc.stderr
    spec.write_text("task: sft\nmodel: {builtin: tiny-llama}\ndata: {path: d.jsonl, template: instruction}\n")
    write_jsonl(tmp_path / "d.jsonl", [{"instruction": "a", "response": "b"}, {"instruction": "a", "response": ""}])
    proc = tb("validate", spec)
    assert proc.returncode == 1 and "d.jsonl line 2: completion is empty (from 'response')" in proc.stderr


def test_validate_unsupported_feature_on_a_backend(repo, tmp_path):
    # The example leaves sft at its defaults: AutoTrain adapts them and validate says so ...
    proc = tb("validate", repo / "examples" / "sft-tiny.yaml", "--backend", "autotrain")
    assert proc.returncode == 0, proc.stderr
    assert "adapted sft.completion_only_loss: default true, false here" in proc.stdout
    # ... while a setting the user wrote is refused, naming the backends that can.
    spec = tmp_path / "sft.yaml"
    text = (repo / "examples" / "sft-tiny.yaml").read_text().replace("path: data/", f"path: {repo}/examples/data/")
    spec.write_text(text + "sft: {completion_only_loss: true}\n")
    proc = tb("validate", spec, "--backend", "autotrain")
    assert proc.returncode == 1
    assert "backend 'autotrain' does not support completion-only loss" in proc.stderr and "trl" in proc.stderr
    proc = tb("validate", spec, "--backend", "nope")
    assert proc.returncode == 1 and "no backend named 'nope'" in proc.stderr


def test_validate_asks_the_backends_own_interpreter(repo, monkeypatch):
    """The status line is the executor's: for trlx, the configured interpreter, not this one."""
    pytest.importorskip("pyarrow", reason="the Argilla jsonl export is read with pyarrow (the [trl] extra)")
    monkeypatch.setenv("TUNEBRIDGE_TRLX_PYTHON", "/nonexistent/python")
    proc = tb("validate", repo / "examples" / "argilla-ilql.yaml")
    assert proc.returncode == 0, proc.stderr
    assert "backend trlx (broken: cannot start /nonexistent/python" in proc.stdout


def test_schema_is_json():
    proc = tb("schema")
    assert proc.returncode == 0 and "training" in json.loads(proc.stdout)["properties"]


def test_backends_lists_status_and_tasks():
    proc = tb("backends")
    assert proc.returncode == 0
    assert "trl  (tunebridge 0.1.0)" in proc.stdout and "trlx  (tunebridge 0.1.0)" in proc.stdout
    assert ("tasks: preference, reward, rl, sft   algorithms: sft: sft; reward: reward; rl: grpo, rloo; "
            "preference: dpo, kto, orpo") in proc.stdout


@pytest.mark.usefixtures("trl_available")
def test_plan_prints_the_native_config_and_trains_nothing(repo, tmp_path):
    proc = tb("plan", repo / "examples" / "sft-tiny.yaml", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)
    cfg = plan["native_config"]["SFTConfig"]
    assert cfg["max_steps"] == 30 and cfg["bf16"] is False and cfg["completion_only_loss"] is True
    assert cfg["train_sampling_strategy"] == "sequential" and cfg["activation_checkpointing"] is False
    assert list(tmp_path.iterdir()) == []
    text = tb("plan", repo / "examples" / "sft-tiny.yaml").stdout
    assert "settings not honoured: none" in text and '"trainer": "trl.SFTTrainer"' in text


@pytest.mark.usefixtures("trl_available")
def test_train_from_the_cli(tmp_path):
    write_jsonl(tmp_path / "rows.jsonl", contract_rows(16))
    (tmp_path / "spec.yaml").write_text(
        "task: sft\nmodel: {builtin: tiny-llama}\ndata: {path: rows.jsonl, template: instruction}\n"
        "training: {max_steps: 5, learning_rate: 3.0e-3, batch_size: 4, max_length: 128}\nbackend: trlx\n"
    )
    proc = tb("train", tmp_path / "spec.yaml", "--backend", "trl", "--output", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    assert "step 5/5 | loss" in proc.stderr and "ETA" in proc.stderr
    assert "== tunebridge run finished ==" in proc.stdout and "steps          5" in proc.stdout
    record = json.loads((tmp_path / "out" / "run.json").read_text())
    assert record["backend"] == "trl" and record["status"] == "completed"
    proc = tb("train", tmp_path / "spec.yaml", "--backend", "trl", "--output", tmp_path / "out")
    assert proc.returncode == 1 and "not empty; pass --overwrite" in proc.stderr


def test_spec_errors_name_the_spec_file(tmp_path):
    write_jsonl(tmp_path / "d.jsonl", [{"instruction": "a", "response": "b"}])
    spec = tmp_path / "s.yaml"
    spec.write_text("task: sft\nmodel: {builtin: tiny-llama}\n"
                    "data: {path: d.jsonl, template: instruction, columns: {respons: x}}\n")
    proc = tb("validate", spec)
    assert proc.returncode == 1 and f"invalid spec in {spec}" in proc.stderr
    assert "data.columns.respons: no placeholder {respons}" in proc.stderr


def test_output_piped_into_a_closed_reader_is_not_a_crash():
    proc = subprocess.run(f"{sys.executable} -m tunebridge schema | head -c 10", shell=True, capture_output=True,
                          text=True, timeout=120)
    assert proc.stdout == "{\n  \"$defs\""[:10] and "Traceback" not in proc.stderr


def test_validate_explains_the_generation_batch_rule(tmp_path, repo):
    spec = tmp_path / "rl.yaml"
    spec.write_text((repo / "examples" / "rl-tiny.yaml").read_text().replace("num_generations: 4", "num_generations: 3")
                    .replace("path: data/", f"path: {repo / 'examples' / 'data'}/")
                    .replace("reward: rewards:letter_e", "reward: tunebridge.testing.rewards:letter_e"))
    proc = tb("validate", spec)
    assert proc.returncode == 1
    assert "rl.generation.num_generations: 3 must divide training.batch_size x" in proc.stderr


@pytest.mark.usefixtures("trl_available")
def test_reward_and_rl_examples_train_from_the_cli(repo, tmp_path):
    proc = tb("train", repo / "examples" / "reward-tiny.yaml", "-q", "--output", tmp_path / "rm")
    assert proc.returncode == 0, proc.stderr
    assert "accuracy" in proc.stdout and "eval accuracy" in proc.stdout
    proc = tb("train", repo / "examples" / "rl-tiny.yaml", "-q", "--output", tmp_path / "rl")
    assert proc.returncode == 0, proc.stderr
    assert "reward mean" in proc.stdout
    lines = [json.loads(x) for x in (tmp_path / "rl" / "metrics.jsonl").read_text().splitlines()]
    assert lines[-1]["reward_mean"] > lines[0]["reward_mean"]
