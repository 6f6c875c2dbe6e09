"""The worker: a backend's ``train`` in another Python interpreter (``python -m tunebridge.worker``).

The interpreter comes from ``backend_options.<name>.python`` or ``$TUNEBRIDGE_<NAME>_PYTHON``. The core writes
a private job folder (job.json: spec, final examples, the plan, references; 0600 files in a 0700 folder,
removed whatever happens), starts the worker through the process streamer, turns its event lines into the
run's progress, keeps its output in ``<output>/worker.log``, and reads back result.json.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from ..backend import BackendOutput, BackendStatus, TrainingJob
from ..errors import TunebridgeError
from ..files import write_atomic
from .base import Executor
from .streamer import ProcessFailed, Streamed, stream, tail_text
from .wire import check_portable, job_to_dict, output_from_dict, parse_event

WORKER_LOG = "worker.log"


class WorkerFailed(TunebridgeError):
    """The worker process died, hung past its timeout, or reported an error."""


class Worker(Executor):
    """The backend in the interpreter ``python``, one process."""

    kind = "worker"

    def __init__(self, backend: Any, python: str, timeout: float | None = None):
        super().__init__(backend)
        self.python = python
        self.timeout = timeout

    @property
    def install_hint(self) -> str:
        """Where the other environment comes from."""
        return (f"make {self.python} an environment with tunebridge and {self.name}'s framework "
                "(see docs/environments.md)")

    def _check(self) -> BackendStatus:
        return interpreter_status(self.python, self.name)

    def check_spec(self, spec: Any) -> None:
        """Nothing that cannot cross to another interpreter, then the backend's own checks."""
        check_portable(spec, self.name)
        super().check_spec(spec)

    def notes(self) -> list[str]:
        """Where the run happens."""
        return [f"runs in another interpreter: {self.python}"]

    def describe(self) -> dict[str, Any]:
        """run.json ``execution``."""
        return {**super().describe(), "python": self.python}

    def log_path(self, job: TrainingJob) -> Path:
        """Where the worker's output is kept."""
        return job.output_dir / WORKER_LOG

    def command(self, folder: Path, job: TrainingJob) -> tuple[list[str], dict[str, str]]:
        """The command line and environment that run the job in ``folder``."""
        return [self.python, "-m", "tunebridge.worker", str(folder)], dict(os.environ)

    def run(self, job: TrainingJob) -> BackendOutput:
        """Train in the worker; stream its events into ``job.reporter``; return its result."""
        # The job holds backend options the user wants private (a hub token): 0600 files in a 0700 folder, removed
        # whatever happens (SIGTERM and SIGHUP arrive here as RunInterrupted, see tunebridge.signals).
        folder = Path(tempfile.mkdtemp(prefix="tunebridge-job-"))
        try:
            os.chmod(folder, 0o700)
            write_atomic(folder / "job.json", json.dumps(job_to_dict(job, self.name), default=str), mode=0o600)
            argv, env = self.command(folder, job)
            log_path = self.log_path(job)
            try:
                streamed = stream(argv, log_path=log_path, on_line=lambda line: _event(line, job), env=env,
                                  timeout=self.timeout, name=f"{self.name} worker")
            except ProcessFailed as exc:
                raise WorkerFailed(f"{exc} ({self.python})\n{tail_text([], log_path)}") from None
            return self.result(folder, streamed, log_path, job)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def result(self, folder: Path, streamed: Streamed, log_path: Path, job: TrainingJob) -> BackendOutput:
        """The worker's result.json as a BackendOutput, or WorkerFailed naming what went wrong."""
        result_path = folder / "result.json"
        if not result_path.is_file():
            raise WorkerFailed(self.message(f"died without a result (exit code {streamed.returncode})",
                                            streamed, log_path))
        return read_result(result_path, log_path, lambda what: self.message(what, streamed, log_path))

    def message(self, what: str, streamed: Streamed, log_path: Path) -> str:
        """An error naming the worker, what happened and its log's tail."""
        return f"the {self.name} worker ({self.python}) {what}\n{tail_text(streamed.tail, log_path)}"


def read_result(result_path: Path, log_path: Path, message: Any) -> BackendOutput:
    """Read one worker's result.json; re-raise its interrupt, or raise WorkerFailed with its error."""
    result = json.loads(result_path.read_text())
    if result["ok"]:
        return output_from_dict(result["output"])
    error = result["error"]
    if error["type"] in ("KeyboardInterrupt", "RunInterrupted"):
        raise KeyboardInterrupt
    with log_path.open("a", encoding="utf-8") as log:
        log.write(error["traceback"])
    raise WorkerFailed(message(f"failed: {error['type']}: {error['message']}"))


def _event(line: str, job: TrainingJob) -> bool:
    """Turn a worker event line into progress; True when the line was an event (kept out of the log)."""
    event = parse_event(line.rstrip("\n"))
    if event is None:
        return False
    if event["event"] == "total":
        job.reporter.set_total_steps(event["steps"])
    elif event["event"] == "log":
        job.reporter.log(event["step"], event["metrics"])
    return True


def interpreter_status(python: str, name: str) -> BackendStatus:
    """The backend's status as ``python`` sees it (``python -m tunebridge.worker --check NAME``)."""
    try:
        proc = subprocess.run([python, "-m", "tunebridge.worker", "--check", name],
                              capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return BackendStatus("broken", f"cannot start {python}: {exc}")
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [""]
        hint = " (is tunebridge installed there? see docs/environments.md)" if "tunebridge" in tail[0] else ""
        return BackendStatus("broken", f"{python} -m tunebridge.worker failed: {tail[0]}{hint}")
    try:
        data = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return BackendStatus("broken", f"{python} -m tunebridge.worker --check printed no status")
    detail = f"{data['detail']} (in {python})" if data["detail"] else f"in {python}"
    return BackendStatus(data["kind"], detail, data.get("versions", {}))
