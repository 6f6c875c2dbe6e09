"""Wall time of the light ``tunebridge`` commands, and whether they pull in the heavy frameworks.

Run from anywhere::

    python benchmarks/cli_startup.py [--runs 7]

Each command runs once to warm the file cache, then ``--runs`` more times; the table shows the
median, min and max wall time in seconds against the target. These are figures, not a test: the
script always exits 0.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SPEC = Path("examples") / "sft-tiny.yaml"  # relative to REPO, which is the working directory
TARGET_S = 0.5
HEAVY = ("torch", "transformers", "trl", "datasets", "peft", "accelerate", "pyarrow", "numpy", "pydantic")

COMMANDS: list[tuple[str, list[str]]] = [
    ("--help", ["--help"]),
    ("backends", ["backends"]),
    ("validate", ["validate", str(SPEC)]),
]

PROBE = """
import sys
from tunebridge.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print("HEAVY:" + ",".join(sorted(m for m in {heavy!r} if m in sys.modules)), file=sys.stderr)
"""


def _env(tmp: str) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("TUNEBRIDGE_CACHE_DIR", os.path.join(tmp, "cache"))
    env.setdefault("HF_HOME", os.path.join(tmp, "hf"))
    env["HF_HUB_OFFLINE"] = "1"
    return env


def _time_once(cmd: list[str], env: dict[str, str]) -> tuple[float, int]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start, proc.returncode


def _console_script() -> Path | None:
    bindir = Path(sys.executable).parent
    for name in ("tunebridge", "tunebridge.exe"):
        candidate = bindir / name
        if candidate.is_file():
            return candidate
    return None


def _heavy_imports(args: list[str], env: dict[str, str]) -> str:
    code = PROBE.format(heavy=HEAVY)
    proc = subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for line in proc.stderr.splitlines():
        if line.startswith("HEAVY:"):
            return line[len("HEAVY:"):] or "none"
    return f"probe failed (exit {proc.returncode})"


def _importtime_top(args: list[str], env: dict[str, str], top: int = 8) -> list[tuple[int, str]]:
    """The slowest top-level imports (cumulative microseconds) from ``python -X importtime``."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "tunebridge", *args], cwd=REPO, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    rows: list[tuple[int, str]] = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        parts = line[len("import time:"):].split("|")
        if len(parts) != 3:
            continue
        try:
            cumulative = int(parts[1].strip())
        except ValueError:
            continue
        name = parts[2].rstrip()
        if not name.startswith("  "):  # a top-level import (one leading space)
            rows.append((cumulative, name.strip()))
    rows.sort(reverse=True)
    return rows[:top]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="timed runs per command (default 7)")
    opts = parser.parse_args(argv)
    runs = max(1, opts.runs)

    launchers: list[tuple[str, list[str]]] = [("python -m tunebridge", [sys.executable, "-m", "tunebridge"])]
    script = _console_script()
    if script is not None:
        launchers.append(("tunebridge (script)", [str(script)]))

    with tempfile.TemporaryDirectory(prefix="tunebridge-bench-") as tmp:
        env = _env(tmp)
        print(f"python {sys.version.split()[0]} at {sys.executable}")
        print(f"repo {REPO}; {runs} timed runs after 1 warm-up; target < {TARGET_S:.1f} s")
        if script is None:
            print("console script not found next to sys.executable; timing `python -m tunebridge` only")
        print()
        header = f"{'launcher':<22} {'command':<10} {'median':>8} {'min':>8} {'max':>8}  {'target':<7} exit"
        print(header)
        print("-" * len(header))
        for launcher_name, prefix in launchers:
            for cmd_name, args in COMMANDS:
                cmd = [*prefix, *args]
                _time_once(cmd, env)  # warm-up
                times: list[float] = []
                codes: set[int] = set()
                for _ in range(runs):
                    elapsed, code = _time_once(cmd, env)
                    times.append(elapsed)
                    codes.add(code)
                med = statistics.median(times)
                verdict = "ok" if med < TARGET_S else "SLOW"
                print(f"{launcher_name:<22} {cmd_name:<10} {med:8.3f} {min(times):8.3f} {max(times):8.3f}  "
                      f"{verdict:<7} {','.join(str(c) for c in sorted(codes))}")

        print()
        print("modules imported by tunebridge.cli.main (of " + ", ".join(HEAVY) + "):")
        for cmd_name, args in COMMANDS:
            print(f"  {cmd_name:<10} {_heavy_imports(args, env)}")

        print()
        print("slowest top-level imports of "
              f"`python -X importtime -m tunebridge validate {SPEC}` (cumulative):")
        for cumulative, name in _importtime_top(["validate", str(SPEC)], env):
            print(f"  {cumulative / 1000:8.1f} ms  {name}")
    return 0


if __name__ == "__main__":
    try:
        main()
    except Exception as exc:  # figures, not a test: report and exit 0
        print(f"benchmark error: {exc!r}", file=sys.stderr)
    sys.exit(0)
