"""Continuing a run from its newest complete checkpoint (``tunebridge train SPEC --output DIR --resume``).

Pure functions over a run folder: which checkpoints are complete, whether the spec is the one that started the run,
which metrics lines to keep. The core (tunebridge.run) calls them under the folder's lock; the backend gets the
checkpoint as ``TrainingJob.resume_from``.

A checkpoint is ``<output>/work/checkpoints/checkpoint-N``. It is complete when it holds the model weights, the
optimizer, scheduler and RNG states and a readable ``trainer_state.json`` for step N: the trainer writes that file
last, so a checkpoint being written when the run was killed lacks it (or holds a cut-off one) and is skipped.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import TunebridgeError

CHECKPOINTS = Path("work") / "checkpoints"
CHECKPOINT_NAME = re.compile(r"^checkpoint-(\d+)$")
STATE_FILES = ("trainer_state.json", "optimizer.pt", "scheduler.pt", "rng_state.pth")
WEIGHT_FILES = ("model.safetensors", "adapter_model.safetensors", "pytorch_model.bin", "adapter_model.bin",
                "model.safetensors.index.json")
# Spec fields a resumed run may change: how long it trains. Everything else must be what started the run.
MAY_CHANGE = ("training.max_steps", "training.epochs")
UNFINISHED = ("running", "interrupted", "failed")


class ResumeError(TunebridgeError):
    """The run folder cannot be continued (no run, no complete checkpoint, another spec, nothing left)."""


@dataclass
class Checkpoint:
    """One checkpoint folder and the optimizer step it was written at."""

    step: int
    path: Path

    def relative_to(self, output_dir: Path) -> str:
        """The folder relative to the run folder (``work/checkpoints/checkpoint-N``), as run.json records it."""
        return self.path.relative_to(output_dir).as_posix()


@dataclass
class ResumePoint:
    """Where a resumed run continues: the checkpoint, the previous attempt's run.json, the metrics kept."""

    checkpoint: Checkpoint
    previous: dict[str, Any]
    records: list[dict[str, Any]] = field(default_factory=list)  # metrics.jsonl lines up to the checkpoint
    dropped: int = 0  # metrics.jsonl lines after the checkpoint, replaced by the resumed run


def checkpoints(output_dir: Path) -> list[Checkpoint]:
    """Every ``checkpoint-N`` folder of a run folder, complete or not, oldest first."""
    folder = Path(output_dir) / CHECKPOINTS
    found = []
    if folder.is_dir():
        for path in folder.iterdir():
            match = CHECKPOINT_NAME.match(path.name)
            if match and path.is_dir():
                found.append(Checkpoint(int(match.group(1)), path))
    return sorted(found, key=lambda c: c.step)


def missing_parts(checkpoint: Checkpoint) -> list[str]:
    """What a checkpoint lacks to be resumed from (empty when complete)."""
    path = checkpoint.path
    missing = [name for name in STATE_FILES if not (path / name).is_file()]
    if not any((path / name).is_file() for name in WEIGHT_FILES):
        missing.append("model weights")
    if "trainer_state.json" not in missing:
        try:
            state = json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return [*missing, "a readable trainer_state.json"]
        if not isinstance(state, dict) or state.get("global_step") != checkpoint.step:
            missing.append(f"a trainer_state.json for step {checkpoint.step}")
    return missing


def newest_complete(output_dir: Path) -> Checkpoint | None:
    """The newest checkpoint that holds the whole training state, or None."""
    for checkpoint in reversed(checkpoints(output_dir)):
        if not missing_parts(checkpoint):
            return checkpoint
    return None


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return flat or {prefix: {}}
    return {prefix: value}


def spec_differences(started: dict[str, Any], now: dict[str, Any],
                     may_change: tuple[str, ...] = MAY_CHANGE) -> list[str]:
    """The dotted field paths where spec ``now`` differs from the spec that ``started`` the run (both plain data,
    as run.json keeps them), leaving out the fields a resumed run may change."""
    a, b = _flatten(started), _flatten(now)
    changed = [key for key in sorted(set(a) | set(b)) if a.get(key, _MISSING) != b.get(key, _MISSING)]
    return [key for key in changed if not any(key == m or key.startswith(m + ".") for m in may_change)]


_MISSING = object()


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The records of a metrics.jsonl (a cut-off last line, as a killed run may leave, is skipped)."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("step"), int):
            records.append(record)
    return records


def split_metrics(records: list[dict[str, Any]], step: int) -> tuple[list[dict[str, Any]], int]:
    """The records up to and including optimizer step ``step`` (a resumed run logs the later ones again), and how
    many were dropped."""
    kept = [r for r in records if r["step"] <= step]
    return kept, len(records) - len(kept)


def metrics_text(records: list[dict[str, Any]]) -> str:
    """metrics.jsonl content for ``records``."""
    return "".join(json.dumps(r) + "\n" for r in records)


def previous_run(output_dir: Path) -> dict[str, Any]:
    """The run.json the previous attempt wrote in ``output_dir``; ResumeError when there is none."""
    path = Path(output_dir) / "run.json"
    if not Path(output_dir).is_dir():
        raise ResumeError(f"nothing to resume: {output_dir} does not exist; start the run without --resume")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ResumeError(f"nothing to resume: {output_dir} holds no run.json (no tunebridge run started there); "
                          "start a new run without --resume, into an empty folder or with --overwrite") from None
    except (OSError, ValueError) as exc:
        raise ResumeError(f"cannot resume: {path} cannot be read ({exc})") from None
    if not isinstance(record, dict) or not isinstance(record.get("spec"), dict):
        raise ResumeError(f"cannot resume: {path} holds no spec of the run that started there")
    return record


def resume_point(output_dir: Path, spec: dict[str, Any], backend: str, planned_steps: int | None) -> ResumePoint:
    """Where the run in ``output_dir`` continues for ``spec`` (plain data, redacted as run.json keeps it) on
    ``backend``, making ``planned_steps`` optimizer steps in all. Raises ResumeError saying why it cannot."""
    output_dir = Path(output_dir)
    previous = previous_run(output_dir)
    if previous.get("backend") not in (None, backend):
        raise ResumeError(f"cannot resume: the run in {output_dir} was started on backend {previous['backend']!r}, "
                          f"not {backend!r}; resume it with --backend {previous['backend']}")
    changed = spec_differences(previous["spec"], spec)
    if changed:
        raise ResumeError(f"cannot resume: the spec differs from the one that started the run in {output_dir} in "
                          f"{', '.join(changed)} (only {' and '.join(MAY_CHANGE)} may change when resuming); "
                          "restore them, or start over with --overwrite")
    checkpoint = newest_complete(output_dir)
    if checkpoint is None:
        partial = checkpoints(output_dir)
        found = (f"; {len(partial)} incomplete (e.g. {partial[-1].relative_to(output_dir)} lacks "
                 f"{', '.join(missing_parts(partial[-1]))})" if partial else "")
        raise ResumeError(f"cannot resume: {output_dir} holds no complete checkpoint ({CHECKPOINTS.as_posix()}/"
                          f"checkpoint-N{found}); resuming would start over: use --overwrite to train from the "
                          "start (set training.save_steps to write resumable checkpoints)")
    if planned_steps is not None and checkpoint.step > planned_steps:
        raise ResumeError(f"cannot resume: the newest checkpoint ({checkpoint.relative_to(output_dir)}) is past the "
                          f"{planned_steps} optimizer steps this spec makes; raise training.max_steps (or "
                          "training.epochs)")
    if previous.get("status") == "completed" and planned_steps is not None and checkpoint.step >= planned_steps:
        raise ResumeError(f"nothing to resume: the run in {output_dir} completed its {checkpoint.step} steps; "
                          "raise training.max_steps (or training.epochs) to train on from its last checkpoint")
    kept, dropped = split_metrics(read_metrics(output_dir / "metrics.jsonl"), checkpoint.step)
    return ResumePoint(checkpoint, previous, kept, dropped)


def overwrite_note(output_dir: Path) -> str | None:
    """What ``--overwrite`` deletes when ``output_dir`` holds checkpoints of an unfinished run, else None."""
    output_dir = Path(output_dir)
    try:
        status = json.loads((output_dir / "run.json").read_text(encoding="utf-8")).get("status")
    except (OSError, ValueError, AttributeError):
        return None
    found = checkpoints(output_dir)
    if status not in UNFINISHED or not found:
        return None
    complete = [c for c in found if not missing_parts(c)]
    newest = f" (newest complete: step {complete[-1].step})" if complete else " (none complete)"
    resumable = "; --resume would continue it instead" if complete else ""
    return (f"--overwrite deletes the {len(found)} checkpoint(s){newest} of the unfinished ({status}) run in "
            f"{output_dir}, with its run.json and metrics.jsonl{resumable}")
