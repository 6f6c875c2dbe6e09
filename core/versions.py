"""Installed package versions, read from metadata without importing the packages."""

from __future__ import annotations

import platform
from importlib import metadata


def package_version(name: str) -> str | None:
    """The installed version of a distribution, or None when it is not installed."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def versions(*names: str) -> dict[str, str | None]:
    """tunebridge's, Python's and the named packages' versions."""
    found: dict[str, str | None] = {"tunebridge": package_version("tunebridge"), "python": platform.python_version()}
    found.update({n: package_version(n) for n in names})
    return found
