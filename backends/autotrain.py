"""The AutoTrain backend (autotrain-advanced: llm-sft, llm-reward). Listed now; lands with its own issue."""

from __future__ import annotations

from tunebridge.backend import Backend, BackendStatus, Capabilities
from tunebridge.hookspecs import hookimpl


class AutoTrainBackend(Backend):
    """Hugging Face AutoTrain Advanced 0.8 (transformers 4.48, trl 0.13; its own environment)."""

    name = "autotrain"
    description = "Hugging Face AutoTrain Advanced: exports config.yml + data and runs `autotrain --config`"
    install_hint = "not implemented yet (it will run in its own environment: transformers 4.48, trl 0.13)"
    capabilities = Capabilities(
        tasks=frozenset({"sft", "reward"}),
        algorithms={"sft": ("sft",), "reward": ("reward",)},
        peft=True,
        packing=True,
    )

    def check(self) -> BackendStatus:
        """Not implemented yet."""
        return BackendStatus("not-implemented", "the AutoTrain backend is not implemented yet")


@hookimpl
def register_backends(register):
    """Register the AutoTrain backend."""
    register(AutoTrainBackend)
