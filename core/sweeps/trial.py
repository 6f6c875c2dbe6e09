"""One sweep trial, inside a Ray Tune worker: an ordinary tunebridge run of the spec with the trial's values.

Ray imports this module by name in its workers (the function is pickled by reference), so the tunebridge
package and its backend plugins must import there: a local Ray uses this interpreter; a cluster at
``--address`` needs tunebridge installed on every node (docs/ray.md).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

TRIALS = "trials"  # DIR/trials/<trial-id>/ is each trial's run folder
STATUS_KEY = "tunebridge_status"
REASON_KEY = "tunebridge_reason"


class TrialFailed(Exception):
    """The trial's run failed; the message is the reason recorded in sweep.json."""


def numbers(record: dict[str, Any]) -> dict[str, float | int]:
    """The finite numbers of a metrics record (what Tune is told)."""
    return {k: v for k, v in record.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)}


def reason_of(exc: BaseException) -> str:
    """The one-paragraph reason of a failed run (the run folder's path left out)."""
    from ..comparison.runner import _reason

    return _reason(exc)


def run_trial(config: dict[str, Any], spec: Any = None, backend: str | None = None, out: str = "") -> None:
    """Tune's function trainable: train ``spec`` with ``config`` (dotted path -> value) into
    ``out/trials/<trial-id>/``, reporting each logged step, then the run's final metrics."""
    from ray import tune

    from ..lock import working_for
    from ..run import Run
    from .params import spec_with

    trial_id = tune.get_context().get_trial_id()
    run_dir = Path(out) / TRIALS / trial_id

    def report(step: int, total: int | None, record: dict[str, Any]) -> None:
        tune.report({**numbers(record), "step": step})

    try:
        with working_for(Path(out)):  # the sweep's driver holds out/'s lock; this run writes inside it
            result = Run(spec_with(spec, dict(config)), backend=backend).train(run_dir, progress=report)
    except Exception as exc:
        reason = reason_of(exc)
        tune.report({STATUS_KEY: "failed", REASON_KEY: reason})
        raise TrialFailed(reason) from None
    tune.report({**numbers(result.metrics), STATUS_KEY: "completed"})
