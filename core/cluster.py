"""The Ray connection of ``sweep`` and ``compare --ray``: an existing cluster (``address``), or a local Ray.

Ray is imported here, and only when a sweep or a compare on Ray runs. A local Ray gets the CPUs this machine
has (or ``num_cpus``), no dashboard, no usage statistics, and a temporary folder of its own that is removed when
the run ends. The tunebridge and Hugging Face settings of this process (``TUNEBRIDGE_*``, ``HF_*``) travel to
the Ray workers in the job's runtime environment, so that caches and interpreters are the same there.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .errors import TunebridgeError

RAY_PIN = "2.60.0"  # pyproject's [ray] extra
FORWARDED_PREFIXES = ("TUNEBRIDGE_", "HF_")
FORWARDED = ("TOKENIZERS_PARALLELISM", "PYTHONPATH")


class RayMissing(TunebridgeError):
    """Ray is not installed in this environment."""


def import_ray() -> Any:
    """``ray`` (with Tune), or RayMissing saying how to install it."""
    try:
        import ray
        import ray.tune  # noqa: F401
    except ImportError as exc:
        raise RayMissing(f"this needs Ray (Ray Tune): pip install 'tunebridge[ray]' (ray[tune]=={RAY_PIN}); "
                         f"importing it failed: {exc}") from None
    return ray


def forwarded_env() -> dict[str, str]:
    """The settings of this process that the Ray workers get too."""
    env = {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_PREFIXES) or k in FORWARDED}
    env["RAY_CHDIR_TO_TRIAL_DIR"] = "0"  # trials keep this process's working folder: relative paths mean the same
    return env


@dataclass
class Cluster:
    """Where the runs go: ``address`` ("local" for a Ray started here), its CPUs, Ray's version."""

    address: str
    ray_version: str
    resources: dict[str, float] = field(default_factory=dict)
    started_here: bool = False
    temp_dir: str | None = None

    def describe(self) -> dict[str, Any]:
        """sweep.json / comparison.json ``scheduler``."""
        return {"kind": "ray", "address": self.address, "ray_version": self.ray_version,
                "cpus": self.resources.get("CPU"), "gpus": self.resources.get("GPU", 0)}


def _handlers() -> dict[int, Any]:
    if threading.current_thread() is not threading.main_thread():
        return {}
    names = ("SIGINT", "SIGTERM", "SIGHUP")
    return {s: signal.getsignal(s) for n in names if (s := getattr(signal, n, None)) is not None}


def _restore(handlers: dict[int, Any]) -> None:
    for signum, handler in handlers.items():
        if handler is not None:
            signal.signal(signum, handler)


def quiet() -> None:
    """Ray Tune's own tables and tracebacks off: tunebridge says what each trial did (and why one failed)."""
    for name in ("ray.tune", "ray.train", "ray.air"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


@contextlib.contextmanager
def connect(address: str | None = None, num_cpus: int | None = None) -> Iterator[Cluster]:
    """Ray for the length of the block: the cluster at ``address``, the Ray this process already joined, or a
    local one (``num_cpus``, default: this machine's CPUs) shut down and removed at the end."""
    ray = import_ray()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")  # Ctrl-C reaches tunebridge (see tunebridge.sweeps)
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    if ray.is_initialized():
        quiet()
        yield Cluster(address or "already connected", ray.__version__, dict(ray.cluster_resources()))
        return
    temp_dir = None
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR,
                              "runtime_env": {"env_vars": forwarded_env()}}
    if address:
        if num_cpus is not None:
            raise TunebridgeError("--num-cpus is for a local Ray; a cluster at --address has its own CPUs")
        kwargs.pop("include_dashboard")
    else:
        temp_dir = os.environ.get("RAY_TMPDIR") or tempfile.mkdtemp(prefix="tb-ray-")
        kwargs.update(_temp_dir=temp_dir, **({"num_cpus": num_cpus} if num_cpus else {}))  # else Ray counts them
    handlers = _handlers()
    try:
        ray.init(address=address, **kwargs)
    except Exception as exc:
        if temp_dir and not os.environ.get("RAY_TMPDIR"):
            shutil.rmtree(temp_dir, ignore_errors=True)
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        raise TunebridgeError(f"cannot start {where}: {type(exc).__name__}: {exc}") from None
    finally:
        _restore(handlers)  # ray.init installs its own SIGTERM handler: tunebridge's (tunebridge.signals) stay
    quiet()
    try:
        yield Cluster(address or "local", ray.__version__, dict(ray.cluster_resources()), started_here=True,
                      temp_dir=temp_dir)
    finally:
        ray.shutdown()
        _restore(handlers)
        if temp_dir and not os.environ.get("RAY_TMPDIR"):
            shutil.rmtree(temp_dir, ignore_errors=True)
