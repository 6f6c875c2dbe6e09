"""The hooks a tunebridge plugin can implement (the plugin author's reference; docs/plugins.md quotes it).

A plugin is a module (or object) named by an entry point in the ``tunebridge`` group. Decorate each hook
implementation with ``tunebridge.hookimpl``; a decorated function whose name is not a hook below (a typo such as
``register_backend``) makes the plugin fail to load, so that a misspelt hook is never silently ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from pluggy import HookimplMarker, HookspecMarker

if TYPE_CHECKING:
    from .backend import Backend

hookspec = HookspecMarker("tunebridge")
hookimpl = HookimplMarker("tunebridge")


@hookspec
def register_backends(register: Callable[[type[Backend] | Backend], None]) -> None:
    """Register training backends: call ``register(BackendClass)`` once per backend the plugin provides.

    Called once per plugin, when the host first looks a backend up in a process (``tunebridge backends``,
    ``validate``, ``plan``, ``train``, ``compare``, the contract suite) and again in a worker interpreter.

    ``register`` takes a ``tunebridge.Backend`` subclass (instantiated with no arguments) or an instance. It
    refuses, and the plugin is reported as failed with the reason while every other plugin keeps working: a
    class missing a method it must implement (``plan``; ``train``, or ``command`` when ``launcher = "command"``),
    something that is not a ``Backend``, an empty ``name``, or a name another plugin registered. A plugin that
    registers no backend at all is reported too. Keep the plugin module light: import your framework inside
    ``plan``/``train``, never at module top level.
    """
