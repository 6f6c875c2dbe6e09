"""The worker: runs one backend's training in *this* interpreter, for a parent tunebridge process.

    python -m tunebridge.worker RUN_FOLDER      # train the job in RUN_FOLDER/job.json
    python -m tunebridge.worker --check NAME    # print the backend's status here, as JSON

Progress goes to stdout as event lines (see jobs.EVENT_PREFIX); the outcome goes to RUN_FOLDER/result.json.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path
from typing import Any

from .jobs import event_line, job_from_dict, output_to_dict


class EventReporter:
    """The worker side of RunReporter: sends each logged step to the parent instead of writing files."""

    def __init__(self, stream: Any = None):
        self.stream = stream or sys.stdout
        self.records: list[dict[str, Any]] = []

    def _send(self, event: dict[str, Any]) -> None:
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


def run(folder: Path) -> int:
    """Train the job in ``folder``; write ``result.json``; exit 0 when the result says what happened."""
    from .plugins import get_registry

    result_path = folder / "result.json"
    try:
        data = json.loads((folder / "job.json").read_text())
        job = job_from_dict(data, EventReporter())
        backend = get_registry().get(data["backend"])
        output = backend.train(job)
        result = {"ok": True, "output": output_to_dict(output)}
    except BaseException as exc:  # KeyboardInterrupt too: the parent must learn what happened
        result = {"ok": False, "error": {"type": type(exc).__name__, "message": str(exc),
                                         "traceback": traceback.format_exc(limit=30)}}
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
