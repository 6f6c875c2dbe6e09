"""The TRLX backend class: capabilities, environment check, plan, train. trlx is imported only to train."""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from tunebridge.backend import Backend, BackendOutput, BackendStatus, Capabilities, Plan, TrainingJob
from tunebridge.versions import package_version

if TYPE_CHECKING:
    from tunebridge.examples import Examples
    from tunebridge.spec import Spec

REQUIRED = ("trlx", "torch", "transformers", "accelerate", "deepspeed")
ENV_HINT = ("set TUNEBRIDGE_TRLX_PYTHON (or backend_options.trlx.python) to an environment with trlx; "
            "see docs/environments.md")


class TRLXBackend(Backend):
    """CarperAI trlx 0.7 (archived, not on any package index) on transformers 4.57."""

    name = "trlx"
    description = "CarperAI trlx: SFT, PPO (online, reward function), ILQL (offline, samples + rewards)"
    install_hint = ENV_HINT
    packages: ClassVar[tuple[str, ...]] = ("trlx", "accelerate", "deepspeed")
    capabilities = Capabilities(
        tasks=frozenset({"sft", "rl"}),
        algorithms={"sft": ("sft",), "rl": ("ppo", "ilql")},
        completion_only_loss=True,
        plain_text=True,
    )

    def check(self) -> BackendStatus:
        """Ready when trlx imports here on transformers 4.x (metadata only; nothing imported)."""
        found = {name: package_version(name) for name in (*REQUIRED, "tokenizers")}
        missing = [name for name in REQUIRED if found[name] is None or find_spec(name) is None]
        if missing:
            return BackendStatus("missing", f"not installed here: {', '.join(missing)}", found)
        peft = package_version("peft")
        if peft is not None and tuple(int(x) for x in peft.split(".")[:2]) >= (0, 10):
            return BackendStatus("broken", f"peft {peft} is installed: trlx 0.7 imports "
                                           "prepare_model_for_int8_training, which peft removed; pip uninstall peft",
                                 found)
        if not found["transformers"].startswith("4."):
            return BackendStatus("broken", f"trlx's PPO/ILQL need transformers 4.x (4.57.6 works), found "
                                           f"{found['transformers']}", found)
        return BackendStatus("ready", "", found)

    def check_spec(self, spec: Spec) -> None:
        """trlx-specific limits that a spec can break, reported before training."""
        from tunebridge.errors import SpecError

        from .config import spec_problems

        problems = spec_problems(spec)
        if problems:
            raise SpecError(problems, spec.source)

    def plan(self, spec: Spec, examples: Examples | None = None) -> Plan:
        """The TRLConfig (as a dict) this backend would run."""
        from .config import algorithm_of, native_config, prompt_truncation, total_steps_of

        native, unhonoured, notes = native_config(spec, examples, Path("<output>") / "work")
        effective: dict = {"gradient_clipping": None}  # trlx 0.7 never clips
        truncation = prompt_truncation(spec, examples)
        if truncation:
            effective["truncation"] = truncation
        if algorithm_of(spec) != "sft":
            effective["data_order"] = "trlx's own shuffle of rollouts/samples (seeded with training.seed)"
        return Plan(self.name, native, unhonoured, notes, optimizer_steps=total_steps_of(spec, examples),
                    truncation=truncation, effective=effective)

    def train(self, job: TrainingJob) -> BackendOutput:
        """Train with trlx.train and save a model that reloads with from_pretrained."""
        from .runner import train

        return train(job)
