"""The plainhf backend: sft (prompt/completion with completion-only loss, or plain text) and reward modelling on
plain ``transformers.Trainer``, optionally with a LoRA adapter (peft).

What it must do to pass tunebridge's contract suite, and where it does it:

- train on ``job.examples.train`` in the order given (``train_sampling_strategy: sequential``);
- tokenise with tunebridge's published rule (``tunebridge.tokenize``): ``features``;
- seed everything with ``training.seed`` *before* building the model (a reward head is initialised then): ``seed``;
- make exactly the planned optimizer steps (``training_arguments``: max_steps or epochs, as the spec says);
- log every ``logging_steps`` step in the neutral names (``loss``, ``learning_rate``, ...): ``neutral``;
- save a model ``from_pretrained`` loads, and its tokenizer, in ``job.model_dir``: ``save``.

No torch or transformers import at module top level: ``check`` and ``plan`` stay cheap.
"""

from __future__ import annotations

from typing import Any

from tunebridge import Backend, BackendOutput, BackendStatus, Capabilities, Plan
from tunebridge.tokenize import IGNORE, encode_example, encode_scored
from tunebridge.versions import package_version

SCHEDULERS = {"linear": "linear", "cosine": "cosine", "constant": "constant",
              "constant_with_warmup": "constant_with_warmup"}
LOG_RENAMES = {"train_loss": None, "total_flos": None}  # end-of-run summary keys (not a step's record)


class PlainHFBackend(Backend):
    """sft and reward on ``transformers.Trainer``."""

    name = "plainhf"
    description = "example plugin: sft and reward on plain transformers.Trainer (tunebridge-plainhf)"
    install_hint = "pip install -e examples/plugin (with torch==2.13.0 installed first)"
    packages = ("peft",)
    capabilities = Capabilities(
        tasks=frozenset({"sft", "reward"}),
        algorithms={"sft": ("sft",), "reward": ("reward",)},
        peft=True,
        completion_only_loss=True,
        plain_text=True,
        gradient_checkpointing=True,
        first_batch=True,
    )

    # -- cheap: metadata only --------------------------------------------------------------------------

    def check(self) -> BackendStatus:
        """Ready when torch, transformers and peft are installed (read from package metadata)."""
        found = {name: package_version(name) for name in ("torch", "transformers", "peft")}
        missing = [name for name, version in found.items() if version is None]
        if missing:
            return BackendStatus("missing", f"not installed: {', '.join(missing)}", found)
        return BackendStatus("ready", versions=found)

    def plan(self, spec, examples=None) -> Plan:
        """The ``TrainingArguments`` this backend would pass (no side effects)."""
        unhonoured = []
        if spec.training.save_steps:
            unhonoured.append(f"training.save_steps={spec.training.save_steps}: plainhf saves only the final model")
        return Plan(self.name, self.training_arguments(spec), unhonoured=unhonoured)

    def seed(self, spec) -> int:
        """The seed for weights, dropout and a new head: the spec's."""
        return spec.training.seed

    def training_arguments(self, spec, job=None) -> dict[str, Any]:
        """``TrainingArguments`` keywords for ``spec`` (JSON-able: this is also the native config). With the job,
        ``max_steps`` is the exact number of steps the core planned (``job.plan.optimizer_steps``)."""
        t = spec.training
        planned = job.plan.optimizer_steps if job is not None and job.plan is not None else None
        return {
            "max_steps": planned or t.max_steps or -1,
            "num_train_epochs": t.epochs,
            "learning_rate": t.learning_rate,
            "per_device_train_batch_size": t.batch_size,
            "per_device_eval_batch_size": t.batch_size,
            "gradient_accumulation_steps": t.gradient_accumulation,
            "warmup_steps": t.warmup_ratio,  # transformers 5: a float in [0, 1) is a ratio of the total steps
            "lr_scheduler_type": SCHEDULERS[t.lr_scheduler],
            "weight_decay": t.weight_decay,
            "max_grad_norm": t.max_grad_norm,
            "logging_steps": t.logging_steps,
            "eval_strategy": "steps" if t.eval_steps else "no",
            "eval_steps": t.eval_steps,
            "train_sampling_strategy": "sequential",  # the core's order: it already shuffled with the seed
            "seed": self.seed(spec),
            "data_seed": self.seed(spec),
            "activation_checkpointing": t.gradient_checkpointing,
            "save_strategy": "no",
            "report_to": [],
            "remove_unused_columns": False,
            "disable_tqdm": True,
        }

    # -- tokenisation: tunebridge's published rule ------------------------------------------------------

    def features(self, tokenizer, examples: list[dict[str, Any]], spec) -> list[dict[str, list[int]]]:
        """sft rows as ``input_ids``/``labels`` under ``tunebridge.tokenize`` (the prompt masked unless
        ``sft.completion_only_loss`` is off), in the order given."""
        rows = []
        for example in examples:
            ids, labels = encode_example(tokenizer, example, spec.training.max_length)
            if "text" not in example and not spec.sft.completion_only_loss:
                labels = list(ids)
            rows.append({"input_ids": ids, "labels": labels})
        return rows

    def pair_features(self, tokenizer, examples: list[dict[str, Any]], spec) -> list[dict[str, list[int]]]:
        """reward pairs: the ids of prompt + chosen and of prompt + rejected, each with EOS (the published rule)."""
        n = spec.training.max_length
        return [{"chosen": encode_scored(tokenizer, ex["prompt"], ex["chosen"], n),
                 "rejected": encode_scored(tokenizer, ex["prompt"], ex["rejected"], n)} for ex in examples]

    def first_batch(self, job) -> dict[str, list[list[int]]]:
        """The first sft batch exactly as ``train`` feeds it (padded with -100 labels)."""
        from transformers import AutoTokenizer

        tok = _tokenizer(AutoTokenizer, job.tokenizer_path)
        rows = self.features(tok, job.examples.train[: job.spec.training.batch_size], job.spec)
        batch = _pad_sft(rows, tok.pad_token_id, tensors=False)
        return {"input_ids": batch["input_ids"], "labels": batch["labels"]}

    # -- training -------------------------------------------------------------------------------------

    def neutral(self, logs: dict[str, Any]) -> dict[str, Any]:
        """A Trainer log line in tunebridge's neutral metric names (``loss``, ``learning_rate``, ``grad_norm``,
        ``epoch``, ``eval_loss``, reward ``accuracy``)."""
        return {k: v for k, v in logs.items() if k not in LOG_RENAMES}

    def wrap_lora(self, model, spec):
        """The model with a LoRA adapter when the spec asks for one (peft)."""
        if spec.lora is None:
            return model
        from peft import LoraConfig, get_peft_model

        lora = spec.lora
        config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                            target_modules=lora.target_modules or ["q_proj", "v_proj"],
                            task_type="SEQ_CLS" if spec.task == "reward" else "CAUSAL_LM")
        return get_peft_model(model, config)

    def save(self, model, tokenizer, job) -> str:
        """Save the final model (merged, adapter or full) and the tokenizer; returns the model format."""
        lora = job.spec.lora
        fmt = "full" if lora is None else ("merged" if lora.merge else "adapter")
        if hasattr(model, "merge_and_unload") and fmt == "merged":
            model = model.merge_and_unload()
        model.save_pretrained(job.model_dir)
        tokenizer.save_pretrained(job.model_dir)
        return fmt

    def train(self, job) -> BackendOutput:
        """Train on ``job.examples`` with ``transformers.Trainer`` and save into ``job.model_dir``."""
        from .training import run_trainer

        return run_trainer(self, job)


def _tokenizer(auto_tokenizer, path):
    tok = auto_tokenizer.from_pretrained(str(path))
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def _pad_sft(rows: list[dict[str, list[int]]], pad_id: int, tensors: bool = True) -> dict[str, Any]:
    width = max(len(r["input_ids"]) for r in rows)
    batch = {
        "input_ids": [r["input_ids"] + [pad_id] * (width - len(r["input_ids"])) for r in rows],
        "labels": [r["labels"] + [IGNORE] * (width - len(r["labels"])) for r in rows],
        "attention_mask": [[1] * len(r["input_ids"]) + [0] * (width - len(r["input_ids"])) for r in rows],
    }
    if tensors:
        import torch

        batch = {k: torch.tensor(v) for k, v in batch.items()}
    return batch
