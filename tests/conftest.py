"""Test-wide settings: caches in a temporary folder, no hub access."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

_CACHE = Path(tempfile.mkdtemp(prefix="tunebridge-test-cache-"))
os.environ.setdefault("TUNEBRIDGE_CACHE_DIR", str(_CACHE / "tunebridge"))
os.environ.setdefault("HF_HOME", str(_CACHE / "hf"))
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.pop("TUNEBRIDGE_DISABLE_PLUGINS", None)

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def repo() -> Path:
    """The repository root."""
    return REPO


@pytest.fixture
def shared_data() -> Path:
    """The shared real-data folder beside the checkout; skips when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("needs ../shared/data beside the checkout (real dolly / hh-rlhf samples)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def trl_available() -> None:
    """Skips unless the TRL backend can train here."""
    from tunebridge.plugins import get_registry

    status = get_registry().get("trl").check()
    if not status.ready:
        pytest.skip(f"needs the TRL backend ({status.describe()}): "
                    "pip install torch==2.13.0 && pip install 'tunebridge[trl]'")


@pytest.fixture(scope="session")
def autotrain_python() -> Path:
    """The AutoTrain environment's python; skips, saying what to set, when none is configured."""
    from tunebridge.backends.autotrain import launch

    python = launch.configured_python()
    status = launch.status(python)
    if not status.ready:
        pytest.skip(f"needs an AutoTrain environment ({status.describe()}): run scripts/autotrain-env.sh and set "
                    f"{launch.PYTHON_ENV}=.build/autotrain-venv/bin/python")
    return python


@pytest.fixture
def registry():
    """A registry with only the test backends of fake_backend.py."""
    from tunebridge.plugins import load_registry

    import fake_backend

    return load_registry([fake_backend], entry_points=False)


@pytest.fixture
def spec(tmp_path):
    """A 4-step SFT spec for the fake backend, on 12 rows of tunebridge.testing.contract_rows."""
    from tunebridge.spec import parse_spec
    from tunebridge.testing import contract_rows, sft_spec_dict, write_jsonl

    data = write_jsonl(tmp_path / "data" / "rows.jsonl", contract_rows(12))
    return parse_spec(sft_spec_dict(data, "fake", max_steps=4))
