"""Running trl.SFTTrainer for a TrainingJob. Imported only when a TRL run starts."""

from __future__ import annotations

import logging
import math
from typing import Any

from datasets import Dataset
from datasets.utils.logging import disable_progress_bar as disable_datasets_progress
from transformers import AutoTokenizer, PrinterCallback, TrainerCallback
from transformers.utils import logging as hf_logging
from trl import SFTConfig, SFTTrainer

from tunebridge.backend import BackendOutput, TrainingJob
from tunebridge.hf_compat import make_tokenizer_portable

from .config import lora_kwargs, native_sft_config

SUMMARY_KEYS = ("train_runtime", "train_samples_per_second", "train_steps_per_second", "total_flos", "train_loss")
DROPPED_KEYS = ("total_flos",)


class _ReportToTunebridge(TrainerCallback):
    """Forwards every log event to the run's reporter, in the neutral metric names."""

    def __init__(self, job: TrainingJob):
        self.job = job
        self.summary: dict[str, Any] = {}

    def on_train_begin(self, args, state, control, **kwargs):
        self.job.reporter.set_total_steps(state.max_steps)

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = dict(logs or {})
        if any(k in logs for k in SUMMARY_KEYS):
            self.summary.update({k: v for k, v in logs.items() if k not in DROPPED_KEYS})
            return
        self.job.reporter.log(state.global_step, logs)


def _datasets(job: TrainingJob) -> tuple[Dataset, Dataset | None]:
    ex = job.examples
    train = Dataset.from_list(ex.train)
    held_out = Dataset.from_list(ex.eval) if ex.eval else None
    return train, held_out


def build_trainer(job: TrainingJob, cuda: bool = False) -> tuple[SFTTrainer, dict[str, Any], _ReportToTunebridge]:
    """An SFTTrainer configured from the job, plus the native config it runs and the reporting callback."""
    logging.getLogger("transformers").setLevel(logging.ERROR)
    hf_logging.disable_progress_bar()  # the run's own progress line replaces the libraries' bars
    disable_datasets_progress()
    native, _, _ = native_sft_config(job.spec, job.examples, job.work_dir, cuda)
    config = SFTConfig(**native["SFTConfig"])
    peft_config = None
    lora = lora_kwargs(job.spec)
    if lora is not None:
        from peft import LoraConfig

        peft_config = LoraConfig(**lora)
    tokenizer = AutoTokenizer.from_pretrained(str(job.tokenizer_path))
    train, held_out = _datasets(job)
    callback = _ReportToTunebridge(job)
    trainer = SFTTrainer(
        model=str(job.model_path),
        args=config,
        train_dataset=train,
        eval_dataset=held_out,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[callback],
    )
    trainer.remove_callback(PrinterCallback)  # the reporter shows progress instead of printed dicts
    native["SFTConfig"] = {**native["SFTConfig"], "output_dir": "<output>/work/checkpoints"}
    return trainer, native, callback


def first_batch(job: TrainingJob, cuda: bool = False) -> dict[str, list[list[int]]]:
    """The first batch the trainer would train on: input_ids and labels as lists."""
    trainer, _, _ = build_trainer(job, cuda)
    batch = next(iter(trainer.get_train_dataloader()))
    return {"input_ids": batch["input_ids"].tolist(), "labels": batch["labels"].tolist()}


def train_sft(job: TrainingJob, cuda: bool = False) -> BackendOutput:
    """Train, evaluate on the held-out split if any, save model + tokenizer to job.model_dir."""
    trainer, native, callback = build_trainer(job, cuda)
    trainer.train()
    metrics: dict[str, Any] = dict(callback.summary)
    if job.examples.eval:
        final = [r for r in job.reporter.records if "eval_loss" in r and r["step"] == trainer.state.global_step]
        eval_metrics = final[-1] if final else trainer.evaluate()  # evaluate() logs through the callback
        metrics.update({k: v for k, v in eval_metrics.items() if k.startswith("eval_")})
    losses = [r["loss"] for r in job.reporter.records if r.get("loss") is not None]
    if losses:
        metrics["first_loss"], metrics["final_loss"] = losses[0], losses[-1]
    metrics["global_step"] = trainer.state.global_step
    if any(isinstance(v, float) and not math.isfinite(v) for v in metrics.values()):
        raise RuntimeError(f"training produced non-finite metrics: {metrics}")
    model_format = _save(trainer, job)
    _remove_empty_dirs(job.work_dir)
    return BackendOutput(metrics=metrics, native_config=native, model_format=model_format,
                         global_step=trainer.state.global_step)


def _save(trainer: SFTTrainer, job: TrainingJob) -> str:
    model = trainer.model
    fmt = "full"
    if job.spec.lora is not None:
        if job.spec.lora.merge:
            model = model.merge_and_unload()
            fmt = "merged"
        else:
            fmt = "adapter"
    model.save_pretrained(job.model_dir)
    trainer.processing_class.save_pretrained(job.model_dir)
    make_tokenizer_portable(job.model_dir)
    return fmt


def _remove_empty_dirs(folder) -> None:
    """Drop the scratch folder when nothing was kept in it (no checkpoints asked for)."""
    if not folder.is_dir():
        return
    for sub in sorted(folder.rglob("*"), reverse=True):
        if sub.is_dir() and not any(sub.iterdir()):
            sub.rmdir()
    if not any(folder.iterdir()):
        folder.rmdir()
