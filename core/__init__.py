"""tunebridge: fine-tune language models from human-feedback data on any of several frameworks, one spec.

Importing this package is cheap: trainers and runs are loaded on first use, frameworks only when training.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import (
    BackendNotFound,
    BackendUnavailable,
    DataError,
    OutputExistsError,
    RunFailed,
    SpecError,
    TunebridgeError,
    UnsupportedFeature,
)

__version__ = "0.1.0"

_LAZY = {
    "Spec": "spec", "load_spec": "spec", "parse_spec": "spec",
    "SFTTrainer": "trainers", "RewardTrainer": "trainers", "RLTrainer": "trainers",
    "PreferenceTrainer": "trainers",
    "Run": "run", "TrainResult": "result", "hookimpl": "hookspecs", "get_registry": "plugins",
    "Backend": "backend", "Capabilities": "backend", "BackendStatus": "backend", "Plan": "backend",
    "BackendOutput": "backend", "TrainingJob": "backend",
    "compare": "comparison", "evaluate": "evaluation", "sweep": "sweeps",
    "OutputInUse": "lock", "WriteError": "files", "RunInterrupted": "signals",
}

__all__ = [
    "BackendNotFound", "BackendUnavailable", "DataError", "OutputExistsError", "RunFailed", "SpecError",
    "TunebridgeError", "UnsupportedFeature", "__version__",
    "Spec", "load_spec", "parse_spec", "SFTTrainer", "RewardTrainer", "RLTrainer", "PreferenceTrainer", "Run",
    "TrainResult",
    "hookimpl", "get_registry", "Backend", "Capabilities", "BackendStatus", "Plan", "BackendOutput", "TrainingJob",
    "compare", "evaluate", "sweep", "OutputInUse", "WriteError", "RunInterrupted",
]

if TYPE_CHECKING:
    from .backend import Backend, BackendOutput, BackendStatus, Capabilities, Plan, TrainingJob
    from .comparison import compare
    from .evaluation import evaluate
    from .files import WriteError
    from .hookspecs import hookimpl
    from .lock import OutputInUse
    from .plugins import get_registry
    from .result import TrainResult
    from .run import Run
    from .signals import RunInterrupted
    from .spec import Spec, load_spec, parse_spec
    from .sweeps import sweep
    from .trainers import PreferenceTrainer, RewardTrainer, RLTrainer, SFTTrainer


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module = importlib.import_module(f".{_LAZY[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module 'tunebridge' has no attribute {name!r}")
