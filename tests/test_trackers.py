"""training.report_to: TensorBoard, MLflow and W&B through each backend's own mechanism, files in <output>/logs."""

from __future__ import annotations

import glob
import json
from pathlib import Path

import pytest

import tunebridge as tb
from tunebridge.run import Run
from tunebridge.spec import parse_spec
from tunebridge.testing import contract_rows, sft_spec_dict, write_jsonl
from tunebridge.trackers import tracker_environment


def test_the_trackers_write_into_the_run_folder_unless_configured(tmp_path):
    env = tracker_environment(["tensorboard", "mlflow", "wandb"], tmp_path, "exp", environ={})
    logs = tmp_path.resolve() / "logs"
    assert env["TENSORBOARD_LOGGING_DIR"] == str(logs / "tensorboard")
    assert env["MLFLOW_TRACKING_URI"] == (logs / "mlruns").as_uri() and env["MLFLOW_EXPERIMENT_NAME"] == "exp"
    assert env["WANDB_DIR"] == str(logs) and env["WANDB_MODE"] == "offline"
    mine = tracker_environment(["mlflow", "wandb"], tmp_path, "exp",
                               environ={"MLFLOW_TRACKING_URI": "http://mlflow:5000", "WANDB_API_KEY": "k" * 40})
    assert "MLFLOW_TRACKING_URI" not in mine and "MLFLOW_ALLOW_FILE_STORE" not in mine
    assert "WANDB_MODE" not in mine  # an account is configured: W&B does what the user set up
    assert tracker_environment([], tmp_path, "exp", environ={}) == {}


@pytest.mark.parametrize("value, expected", [("tensorboard", ["tensorboard"]), ("none", []), (None, []),
                                             (["wandb", "wandb", "mlflow"], ["wandb", "mlflow"])])
def test_report_to_takes_one_or_many(tmp_path, value, expected):
    spec = sft_spec_dict(tmp_path / "rows.jsonl", "trl")
    spec["training"]["report_to"] = value
    assert parse_spec(spec).training.report_to == expected


def test_an_unknown_tracker_is_a_spec_error(tmp_path):
    spec = sft_spec_dict(tmp_path / "rows.jsonl", "trl")
    spec["training"]["report_to"] = ["comet"]
    with pytest.raises(tb.SpecError, match=r"training.report_to.0"):
        parse_spec(spec)


@pytest.mark.parametrize("backend", ["trlx", "autotrain"])
def test_a_backend_that_cannot_log_to_a_tracker_says_so_in_plan(tmp_path, backend):
    spec = sft_spec_dict(write_jsonl(tmp_path / "rows.jsonl", contract_rows(8)), backend, max_steps=None)
    spec["training"]["report_to"] = ["tensorboard", "mlflow", "wandb"]
    if backend == "autotrain":
        spec["sft"] = {"completion_only_loss": False}
    plan = Run(parse_spec(spec)).plan()
    lines = [u for u in plan.unhonoured if u.startswith("training.report_to")]
    assert [u.split(":")[0] for u in lines] == ["training.report_to mlflow", "training.report_to wandb"]


@pytest.mark.usefixtures("trl_available")
def test_trl_logs_the_same_losses_to_each_tracker_and_no_secret(tmp_path, monkeypatch):
    pytest.importorskip("tensorboard", reason="needs the [trackers] extra")
    mlflow = pytest.importorskip("mlflow", reason="needs the [trackers] extra")
    pytest.importorskip("wandb", reason="needs the [trackers] extra")
    for key in ("WANDB_API_KEY", "MLFLOW_TRACKING_URI", "TENSORBOARD_LOGGING_DIR", "WANDB_DIR"):
        monkeypatch.delenv(key, raising=False)
    token = "hf_" + "s3cr3t" * 6
    spec = sft_spec_dict(write_jsonl(tmp_path / "rows.jsonl", contract_rows(12)), "trl", max_steps=3, max_length=64)
    spec["training"]["report_to"] = ["tensorboard", "mlflow", "wandb"]
    spec["name"] = "tracked"
    spec["backend_options"] = {"trl": {"hub_token": token}}
    out = tmp_path / "out"
    result = Run(parse_spec(spec)).train(out)
    losses = [r["loss"] for r in result.log_history if "loss" in r]
    assert len(losses) == 3

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(out / "logs" / "tensorboard"))
    events.Reload()
    assert [e.value for e in events.Scalars("train/loss")] == pytest.approx(losses)

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    client = mlflow.tracking.MlflowClient(tracking_uri=(out / "logs" / "mlruns").resolve().as_uri())
    experiment = client.get_experiment_by_name("tracked")
    (run,) = client.search_runs([experiment.experiment_id])
    assert [m.value for m in client.get_metric_history(run.info.run_id, "loss")] == pytest.approx(losses)

    (offline,) = glob.glob(str(out / "logs" / "wandb" / "offline-run-*" / "run-*.wandb"))
    records = Path(offline).read_bytes()  # W&B's offline datastore holds each logged value as JSON text
    assert b"train/loss" in records and all(json.dumps(v).encode() in records for v in losses)

    for path in out.rglob("*"):
        if path.is_file():
            assert token.encode() not in path.read_bytes(), f"the hub token reached {path}"
    assert json.loads((out / "run.json").read_text())["spec"]["training"]["report_to"] == [
        "tensorboard", "mlflow", "wandb"]
