"""Running a TRL trainer for a TrainingJob: one path for SFT, reward modelling, GRPO, RLOO, DPO, KTO and ORPO.

Imported only when a TRL run starts (it imports torch, transformers, datasets and trl).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
from collections.abc import Iterator
from typing import Any

from datasets import Dataset
from datasets.utils.logging import disable_progress_bar as disable_datasets_progress
from transformers import AutoTokenizer, PrinterCallback, TrainerCallback
from transformers.utils import logging as hf_logging

from tunebridge.backend import BackendOutput, TrainingJob
from tunebridge.execution.options import native_options
from tunebridge.hf_compat import make_tokenizer_portable
from tunebridge.progress import preference_names
from tunebridge.redact import REDACTED, is_secret_key, redact

from .config import PREFERENCE_TRAINERS, algorithm_of, lora_kwargs, native_config, unpaired_rows

SUMMARY_KEYS = ("train_runtime", "train_samples_per_second", "train_steps_per_second", "total_flos", "train_loss")
DROPPED_KEYS = ("total_flos",)
# TRL metric names -> tunebridge's neutral names (the rest pass through unchanged).
HUB_TOKEN, TOKEN_ENV = "hub_token", "HF_TOKEN"  # the one secret TrainingArguments take, and where hub reads it
RENAMES = {"reward": "reward_mean", "eval_reward": "eval_reward_mean"}


class _ReportToTunebridge(TrainerCallback):
    """Forwards every log event to the run's reporter, in the neutral metric names."""

    def __init__(self, job: TrainingJob):
        self.job = job
        self.preference = job.spec.task == "preference"
        self.summary: dict[str, Any] = {}
        self.empty_steps = 0

    def on_train_begin(self, args, state, control, **kwargs):
        self.job.reporter.set_total_steps(state.max_steps)

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = {RENAMES.get(k, k): v for k, v in (logs or {}).items()}
        if self.preference:
            logs = preference_names(logs)
        if any(k in logs for k in SUMMARY_KEYS):
            self.summary.update({k: v for k, v in logs.items() if k not in DROPPED_KEYS})
            return
        if _no_trainable_token(logs):
            # A batch whose labels are all masked (packed rows cut before any completion) logs loss 0.0 and a
            # zero gradient: it trained on nothing, so it is not a loss of 0.
            logs = {**logs, "loss": None, "trainable_tokens": 0}
            self.empty_steps += 1
        self.job.reporter.log(state.global_step, logs)


def _no_trainable_token(logs: dict[str, Any]) -> bool:
    """A training log line of a step with no label token: loss exactly 0 and no gradient at all."""
    return logs.get("loss") == 0.0 and logs.get("grad_norm") in (0.0, None) and "eval_loss" not in logs


def _quiet_libraries() -> None:
    logging.getLogger("transformers").setLevel(logging.ERROR)
    hf_logging.disable_progress_bar()  # the run's own progress line replaces the libraries' bars
    disable_datasets_progress()


@contextlib.contextmanager
def secrets_in_environment(config: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """``config`` without its secrets, which go where the framework reads them: ``hub_token`` -> ``HF_TOKEN``.

    The trainer pickles its arguments into every checkpoint (training_args.bin): a token there would sit in the run
    folder in plain text. For the trainer's lifetime the token is in the environment instead, then restored.
    """
    clean = {k: v for k, v in config.items() if not is_secret_key(k)}
    token = config.get(HUB_TOKEN)
    if not token:
        yield clean
        return
    before = os.environ.get(TOKEN_ENV)
    os.environ[TOKEN_ENV] = str(token)
    try:
        yield clean
    finally:
        if before is None:
            os.environ.pop(TOKEN_ENV, None)
        else:
            os.environ[TOKEN_ENV] = before


def build_trainer(job: TrainingJob, cuda: bool = False) -> tuple[Any, dict[str, Any], _ReportToTunebridge]:
    """The TRL trainer for the job's task, the native config it runs, and the reporting callback.

    Call it inside ``secrets_in_environment`` (train and first_batch do): the config objects hold no secret.
    """
    _quiet_libraries()
    # A fresh head (reward models) is drawn from torch's global generator before the Trainer seeds it: seed now,
    # so that the weights do not depend on what else ran in this process (a builtin model built or not).
    from transformers import set_seed

    set_seed(job.spec.training.seed)
    algorithm = algorithm_of(job.spec)
    if job.plan is not None:  # computed once by the core, carried in the job
        native = copy.deepcopy(job.plan.native_config)
    else:
        native, _, _ = native_config(job.spec, job.examples, job.work_dir, cuda)
    config_key = next(k for k in native if k.endswith("Config") and k != "peft.LoraConfig")
    args = {k: v for k, v in native[config_key].items() if not is_secret_key(k) and v != REDACTED}
    args["output_dir"] = str(job.work_dir / "checkpoints")  # the plan shows it relative to the output folder
    tokenizer = AutoTokenizer.from_pretrained(str(job.tokenizer_path))
    peft_config = None
    lora = lora_kwargs(job.spec)
    if lora is not None:
        from peft import LoraConfig

        peft_config = LoraConfig(**lora)
    callback = _ReportToTunebridge(job)
    common = {"model": str(job.model_path), "processing_class": tokenizer, "peft_config": peft_config,
              "callbacks": [callback]}
    if algorithm == "sft":
        from trl import SFTConfig, SFTTrainer

        config = SFTConfig(**args)
        train, held_out = _sft_datasets(job, tokenizer, config)
        trainer = SFTTrainer(args=config, train_dataset=train, eval_dataset=held_out, **common)
        return _finish(trainer, native, callback, config_key)
    common["train_dataset"] = Dataset.from_list(job.examples.train)
    held_out = Dataset.from_list(job.examples.eval) if job.examples.eval and job.spec.task != "rl" else None
    if algorithm == "reward":
        from trl import RewardConfig, RewardTrainer

        trainer = RewardTrainer(args=RewardConfig(**args), eval_dataset=held_out, **common)
    elif algorithm in PREFERENCE_TRAINERS:
        trainer = _preference_trainer(job, algorithm, args, common)
    else:
        from .rewards import trl_reward_funcs

        reward_funcs = trl_reward_funcs(job.spec)
        if algorithm == "grpo":
            from trl import GRPOConfig, GRPOTrainer

            trainer = GRPOTrainer(args=GRPOConfig(**args), reward_funcs=reward_funcs, **common)
        else:
            from trl import RLOOConfig, RLOOTrainer

            trainer = RLOOTrainer(args=RLOOConfig(**args), reward_funcs=reward_funcs, **common)
    return _finish(trainer, native, callback, config_key)


def _preference_trainer(job: TrainingJob, algorithm: str, args: dict[str, Any], common: dict[str, Any]) -> Any:
    """DPO, KTO (on unpaired rows) or ORPO. The reference model follows the core's rule: TRL copies the starting
    model for DPO/KTO, or, with LoRA, uses the same model with the adapter disabled; ORPO has none."""
    train, held_out = job.examples.train, job.examples.eval
    if algorithm == "kto":
        train, held_out = unpaired_rows(train), unpaired_rows(held_out)
    common["train_dataset"] = Dataset.from_list(train)
    evaluation = Dataset.from_list(held_out) if held_out else None
    if algorithm == "dpo":
        from trl import DPOConfig, DPOTrainer

        return DPOTrainer(args=DPOConfig(**args), eval_dataset=evaluation, **common)
    if algorithm == "kto":
        from trl import KTOConfig, KTOTrainer

        return KTOTrainer(args=KTOConfig(**args), eval_dataset=evaluation, **common)
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # ORPO lives in trl.experimental (it warns on import)
    from trl.experimental.orpo import ORPOConfig, ORPOTrainer

    return ORPOTrainer(args=ORPOConfig(**args), eval_dataset=evaluation, **common)


def _sft_datasets(job: TrainingJob, tokenizer: Any, args: Any) -> tuple[Any, Any]:
    """The core's token ids as the datasets SFTTrainer trains and evaluates on (its own preparation skipped)."""
    from .rows import sft_dataset, sft_tokens

    tokens = sft_tokens(job.spec, job.examples, job.tokenizer_path, tokenizer)
    train = sft_dataset(tokens, args.packing, args.max_length, args.packing_strategy)
    held_out = None
    if job.examples.eval and job.examples.eval_tokens is not None:
        packing = args.packing if args.eval_packing is None else args.eval_packing
        held_out = sft_dataset(job.examples.eval_tokens, packing, args.max_length, args.packing_strategy)
    return train, held_out


def _finish(trainer: Any, native: dict[str, Any], callback: _ReportToTunebridge,
            config_key: str) -> tuple[Any, dict, Any]:
    trainer.remove_callback(PrinterCallback)  # the reporter shows progress instead of printed dicts
    native[config_key] = {**native[config_key], "output_dir": "work/checkpoints (in the output folder)"}
    return trainer, redact(native), callback


def first_batch(job: TrainingJob, cuda: bool = False) -> dict[str, list[list[int]]]:
    """The first batch the trainer would train on: input_ids and labels as lists (SFT)."""
    with secrets_in_environment(native_options(job.spec, "trl")):
        trainer, _, _ = build_trainer(job, cuda)
        batch = next(iter(trainer.get_train_dataloader()))
    return {"input_ids": batch["input_ids"].tolist(), "labels": batch["labels"].tolist()}


def train(job: TrainingJob, cuda: bool = False) -> BackendOutput:
    """Train, evaluate on the held-out split if any, save model + tokenizer to job.model_dir."""
    from tunebridge.trackers import run_name, trackers_in_environment

    with secrets_in_environment(native_options(job.spec, "trl")), \
            trackers_in_environment(job.spec.training.report_to, job.output_dir, run_name(job.spec)):
        return _train(job, cuda)


def _train(job: TrainingJob, cuda: bool) -> BackendOutput:
    trainer, native, callback = build_trainer(job, cuda)
    # Packing turns examples into fewer, longer rows: only an unpacked dataset's shrinking is a drop.
    packed = job.spec.task == "sft" and job.spec.sft.packing
    handed = len(job.examples.train) * (2 if algorithm_of(job.spec) == "kto" else 1)
    dropped_by_trl = 0 if packed else handed - len(trainer.train_dataset)
    trainer.train(resume_from_checkpoint=str(job.resume_from) if job.resume_from else None)
    metrics: dict[str, Any] = dict(callback.summary)
    if job.resume_from and "train_loss" in metrics:  # TRL averages the steps of this attempt only
        metrics["train_loss"] = _mean_logged_loss(trainer.state.log_history, metrics["train_loss"])
    if dropped_by_trl > 0:
        metrics["examples_dropped_by_backend"] = dropped_by_trl
    if callback.empty_steps:
        metrics["steps_without_trainable_tokens"] = callback.empty_steps
        trained = [r["loss"] for r in job.reporter.records if r.get("loss") is not None]
        if trained and job.spec.training.logging_steps == 1:
            metrics["train_loss"] = sum(trained) / len(trained)  # TRL averaged the empty steps' 0.0 in
    if job.examples.eval and job.spec.task != "rl":
        final = [r for r in job.reporter.records if "eval_loss" in r and r["step"] == trainer.state.global_step]
        eval_metrics = final[-1] if final else trainer.evaluate()  # evaluate() logs through the callback
        eval_metrics = preference_names(eval_metrics) if job.spec.task == "preference" else eval_metrics
        metrics.update({RENAMES.get(k, k): v for k, v in eval_metrics.items() if k.startswith("eval_")})
    metrics["global_step"] = trainer.state.global_step
    model_format = _save(trainer, job)
    accelerator = trainer.accelerator
    return BackendOutput(metrics=metrics, native_config=native, model_format=model_format,
                         global_step=trainer.state.global_step, world_size=accelerator.num_processes,
                         distributed_type=str(accelerator.distributed_type).rsplit(".", 1)[-1])


def _mean_logged_loss(history: list[dict[str, Any]], fallback: float) -> float:
    """The mean training loss over every step of a resumed run: the logged losses (the checkpoint's history and
    this attempt's), each weighted by the steps it averages."""
    total = steps = 0.0
    last = 0
    for entry in sorted((e for e in history if "loss" in e and "step" in e), key=lambda e: e["step"]):
        if entry["step"] > last:
            total += entry["loss"] * (entry["step"] - last)
            steps += entry["step"] - last
            last = entry["step"]
    return total / steps if steps else fallback


def _save(trainer: Any, job: TrainingJob) -> str:
    """Save on the main process only (under torchrun the other ranks write nothing in the run folder)."""
    fmt = "full" if job.spec.lora is None else ("merged" if job.spec.lora.merge else "adapter")
    sharded = job.spec.launch.distributed and job.spec.launch.strategy != "ddp"
    if sharded and fmt != "merged":
        trainer.save_model(str(job.model_dir))  # FSDP / ZeRO-3 gather the full weights: every rank takes part
    elif trainer.accelerator.is_main_process:
        model = trainer.accelerator.unwrap_model(trainer.model)
        if fmt == "merged":
            model = model.merge_and_unload()
        model.save_pretrained(job.model_dir)
    trainer.accelerator.wait_for_everyone()
    if trainer.accelerator.is_main_process:
        trainer.processing_class.save_pretrained(job.model_dir)
        make_tokenizer_portable(job.model_dir)
    return fmt

