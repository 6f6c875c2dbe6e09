"""Experiment trackers (``training.report_to``): TensorBoard, MLflow, Weights & Biases.

Each backend maps them to its framework's own mechanism (TRL ``report_to``, trlx ``train.tracker``,
AutoTrain ``log``); the core decides where their files go, the same way for every backend: inside the run
folder, ``<output>/logs/`` (``tensorboard/``, ``mlruns/``, ``wandb/``), unless the user configured the
tracker's own store in the environment (``MLFLOW_TRACKING_URI``, ``WANDB_DIR``, ``TENSORBOARD_LOGGING_DIR``).
W&B runs offline unless ``WANDB_MODE`` or ``WANDB_API_KEY`` says otherwise. Credentials stay in the
environment and are never written: the trainer's logged configuration holds no secret (see backends/trl).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

TRACKERS = ("tensorboard", "mlflow", "wandb")
LOG_FOLDER = "logs"


def tensorboard_dir(output_dir: Path) -> Path:
    """Where TensorBoard event files of a run go."""
    return Path(output_dir) / LOG_FOLDER / "tensorboard"


def tracker_environment(trackers: list[str], output_dir: Path, run_name: str,
                        environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment variables that send ``trackers`` into the run folder (what the user set already wins)."""
    environ = os.environ if environ is None else environ
    logs = Path(output_dir).resolve() / LOG_FOLDER
    wanted: dict[str, str] = {}
    if "tensorboard" in trackers:
        wanted["TENSORBOARD_LOGGING_DIR"] = str(logs / "tensorboard")
    if "mlflow" in trackers:
        wanted["MLFLOW_EXPERIMENT_NAME"] = run_name
        if "MLFLOW_TRACKING_URI" not in environ:  # a plain file store in the run folder (MLflow 3 asks to allow it)
            wanted["MLFLOW_TRACKING_URI"] = (logs / "mlruns").as_uri()
            wanted["MLFLOW_ALLOW_FILE_STORE"] = "true"
    if "wandb" in trackers:
        wanted["WANDB_DIR"] = str(logs)
        wanted["WANDB_PROJECT"] = run_name
        if "WANDB_API_KEY" not in environ:
            wanted["WANDB_MODE"] = "offline"  # no account configured: files only, nothing sent
    return {k: v for k, v in wanted.items() if k not in environ}


@contextlib.contextmanager
def trackers_in_environment(trackers: list[str], output_dir: Path, run_name: str) -> Iterator[dict[str, str]]:
    """Set ``tracker_environment`` for the block (the trainer reads it), create the log folders, restore after."""
    added = tracker_environment(trackers, output_dir, run_name)
    if trackers:
        (Path(output_dir) / LOG_FOLDER).mkdir(parents=True, exist_ok=True)
    os.environ.update(added)
    try:
        yield added
    finally:
        finish_open_runs(trackers)
        for key in added:
            os.environ.pop(key, None)


def finish_open_runs(trackers: list[str]) -> None:
    """Close what a trainer's integration leaves open in this process (transformers' W&B callback never finishes
    its run): the files are then complete when ``train`` returns, and the next run starts a new one."""
    if "wandb" in trackers:
        import sys

        wandb = sys.modules.get("wandb")
        if wandb is not None and getattr(wandb, "run", None) is not None:
            wandb.finish()
    if "mlflow" in trackers:
        import sys

        mlflow = sys.modules.get("mlflow")
        if mlflow is not None and mlflow.active_run() is not None:
            mlflow.end_run()


def run_name(spec) -> str:
    """The experiment / project name trackers file a run under: the spec's name, else ``tunebridge``."""
    return spec.name or "tunebridge"
