"""The TRLX backend (CarperAI trlx: SFT, PPO, ILQL). Listed now; training lands with its own issue."""

from __future__ import annotations

from tunebridge.backend import Backend, BackendStatus, Capabilities
from tunebridge.hookspecs import hookimpl


class TRLXBackend(Backend):
    """CarperAI trlx 0.7 on transformers 4.57 (runs in its own interpreter)."""

    name = "trlx"
    description = "CarperAI trlx: SFT, PPO (online, reward function), ILQL (offline)"
    install_hint = "not implemented yet (trlx is not on any package index; it will run in its own environment)"
    capabilities = Capabilities(
        tasks=frozenset({"sft", "rl"}),
        algorithms={"sft": ("sft",), "rl": ("ppo", "ilql")},
        completion_only_loss=True,
        plain_text=True,
    )

    def check(self) -> BackendStatus:
        """Not implemented yet."""
        return BackendStatus("not-implemented", "the TRLX backend is not implemented yet")


@hookimpl
def register_backends(register):
    """Register the TRLX backend."""
    register(TRLXBackend)
