"""``compare --ray``: every backend's run as a Ray task, concurrently when the cluster has room.

Each task runs the same ``Run(spec, backend=NAME).train(DIR/NAME)`` as a sequential compare; the driver then
evaluates the models and writes comparison.json exactly as a sequential compare does.

Where a backend runs in another interpreter (``backend_options.<name>.python`` / ``$TUNEBRIDGE_<NAME>_PYTHON``,
the ``Worker`` executor), the task itself is started in that interpreter (Ray's runtime environment
``py_executable``) and the backend trains in the task's own process: one process per backend, the one Ray
schedules and accounts for. That needs the same Ray (and tunebridge) in that environment; when it has none, the
task runs in this interpreter and its run starts the worker in the other one, as a sequential compare does (said
on stderr and in comparison.json ``scheduler.tasks``). Backends that start their own processes (torchrun,
AutoTrain's CLI) always run from a task in this interpreter.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path
from typing import Any, TextIO

from ..errors import BackendNotFound, BackendUnavailable
from ..signals import interrupted_by


def _say(stream: TextIO | None, text: str) -> None:
    if stream is not None:
        stream.write(text + "\n")
        stream.flush()


def _reason(exc: BaseException) -> str:
    from .runner import _reason as reason

    return reason(exc)


def ray_in(python: str) -> str | None:
    """The Ray version ``python`` imports alongside tunebridge, or None."""
    try:
        proc = subprocess.run([python, "-c", "import ray, tunebridge; print(ray.__version__)"], capture_output=True,
                              text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = proc.stdout.strip().splitlines()
    return lines[-1].strip() if proc.returncode == 0 and lines else None


def task_interpreter(run: Any, ray_version: str) -> tuple[str | None, str]:
    """The interpreter the backend's task starts in (None: this one) and, when it cannot be the backend's own,
    why."""
    if run.executor.kind != "worker":
        return None, ""
    python = run.executor.python
    found = ray_in(python)
    if found == ray_version:
        return python, ""
    what = f"Ray {found}" if found else f"no Ray {ray_version} (with tunebridge)"
    return None, (f"{python} has {what}: the task runs in this interpreter and the run starts its worker in "
                  f"{python}")


def without_interpreter(spec: Any, name: str) -> Any:
    """``spec`` without ``backend_options.<name>.python``: inside the backend's own interpreter, train here."""
    options = {k: dict(v) for k, v in spec.backend_options.items()}
    if "python" not in options.get(name, {}):
        return spec
    options[name].pop("python")
    new = spec.model_copy(update={"backend_options": options})
    new._base_dir, new._source = spec.base_dir, spec.source
    return new


def train_backend(spec: Any, name: str, run_dir: str, out: str, in_own_interpreter: bool) -> tuple[str, str]:
    """The Ray task: train ``spec`` on backend ``name`` into ``run_dir``; returns (status, reason)."""
    from ..lock import working_for
    from ..run import Run

    if in_own_interpreter:  # this process is the backend's interpreter: no worker on top of it
        spec = without_interpreter(spec, name)
        os.environ.pop(f"TUNEBRIDGE_{name.upper()}_PYTHON", None)
    try:
        with working_for(Path(out)):  # the compare's driver holds out/'s lock; this run writes inside it
            Run(spec, backend=name).train(run_dir)
    except (BackendNotFound, BackendUnavailable) as exc:
        return "skipped", _reason(exc)
    except Exception as exc:
        return "failed", _reason(exc)
    return "completed", ""


def train_on_ray(names: list[str], spec: Any, out: Path, registry: Any, address: str | None, num_cpus: int | None,
                 stream: TextIO | None) -> tuple[dict[str, tuple[str, str]], dict[str, Any], KeyboardInterrupt | None]:
    """Train every backend as a Ray task. Returns each backend's (status, reason), the scheduler record, and the
    interrupt that stopped them (the tasks are cancelled first), if one did."""
    from ..cluster import connect
    from ..run import Run

    outcomes: dict[str, tuple[str, str]] = {}
    runs: dict[str, Any] = {}
    for name in names:
        try:
            runs[name] = Run(spec, backend=name, registry=registry)
        except (BackendNotFound, BackendUnavailable) as exc:
            outcomes[name] = ("skipped", _reason(exc))
    interrupted: KeyboardInterrupt | None = None
    tasks: dict[str, dict[str, Any]] = {}
    with connect(address, num_cpus) as cluster:
        import ray

        remote = ray.remote(train_backend)
        refs: dict[Any, str] = {}
        where = f"Ray {cluster.ray_version} at {cluster.address}, {cluster.resources.get('CPU', '?')} CPUs"
        _say(stream, f"compare on {where}: {len(runs)} task(s)")
        for i, name in enumerate(names, 1):
            if name not in runs:
                continue
            python, why = task_interpreter(runs[name], cluster.ray_version)
            options: dict[str, Any] = {"num_cpus": 1}
            if python:
                options["runtime_env"] = {"py_executable": python,
                                          "env_vars": {f"TUNEBRIDGE_{name.upper()}_PYTHON": ""}}
            tasks[name] = {"interpreter": python or "driver's", **({"note": why} if why else {})}
            ref = remote.options(**options).remote(spec, name, str(out.resolve() / name), str(out.resolve()),
                                                   bool(python))
            refs[ref] = name
            _say(stream, f"[{i}/{len(names)}] {name}: training as a Ray task" + (f" in {python}" if python else "")
                 + (f" (note: {why})" if why else ""))
        pending = list(refs)
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                for ref in done:
                    name = refs[ref]
                    try:
                        outcomes[name] = tuple(ray.get(ref))
                    except Exception as exc:  # the task itself died (its interpreter, the node)
                        outcomes[name] = ("failed", f"the Ray task failed: {type(exc).__name__}: "
                                                    f"{str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}")
                    _say(stream, f"{name}: trained ({outcomes[name][0]})")
        except KeyboardInterrupt as exc:
            interrupted = exc
            for ref in pending:
                ray.cancel(ref)  # KeyboardInterrupt inside the task: its run.json says interrupted
            with contextlib.suppress(Exception):
                ray.wait(pending, num_returns=len(pending), timeout=30)
            for ref in pending:
                outcomes[refs[ref]] = ("failed", f"interrupted by {interrupted_by(exc)}")
    return outcomes, {**cluster.describe(), "tasks": tasks}, interrupted
