"""The training loop of the plainhf backend: ``transformers.Trainer``, imported only when a run trains."""

from __future__ import annotations

from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PrinterCallback,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    set_seed,
)

from tunebridge import BackendOutput

from .backend import _pad_sft, _tokenizer


class _RewardTrainer(Trainer):
    """Pairwise reward loss ``-log sigmoid(r_chosen - r_rejected)``, logging the pairwise ``accuracy``."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._accuracy: list[float] = []

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        n = inputs["input_ids"].shape[0] // 2
        scores = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits[:, 0]
        chosen, rejected = scores[:n], scores[n:]
        loss = -torch.nn.functional.logsigmoid(chosen - rejected).mean()
        if model.training:
            self._accuracy.append((chosen > rejected).float().mean().item())
        return (loss, {"scores": scores}) if return_outputs else loss

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        if "loss" in logs and self._accuracy:
            logs = {**logs, "accuracy": sum(self._accuracy) / len(self._accuracy)}
            self._accuracy = []
        super().log(logs, *args, **kwargs)


class _Report(TrainerCallback):
    """Every Trainer log line to the run's reporter, in the neutral names; the end-of-run summary kept aside."""

    def __init__(self, backend, job):
        self.backend, self.job = backend, job
        self.summary: dict[str, Any] = {}

    def on_train_begin(self, args, state, control, **kwargs):
        self.job.reporter.set_total_steps(state.max_steps)

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = dict(logs or {})
        if "train_runtime" in logs:
            self.summary.update(logs)
            return
        self.job.reporter.log(state.global_step, self.backend.neutral(logs))


def _pad_pairs(rows: list[dict[str, list[int]]], pad_id: int) -> dict[str, Any]:
    seqs = [r["chosen"] for r in rows] + [r["rejected"] for r in rows]
    width = max(map(len, seqs))
    return {"input_ids": torch.tensor([s + [pad_id] * (width - len(s)) for s in seqs]),
            "attention_mask": torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs])}


def run_trainer(backend, job) -> BackendOutput:
    """Build the model, the rows and the Trainer for ``job``, train, save."""
    spec = job.spec
    set_seed(backend.seed(spec))  # before the model exists: a reward head is initialised from it
    tok = _tokenizer(AutoTokenizer, job.tokenizer_path)
    if spec.task == "reward":
        model = AutoModelForSequenceClassification.from_pretrained(str(job.model_path), num_labels=1,
                                                                   dtype=torch.float32)
        train_rows = backend.pair_features(tok, job.examples.train, spec)
        eval_rows = backend.pair_features(tok, job.examples.eval, spec)
        collate, trainer_class = (lambda rows: _pad_pairs(rows, tok.pad_token_id)), _RewardTrainer
    else:
        model = AutoModelForCausalLM.from_pretrained(str(job.model_path), dtype=torch.float32)
        train_rows = backend.features(tok, job.examples.train, spec)
        eval_rows = backend.features(tok, job.examples.eval, spec)
        collate, trainer_class = (lambda rows: _pad_sft(rows, tok.pad_token_id)), Trainer
    model.config.pad_token_id = tok.pad_token_id
    if spec.training.gradient_checkpointing:
        model.config.use_cache = False
    model = backend.wrap_lora(model, spec)

    native = backend.training_arguments(spec, job)  # max_steps: the exact steps the core planned
    arguments = dict(native)
    if not eval_rows:
        arguments.update(eval_strategy="no", eval_steps=None)
    args = TrainingArguments(output_dir=str(job.work_dir), **arguments)
    report = _Report(backend, job)
    trainer = trainer_class(model=model, args=args, train_dataset=train_rows, eval_dataset=eval_rows or None,
                            data_collator=collate, callbacks=[report])
    trainer.remove_callback(PrinterCallback)  # the run's own progress line replaces the printed log dicts
    trainer.train()
    if eval_rows:
        trainer.evaluate()  # the held-out split is always evaluated at the end (logged as eval_loss)
    model_format = backend.save(trainer.model, tok, job)
    step = trainer.state.global_step
    metrics = {"global_step": step, **{k: v for k, v in report.summary.items() if isinstance(v, int | float)}}
    return BackendOutput(metrics, native, model_format=model_format, global_step=step)
