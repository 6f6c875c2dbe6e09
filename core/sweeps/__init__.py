"""``tunebridge sweep``: one spec, several values per setting, each trial an ordinary run, scheduled by Ray Tune.

The package is ``tunebridge.sweeps`` so that ``tunebridge.sweep`` stays the function.

    import tunebridge as tb
    record = tb.sweep("examples/sweep-tiny.yaml", ["training.learning_rate=1e-3,3e-3"], "runs/sweep")
    record["best"]["params"], record["best"]["metrics"]["final_loss"]

See docs/ray.md. Ray is imported only when a sweep runs.
"""

from __future__ import annotations

from .params import Param, ParamError, parse_param, parse_params, spec_with, validate
from .runner import SWEEP_JSON, SweepError, best_trial, default_metric, sweep

__all__ = ["SWEEP_JSON", "Param", "ParamError", "SweepError", "best_trial", "default_metric", "parse_param",
           "parse_params", "spec_with", "sweep", "validate"]
