"""Print the tensorboard scalars under a folder as JSON: ``python events_dump.py RUNS_DIR``.

Runs inside the AutoTrain environment (which has tensorboard); it imports nothing from tunebridge.
"""

import json
import sys
from pathlib import Path


def main(folder: str) -> None:
    """Every scalar of every event file under ``folder``: a JSON list of {tag, step, value}."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    scalars = []
    for path in sorted(Path(folder).rglob("events.out.tfevents.*")):
        acc = EventAccumulator(str(path), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags().get("scalars", []):
            scalars += [{"tag": tag, "step": e.step, "value": e.value} for e in acc.Scalars(tag)]
    json.dump(scalars, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
