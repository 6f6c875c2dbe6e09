"""The worker: runs one backend's training in *this* interpreter, for a parent tunebridge process.

    python -m tunebridge.worker JOB_FOLDER      # train the job in JOB_FOLDER/job.json
    python -m tunebridge.worker --check NAME    # print the backend's status here, as JSON

Progress goes to stdout as event lines (see execution.wire.EVENT_PREFIX); the outcome goes to
JOB_FOLDER/result.json. Under torchrun every rank runs this: global rank 0 reports and writes result.json; the
other ranks send their output to ``<output>/logs/rank-R.log`` and write ``result-rank-R.json`` (read when the
run fails, to name the rank that did).
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

from .execution.wire import event_line, job_from_dict, output_to_dict


class EventReporter:
    """The worker side of RunReporter: sends each logged step to the parent instead of writing files.

    On ranks other than 0 ``stream`` is None: the steps are kept (every rank takes the same decisions) and
    nothing is sent."""

    def __init__(self, stream: Any = sys.stdout):
        self.stream = stream
        self.records: list[dict[str, Any]] = []

    def _send(self, event: dict[str, Any]) -> None:
        if self.stream is None:
            return
        self.stream.write("\n" + event_line(event) + "\n")
        self.stream.flush()

    def set_total_steps(self, total: int) -> None:
        """Tell the parent how many optimizer steps the run will make."""
        self._send({"event": "total", "steps": int(total)})

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        """Send one logging event (neutral metric names)."""
        record = {"step": int(step), **{k: v for k, v in metrics.items() if k != "step"}}
        self.records.append(record)
        self._send({"event": "log", "step": int(step), "metrics": metrics})


def check(name: str) -> int:
    """Print the named backend's status in this interpreter as JSON."""
    from .plugins import get_registry

    try:
        status = get_registry().get(name).check()
        print(json.dumps({"kind": status.kind, "detail": status.detail, "versions": status.versions}))
    except Exception as exc:  # report, don't crash: the parent shows it as "broken"
        print(json.dumps({"kind": "broken", "detail": f"{type(exc).__name__}: {exc}", "versions": {}}))
    return 0


def global_rank() -> int:
    """This process's rank in a torchrun world (0 when not under torchrun)."""
    return int(os.environ.get("RANK", "0"))


def _send_output_to(path: Path) -> None:
    """Point this process's stdout and stderr (file descriptors too, for native libraries) at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def run(folder: Path) -> int:
    """Train the job in ``folder``; write this rank's result; exit 0 when the result says what happened."""
    from .plugins import get_registry

    rank = global_rank()
    result_path = folder / ("result.json" if rank == 0 else f"result-rank-{rank}.json")
    try:
        data = json.loads((folder / "job.json").read_text())
        stream = sys.stdout
        if rank != 0:
            from .execution.torchrun import rank_log

            _send_output_to(rank_log(Path(data["output_dir"]), rank))
            stream = None
        job = job_from_dict(data, EventReporter(stream))
        backend = get_registry().get(data["backend"])
        output = backend.train(job)
        result = {"ok": True, "output": output_to_dict(output)}
    except BaseException as exc:  # KeyboardInterrupt too: the parent must learn what happened
        result = {"ok": False, "error": {"type": type(exc).__name__, "message": str(exc),
                                         "traceback": traceback.format_exc(limit=30)}}
        if rank != 0:
            traceback.print_exc()  # into this rank's log
    from .files import write_atomic

    write_atomic(result_path, json.dumps(result, default=str), mode=0o600)
    return 0 if result["ok"] else 1


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m tunebridge.worker``."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) == 2 and args[0] == "--check":
        return check(args[1])
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    return run(Path(args[0]))


if __name__ == "__main__":
    raise SystemExit(main())
