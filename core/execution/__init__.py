"""The execution layer: how a backend's training runs, picked by the core from what the backend declares.

- ``InProcess``: the backend's ``train`` in this interpreter.
- ``Worker``: in another interpreter (``backend_options.<name>.python`` / ``$TUNEBRIDGE_<NAME>_PYTHON``).
- ``Torchrun``: on ``launch.nproc_per_node`` x ``launch.nnodes`` processes (torchrun, the worker on every rank).
- ``FrameworkCLI``: the framework's own command line (backends with ``launcher = "command"``, e.g. AutoTrain).

Every child process goes through one streamer (``streamer.stream``: output, redaction, timeout, signals,
process-group stop); jobs, results and events cross processes in one wire format (``wire``).
"""

from __future__ import annotations

from typing import Any

from ..backend import Backend, BackendStatus
from .base import Executor, InProcess
from .framework_cli import FrameworkCLI
from .interpreter import Worker, WorkerFailed
from .options import interpreter_for, native_options, timeout_for
from .torchrun import Torchrun

__all__ = ["Executor", "FrameworkCLI", "InProcess", "Torchrun", "Worker", "WorkerFailed", "executor_for",
           "interpreter_for", "native_options", "status", "timeout_for"]


def executor_for(backend: Backend, spec: Any = None) -> Executor:
    """How ``backend`` runs ``spec`` (None: how it would run a spec that names no interpreter)."""
    python = interpreter_for(spec, backend.name)
    timeout = timeout_for(spec, backend.name) if spec is not None else None
    if backend.launcher == "command":
        return FrameworkCLI(backend, python, timeout)
    if spec is not None and spec.launch.distributed:
        return Torchrun(backend, python, spec.launch, timeout)
    if python:
        return Worker(backend, python, timeout)
    return InProcess(backend)


def status(backend: Backend, spec: Any = None) -> BackendStatus:
    """The one answer to "can ``backend`` run ``spec`` here?" (None: any spec, from the environment alone)."""
    return executor_for(backend, spec).status()
