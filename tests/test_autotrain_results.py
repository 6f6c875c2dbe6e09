"""Judging an AutoTrain run from its log and output folder, and finding its environment: fixture files only."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunebridge.backends.autotrain import launch
from tunebridge.backends.autotrain.results import (
    LogFollower,
    global_step_from_events,
    judge,
    model_files,
    parse_log_dict,
)

STAMP = "2026-01-21 10:00:00"
ON_LOG = f"INFO     | {STAMP} | autotrain.trainers.common:on_log:367 - "
GOOD_LOG = [
    f"INFO     | {STAMP} | autotrain.parser:__post_init__:165 - Running task: lm_training\n",
    f"INFO     | {STAMP} | autotrain.trainers.common:on_train_begin:386 - Starting to train...\n",
    "  0%|          | 0/4 [00:00<?, ?it/s]\n",
    ON_LOG + "{'loss': 6.0, 'grad_norm': 2.5, 'learning_rate': 0.002, 'epoch': 0.5}\n",
    " 25%|##5       | 1/4 [00:00<00:00, 28.40it/s]" + ON_LOG + "{'loss': 5.5, 'grad_norm': nan, "
    "'learning_rate': 0.001, 'epoch': 1.0}\n",
    ON_LOG + "{'train_runtime': 0.1, 'train_samples_per_second': 143.5, 'train_steps_per_second': 57.4, "
    "'train_loss': 5.75, 'epoch': 1.0}\n",
]
FAILED_LOG = [
    f"ERROR    | {STAMP} | autotrain.trainers.common:wrapper:215 - train has failed due to an exception: Traceback\n",
    "ValueError: CUDA is required but not available for bitsandbytes.\n",
    f"ERROR    | {STAMP} | autotrain.trainers.common:wrapper:216 - CUDA is required but not available\n",
    f"INFO     | {STAMP} | autotrain.cli.autotrain:main:58 - Job ID: 1234\n",
]


def saved_model(folder: Path, weights: str = "model.safetensors") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text("{}")
    (folder / weights).write_bytes(b"0")
    return folder


def test_log_lines_become_records_with_optimizer_steps():
    follower = LogFollower(logging_steps=2).feed_all(GOOD_LOG)
    assert [r["step"] for r in follower.records] == [2, 4]
    assert follower.records[0] == {"step": 2, "loss": 6.0, "grad_norm": 2.5, "learning_rate": 0.002, "epoch": 0.5}
    assert follower.records[1]["grad_norm"] is None  # nan in the log
    assert follower.summary["train_loss"] == 5.75 and follower.total_steps == 4
    assert not follower.failed and follower.errors == []


def test_other_lines_are_not_metrics():
    assert parse_log_dict("INFO | x | autotrain.trainers.common:on_log:1 - not a dict") is None
    assert parse_log_dict(ON_LOG + "{'loss': broken") is None
    assert parse_log_dict("{'loss': 1.0}") is None  # not AutoTrain's logger line
    assert parse_log_dict(ON_LOG + "{'loss': -inf, 'epoch': 1}") == {"loss": None, "epoch": 1}


def test_a_failed_run_that_exits_zero_is_a_failure(tmp_path):
    follower = LogFollower().feed_all(FAILED_LOG)
    assert follower.failed and len(follower.errors) == 2
    project = tmp_path / "proj"
    project.mkdir()
    (project / "training_params.json").write_text("{}")
    with pytest.raises(RuntimeError) as info:
        judge(project, follower, 0, tmp_path / "autotrain.log")
    message = str(info.value)
    assert "AutoTrain reported that training failed" in message and "no trained model" in message
    assert "CUDA is required" in message and "autotrain.log" in message


def test_a_model_with_an_error_in_the_log_is_still_a_failure(tmp_path):
    with pytest.raises(RuntimeError, match="reported that training failed"):
        judge(saved_model(tmp_path / "p"), LogFollower().feed_all(FAILED_LOG), 0, tmp_path / "log")


def test_a_nonzero_exit_is_a_failure(tmp_path):
    with pytest.raises(RuntimeError, match="exited with status 1"):
        judge(saved_model(tmp_path / "p"), LogFollower().feed_all(GOOD_LOG), 1, tmp_path / "log")


def test_success_needs_config_and_weights(tmp_path):
    judge(saved_model(tmp_path / "full"), LogFollower().feed_all(GOOD_LOG), 0, tmp_path / "log")
    assert model_files(saved_model(tmp_path / "bin", "pytorch_model.bin")) == "full"
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    (adapter / "adapter_model.safetensors").write_bytes(b"0")
    assert model_files(adapter) == "adapter"
    config_only = tmp_path / "config-only"
    config_only.mkdir()
    (config_only / "config.json").write_text("{}")
    assert model_files(config_only) is None and model_files(tmp_path / "absent") is None


def test_global_step_comes_from_the_summary_scalars():
    scalars = [{"tag": "train/loss", "step": 5, "value": 1.0}, {"tag": "train/train_runtime", "step": 7, "value": 0.1}]
    assert global_step_from_events(scalars) == 7
    assert global_step_from_events([{"tag": "train/loss", "step": 5, "value": 1.0}]) is None


def test_environment_status_reads_files_only(tmp_path, monkeypatch):
    monkeypatch.delenv(launch.PYTHON_ENV, raising=False)
    assert launch.configured_python() is None
    missing = launch.status(None)
    assert missing.kind == "missing" and launch.PYTHON_ENV in missing.detail
    assert launch.status(tmp_path / "nope" / "python").kind == "missing"
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    python.write_text("")
    assert "no autotrain, accelerate" in launch.status(python).detail
    for name in ("autotrain", "accelerate"):
        (venv / "bin" / name).write_text("")
    site = venv / "lib" / "python3.11" / "site-packages"
    (site / "autotrain_advanced-0.8.36.dist-info").mkdir(parents=True)
    (site / "transformers-4.48.0.dist-info").mkdir()
    assert launch.status(python).ready
    assert launch.environment_versions(python)["transformers"] == "4.48.0"
    monkeypatch.setenv(launch.PYTHON_ENV, str(python))
    assert launch.configured_python() == python
    from tunebridge.spec import parse_spec

    spec = parse_spec({"task": "sft", "model": {"builtin": "tiny-llama"}, "data": {"path": "d.jsonl"},
                       "backend": "autotrain", "backend_options": {"autotrain": {"python": "/elsewhere/python"}}},
                      base_dir=tmp_path)
    assert launch.configured_python(spec) == Path("/elsewhere/python")
    spec = parse_spec({**spec.to_dict(), "backend_options": {"autotrain": {"python": "envs/at/bin/python"}}},
                      base_dir=tmp_path)
    assert launch.configured_python(spec) == tmp_path / "envs" / "at" / "bin" / "python"  # like every spec path
    (site / "autotrain_advanced-0.8.36.dist-info").rename(site / "autotrain_advanced-0.7.0.dist-info")
    assert launch.status(python).kind == "broken"


def test_secrets_are_scrubbed_from_the_log():
    line = "token=hf_abcdefghijklmnopqrstuvwxyz0123 and mysecretvalue"
    from tunebridge.execution.streamer import redact_line

    assert redact_line(line, ["mysecretvalue"]) == "token=*** and ***"


def test_the_child_environment_puts_autotrain_first_and_can_seed(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/somewhere")
    python = tmp_path / "venv" / "bin" / "python"
    env = launch.child_env(python)
    assert env["PATH"].split(":")[0] == str(python.parent) and "PYTHONPATH" not in env
    site = launch.seeding_dir(tmp_path / "site")
    env = launch.child_env(python, seed=5, site_dir=site)
    assert env["PYTHONPATH"] == str(site) and env["TUNEBRIDGE_AUTOTRAIN_SEED"] == "5"
    assert "random.seed" in (site / "sitecustomize.py").read_text()
