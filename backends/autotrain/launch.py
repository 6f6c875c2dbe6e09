"""Finding the AutoTrain environment and running ``autotrain --config`` in it, with its log captured.

AutoTrain runs in its own interpreter (it pins transformers 4.48 / trl 0.13). It is named by
``backend_options.autotrain.python`` or ``$TUNEBRIDGE_AUTOTRAIN_PYTHON``; its bin folder goes first on
PATH because AutoTrain starts ``accelerate`` by name.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunebridge.backend import BackendStatus
from tunebridge.execution.options import interpreter_for

from .config import AUTOTRAIN_VERSION

if TYPE_CHECKING:
    from tunebridge.spec import Spec

PYTHON_ENV = "TUNEBRIDGE_AUTOTRAIN_PYTHON"
ENV_SCRIPT = "scripts/autotrain-env.sh"
INSTALL_HINT = (f"build an AutoTrain {AUTOTRAIN_VERSION} environment ({ENV_SCRIPT} in the tunebridge repository, "
                f"or `make autotrain-env`) and point {PYTHON_ENV} (or backend_options.autotrain.python) at its python")


def configured_python(spec: Spec | None = None) -> Path | None:
    """The AutoTrain interpreter: ``backend_options.autotrain.python`` (relative to the spec file), else
    ``$TUNEBRIDGE_AUTOTRAIN_PYTHON``: the same rule as every backend's interpreter (tunebridge.execution.options)."""
    value = interpreter_for(spec, "autotrain") if spec is not None else os.environ.get(PYTHON_ENV)
    return Path(value).expanduser() if value else None


ENV_PACKAGES = ("autotrain_advanced", "torch", "transformers", "tokenizers", "trl", "peft", "accelerate", "datasets")


def installed_version(python: Path, dist: str = "autotrain_advanced") -> str | None:
    """The version of distribution ``dist`` in the venv of ``python``, read from its dist-info (nothing imported)."""
    root = python.parent.parent
    for info in sorted(root.glob(f"lib*/python*/site-packages/{dist}-*.dist-info")):
        return info.name.removeprefix(f"{dist}-").removesuffix(".dist-info")
    return None


def environment_versions(python: Path) -> dict[str, str | None]:
    """Versions of the packages that did the training, in the AutoTrain environment (for run.json)."""
    return {"python": str(python), **{d.replace("_", "-"): installed_version(python, d) for d in ENV_PACKAGES}}


def status(python: Path | None) -> BackendStatus:
    """Whether ``python`` is a usable AutoTrain environment (files and metadata only)."""
    if python is None:
        return BackendStatus("missing", f"no AutoTrain environment configured (set {PYTHON_ENV})")
    bindir = python.parent
    versions: dict[str, str | None] = {}  # package versions only (the interpreter's path is in native_config)
    if not python.exists():
        return BackendStatus("missing", f"{PYTHON_ENV} / python points at {python}, which does not exist", versions)
    missing = [name for name in ("autotrain", "accelerate") if not (bindir / name).exists()]
    version = installed_version(python)
    versions["autotrain-advanced"] = version
    if missing or version is None:
        what = ", ".join(missing) or "autotrain-advanced"
        return BackendStatus("missing", f"{python} has no {what} installed", versions)
    if not version.startswith("0.8."):
        return BackendStatus("broken", f"needs autotrain-advanced 0.8.x, found {version}", versions)
    env = environment_versions(python)
    versions.update({k: v for k, v in env.items() if k != "python"})
    return BackendStatus("ready", "", versions)


# AutoTrain seeds nothing before it builds the model and the data: trl 0.13 packs SFT data with an
# unseeded `random.shuffle`, and llm-reward creates its scoring head with torch's unseeded generator.
# Python imports `sitecustomize` at start-up in every process AutoTrain starts (the CLI, accelerate, the
# trainer, which all import torch anyway): this one seeds random, numpy and torch from the run's seed.
SITECUSTOMIZE = '''"""Written by tunebridge: seed random, numpy and torch in every AutoTrain process."""
import os

if os.environ.get("TUNEBRIDGE_AUTOTRAIN_SEED"):
    import random

    _seed = int(os.environ["TUNEBRIDGE_AUTOTRAIN_SEED"])
    random.seed(_seed)
    try:
        import numpy
        import torch
    except ImportError:
        pass
    else:
        numpy.random.seed(_seed % 2**32)
        torch.manual_seed(_seed)
'''


def seeding_dir(folder: Path) -> Path:
    """Write the seeding ``sitecustomize.py`` into ``folder`` (put it on the child's PYTHONPATH)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
    return folder


def child_env(python: Path, seed: int | None = None, site_dir: Path | None = None) -> dict[str, str]:
    """The environment for the AutoTrain process: its bin folder first on PATH, unbuffered output.

    With ``seed`` and ``site_dir`` (see seeding_dir), every Python process it starts seeds ``random``.
    """
    env = dict(os.environ)
    env["PATH"] = str(python.parent) + os.pathsep + env.get("PATH", "")
    env["VIRTUAL_ENV"] = str(python.parent.parent)
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.pop("PYTHONPATH", None)  # tunebridge's own packages must not shadow AutoTrain's
    if seed is not None and site_dir is not None:
        env["PYTHONPATH"] = str(site_dir)
        env["TUNEBRIDGE_AUTOTRAIN_SEED"] = str(seed)
    return env


def autotrain_command(python: Path, project_dir: Path, config_file: str = "config.yml",
                      seed: int | None = None) -> tuple[list[str], dict[str, str]]:
    """``autotrain --config`` for the project in ``project_dir`` and its environment (run it in that folder).

    With ``seed``, Python's ``random`` is seeded in every process AutoTrain starts (deterministic packing).
    """
    site_dir = seeding_dir(project_dir / ".tunebridge-site") if seed is not None else None
    return [str(python.parent / "autotrain"), "--config", config_file], child_env(python, seed, site_dir)


def read_scalars(python: Path, runs_dir: Path) -> list[dict[str, Any]]:
    """The tensorboard scalars AutoTrain wrote under ``runs_dir``, read with the AutoTrain interpreter."""
    if not runs_dir.is_dir():
        return []
    script = Path(__file__).with_name("events_dump.py")
    proc = subprocess.run([str(python), str(script), str(runs_dir)], capture_output=True, text=True,
                          env=child_env(python), timeout=300)
    if proc.returncode != 0:
        return []
    return json.loads(proc.stdout or "[]")


def validate_config(python: Path, project_dir: Path, config_file: str = "config.yml") -> subprocess.CompletedProcess:
    """Run AutoTrain's own config parser and parameter validation on an exported project (no training)."""
    script = Path(__file__).with_name("validate_config.py")
    return subprocess.run([str(python), str(script), config_file], cwd=project_dir, capture_output=True,
                          text=True, env=child_env(python), timeout=300)
