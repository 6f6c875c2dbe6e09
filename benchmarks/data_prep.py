"""Time turning 15,000 annotated Argilla records into training examples.

Run from anywhere::

    python benchmarks/data_prep.py [--records 15000] [--runs 3]

It generates (in a temporary folder) a curated-Dolly-style dataset and a ranked/rated pairwise dataset,
each in the Argilla 1.x Hugging Face layout (parquet, as ``push_to_huggingface`` stores it, and jsonl) and
as a 2.x ``to_datasets`` export (parquet). Then it times ``prepare_examples`` end to end (read, convert,
render, split and shuffle) for SFT examples and for preference pairs, and prints the median, min and max
wall time against the target. These are figures, not a test: the script always exits 0.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from tunebridge.examples import prepare_examples
from tunebridge.spec import parse_spec
from tunebridge.testing import write_jsonl
from tunebridge.testing.argilla import (
    DOLLY_QUESTIONS,
    PAIR_QUESTIONS,
    curated_dolly,
    pairwise,
    v1_rows,
    v2_rows,
    write_parquet,
)

TARGET_S = 0.3  # issue 13: 15,000 records into examples in under 0.3 s
DOLLY = {"instruction": ["new-instruction", "original-instruction"],
         "context": ["new-context", "original-context"],
         "response": ["new-response", "original-response"]}

JOBS: list[tuple[str, str, str, dict[str, Any]]] = [
    ("sft (Dolly recipe)", "dolly", "sft",
     {"template": "instruction", "argilla": {"recipe": "sft", "columns": DOLLY}}),
    ("pairs: edited vs original", "dolly", "reward",
     {"template": "instruction", "chosen": "{chosen}", "rejected": "{rejected}",
      "argilla": {"recipe": "edited-vs-original", "edited": "new-response", "original": "original-response",
                  "columns": {"instruction": DOLLY["instruction"], "context": DOLLY["context"]}}}),
    ("pairs: ranking, majority", "pairs", "reward",
     {"argilla": {"recipe": "ranking", "question": "ranking", "annotators": "majority",
                  "columns": {"prompt": "prompt"}}}),
    ("pairs: ratings, per annotator", "pairs", "reward",
     {"argilla": {"recipe": "rating", "ratings": {"response-1": "rating-1", "response-2": "rating-2"},
                  "annotators": "all", "columns": {"prompt": "prompt"}}}),
]


def _files(folder: Path, n: int) -> dict[str, dict[str, Path]]:
    dolly, pairs = curated_dolly(n, seed=0), pairwise(n, seed=0)
    out: dict[str, dict[str, Path]] = {}
    for name, records, questions in (("dolly", dolly, DOLLY_QUESTIONS), ("pairs", pairs, PAIR_QUESTIONS)):
        v1 = v1_rows(records, questions)
        out[name] = {"1.x parquet": write_parquet(v1, folder / f"{name}-v1.parquet"),
                     "1.x jsonl": write_jsonl(folder / f"{name}-v1.jsonl", v1),
                     "2.x parquet": write_parquet(v2_rows(records, questions), folder / f"{name}-v2.parquet")}
    return out


def _time(spec: Any, runs: int) -> tuple[list[float], Any]:
    times, ex = [], None
    for _ in range(runs):
        start = time.perf_counter()
        ex = prepare_examples(spec)
        times.append(time.perf_counter() - start)
    return times, ex


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=15000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tunebridge-bench-") as tmp:
        start = time.perf_counter()
        files = _files(Path(tmp), args.records)
        print(f"generated {args.records} records x 2 datasets x 3 layouts in {time.perf_counter() - start:.1f} s")
        print(f"{'conversion':32} {'layout':12} {'examples':>8} {'median s':>9} {'min':>6} {'max':>6}  target")
        for label, dataset, task, data in JOBS:
            for layout, path in files[dataset].items():
                spec = parse_spec({"task": task, "model": {"builtin": "tiny-llama"},
                                   "data": {"path": str(path), **data}})
                times, ex = _time(spec, args.runs)
                median = statistics.median(times)
                verdict = "ok" if median < TARGET_S else "SLOW"
                print(f"{label:32} {layout:12} {len(ex.train):8d} {median:9.2f} {min(times):6.2f} {max(times):6.2f}"
                      f"  {verdict} (< {TARGET_S:g} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
