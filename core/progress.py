"""Per-step metrics: normalised names, streamed to metrics.jsonl, and a live progress line."""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

# Every backend reports these names (plus extras of its own); `step` is the optimizer step.
METRIC_NAMES = ("step", "loss", "learning_rate", "grad_norm", "epoch", "eval_loss")
# Task-specific neutral names: reward modelling logs `accuracy` (share of pairs ranked right) and
# `margin`; rl logs `reward_mean`, `reward_std`, `kl` (with a reference model) and `frac_reward_zero_std`
# (share of prompts whose completions all got the same reward).
REWARD_METRICS = ("accuracy", "margin")
RL_METRICS = ("reward_mean", "reward_std", "kl", "frac_reward_zero_std")
# preference (DPO, KTO, ORPO) logs, on every backend: `rewards_chosen` / `rewards_rejected` (the implicit rewards,
# beta x log-ratio policy/reference; ORPO: beta x log-odds), `margin` (their mean difference), `accuracy` (share of
# pairs whose chosen reward is higher; KTO logs none), `logps_chosen` / `logps_rejected` (policy log-probabilities).
PREFERENCE_METRICS = ("rewards_chosen", "rewards_rejected", "margin", "accuracy", "logps_chosen", "logps_rejected")
# The frameworks' preference names (TRL 1.16 and trl 0.13, which AutoTrain runs) -> the neutral ones.
PREFERENCE_RENAMES = {"rewards/chosen": "rewards_chosen", "rewards/rejected": "rewards_rejected",
                      "rewards/margins": "margin", "rewards/accuracies": "accuracy",
                      "logps/chosen": "logps_chosen", "logps/rejected": "logps_rejected",
                      "logits/chosen": "logits_chosen", "logits/rejected": "logits_rejected"}


def preference_names(logs: dict[str, Any]) -> dict[str, Any]:
    """``logs`` with the frameworks' preference metric names (``rewards/margins``, ``eval_rewards/chosen`` ...)
    in the neutral ones (``margin``, ``eval_rewards_chosen`` ...); other keys unchanged."""
    out: dict[str, Any] = {}
    for key, value in logs.items():
        prefix = "eval_" if key.startswith("eval_") else ""
        out[prefix + PREFERENCE_RENAMES.get(key[len(prefix):], key[len(prefix):])] = value
    return out


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


SUMMARISED = ("loss", "reward_mean", "accuracy", "margin")


def summarise(records: list[dict[str, Any]]) -> dict[str, Any]:
    """first_/final_ values of the neutral training metrics a run logged (the same rule for every backend).

    Raises ValueError when a logged training loss is not a finite number.
    """
    summary: dict[str, Any] = {}
    for key in SUMMARISED:
        # A step with no trainable token (``trainable_tokens: 0``) has no loss to report: it is left out.
        logged = [r for r in records if key in r and r.get("trainable_tokens") != 0]
        # RunReporter stores NaN and infinity as null (JSON has neither).
        bad = [r["step"] for r in logged if r[key] is None or not math.isfinite(r[key])]
        if key == "loss" and bad:
            raise ValueError(f"training produced a non-finite loss at step(s) {bad}")
        values = [r[key] for r in logged if r[key] is not None]
        if values:
            summary[f"first_{key}"], summary[f"final_{key}"] = values[0], values[-1]
    return summary


def remove_empty_dirs(folder: Path) -> None:
    """Drop ``folder`` and its subfolders when nothing was kept in them (e.g. no checkpoints asked for)."""
    if not folder.is_dir():
        return
    for sub in sorted(folder.rglob("*"), reverse=True):
        if sub.is_dir() and not any(sub.iterdir()):
            sub.rmdir()
    if not any(folder.iterdir()):
        folder.rmdir()


class ProgressLine:
    """A one-line live display: step, loss, learning rate, ETA. Plain lines when not on a terminal."""

    STAGE_EVERY_S = 2.0  # off a terminal, data-preparation lines at most this often (and each stage's ends)

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.started = time.monotonic()
        self.closed = False
        self._stage: tuple[str, float] = ("", 0.0)

    def stage(self, name: str, done: int | None = None, total: int | None = None) -> None:
        """Show a data-preparation stage: ``reading``, ``rendering 20000/200000 rows``, ``tokenising ...``."""
        if name == "reading" and done is not None:
            line = f"read {done} rows"
        elif total is not None and done is not None:
            line = f"{name} {done}/{total} rows" if name != "building the builtin model" else \
                f"{name} (tokenizer trained on {done} of {total} examples)"
        elif done is not None:
            line = f"{name} {done} rows"
        else:
            line = name
        now = time.monotonic()
        ends = done is None or done == total or done == 0 or name != self._stage[0]
        if not self.tty and not ends and now - self._stage[1] < self.STAGE_EVERY_S:
            return
        self._stage = (name, now)
        self.started = now  # the step ETA counts from the end of data preparation
        if self.tty:
            self.stream.write("\r\x1b[2K" + line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def update(self, step: int, total: int | None, record: dict[str, Any]) -> None:
        """Show the latest logged step."""
        elapsed = time.monotonic() - self.started
        parts = [f"step {step}/{total}" if total else f"step {step}"]
        if record.get("loss") is not None:
            parts.append(f"loss {record['loss']:.4f}")
        for key, label in (("reward_mean", "reward"), ("accuracy", "acc"), ("margin", "margin")):
            if record.get(key) is not None:
                parts.append(f"{label} {record[key]:.3f}")
        if record.get("eval_loss") is not None:
            parts.append(f"eval_loss {record['eval_loss']:.4f}")
        if record.get("learning_rate") is not None:
            parts.append(f"lr {record['learning_rate']:.2e}")
        if total and step:
            remaining = elapsed / step * max(total - step, 0)
            parts.append(f"ETA {int(remaining) // 60}:{int(remaining) % 60:02d}")
        line = " | ".join(parts)
        if self.tty:
            self.stream.write("\r\x1b[2K" + line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        """End the live line (safe to call twice)."""
        if self.tty and not self.closed:
            self.stream.write("\n")
            self.stream.flush()
        self.closed = True


class RunReporter:
    """Receives each logged step from a backend: writes it to metrics.jsonl at once and updates displays."""

    def __init__(self, metrics_path: Path | None, display: Callable[[int, int | None, dict], None] | None = None):
        self.metrics_path = metrics_path
        self.display = display
        self.total_steps: int | None = None
        self.records: list[dict[str, Any]] = []

    def set_total_steps(self, total: int) -> None:
        """The number of optimizer steps the run will make, once the backend knows it."""
        self.total_steps = total

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        """Record one logging event (already in neutral names)."""
        record = {"step": int(step), **{k: _clean(v) for k, v in metrics.items() if k != "step"}}
        self.records.append(record)
        if self.metrics_path is not None:  # None: a node that writes no run folder
            try:
                with self.metrics_path.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps(record) + "\n")
            except OSError as exc:
                from .files import WriteError

                raise WriteError(self.metrics_path, exc) from None
        if self.display:
            self.display(record["step"], self.total_steps, record)


def note(text: str, stream: TextIO | None = None) -> None:
    """Say something the user should know now (a stale lock taken over, a damaged cache rebuilt) on stderr."""
    stream = stream or sys.stderr
    try:
        stream.write(f"note: {text}\n")
        stream.flush()
    except (OSError, ValueError):  # a closed stderr must not fail the run
        pass


def run_warnings(spec: Any, records: list[dict[str, Any]]) -> list[str]:
    """Warnings read from a finished run's metrics (the same rule for every backend)."""
    warnings: list[str] = []
    if spec.task != "rl":
        return warnings
    # Grouped algorithms report the share of prompts whose completions all scored the same; others the spread.
    flat = [r["frac_reward_zero_std"] >= 1.0 for r in records if r.get("frac_reward_zero_std") is not None]
    if not flat:
        flat = [r["reward_std"] == 0 for r in records if r.get("reward_std") is not None]
    if flat and sum(flat) > len(flat) / 2:
        warnings.append(
            f"on {sum(flat)} of {len(flat)} logged steps every completion got the same reward, so nothing was "
            "learned on them: use a reward that varies between completions (or more "
            "rl.generation.num_generations / a higher temperature)"
        )
    return warnings
