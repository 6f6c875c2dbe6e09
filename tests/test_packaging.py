"""Packaging: the editable install's entry points and layout, and what a built wheel contains and runs.

The wheel is built from a copy of the source tree in a temporary folder, so that the build (setuptools
writes ``build/`` and ``*.egg-info`` in the source folder) never touches the working tree and a stale
``build/lib`` can never mask a file that is missing from the sources.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import tunebridge
import tunebridge.backends

REPO = Path(__file__).resolve().parent.parent
BUILTIN_PLUGINS = {
    "trl": "tunebridge.backends.trl.plugin",
    "trlx": "tunebridge.backends.trlx_backend.plugin",
    "autotrain": "tunebridge.backends.autotrain",
}
# Not part of the distribution: virtual environment, VCS, caches, build outputs, run folders.
COPY_IGNORE = shutil.ignore_patterns(
    ".git", ".venv", ".cache", ".build", ".pytest_cache", ".ruff_cache", "__pycache__", "build", "dist",
    "runs", "*.egg-info",
)
WHEEL_MUST_HAVE = [
    "tunebridge/__init__.py",
    "tunebridge/cli.py",
    "tunebridge/py.typed",
    "tunebridge/testing/__init__.py",
    "tunebridge/backends/__init__.py",
    "tunebridge/backends/trl/backend.py",
    "tunebridge/backends/trl/plugin.py",
    "tunebridge/backends/trlx_backend/backend.py",
    "tunebridge/worker.py",
    "tunebridge/backends/autotrain/__init__.py",
    "tunebridge/backends/autotrain/backend.py",
    "tunebridge/backends/autotrain/validate_config.py",
    "tunebridge/backends/autotrain/events_dump.py",
    "tunebridge/cluster.py",
    "tunebridge/sweeps/runner.py",
    "tunebridge/sweeps/trial.py",
    "tunebridge/comparison/on_ray.py",
    "tunebridge/report/sweep.py",
]


@pytest.fixture
def offline_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["TUNEBRIDGE_CACHE_DIR"] = str(tmp_path / "cache")
    env["HF_HOME"] = str(tmp_path / "hf")
    env["HF_HUB_OFFLINE"] = "1"
    env["PIP_NO_INDEX"] = "1"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PIP_NO_INPUT"] = "1"
    env.pop("PYTHONPATH", None)
    env.pop("TUNEBRIDGE_DISABLE_PLUGINS", None)
    return env


# -- editable install -------------------------------------------------------------------------------


def test_entry_points_list_and_load_builtin_backends() -> None:
    eps = {ep.name: ep for ep in importlib.metadata.entry_points(group="tunebridge")}
    assert set(BUILTIN_PLUGINS) <= set(eps), f"entry points in group 'tunebridge': {sorted(eps)}"
    for name, target in BUILTIN_PLUGINS.items():
        assert eps[name].value == target
        module = eps[name].load()
        assert module.__name__ == target
        assert callable(getattr(module, "register_backends", None)), f"{target} has no register_backends hook"


def test_console_script_entry_point() -> None:
    scripts = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="console_scripts")}
    assert scripts.get("tunebridge") == "tunebridge.cli:main"


def test_editable_layout_maps_core_and_backends() -> None:
    assert Path(tunebridge.__file__).resolve().parent.name == "core"
    assert Path(tunebridge.backends.__file__).resolve().parent.name == "backends"
    assert Path(tunebridge.__file__).resolve().parent.parent == REPO


# -- built wheel ------------------------------------------------------------------------------------


def _build_wheel(tmp_path: Path, env: dict[str, str]) -> Path:
    # Only pip and setuptools are probed up front: setuptools >= 70.1 builds wheels without the `wheel`
    # distribution (it vendors it), so a missing `wheel` is reported only if the build itself needs it.
    missing = [m for m in ("pip", "setuptools") if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"cannot build the wheel: build dependency missing: {', '.join(missing)}")
    src = tmp_path / "src"
    shutil.copytree(REPO, src, ignore=COPY_IGNORE)
    out = tmp_path / "wheels"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "-w", str(out)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )
    if proc.returncode != 0:
        log = proc.stdout + proc.stderr
        found = re.search(r"No module named '([^']+)'|Cannot import '([^']+)'", log)
        if found:
            what = found.group(1) or found.group(2)
            pytest.skip(f"cannot build the wheel: build dependency missing: {what}")
        pytest.fail(f"pip wheel failed ({proc.returncode}):\n{log}")
    wheels = sorted(out.glob("tunebridge-*.whl"))
    assert len(wheels) == 1, f"expected one tunebridge wheel, got {[w.name for w in out.iterdir()]}"
    return wheels[0]


def _entry_point_sections(text: str) -> dict[str, dict[str, str]]:
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1].strip(), {})
        elif current is not None and "=" in line:
            key, value = line.split("=", 1)
            current[key.strip()] = value.strip()
    return sections


WHEEL_PROBE = """
import sys
site = sys.argv[1]
sys.path.insert(0, site)
sys.meta_path[:] = [f for f in sys.meta_path
                    if not getattr(f, "__module__", "").startswith("__editable__")
                    and not type(f).__module__.startswith("__editable__")]
sys.path_hooks[:] = [h for h in sys.path_hooks if not getattr(h, "__module__", "").startswith("__editable__")]
sys.path_importer_cache.clear()
assert "tunebridge" not in sys.modules, "tunebridge imported before the probe"

import os
import tunebridge
import tunebridge.backends.trl.plugin
import tunebridge.cli

def under_site(path):
    return os.path.commonpath([os.path.realpath(path), os.path.realpath(site)]) == os.path.realpath(site)

for mod in (tunebridge, tunebridge.backends.trl.plugin, tunebridge.cli):
    assert under_site(mod.__file__), f"{mod.__name__} imported from {mod.__file__}, not from {site}"

from tunebridge.plugins import get_registry
registry = get_registry()
assert not registry.failures, registry.failures
assert {"trl", "trlx", "autotrain"} <= set(registry.names()), registry.names()
plugins = ("tunebridge.backends.trl.plugin", "tunebridge.backends.trlx_backend.plugin",
           "tunebridge.backends.autotrain")
for name in plugins:
    assert under_site(sys.modules[name].__file__), f"{name} imported from {sys.modules[name].__file__}"

rc = tunebridge.cli.main(["schema"])
assert rc == 0, f"tunebridge schema exited {rc}"
print("WHEEL-OK", file=sys.stderr)
"""


def test_wheel_contents_and_install(tmp_path: Path, offline_env: dict[str, str]) -> None:
    wheel = _build_wheel(tmp_path, offline_env)

    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        entry_points_files = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        assert len(entry_points_files) == 1, f"entry_points.txt in wheel: {entry_points_files}"
        entry_points_text = zf.read(entry_points_files[0]).decode()

    missing = [n for n in WHEEL_MUST_HAVE if n not in names]
    assert not missing, f"missing from {wheel.name}: {missing}\ncontents: {sorted(names)}"
    tops = {n.split("/", 1)[0] for n in names}
    unexpected = sorted(t for t in tops if t != "tunebridge" and not t.endswith(".dist-info"))
    assert not unexpected, f"unexpected top-level names in {wheel.name}: {unexpected}"
    for forbidden in ("core/", "backends/", "tests/"):
        assert not [n for n in names if n.startswith(forbidden)], f"{wheel.name} ships {forbidden}"
    assert not [n for n in names if "/tests/" in n or "__pycache__" in n], "wheel ships tests or bytecode"

    sections = _entry_point_sections(entry_points_text)
    assert sections.get("tunebridge") == BUILTIN_PLUGINS, entry_points_text
    assert sections.get("console_scripts", {}).get("tunebridge") == "tunebridge.cli:main", entry_points_text

    site = tmp_path / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--target", str(site),
         str(wheel)],
        capture_output=True, text=True, env=offline_env, cwd=tmp_path, timeout=300,
    )
    assert proc.returncode == 0, f"pip install --target failed:\n{proc.stdout}\n{proc.stderr}"
    assert (site / "tunebridge" / "__init__.py").is_file()

    proc = subprocess.run([sys.executable, "-c", WHEEL_PROBE, str(site)], capture_output=True, text=True,
                          env=offline_env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0 and "WHEEL-OK" in proc.stderr, (
        f"the installed wheel does not work ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr}")
    assert '"properties"' in proc.stdout, "tunebridge schema printed no JSON Schema"
