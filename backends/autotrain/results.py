"""Reading what an AutoTrain run left behind: its log lines, its output folder, its tensorboard scalars.

AutoTrain exits 0 even when training failed (``trainers.common.monitor`` swallows the exception), so
success is judged from the files it wrote and from its log. Pure: no AutoTrain import.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# `INFO     | 2025-01-21 10:00:00 | autotrain.trainers.common:on_log:367 - {'loss': 6.1, ...}`
LOG_DICT = re.compile(r"\|\s*autotrain\.trainers\.common:on_log:\d+ - (\{.*\})\s*$")
NON_FINITE = re.compile(r"(?<![\w'])-?(nan|inf)\b")
FAILED = "has failed due to an exception"
ERROR_LINE = re.compile(r"ERROR\s*\|\s*\d{4}-\d\d-\d\d")
TRAIN_START = "Starting to train"  # TrainStartCallback; the next `n/N [` progress bar counts optimizer steps
PROGRESS = re.compile(r"(\d+)/(\d+) \[")
SUMMARY_KEYS = ("train_runtime", "train_samples_per_second", "train_steps_per_second", "train_loss")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
                "pytorch_model.bin.index.json")
ADAPTER_FILES = ("adapter_model.safetensors", "adapter_model.bin")
# What AutoTrain writes into its project folder that is not part of the model.
NOT_MODEL = ("autotrain-data", "runs", "training_params.json", "training_args.bin", "README.md")


def parse_log_dict(line: str) -> dict[str, Any] | None:
    """The metrics dict of one AutoTrain ``on_log`` line, or None for any other line."""
    match = LOG_DICT.search(line.rstrip())
    if not match:
        return None
    try:
        value = ast.literal_eval(NON_FINITE.sub("None", match.group(1)))
    except (ValueError, SyntaxError):
        return None
    return value if isinstance(value, dict) else None


@dataclass
class LogFollower:
    """Follows AutoTrain's output line by line: training metrics (with their optimizer step), the summary,
    and error lines. HF's Trainer logs training metrics exactly at multiples of ``logging_steps``."""

    logging_steps: int = 1
    records: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    failed: bool = False
    started: bool = False
    total_steps: int | None = None

    def feed(self, line: str) -> dict[str, Any] | None:
        """Take one line; returns the new training record (``step`` included) when the line logged one."""
        if FAILED in line:
            self.failed = True
        if ERROR_LINE.search(line) or FAILED in line:
            self.errors.append(line.rstrip())
        if TRAIN_START in line:
            self.started = True
        elif self.started and self.total_steps is None:
            bar = PROGRESS.search(line)
            if bar:
                self.total_steps = int(bar.group(2))
        logged = parse_log_dict(line)
        if logged is None:
            return None
        if any(k in logged for k in SUMMARY_KEYS):
            self.summary.update({k: v for k, v in logged.items() if k != "total_flos"})
            return None
        if not any(k in logged for k in ("loss", "eval_loss")):
            return None
        if "eval_loss" in logged and "loss" not in logged:
            step = self.records[-1]["step"] if self.records else 0
        else:
            step = (sum(1 for r in self.records if "loss" in r) + 1) * self.logging_steps
        record = {"step": step, **logged}
        self.records.append(record)
        return record

    def feed_all(self, lines: Iterable[str]) -> LogFollower:
        """Feed many lines (reading a finished log); returns self."""
        for line in lines:
            self.feed(line)
        return self


def model_files(project_dir: Path) -> str | None:
    """'full' or 'adapter' when ``project_dir`` holds a saved model (config + weights), else None."""
    if not project_dir.is_dir():
        return None
    if any((project_dir / f).is_file() for f in ADAPTER_FILES) and (project_dir / "adapter_config.json").is_file():
        return "adapter"
    if (project_dir / "config.json").is_file() and any((project_dir / f).is_file() for f in WEIGHT_FILES):
        return "full"
    return None


def judge(project_dir: Path, follower: LogFollower, returncode: int, log_path: Path) -> None:
    """Raise RuntimeError, quoting AutoTrain's errors, unless the run trained and saved a model."""
    problems = []
    if returncode != 0:
        problems.append(f"autotrain exited with status {returncode}")
    if follower.failed:
        problems.append("AutoTrain reported that training failed (it exits 0 all the same)")
    if model_files(project_dir) is None:
        problems.append(f"no trained model in {project_dir} (config.json + weights)")
    if not problems:
        return
    detail = "\n".join(follower.errors[-6:])
    raise RuntimeError("; ".join(problems) + f"; AutoTrain's log: {log_path}" + (f"\n{detail}" if detail else ""))


def global_step_from_events(scalars: list[dict[str, Any]]) -> int | None:
    """The final optimizer step from tensorboard scalars (HF logs the run summary at the last step)."""
    steps = [s["step"] for s in scalars if s.get("tag", "").endswith(("train_runtime", "train_loss"))]
    return max(steps) if steps else None
