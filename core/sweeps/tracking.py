"""A Ray Tune callback that keeps sweep.json's trial statuses up to date in the driver (imports Ray)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ray import tune

from .trial import REASON_KEY, STATUS_KEY, TRIALS


def _error_text(trial: Any) -> str:
    """The last line of Tune's error file of ``trial`` (when the trainable died before reporting why)."""
    path = getattr(trial, "error_file", None)
    try:
        lines = [line for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, TypeError):
        return "the trial failed (Ray gave no error)"
    return lines[-1].strip() if lines else "the trial failed (Ray gave no error)"


class Tracker(tune.Callback):
    """Trial id -> its sweep.json row; ``changed()`` runs after every status change (sweep.json is rewritten)."""

    def __init__(self, rows: dict[str, dict[str, Any]], changed: Callable[[str, dict[str, Any]], None], flag: Any):
        self.rows = rows
        self.changed = changed
        self.flag = flag  # flag.signum set: the sweep is being stopped

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its callbacks into the experiment state; this one lives in the driver only (its output
        # stream cannot be pickled), so the copy is an empty tracker.
        return {"rows": {}, "changed": lambda event, row: None, "flag": self.flag}

    def _row(self, trial: Any) -> dict[str, Any]:
        row = self.rows.get(trial.trial_id)
        if row is None:
            row = self.rows[trial.trial_id] = {
                "id": trial.trial_id, "params": dict(trial.config), "status": "pending", "reason": "",
                "metrics": {}, "run_dir": f"{TRIALS}/{trial.trial_id}"}
        return row

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        for trial in trials:
            self._row(trial)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        row = self._row(trial)
        row["status"] = "running"
        self.changed("started", row)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        row = self._row(trial)
        last = trial.last_result or {}
        if last.get(STATUS_KEY) == "completed":
            row["status"] = "completed"
        elif self.flag.signum is not None:
            row["status"] = "running"  # stopped with the sweep: finish_rows() records it as interrupted
            return
        else:
            row["status"] = "failed"
        if row["status"] == "failed":
            row["reason"] = last.get(REASON_KEY) or "the trial ended without reporting its run's result"
        self.changed(row["status"], row)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        row = self._row(trial)
        if self.flag.signum is not None and REASON_KEY not in (trial.last_result or {}):
            return
        row["status"] = "failed"
        row["reason"] = (trial.last_result or {}).get(REASON_KEY) or _error_text(trial)
        self.changed("failed", row)


class StopOnSignal(tune.Stopper):
    """Stops every trial once ``flag.signum`` is set (Ctrl-C, SIGTERM or SIGHUP in the driver)."""

    def __init__(self, flag: Any):
        self.flag = flag

    def __call__(self, trial_id: str, result: dict) -> bool:
        return self.flag.signum is not None

    def stop_all(self) -> bool:
        return self.flag.signum is not None
