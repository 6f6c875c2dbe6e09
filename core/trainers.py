"""Typed façades over Run, one per task: ``tb.SFTTrainer(spec, backend="trl").train("runs/x")``."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from .backend import Plan
from .errors import SpecError
from .examples import Examples, Preparing
from .plugins import Registry
from .result import TrainResult
from .run import ProgressCallback, Run
from .spec import Spec, load_spec


class _TaskTrainer:
    task: ClassVar[str] = ""

    def __init__(self, spec: Spec | str | Path | dict, backend: str | None = None, registry: Registry | None = None,
                 preparing: Preparing | None = None):
        spec = load_spec(spec)
        if spec.task != self.task:
            raise SpecError([("task", f"{type(self).__name__} runs task {self.task!r}, the spec says {spec.task!r}")])
        self.run = Run(spec, backend=backend, registry=registry, preparing=preparing)

    @property
    def spec(self) -> Spec:
        """The validated spec (with the backend override applied)."""
        return self.run.spec

    def validate(self) -> Examples:
        """Check the spec, the backend's capabilities and the data; nothing heavy is imported."""
        return self.run.validate()

    def plan(self) -> Plan:
        """What the backend would run, natively; nothing is trained."""
        return self.run.plan()

    def train(self, output_dir: str | Path, overwrite: bool = False,
              progress: ProgressCallback | None = None, preparing: Preparing | None = None,
              resume: bool = False) -> TrainResult:
        """Train and write the run folder; see ``Run.train`` (``preparing`` hears the data preparation, ``resume``
        continues the run in ``output_dir`` from its newest complete checkpoint)."""
        return self.run.train(output_dir, overwrite=overwrite, progress=progress, preparing=preparing, resume=resume)


class SFTTrainer(_TaskTrainer):
    """Supervised fine-tuning on (prompt, completion) pairs or plain text."""

    task = "sft"


class RewardTrainer(_TaskTrainer):
    """Reward modelling on (prompt, chosen, rejected) triples."""

    task = "reward"


class RLTrainer(_TaskTrainer):
    """Reinforcement learning from a reward."""

    task = "rl"


class PreferenceTrainer(_TaskTrainer):
    """A policy straight from (prompt, chosen, rejected) pairs: DPO, KTO or ORPO (``preference.algorithm``)."""

    task = "preference"
