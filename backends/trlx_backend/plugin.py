"""Entry point of the built-in TRLX backend: registered exactly like a third-party plugin."""

from tunebridge.hookspecs import hookimpl

from .backend import TRLXBackend


@hookimpl
def register_backends(register):
    """Register the TRLX backend."""
    register(TRLXBackend)
