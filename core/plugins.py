"""The plugin host: loads the ``tunebridge`` entry-point group and collects the backends plugins register.

Built-in backends come through the same entry-point group as third-party ones. A plugin that fails to
import or to register is recorded (name, error) and the others keep working; so is a plugin whose hook
names are not tunebridge hooks (a misspelt ``register_backend``: pluggy's ``check_pending``), one that
registers no backend, and a backend class missing a method it must implement (``Backend`` is an ABC).
``TUNEBRIDGE_DISABLE_PLUGINS=name,...`` blocks plugins by entry-point name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from . import hookspecs
from .backend import Backend
from .errors import BackendNotFound

ENTRY_POINT_GROUP = "tunebridge"
DISABLE_ENV = "TUNEBRIDGE_DISABLE_PLUGINS"


@dataclass
class PluginFailure:
    """A plugin that could not be loaded or could not register."""

    plugin: str
    error: str


@dataclass
class RegisteredBackend:
    """A backend and where it came from."""

    backend: Backend
    plugin: str
    package: str | None = None
    version: str | None = None

    @property
    def name(self) -> str:
        """The backend's name."""
        return self.backend.name


@dataclass
class Registry:
    """The backends available in this process, plus the plugins that failed or were disabled."""

    backends: dict[str, RegisteredBackend] = field(default_factory=dict)
    failures: list[PluginFailure] = field(default_factory=list)
    disabled: list[str] = field(default_factory=list)

    def get(self, name: str) -> Backend:
        """The backend called ``name``, or BackendNotFound listing those that exist."""
        if name not in self.backends:
            failed = [f for f in self.failures if f.plugin == name]
            if failed:
                raise BackendNotFound(f"backend {name!r} failed to load: {failed[0].error}")
            if name in self.disabled:
                raise BackendNotFound(f"backend {name!r} is disabled by {DISABLE_ENV}")
            known = ", ".join(sorted(self.backends)) or "none"
            raise BackendNotFound(f"no backend named {name!r}; registered backends: {known}")
        return self.backends[name].backend

    def names(self) -> list[str]:
        """Registered backend names, sorted."""
        return sorted(self.backends)


def _disabled_names() -> set[str]:
    return {n.strip() for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()}


def _register_from(plugin: Any, plugin_name: str, registry: Registry, package: str | None,
                   version: str | None) -> None:
    """Call one plugin's ``register_backends`` hook, recording failures instead of raising."""
    pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
    pm.add_hookspecs(hookspecs)
    added: list[RegisteredBackend] = []

    def register(backend: type[Backend] | Backend) -> None:
        if isinstance(backend, type) and issubclass(backend, Backend) and backend.__abstractmethods__:
            missing = ", ".join(sorted(backend.__abstractmethods__))
            raise TypeError(f"backend class {backend.__name__} ({backend.name or 'no name'}) does not implement "
                            f"{missing}: a launcher={backend.launcher!r} backend must")
        instance = backend() if isinstance(backend, type) else backend
        if not isinstance(instance, Backend) or not instance.name:
            raise TypeError(f"{backend!r} is not a tunebridge Backend with a name")
        if instance.name in registry.backends or any(a.name == instance.name for a in added):
            owner = registry.backends.get(instance.name)
            raise ValueError(f"backend {instance.name!r} is already registered"
                             + (f" by plugin {owner.plugin!r}" if owner else ""))
        added.append(RegisteredBackend(instance, plugin_name, package, version))

    try:
        pm.register(plugin, name=plugin_name)
        pm.check_pending()  # a hook implementation with no such hookspec (a misspelt name) is an error
        pm.hook.register_backends(register=register)
    except Exception as exc:  # a broken plugin must not take the others down
        registry.failures.append(PluginFailure(plugin_name, f"{type(exc).__name__}: {exc}"))
        return
    if not added:
        registry.failures.append(PluginFailure(plugin_name, "the plugin registered no backend (does it implement "
                                                            "register_backends and call register(...)?)"))
        return
    for item in added:
        registry.backends[item.name] = item


def load_registry(extra_plugins: list[Any] | None = None, entry_points: bool = True) -> Registry:
    """Build a registry from the entry-point group (and ``extra_plugins``, e.g. in tests)."""
    registry = Registry()
    blocked = _disabled_names()
    if entry_points:
        for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            if ep.name in blocked:
                registry.disabled.append(ep.name)
                continue
            if ep.name in registry.backends or any(f.plugin == ep.name for f in registry.failures):
                continue  # the same distribution seen twice on sys.path
            dist = getattr(ep, "dist", None)
            package = dist.metadata["Name"] if dist else None
            version = dist.version if dist else None
            try:
                plugin = ep.load()
            except Exception as exc:
                registry.failures.append(PluginFailure(ep.name, f"{type(exc).__name__}: {exc}"))
                continue
            _register_from(plugin, ep.name, registry, package, version)
    for plugin in extra_plugins or []:
        name = getattr(plugin, "__name__", type(plugin).__name__)
        if name in blocked:
            registry.disabled.append(name)
            continue
        _register_from(plugin, name, registry, None, None)
    return registry


_cached: Registry | None = None


def get_registry(refresh: bool = False) -> Registry:
    """The process-wide registry, loaded once."""
    global _cached
    if _cached is None or refresh:
        _cached = load_registry()
    return _cached
