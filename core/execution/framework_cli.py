"""A framework's own command line (``launcher = "command"`` backends, e.g. ``autotrain --config``).

The backend writes what its CLI reads and returns the command (Backend.command); this executor runs it through
the one process streamer and lets the backend read the result back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..backend import BackendOutput, BackendStatus, TrainingJob
from .base import Executor
from .streamer import stream


class FrameworkCLI(Executor):
    """Runs the backend's command in the environment of ``python`` (None: none configured)."""

    kind = "framework-cli"

    def __init__(self, backend: Any, python: str | None, timeout: float | None = None):
        super().__init__(backend)
        self.python = Path(python).expanduser() if python else None
        self.timeout = timeout

    def _check(self) -> BackendStatus:
        return self.backend.environment_status(self.python)

    def run(self, job: TrainingJob) -> BackendOutput:
        """Write the framework's project, run its CLI, collect the result."""
        if self.python is None:
            raise RuntimeError(self.backend.install_hint)
        command = self.backend.command(job, self.python)
        log_path = job.output_dir / command.log_name

        def on_line(line: str) -> bool:
            command.on_line(line)
            return False  # every line of the framework's output is kept in its log

        streamed = stream(command.argv, log_path=log_path, on_line=on_line, env=command.env, cwd=command.cwd,
                          timeout=self.timeout, name=f"{self.name} command", log_mode="w")
        return command.finish(streamed.returncode, log_path)
