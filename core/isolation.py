"""Running a backend in another Python interpreter (the isolated runner).

The interpreter comes from ``backend_options.<name>.python`` or ``TUNEBRIDGE_<NAME>_PYTHON``; without one
the backend runs in-process. The core writes a private run folder (job.json: validated spec, rendered
examples, references, output folder), starts ``<python> -m tunebridge.worker <folder>``, streams its
progress into the same reporter, keeps its log in ``<output>/worker.log``, and reads back result.json.
The result, output layout and metrics are the same whichever way a backend runs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from .backend import Backend, BackendOutput, BackendStatus, Plan, TrainingJob
from .errors import TunebridgeError
from .files import write_atomic
from .redact import REDACTED, SECRET_VALUE
from .signals import interrupted_by

RUNNER_KEYS = ("python", "timeout")  # backend_options keys the core reads; backends never see them
DEFAULT_TIMEOUT_S = None  # no limit unless asked for
LOG_TAIL_LINES = 30


class WorkerFailed(TunebridgeError):
    """The worker process died, hung past its timeout, or reported an error."""


def native_options(spec: Any, name: str) -> dict[str, Any]:
    """``backend_options.<name>`` without the keys that belong to the runner (python, timeout)."""
    return {k: v for k, v in spec.backend_options.get(name, {}).items() if k not in RUNNER_KEYS}


def interpreter_for(spec: Any, name: str) -> str | None:
    """The Python interpreter a backend should run in, or None for in-process."""
    from_spec = spec.backend_options.get(name, {}).get("python")
    if from_spec:  # relative to the spec file, like every path in a spec
        return str(spec.resolve_path(from_spec)) if os.sep in from_spec or from_spec.startswith(".") else from_spec
    return os.environ.get(f"TUNEBRIDGE_{name.upper()}_PYTHON") or None


def isolate_if_configured(backend: Backend, spec: Any = None) -> Backend:
    """The backend itself, or a proxy running it in the interpreter the spec or environment names."""
    if backend.manages_environment:
        return backend
    if spec is not None:
        python = interpreter_for(spec, backend.name)
        timeout = timeout_for(spec, backend.name)
    else:
        python = os.environ.get(f"TUNEBRIDGE_{backend.name.upper()}_PYTHON")
        timeout = None
    return IsolatedBackend(backend, python, timeout) if python else backend


def timeout_for(spec: Any, name: str) -> float | None:
    """Seconds the worker may run: ``backend_options.<name>.timeout`` or TUNEBRIDGE_WORKER_TIMEOUT."""
    written = spec.backend_options.get(name, {}).get("timeout")
    value = written or os.environ.get("TUNEBRIDGE_WORKER_TIMEOUT")
    if not value:
        return DEFAULT_TIMEOUT_S
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = float("nan")
    if not seconds > 0:
        from .errors import SpecError

        field = f"backend_options.{name}.timeout" if written else "TUNEBRIDGE_WORKER_TIMEOUT"
        raise SpecError([(field, f"{value!r} is not a number of seconds above 0")], spec.source)
    return seconds


def parse_event_free(line: str) -> bool:
    """True for an ordinary output line (not a progress event)."""
    from .jobs import parse_event

    return parse_event(line.rstrip("\n")) is None


def _clean(line: str) -> str:
    return " ".join(REDACTED if SECRET_VALUE.match(word) else word for word in line.split(" "))


class IsolatedBackend(Backend):
    """A backend proxy: capabilities, plan and checks from the real backend; check() and train() run in
    ``python``."""

    def __init__(self, inner: Backend, python: str, timeout: float | None = None):
        self.inner = inner
        self.python = python
        self.timeout = timeout
        self.name = inner.name
        # first_batch() is an in-process inspection; it does not cross to the worker.
        self.capabilities = dataclasses.replace(inner.capabilities, first_batch=False)
        self.install_hint = (f"make {python} an environment with tunebridge and {inner.name}'s framework "
                             "(see docs/environments.md)")
        self.description = inner.description
        self.packages = getattr(inner, "packages", ())
        self._status: BackendStatus | None = None

    def check(self) -> BackendStatus:
        """The backend's status as the other interpreter sees it."""
        if self._status is None:
            self._status = self._check()
        return self._status

    def _check(self) -> BackendStatus:
        try:
            proc = subprocess.run([self.python, "-m", "tunebridge.worker", "--check", self.name],
                                  capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return BackendStatus("broken", f"cannot start {self.python}: {exc}")
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [""]
            hint = " (is tunebridge installed there? see docs/environments.md)" if "tunebridge" in tail[0] else ""
            return BackendStatus("broken", f"{self.python} -m tunebridge.worker failed: {tail[0]}{hint}")
        data = json.loads(proc.stdout.strip().splitlines()[-1])
        detail = f"{data['detail']} (in {self.python})" if data["detail"] else f"in {self.python}"
        return BackendStatus(data["kind"], detail, data.get("versions", {}))

    def check_spec(self, spec: Any) -> None:
        """The real backend's checks, plus: nothing that cannot cross to another interpreter."""
        from .jobs import check_portable

        check_portable(spec, self.name)
        self.inner.check_spec(spec)

    def plan(self, spec: Any, examples: Any = None) -> Plan:
        """Planned in-process (plans are pure); notes where the run will happen."""
        plan = self.inner.plan(spec, examples)
        plan.notes.append(f"runs in another interpreter: {self.python}")
        return plan

    def can_export(self) -> bool:
        """Whether the real backend exports (it does so in-process)."""
        return self.inner.can_export()

    def export(self, spec: Any, examples: Any, output_dir: Path, model_path: Path | None = None) -> Path:
        """Exports are written by the real backend's pure code, in-process."""
        return self.inner.export(spec, examples, output_dir, model_path=model_path)

    def train(self, job: TrainingJob) -> BackendOutput:
        """Train in the worker; stream its events into ``job.reporter``; return its result."""
        from .jobs import job_to_dict

        # The job holds backend options the user wants private (a hub token): 0600 files in a 0700 folder, removed
        # whatever happens (SIGTERM and SIGHUP arrive here as RunInterrupted, see tunebridge.signals).
        folder = Path(tempfile.mkdtemp(prefix="tunebridge-job-"))
        try:
            os.chmod(folder, 0o700)
            write_atomic(folder / "job.json", json.dumps(job_to_dict(job, self.name), default=str), mode=0o600)
            return self._run_worker(folder, job)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _run_worker(self, folder: Path, job: TrainingJob) -> BackendOutput:
        from .jobs import parse_event

        log_path = job.output_dir / "worker.log"
        tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen([self.python, "-m", "tunebridge.worker", str(folder)], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True)
        lines: queue.Queue[str | None] = queue.Queue()
        reader = threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout] + [lines.put(None)], daemon=True)
        reader.start()
        deadline = time.monotonic() + self.timeout if self.timeout else None
        try:
            with log_path.open("a", encoding="utf-8") as log:
                while True:
                    wait = None if deadline is None else max(deadline - time.monotonic(), 0)
                    try:
                        line = lines.get(timeout=wait)
                    except queue.Empty:
                        self._kill(proc)
                        message = self._message(f"timed out after {self.timeout:g} s", tail, log_path)
                        raise WorkerFailed(message) from None
                    if line is None:
                        break
                    event = parse_event(line.rstrip("\n"))
                    if event is None:
                        if line.strip():
                            log.write(_clean(line))
                            tail.append(_clean(line.rstrip("\n")))
                    elif event["event"] == "total":
                        job.reporter.set_total_steps(event["steps"])
                    elif event["event"] == "log":
                        job.reporter.log(event["step"], event["metrics"])
            proc.wait()
        except KeyboardInterrupt as exc:
            self._kill(proc)
            self._drain(lines, log_path, f"[tunebridge] stopped the worker (pid {proc.pid}) and its process group: "
                        f"interrupted by {interrupted_by(exc)}")
            raise
        return self._result(folder, proc.returncode, tail, log_path)

    def _result(self, folder: Path, returncode: int, tail: deque[str], log_path: Path) -> BackendOutput:
        from .jobs import output_from_dict

        result_path = folder / "result.json"
        if not result_path.is_file():
            raise WorkerFailed(self._message(f"died without a result (exit code {returncode})", tail, log_path))
        result = json.loads(result_path.read_text())
        if result["ok"]:
            return output_from_dict(result["output"])
        error = result["error"]
        if error["type"] == "KeyboardInterrupt":
            raise KeyboardInterrupt
        with log_path.open("a", encoding="utf-8") as log:
            log.write(error["traceback"])
        raise WorkerFailed(self._message(f"failed: {error['type']}: {error['message']}", tail, log_path))

    @staticmethod
    def _drain(lines: queue.Queue[str | None], log_path: Path, last: str) -> None:
        """Keep what a stopped worker printed last, then say why it stopped (at most a few seconds)."""
        deadline = time.monotonic() + 5
        try:
            with log_path.open("a", encoding="utf-8") as log:
                while time.monotonic() < deadline:
                    try:
                        line = lines.get(timeout=max(deadline - time.monotonic(), 0))
                    except queue.Empty:
                        break
                    if line is None:
                        break
                    if line.strip() and parse_event_free(line):
                        log.write(_clean(line))
                log.write(last + "\n")
        except OSError:
            pass

    def _message(self, what: str, tail: deque[str], log_path: Path) -> str:
        shown = "\n".join(f"  | {line}" for line in tail) or "  | (no output)"
        return (f"the {self.name} worker ({self.python}) {what}\nlast lines of its log ({log_path}):\n{shown}")

    @staticmethod
    def _kill(proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
