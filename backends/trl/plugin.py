"""Entry point of the built-in TRL backend: registered exactly like a third-party plugin."""

from tunebridge.hookspecs import hookimpl

from .backend import TRLBackend


@hookimpl
def register_backends(register):
    """Register the TRL backend."""
    register(TRLBackend)
