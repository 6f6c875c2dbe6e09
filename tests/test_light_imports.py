"""The package and the light CLI commands must not import the training frameworks.

Each check runs in a fresh interpreter (``sys.executable``) so that nothing imported by other tests,
or by pytest plugins, leaks into the module state being inspected.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FRAMEWORKS = ("torch", "transformers", "trl", "datasets", "peft", "accelerate", "ray")
HEAVY = (*FRAMEWORKS, "pyarrow")

PROBE = """
import json, sys
argv = json.loads(sys.argv[1])
import tunebridge
if argv is not None:
    from tunebridge.cli import main
    try:
        rc = main(argv)
    except SystemExit as exc:
        rc = exc.code
else:
    rc = 0
print("PROBE:" + json.dumps({"rc": rc, "modules": sorted(sys.modules)}))
"""


@pytest.fixture
def clean_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["TUNEBRIDGE_CACHE_DIR"] = str(tmp_path / "cache")
    env["HF_HOME"] = str(tmp_path / "hf")
    env["HF_HUB_OFFLINE"] = "1"
    env.pop("PYTHONSTARTUP", None)
    env.pop("TUNEBRIDGE_DISABLE_PLUGINS", None)
    return env


def _probe(argv: list[str] | None, env: dict[str, str]) -> tuple[int, set[str]]:
    proc = subprocess.run([sys.executable, "-c", PROBE, json.dumps(argv)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("PROBE:")]
    assert proc.returncode == 0 and lines, f"probe failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    result = json.loads(lines[-1][len("PROBE:"):])
    return result["rc"], set(result["modules"])


def _loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(name for name in names if name in modules)


def test_bare_import_is_light(clean_env: dict[str, str]) -> None:
    _, modules = _probe(None, clean_env)
    assert _loaded(modules, HEAVY) == []


def test_bare_import_does_not_load_pydantic(clean_env: dict[str, str]) -> None:
    _, modules = _probe(None, clean_env)
    assert _loaded(modules, ("pydantic",)) == [], "bare `import tunebridge` imported pydantic"


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["backends"], ["backends", "--json"], ["validate", "examples/sft-tiny.yaml"], ["schema"]],
    ids=["help", "backends", "backends-json", "validate", "schema"],
)
def test_light_commands_do_not_import_frameworks(argv: list[str], clean_env: dict[str, str]) -> None:
    rc, modules = _probe(argv, clean_env)
    assert rc == 0, f"tunebridge {' '.join(argv)} exited {rc}"
    assert _loaded(modules, FRAMEWORKS) == []


@pytest.mark.parametrize("argv", [["--help"], ["backends"]], ids=["help", "backends"])
def test_listing_backends_does_not_load_pydantic(argv: list[str], clean_env: dict[str, str]) -> None:
    """Backend modules import spec types for hints only: listing them needs no spec validation."""
    rc, modules = _probe(argv, clean_env)
    assert rc == 0 and _loaded(modules, ("pydantic",)) == []


def test_compare_evaluate_and_report_modules_import_light(clean_env: dict[str, str]) -> None:
    """The compare, sweep, evaluation, tokenisation and report modules load torch, transformers, Ray and matplotlib
    only when they run; so do the commands' --help."""
    probe = ("import json, sys, tunebridge.comparison, tunebridge.evaluation, tunebridge.tokenize, "
             "tunebridge.report, tunebridge.report.markdown, tunebridge.report.htmlpage, tunebridge.cli, "
             "tunebridge.sweeps, tunebridge.sweeps.record, tunebridge.cluster, tunebridge.comparison.on_ray, "
             "tunebridge.report.sweep\n"
             "import tunebridge as tb; assert callable(tb.compare) and callable(tb.evaluate) and callable(tb.sweep)\n"
             "for argv in (['compare', '--help'], ['evaluate', '--help'], ['report', '--help'], "
             "['sweep', '--help']):\n"
             "    try:\n        tunebridge.cli.main(argv)\n    except SystemExit:\n        pass\n"
             "print('PROBE:' + json.dumps(sorted(sys.modules)))\n")
    proc = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env=clean_env, capture_output=True, text=True,
                          timeout=120)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("PROBE:")]
    assert proc.returncode == 0 and lines, proc.stderr
    modules = set(json.loads(lines[-1][len("PROBE:"):]))
    assert _loaded(modules, (*HEAVY, "matplotlib", "ray")) == []
