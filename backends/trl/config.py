"""Mapping the neutral spec onto TRL's native configuration. Pure: imports nothing from TRL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunebridge.examples import Examples
from tunebridge.execution.options import native_options
from tunebridge.planning import reference_model
from tunebridge.redact import redact
from tunebridge.spec import Spec

# Settings the user may not override through backend_options.trl: the core decides them for parity.
CORE_OWNED = ("train_sampling_strategy", "shuffle_dataset", "seed", "data_seed", "output_dir", "report_to")
_ORDER = "set training.shuffle: the core orders the examples once, with training.seed, for every backend"
# backend_options.trl keys refused at validate time (the core owns them, or TRL would silently ignore them),
# each with the way to get what it is for.
REFUSED_OPTIONS = {
    "seed": "set training.seed",
    "data_seed": "set training.seed (it seeds the data order too)",
    "train_sampling_strategy": _ORDER,
    "shuffle_dataset": _ORDER,
    "output_dir": "choose the run folder with `tunebridge train --output DIR` (Python: train(output_dir)); "
                  "checkpoints go to DIR/work/checkpoints",
    "report_to": "set training.report_to: [tensorboard, mlflow, wandb] (files go to the run folder's logs/)",
    "resume_from_checkpoint": "the trainer never reads it; use `tunebridge train SPEC --output DIR --resume` "
                              "(Python: train(..., resume=True)) to continue a run from its newest checkpoint",
    "save_only_model": "checkpoints (training.save_steps) hold the whole training state so that --resume works; "
                       "leave training.save_steps unset to write none",
    "do_train": "the trainer never reads it: `tunebridge train` trains, `tunebridge plan` shows without training",
    "do_eval": "the trainer never reads it: set data.eval_fraction (and training.eval_steps) to evaluate",
    "do_predict": "the trainer never reads it: `tunebridge evaluate RUN_DIR` scores the held-out split",
    "dataset_kwargs": "the core tokenises the examples and TRL's own preparation is skipped (docs/backends/trl.md)",
}


def refused_options(spec: Spec) -> list[tuple[str, str]]:
    """(field path, message) for each ``backend_options.trl`` key tunebridge refuses."""
    return [(f"backend_options.trl.{key}", f"not accepted: {how}")
            for key, how in REFUSED_OPTIONS.items() if key in native_options(spec, "trl")]
TRAINERS = {"sft": ("trl.SFTTrainer", "SFTConfig"), "reward": ("trl.RewardTrainer", "RewardConfig"),
            "grpo": ("trl.GRPOTrainer", "GRPOConfig"), "rloo": ("trl.RLOOTrainer", "RLOOConfig"),
            "dpo": ("trl.DPOTrainer", "DPOConfig"), "kto": ("trl.KTOTrainer", "KTOConfig"),
            "orpo": ("trl.experimental.orpo.ORPOTrainer", "ORPOConfig")}
PREFERENCE_TRAINERS = ("dpo", "kto", "orpo")
# The module each config class lives in (ORPO is still experimental in TRL 1.16).
CONFIG_MODULES = {"ORPOConfig": "trl.experimental.orpo"}
# TRL's own defaults for the KL coefficient (beta), used when the spec leaves rl.kl_coef unset.
DEFAULT_KL = {"grpo": 0.0, "rloo": 0.05}


def algorithm_of(spec: Spec) -> str:
    """The TRL trainer a spec runs: sft, reward, grpo, rloo, dpo, kto or orpo."""
    if spec.task == "rl":
        return "grpo" if spec.rl.algorithm == "auto" else spec.rl.algorithm
    if spec.task == "preference":
        return spec.preference.resolved_algorithm
    return spec.task


def common_kwargs(spec: Spec, work_dir: Path, has_eval: bool, cuda: bool = False) -> dict[str, Any]:
    """TrainingArguments-level keyword arguments shared by every TRL trainer."""
    t = spec.training
    kw: dict[str, Any] = {
        "output_dir": str(work_dir / "checkpoints"),
        "num_train_epochs": t.epochs,
        "max_steps": t.max_steps or -1,
        "learning_rate": t.learning_rate,
        "per_device_train_batch_size": t.batch_size,
        "per_device_eval_batch_size": t.batch_size,
        "gradient_accumulation_steps": t.gradient_accumulation,
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
        "save_only_model": False,  # checkpoints hold optimizer, scheduler, RNG and data position: --resume
        "eval_strategy": "steps" if has_eval and t.eval_steps else "no",
        "bf16": t.precision == "bf16",
        "fp16": t.precision == "fp16",
        "use_cpu": not cuda,
        "activation_checkpointing": t.gradient_checkpointing,
        "dataloader_num_workers": 0,
        "report_to": list(t.report_to) or "none",  # files under <output>/logs (tunebridge.trackers)
        "disable_tqdm": True,
    }
    if t.save_steps:
        kw["save_steps"] = t.save_steps
    if has_eval and t.eval_steps:
        kw["eval_steps"] = t.eval_steps
    return kw


def sft_config_kwargs(spec: Spec, work_dir: Path, has_eval: bool, cuda: bool = False) -> dict[str, Any]:
    """Keyword arguments for ``trl.SFTConfig`` that carry out ``spec``."""
    kw = common_kwargs(spec, work_dir, has_eval, cuda)
    kw.update({"max_length": spec.training.max_length, "truncation_mode": "keep_start",
               "packing": spec.sft.packing, "dataset_text_field": "text",
               # TRL is handed the core's token ids (input_ids + labels), cut at max_length, fully masked rows
               # dropped and packed as TRL would (backends/trl/rows.py): its own preparation is skipped.
               "dataset_kwargs": {"skip_prepare_dataset": True}})
    if spec.data_kind != "text":
        kw["completion_only_loss"] = spec.sft.completion_only_loss
    return kw


def reward_config_kwargs(spec: Spec, work_dir: Path, has_eval: bool, cuda: bool = False) -> dict[str, Any]:
    """Keyword arguments for ``trl.RewardConfig``. Over-long pairs were already dropped or cut by the core."""
    kw = common_kwargs(spec, work_dir, has_eval, cuda)
    kw["max_length"] = spec.training.max_length
    return kw


def preference_config_kwargs(spec: Spec, work_dir: Path, has_eval: bool, cuda: bool = False) -> dict[str, Any]:
    """Keyword arguments for ``trl.DPOConfig`` / ``trl.KTOConfig`` / ``ORPOConfig``. Over-long pairs were already
    dropped or cut by the core, so TRL's own max_length cuts nothing."""
    kw = common_kwargs(spec, work_dir, has_eval, cuda)
    kw.update({"max_length": spec.training.max_length, "beta": spec.preference.beta})
    if algorithm_of(spec) == "dpo":
        kw.update({"loss_type": ["sigmoid"], "truncation_mode": "keep_start"})
    if algorithm_of(spec) == "orpo":
        kw["remove_unused_columns"] = False  # ORPO's collator reads the raw columns (it says so when left True)
    return kw


def rl_config_kwargs(spec: Spec, work_dir: Path, cuda: bool = False) -> dict[str, Any]:
    """Keyword arguments for ``trl.GRPOConfig`` / ``trl.RLOOConfig``."""
    algorithm = algorithm_of(spec)
    g = spec.rl.generation
    kw = common_kwargs(spec, work_dir, has_eval=False, cuda=cuda)
    kw.pop("train_sampling_strategy")  # GRPO/RLOO use their own grouped sampler ...
    kw.update({
        "shuffle_dataset": False,  # ... told not to shuffle: the core has ordered the prompts
        "num_generations": g.num_generations,
        "max_completion_length": g.max_new_tokens,
        "temperature": g.temperature,
        "top_p": g.top_p,
        "beta": spec.rl.kl_coef if spec.rl.kl_coef is not None else DEFAULT_KL[algorithm],
    })
    kw["reward_weights"] = [source.weight for source in spec.rl.reward]
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
        "task_type": "SEQ_CLS" if spec.task == "reward" else "CAUSAL_LM",
    }


def generation_batch_problem(spec: Spec) -> str | None:
    """Why GRPO/RLOO cannot split the batch into groups of num_generations completions, or None."""
    per_step = spec.global_batch_size
    n = spec.rl.generation.num_generations
    if per_step % n == 0:
        return None
    prompts = max(1, per_step // n)
    processes = f" x {spec.world_size} processes" if spec.world_size > 1 else ""
    return (f"{n} must divide training.batch_size{processes} x training.gradient_accumulation = {per_step}: in "
            f"GRPO/RLOO the batch counts completions, not prompts, and each prompt gets {n} of them (e.g. a batch of "
            f"{n * prompts} = {prompts} prompt(s) x {n} completions)")


def native_config(spec: Spec, examples: Examples | None, work_dir: Path,
                  cuda: bool = False) -> tuple[dict[str, Any], list[str], list[str]]:
    """The whole native config (trainer + config + trainer arguments), settings not honoured, and notes."""
    has_eval = bool(examples and examples.eval)
    algorithm = algorithm_of(spec)
    trainer, config_name = TRAINERS[algorithm]
    if algorithm == "sft":
        config = sft_config_kwargs(spec, work_dir, has_eval, cuda)
    elif algorithm == "reward":
        config = reward_config_kwargs(spec, work_dir, has_eval, cuda)
    elif algorithm in PREFERENCE_TRAINERS:
        config = preference_config_kwargs(spec, work_dir, has_eval, cuda)
    else:
        config = rl_config_kwargs(spec, work_dir, cuda)
    unhonoured: list[str] = []
    notes: list[str] = []
    overrides = native_options(spec, "trl")
    for key in CORE_OWNED + (("dataset_kwargs",) if algorithm == "sft" else ()):
        if key in overrides:
            overrides.pop(key)
            unhonoured.append(f"backend_options.trl.{key}: set by tunebridge for parity, override ignored")
    for key, value in redact(overrides).items():
        notes.append(f"backend_options.trl.{key}={value!r} overrides {config.get(key, '(TRL default)')!r}")
    config.update(overrides)
    if spec.task == "sft" and spec.sft.packing and spec.data_kind != "text" and spec.sft.completion_only_loss:
        notes.append("packing with completion-only loss: TRL packs the completion masks along with the tokens")
    if spec.training.precision == "bf16" and not cuda:
        notes.append("bf16 on CPU runs as autocast (use_cpu=True); parameters stay float32")
    if algorithm == "kto":
        pairs = f"the {len(examples.train)} pairs" if examples else "each pair"
        notes.append(f"kto: {pairs} become twice as many unpaired examples (prompt + chosen: desirable, prompt + "
                     "rejected: undesirable), each chosen row followed by its rejected row; the steps count those rows")
    if spec.task == "preference":
        notes.append(f"preference.algorithm {algorithm}: reference model: {reference_model(spec)}")
    if spec.task == "rl":
        if has_eval:
            unhonoured.append("data.eval_fraction: GRPO/RLOO runs here do not evaluate; held-out prompts are unused")
        notes.append(f"training.max_length is not applied to {algorithm.upper()} prompts (TRL has no prompt limit); "
                     "completions are capped by rl.generation.max_new_tokens")
        if spec.rl.kl_coef is None:
            notes.append(f"rl.kl_coef unset: TRL's default beta={DEFAULT_KL[algorithm]} for {algorithm}")
    native = {
        "trainer": trainer,
        config_name: config,
        "peft.LoraConfig": lora_kwargs(spec),
        "dataset_columns": _columns(algorithm, examples),
        "eos": {"sft": "appended by tunebridge (the core tokenises: tunebridge.tokenize)",
                "reward": "appended by TRL"}.get(algorithm, "appended by TRL" if spec.task == "preference"
                                                 else "generation stops at EOS"),
        "evaluate_at_end": has_eval and spec.task != "rl",
    }
    if spec.task == "preference":
        native["reference_model"] = reference_model(spec)
    if spec.task == "rl":
        native["reward_funcs"] = [source.model or source.model_dump(mode="json")["function"]
                                  for source in spec.rl.reward]
    return native, unhonoured, notes


def _columns(algorithm: str, examples: Examples | None) -> list[str] | None:
    if examples is None:
        return None
    if algorithm == "sft":
        return ["input_ids", "labels"]
    if algorithm == "kto":
        return ["prompt", "completion", "label"]
    return examples.columns


def unpaired_rows(pairs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """KTO's unpaired examples: each pair's chosen answer (label True), then its rejected one (label False).

    Interleaved, so that every batch of two or more rows holds desirable and undesirable examples (TRL's own
    ``unpair_preference_dataset`` puts all the chosen rows of a map batch first)."""
    rows = []
    for pair in pairs:
        rows.append({"prompt": pair["prompt"], "completion": pair["chosen"], "label": True})
        rows.append({"prompt": pair["prompt"], "completion": pair["rejected"], "label": False})
    return rows
