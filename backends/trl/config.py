"""Mapping the neutral spec onto TRL's native configuration. Pure: imports nothing from TRL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunebridge.examples import Examples
from tunebridge.redact import redact
from tunebridge.spec import Spec

# Settings the user may not override through backend_options.trl: the core decides them for parity.
CORE_OWNED = ("train_sampling_strategy", "seed", "data_seed", "output_dir", "report_to")


def sft_config_kwargs(spec: Spec, work_dir: Path, has_eval: bool, cuda: bool = False) -> dict[str, Any]:
    """Keyword arguments for ``trl.SFTConfig`` that carry out ``spec``."""
    t = spec.training
    kw: dict[str, Any] = {
        "output_dir": str(work_dir / "checkpoints"),
        "num_train_epochs": t.epochs,
        "max_steps": t.max_steps or -1,
        "learning_rate": t.learning_rate,
        "per_device_train_batch_size": t.batch_size,
        "per_device_eval_batch_size": t.batch_size,
        "gradient_accumulation_steps": t.gradient_accumulation,
        "max_length": t.max_length,
        "truncation_mode": "keep_start",
        "seed": t.seed,
        "data_seed": t.seed,
        # The core has already put the examples in the order every backend must read them.
        "train_sampling_strategy": "sequential",
        "warmup_steps": t.warmup_ratio,  # transformers 5: a float in [0, 1) is a ratio of total steps
        "lr_scheduler_type": t.lr_scheduler,
        "weight_decay": t.weight_decay,
        "max_grad_norm": t.max_grad_norm,
        "logging_steps": t.logging_steps,
        "logging_first_step": True,
        "save_strategy": "steps" if t.save_steps else "no",
        "save_only_model": True,
        "eval_strategy": "steps" if has_eval and t.eval_steps else "no",
        "bf16": t.precision == "bf16",
        "fp16": t.precision == "fp16",
        "use_cpu": not cuda,
        "activation_checkpointing": t.gradient_checkpointing,
        "dataloader_num_workers": 0,
        "report_to": "none",
        "disable_tqdm": True,
        "packing": spec.sft.packing,
        "dataset_text_field": "text",
    }
    if t.save_steps:
        kw["save_steps"] = t.save_steps
    if has_eval and t.eval_steps:
        kw["eval_steps"] = t.eval_steps
    if spec.data.template_kind != "text":
        kw["completion_only_loss"] = spec.sft.completion_only_loss
    return kw


def lora_kwargs(spec: Spec) -> dict[str, Any] | None:
    """Keyword arguments for ``peft.LoraConfig``, or None without a lora block."""
    if spec.lora is None:
        return None
    return {
        "r": spec.lora.r,
        "lora_alpha": spec.lora.alpha,
        "lora_dropout": spec.lora.dropout,
        "target_modules": spec.lora.target_modules,  # None: peft's default for the model type
        "task_type": "CAUSAL_LM",
    }


def native_sft_config(spec: Spec, examples: Examples | None, work_dir: Path,
                      cuda: bool = False) -> tuple[dict[str, Any], list[str], list[str]]:
    """The whole native config (SFTConfig + trainer arguments), settings not honoured, and notes."""
    has_eval = bool(examples and examples.eval)
    config = sft_config_kwargs(spec, work_dir, has_eval, cuda)
    unhonoured: list[str] = []
    notes: list[str] = []
    overrides = dict(spec.backend_options.get("trl", {}))
    for key in CORE_OWNED:
        if key in overrides:
            overrides.pop(key)
            unhonoured.append(f"backend_options.trl.{key}: set by tunebridge for parity, override ignored")
    for key, value in redact(overrides).items():
        notes.append(f"backend_options.trl.{key}={value!r} overrides {config.get(key, '(TRL default)')!r}")
    config.update(overrides)
    if spec.sft.packing and spec.data.template_kind != "text" and spec.sft.completion_only_loss:
        notes.append("packing with completion-only loss: TRL packs the completion masks along with the tokens")
    if spec.training.precision == "bf16" and not cuda:
        notes.append("bf16 on CPU runs as autocast (use_cpu=True); parameters stay float32")
    native = {
        "trainer": "trl.SFTTrainer",
        "SFTConfig": config,
        "peft.LoraConfig": lora_kwargs(spec),
        "dataset_columns": examples.columns if examples else None,
        "eos": "appended to each completion/text by TRL",
        "evaluate_at_end": has_eval,
    }
    return native, unhonoured, notes
