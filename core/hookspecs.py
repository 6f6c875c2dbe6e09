"""The hooks a tunebridge plugin can implement. Each receives a callback instead of returning values."""

from __future__ import annotations

from pluggy import HookimplMarker, HookspecMarker

hookspec = HookspecMarker("tunebridge")
hookimpl = HookimplMarker("tunebridge")


@hookspec
def register_backends(register):
    """Register training backends: call ``register(BackendClass)`` once per backend the plugin provides."""
