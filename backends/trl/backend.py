"""The TRL backend class: capabilities, environment check, plan, train. TRL is imported only to train."""

from __future__ import annotations

import os
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
    description = ("Hugging Face TRL: SFTTrainer, RewardTrainer, GRPOTrainer, RLOOTrainer, DPOTrainer, KTOTrainer, "
                   "ORPOTrainer on transformers 5.x")
    install_hint = "pip install torch==2.13.0 && pip install 'tunebridge[trl]'"
    packages: ClassVar[tuple[str, ...]] = ("trl", "peft", "accelerate", "datasets")
    capabilities = Capabilities(
        tasks=frozenset({"sft", "reward", "rl", "preference"}),
        algorithms={"sft": ("sft",), "reward": ("reward",), "rl": ("grpo", "rloo"),
                    "preference": ("dpo", "kto", "orpo")},
        peft=True,
        packing=True,
        completion_only_loss=True,
        plain_text=True,
        precisions=frozenset({"fp32", "bf16"}),
        gradient_checkpointing=True,
        first_batch=True,
        # torchrun: DDP (gloo on CPU, NCCL on GPUs); FSDP2 and ZeRO through the accelerate config (GPUs only)
        distributed=frozenset({"ddp", "fsdp", "deepspeed-zero2", "deepspeed-zero3"}),
        resume=True,
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
        """No secret in backend_options.trl but hub_token, no key the core owns or TRL ignores (REFUSED_OPTIONS);
        GRPO/RLOO batches must split into num_generations groups."""
        from tunebridge.errors import SpecError
        from tunebridge.execution.options import native_options
        from tunebridge.redact import is_secret_key

        from .config import generation_batch_problem, refused_options

        refused = refused_options(spec)
        if refused:
            raise SpecError(refused, spec.source)
        for key in native_options(spec, "trl"):
            if is_secret_key(key) and key != "hub_token":
                raise SpecError([(f"backend_options.trl.{key}", "looks like a secret: TRL would keep it in every "
                                  "checkpoint (training_args.bin); set it in the environment instead (hub_token is "
                                  "the one secret taken here, passed to TRL as HF_TOKEN)")], spec.source)
        if spec.task == "preference" and spec.preference.resolved_algorithm == "kto" and spec.training.batch_size < 2:
            raise SpecError([("training.batch_size", "KTO estimates its KL term from the other examples of a batch: "
                              "it needs a batch_size of 2 or more")], spec.source)
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
        check_overrides(spec, native)
        return Plan(self.name, native, unhonoured, notes, **plan_counts(spec, examples))

    def train(self, job: TrainingJob) -> BackendOutput:
        """Train with the TRL trainer for the task and save the model to ``job.model_dir``."""
        from .runner import train

        return train(job, cuda=_has_cuda())

    def first_batch(self, job: TrainingJob) -> dict[str, list[list[int]]]:
        """The first batch the SFT trainer would train on."""
        from .runner import first_batch

        return first_batch(job, cuda=_has_cuda())


def check_overrides(spec: Spec, native: dict) -> None:
    """``backend_options.trl`` settings TRL's config class does not take, or whose values it refuses, are a SpecError
    at plan time (before any run folder exists), not a TypeError in the middle of a run. Checked only when TRL runs
    in this interpreter (another one may hold another TRL) and the spec sets any option."""
    import dataclasses
    import difflib

    from tunebridge.errors import SpecError
    from tunebridge.execution.options import interpreter_for, native_options
    from tunebridge.redact import is_secret_key

    options = [k for k in native_options(spec, "trl") if not is_secret_key(k)]
    if not options or interpreter_for(spec, "trl") or find_spec("trl") is None:
        return
    import importlib

    from .config import CONFIG_MODULES

    config_key = next(k for k in native if k.endswith("Config") and k != "peft.LoraConfig")
    if config_key in CONFIG_MODULES:
        os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    config_class = getattr(importlib.import_module(CONFIG_MODULES.get(config_key, "trl")), config_key)
    fields = [f.name for f in dataclasses.fields(config_class)]
    unknown = [k for k in options if k not in fields]
    if unknown:
        problems = []
        for key in unknown:
            close = difflib.get_close_matches(key, fields, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append((f"backend_options.trl.{key}", f"trl.{config_key} has no setting {key!r}{hint}"))
        raise SpecError(problems, spec.source)
    defaults = {f.name: f.default for f in dataclasses.fields(config_class)}
    wrong = []
    for key in options:  # a number where TRL's default is a number, a flag where it is a flag
        default, value = defaults.get(key), native_options(spec, "trl")[key]
        if isinstance(default, bool):
            fits = isinstance(value, bool)
        elif isinstance(default, int | float):
            fits = isinstance(value, int | float) and not isinstance(value, bool)
        else:
            continue
        if not fits:
            wrong.append((f"backend_options.trl.{key}", f"expected {type(default).__name__} (TRL's default is "
                          f"{default!r}), got {type(value).__name__} {value!r}"))
    if wrong:
        raise SpecError(wrong, spec.source)
    args = {k: v for k, v in native[config_key].items() if not is_secret_key(k)}
    try:
        config_class(**args)
    except Exception as exc:  # TrainingArguments checks values in __post_init__ (ValueError, TypeError, ...)
        first = (str(exc).strip().splitlines() or [""])[0]
        raise SpecError([("backend_options.trl", f"trl.{config_key} refuses these settings "
                          f"({', '.join(options)}): {type(exc).__name__}: {first}")], spec.source) from None


def _has_cuda() -> bool:
    """True when torch is importable and sees a GPU (checked only when planning or training)."""
    if find_spec("torch") is None:
        return False
    import torch

    return torch.cuda.is_available()
