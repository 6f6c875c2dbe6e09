"""Entry point: registers the backend. Keep this module light (no torch or transformers import here)."""

from tunebridge import hookimpl

from .backend import PlainHFBackend


@hookimpl
def register_backends(register):
    """Register the plainhf backend."""
    register(PlainHFBackend)
