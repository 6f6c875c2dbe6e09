"""The AutoTrain backend class: capabilities, environment check, plan, export, train.

AutoTrain Advanced 0.8 (transformers 4.48, trl 0.13) runs in its own environment; this module never
imports it. ``export`` writes the project ``autotrain --config`` reads; ``train`` writes that project into
the run's work folder, runs it, and collects the model and metrics into tunebridge's run layout.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from tunebridge.backend import Backend, BackendStatus, Capabilities, FrameworkCommand, Plan, TrainingJob

from . import launch
from .config import AUTOTRAIN_SEED, AUTOTRAIN_VERSION, autotrain_config, base_model_ref, options, reference_model

if TYPE_CHECKING:
    from tunebridge.examples import Examples
    from tunebridge.spec import Spec


class AutoTrainBackend(Backend):
    """Hugging Face AutoTrain Advanced 0.8 (transformers 4.48, trl 0.13; its own environment)."""

    name = "autotrain"
    description = ("Hugging Face AutoTrain Advanced: exports config.yml + data (llm-sft, llm-reward, llm-dpo, "
                   "llm-orpo) and runs `autotrain --config`")
    install_hint = launch.INSTALL_HINT
    packages: ClassVar[tuple[str, ...]] = ()
    capabilities = Capabilities(
        tasks=frozenset({"sft", "reward", "preference"}),
        algorithms={"sft": ("sft",), "reward": ("reward",), "preference": ("dpo", "orpo")},
        peft=True,
        packing=True,
        unpacked=False,  # llm-sft always packs into blocks of block_size tokens
        completion_only_loss=False,  # llm-sft trains on every token of the packed text
        plain_text=True,
        precisions=frozenset({"fp32", "bf16", "fp16"}),
        gradient_checkpointing=True,
        first_batch=False,
    )

    launcher = "command"  # it trains by running `autotrain --config` in its own environment

    def check(self) -> BackendStatus:
        """Ready when ``$TUNEBRIDGE_AUTOTRAIN_PYTHON`` names a venv with autotrain-advanced 0.8 (files only)."""
        return launch.status(launch.configured_python())

    def environment_status(self, python: Path | None) -> BackendStatus:
        """Whether ``python`` (from ``backend_options.autotrain.python`` or the environment) is a usable AutoTrain
        environment (files and metadata only)."""
        return launch.status(python)

    def check_spec(self, spec: Spec) -> None:
        """backend_options.autotrain: known keys only, a valid trainer and project name, no literal token."""
        options(spec)

    def plan(self, spec: Spec, examples: Examples | None = None) -> Plan:
        """The config.yml this backend would write (base_model shown as the spec names it)."""
        base = spec.model.path or f"<builtin {spec.model.builtin}>"
        project = autotrain_config(spec, examples, base)
        native = {"autotrain": AUTOTRAIN_VERSION, "config.yml": project.config, "data_columns": project.columns}
        if spec.task == "preference":
            native["reference_model"] = reference_model(spec)
        params = project.config["params"]
        effective: dict = {"seed": AUTOTRAIN_SEED, "length": f"{params['epochs']} epoch(s)",
                           "data_order": f"AutoTrain's own shuffle (trainer seed {AUTOTRAIN_SEED})",
                           "effective_batch_size": params["batch_size"] * params["gradient_accumulation"]}
        counts: dict = {}
        if project.prediction is not None:
            predicted = project.prediction
            block = predicted["block_size"]
            counts = {"optimizer_steps": predicted["optimizer_steps"], "train_rows": predicted["rows"],
                      # packed rows are whole blocks; kept pairs carry their own ids
                      "tokens_per_epoch": predicted["rows"] * block if spec.task == "sft" else predicted["tokens"]}
            if spec.task == "sft":
                effective["truncation"] = (f"texts joined with EOS and cut into blocks of {block} tokens (the last "
                                           "partial block dropped); no example truncated")
            elif spec.task == "reward":
                effective["truncation"] = f"pairs with a side over {block} tokens dropped by AutoTrain"
        return Plan(self.name, native, project.unhonoured, project.notes, truncation=effective.get("truncation", ""),
                    effective=effective, **counts)

    def export(self, spec: Spec, examples: Examples, output_dir: Path, model_path: Path | None = None) -> Path:
        """Write config.yml, data/ and README.md into ``output_dir``; returns the config path."""
        import shutil

        from .export import BUILTIN_MODEL_DIR, eos_token, write_project

        base = base_model_ref(model_path, spec.model.path or "")
        if spec.model.builtin and model_path:  # a built model lives in tunebridge's cache: ship it along
            shutil.copytree(model_path, Path(output_dir) / BUILTIN_MODEL_DIR, dirs_exist_ok=True)
            base = BUILTIN_MODEL_DIR  # relative to the project folder, where autotrain runs
        project = autotrain_config(spec, examples, base)
        return write_project(project, examples, Path(output_dir), eos_token(model_path))

    def command(self, job: TrainingJob, python: Path) -> FrameworkCommand:
        """Export into ``work/autotrain``; the ``autotrain --config`` command that trains it; how to collect it."""
        from .runner import command

        return command(job, python)
