"""The example plugin's tests: caches in a temporary folder, no hub access, skip unless the plugin is installed."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

_CACHE = Path(tempfile.mkdtemp(prefix="tunebridge-plainhf-test-cache-"))
os.environ.setdefault("TUNEBRIDGE_CACHE_DIR", str(_CACHE / "tunebridge"))
os.environ.setdefault("HF_HOME", str(_CACHE / "hf"))
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

INSTALL = "pip install --no-deps -e examples/plugin (torch==2.13.0 and tunebridge[trl] installed first)"


def plugin_installed() -> bool:
    """True when the ``plainhf`` backend comes through tunebridge's entry-point group here."""
    from tunebridge.plugins import get_registry

    return "plainhf" in get_registry().names()


@pytest.fixture(scope="session")
def plainhf() -> None:
    """Skips, saying how to install it, unless the plugin is installed."""
    if not plugin_installed():
        pytest.skip(f"the example plugin tunebridge-plainhf is not installed: {INSTALL}")
