"""The TRL backend class: capabilities, environment check, plan, train. TRL is imported only to train."""

from __future__ import annotations

from importlib.util import find_spec
from typing import TYPE_CHECKING, ClassVar

from tunebridge.backend import Backend, BackendOutput, BackendStatus, Capabilities, Plan, TrainingJob
from tunebridge.versions import package_version

if TYPE_CHECKING:
    from tunebridge.examples import Examples
    from tunebridge.spec import Spec

REQUIRED = ("torch", "trl", "transformers", "peft", "accelerate", "datasets")


class TRLBackend(Backend):
    """Hugging Face TRL 1.16 on transformers 5.x."""

    name = "trl"
    description = "Hugging Face TRL: SFTTrainer, RewardTrainer, GRPOTrainer, RLOOTrainer on transformers 5.x"
    install_hint = "pip install torch==2.13.0 && pip install 'tunebridge[trl]'"
    packages: ClassVar[tuple[str, ...]] = ("trl", "peft", "accelerate", "datasets")
    capabilities = Capabilities(
        tasks=frozenset({"sft", "reward", "rl"}),
        algorithms={"sft": ("sft",), "reward": ("reward",), "rl": ("grpo", "rloo")},
        peft=True,
        packing=True,
        completion_only_loss=True,
        plain_text=True,
        precisions=frozenset({"fp32", "bf16"}),
        gradient_checkpointing=True,
        first_batch=True,
    )

    def check(self) -> BackendStatus:
        """Ready when TRL 1.x and transformers 5.x are installed (read from metadata, nothing imported)."""
        found = {name: package_version(name) for name in REQUIRED}
        missing = [name for name in REQUIRED if found[name] is None or find_spec(name) is None]
        if missing:
            return BackendStatus("missing", f"not installed: {', '.join(missing)}", found)
        if not found["transformers"].startswith("5."):
            return BackendStatus("broken", f"needs transformers 5.x, found {found['transformers']}", found)
        if not found["trl"].startswith("1."):
            return BackendStatus("broken", f"needs trl 1.x, found {found['trl']}", found)
        return BackendStatus("ready", "", found)

    def check_spec(self, spec: Spec) -> None:
        """No secret in backend_options.trl but hub_token; GRPO/RLOO batches must split into num_generations groups."""
        from tunebridge.errors import SpecError
        from tunebridge.isolation import native_options
        from tunebridge.redact import is_secret_key

        from .config import generation_batch_problem

        for key in native_options(spec, "trl"):
            if is_secret_key(key) and key != "hub_token":
                raise SpecError([(f"backend_options.trl.{key}", "looks like a secret: TRL would keep it in every "
                                  "checkpoint (training_args.bin); set it in the environment instead (hub_token is "
                                  "the one secret taken here, passed to TRL as HF_TOKEN)")], spec.source)
        if spec.task == "rl":
            problem = generation_batch_problem(spec)
            if problem:
                raise SpecError([("rl.generation.num_generations", problem)], spec.source)

    def plan(self, spec: Spec, examples: Examples | None = None) -> Plan:
        """The TRL config and trainer arguments this backend would use."""
        from pathlib import Path

        from .config import native_config
        from .rows import plan_counts

        native, unhonoured, notes = native_config(spec, examples, Path("<output>") / "work", _has_cuda())
        return Plan(self.name, native, unhonoured, notes, **plan_counts(spec, examples))

    def train(self, job: TrainingJob) -> BackendOutput:
        """Train with the TRL trainer for the task and save the model to ``job.model_dir``."""
        from .runner import train

        return train(job, cuda=_has_cuda())

    def first_batch(self, job: TrainingJob) -> dict[str, list[list[int]]]:
        """The first batch the SFT trainer would train on."""
        from .runner import first_batch

        return first_batch(job, cuda=_has_cuda())


def _has_cuda() -> bool:
    """True when torch is importable and sees a GPU (checked only when planning or training)."""
    if find_spec("torch") is None:
        return False
    import torch

    return torch.cuda.is_available()
