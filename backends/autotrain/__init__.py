"""The AutoTrain backend (autotrain-advanced 0.8: llm-sft, llm-reward, llm-dpo, llm-orpo), registered like a plugin.

Pure modules: ``config`` (spec -> config.yml), ``export`` (project folder), ``results`` (log and output
judging), ``launch`` (the AutoTrain interpreter). ``runner`` ties them together for a training run.
"""

from tunebridge.hookspecs import hookimpl

from .backend import AutoTrainBackend

__all__ = ["AutoTrainBackend", "register_backends"]


@hookimpl
def register_backends(register):
    """Register the AutoTrain backend."""
    register(AutoTrainBackend)
