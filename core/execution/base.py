"""What every executor offers the run: a status, spec checks, plan notes, versions, and ``run(job)``."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from ..backend import Backend, BackendOutput, BackendStatus, Capabilities, TrainingJob, checked_status


class Executor:
    """Runs one backend's training for a job. The core picks one per run (tunebridge.execution.executor_for)."""

    kind: ClassVar[str] = ""
    in_process: ClassVar[bool] = False

    def __init__(self, backend: Backend):
        self.backend = backend
        self.name = backend.name
        self._status: BackendStatus | None = None

    @property
    def capabilities(self) -> Capabilities:
        """The backend's capabilities as this executor runs it (first_batch is an in-process inspection)."""
        caps = self.backend.capabilities
        return caps if self.in_process else dataclasses.replace(caps, first_batch=False)

    @property
    def install_hint(self) -> str:
        """What to do when ``status()`` is missing or broken."""
        return self.backend.install_hint

    def status(self) -> BackendStatus:
        """Whether the backend can run this way here (computed once)."""
        if self._status is None:
            try:
                self._status = self._check()
            except Exception as exc:  # a raising check is this backend's problem only: "broken", with the text
                self._status = BackendStatus("broken", f"check() raised {type(exc).__name__}: {exc}")
        return self._status

    def _check(self) -> BackendStatus:
        return checked_status(self.backend)

    def check_spec(self, spec: Any) -> None:
        """Refuse what this way of running cannot carry (UnsupportedFeature, SpecError); the backend's own checks."""
        check_launch(self.backend, spec)
        self.backend.check_spec(spec)

    def notes(self) -> list[str]:
        """Plan notes: where and how the run will happen."""
        return []

    def describe(self) -> dict[str, Any]:
        """run.json ``execution``: the executor and what it started."""
        return {"executor": self.kind, "world_size": 1, "distributed_type": "none"}

    def versions(self) -> dict[str, str | None]:
        """Versions of what trains: this interpreter's packages, or the other environment's (never a mix)."""
        from ..versions import versions

        theirs = {k: v for k, v in self.status().versions.items() if v}
        if self.in_process:
            names = ("torch", "transformers", "tokenizers", *getattr(self.backend, "packages", ()))
            return {**versions(*dict.fromkeys(names)), **theirs}
        return {"tunebridge": versions()["tunebridge"], **theirs}

    def run(self, job: TrainingJob) -> BackendOutput:
        """Train the job; the backend saves the model into ``job.model_dir`` and reports to ``job.reporter``."""
        raise NotImplementedError


def check_launch(backend: Backend, spec: Any) -> None:
    """A run on several processes needs a backend that declares the strategy (``capabilities.distributed``)."""
    strategy = spec.launch.strategy
    if spec.launch.distributed and strategy not in backend.capabilities.distributed:
        from ..errors import UnsupportedFeature
        from ..plugins import get_registry

        others = [n for n, item in get_registry().backends.items() if strategy in item.backend.capabilities.distributed]
        raise UnsupportedFeature(backend.name, f"training on {spec.world_size} processes (launch, strategy "
                                 f"{strategy})", others,
                                 hint="Run it on one process (launch.nproc_per_node 1, launch.nnodes 1)")


class InProcess(Executor):
    """The backend's ``train`` in this interpreter."""

    kind = "in-process"
    in_process = True

    def run(self, job: TrainingJob) -> BackendOutput:
        """Call the backend directly."""
        return self.backend.train(job)
