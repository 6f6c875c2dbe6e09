"""Mapping the neutral spec onto trlx's TRLConfig (as the dict ``TRLConfig.from_dict`` reads). Pure."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from tunebridge.examples import Examples
from tunebridge.execution.options import native_options
from tunebridge.redact import redact
from tunebridge.schedule import expected_optimizer_steps
from tunebridge.spec import Spec

TRAINERS = {"sft": "AccelerateSFTTrainer", "ppo": "AcceleratePPOTrainer", "ilql": "AccelerateILQLTrainer"}
METHODS = {"sft": "SFTConfig", "ppo": "PPOConfig", "ilql": "ILQLConfig"}
DEFAULT_KL = 0.05  # PPO's init_kl_coef when rl.kl_coef is unset
SFT_EVAL_TOKENS = 16  # SFT evaluation samples (generation) length
# Workarounds from the trlx notes, applied by the backend (not left to the user):
PPO_MODEL_EXTRA = {"attn_implementation": "eager", "use_cache": False}  # hydra reference branch needs both


def algorithm_of(spec: Spec) -> str:
    """sft, ppo or ilql (rl `auto` on trlx is ppo)."""
    if spec.task == "rl":
        return "ppo" if spec.rl.algorithm == "auto" else spec.rl.algorithm
    return "sft"


def max_new_tokens(spec: Spec) -> int:
    """Generation length: the RL setting, or a short one for SFT's evaluation samples."""
    return spec.rl.generation.max_new_tokens if spec.task == "rl" else SFT_EVAL_TOKENS


# backend_options.trlx keys tunebridge refuses (it owns them, or they would not do what they say), each with the way
# to get what it is for.
REFUSED_OPTIONS = {
    "train.seed": "set training.seed",
    "train.checkpoint_dir": "choose the run folder with `tunebridge train --output DIR`; checkpoints go to "
                            "DIR/work/checkpoints",
    "train.tracker": "set training.report_to: [tensorboard] (trlx logs to one tracker; files go to logs/tensorboard)",
    "train.logging_dir": "set training.report_to: [tensorboard]: its files go to the run folder's logs/tensorboard",
    "train.resume_from_checkpoint": "trlx would load the weights and optimizer but start again at step 0 and the "
                                    "start of the data; `tunebridge train --resume` continues a run exactly on "
                                    "backend trl",
}


def spec_problems(spec: Spec) -> list[tuple[str, str]]:
    """What trlx cannot run, as (field, message) pairs."""
    problems = [(f"backend_options.trlx.{key}", f"not accepted: {how}") for key, how in REFUSED_OPTIONS.items()
                if key in native_options(spec, "trlx")]
    if algorithm_of(spec) == "ppo" and _model_type(spec) == "llama":
        problems.append(("model", "trlx's PPO builds its frozen reference branch for GPT-2/GPT-J/NeoX-style models; "
                         "its Llama branch does not run on transformers 4.5x. Use a GPT-2-family model "
                         "({builtin: tiny-gpt2} for a local test) or another backend for Llama"))
    if algorithm_of(spec) == "ppo" and not spec.training.max_steps:
        problems.append(("training.max_steps", "PPO on trlx counts steps in rounds of rollouts, not epochs over the "
                         "data: give training.max_steps"))
    if spec.training.max_length <= max_new_tokens(spec):
        problems.append(("training.max_length", f"trlx needs max_length ({spec.training.max_length}) above the "
                         f"generation length ({max_new_tokens(spec)}): prompts get max_length - max_new_tokens"))
    return problems


def _model_type(spec: Spec) -> str | None:
    """The model's architecture family, when it can be known without loading anything."""
    if spec.model.builtin:
        return spec.model.builtin.removeprefix("tiny-")
    config = spec.resolve_path(spec.model.path or "") / "config.json"
    if config.is_file():
        import json

        return json.loads(config.read_text()).get("model_type")
    return None


def _scheduler(spec: Spec, total_steps: int) -> dict[str, Any]:
    lr = spec.training.learning_rate
    if spec.training.lr_scheduler == "cosine":
        return {"name": "cosine_annealing", "kwargs": {"T_max": total_steps, "eta_min": 0.0}}
    end = 0.0 if spec.training.lr_scheduler == "linear" else 1.0
    # torch's LinearLR scales the optimizer's lr: from 1.0 x lr to end x lr over total_steps.
    return {"name": "linear", "kwargs": {"start_factor": 1.0, "end_factor": max(end, 1e-12 / lr), "total_iters":
                                         total_steps}}


def total_steps_of(spec: Spec, examples: Examples | None) -> int:
    """Optimizer steps: max_steps, or epochs over the examples (the core's rule)."""
    t = spec.training
    if t.max_steps:
        return t.max_steps
    n = len(examples.train) if examples else 0
    return max(expected_optimizer_steps(n, t.batch_size, t.gradient_accumulation, t.epochs, None), 1)


def prompt_truncation(spec: Spec, examples: Examples | None) -> str:
    """What trlx cuts: PPO prompts to ``seq_length - max_new_tokens`` tokens (``max_prompt_length``), counted
    with the run's tokenizer; '' when the core's rule applies."""
    if algorithm_of(spec) != "ppo" or examples is None or examples.tokenizer_path is None:
        return ""
    from transformers import AutoTokenizer

    budget = spec.training.max_length - max_new_tokens(spec)
    tok = AutoTokenizer.from_pretrained(str(examples.tokenizer_path))
    prompts = [ex["prompt"] for ex in examples.train]
    cut = sum(len(ids) > budget for ids in tok(prompts)["input_ids"]) if prompts else 0
    return (f"prompts cut to seq_length - max_new_tokens = {budget} tokens, keeping their start "
            f"({cut} of {len(prompts)} prompts)")


def trlx_config(spec: Spec, examples: Examples | None, work_dir: Path) -> dict[str, Any]:
    """The TRLConfig dict for ``spec``."""
    t = spec.training
    algorithm = algorithm_of(spec)
    total = total_steps_of(spec, examples)
    batch = t.batch_size * t.gradient_accumulation
    g = spec.rl.generation
    train = {
        "seq_length": t.max_length,
        "epochs": max(math.ceil(t.epochs), 1) if not t.max_steps else 10_000,
        "total_steps": total,
        "batch_size": batch,
        "minibatch_size": t.batch_size if t.gradient_accumulation > 1 else None,
        "checkpoint_interval": t.save_steps or 10**9,
        "eval_interval": t.eval_steps or total,
        "pipeline": "PromptPipeline",
        "trainer": TRAINERS[algorithm],
        "tracker": "tensorboard" if "tensorboard" in t.report_to else None,
        "logging_dir": str(work_dir.parent / "logs" / "tensorboard") if "tensorboard" in t.report_to else None,
        "checkpoint_dir": str(work_dir / "checkpoints"),
        "save_best": False,
        "save_optimizer": False,  # trlx's PPO/ILQL wrappers cannot save optimizer state with tied weights
        "seed": t.seed,
        "project_name": "tunebridge",
    }
    model: dict[str, Any] = {"model_path": "<model>", "model_arch_type": "causal", "num_layers_unfrozen": -1}
    if algorithm == "ppo":
        model["num_layers_unfrozen"] = 1  # >= 1: with -1 trlx's frozen reference head skips the first block
        model["model_extra_configs"] = dict(PPO_MODEL_EXTRA)
    if algorithm == "sft":
        method: dict[str, Any] = {"gen_kwargs": {"max_new_tokens": SFT_EVAL_TOKENS, "top_k": 0, "top_p": 1.0,
                                                 "do_sample": True}}
    elif algorithm == "ppo":
        method = {
            "ppo_epochs": 4, "num_rollouts": batch, "chunk_size": batch,
            "init_kl_coef": spec.rl.kl_coef if spec.rl.kl_coef is not None else DEFAULT_KL,
            "target": None, "horizon": 10000, "gamma": 1.0, "lam": 0.95, "cliprange": 0.2, "cliprange_value": 0.2,
            "vf_coef": 1.0, "scale_reward": "ignored", "ref_mean": None, "ref_std": None, "cliprange_reward": 10.0,
            "gen_kwargs": {"max_new_tokens": g.max_new_tokens, "top_k": 0, "top_p": g.top_p,
                           "temperature": g.temperature, "do_sample": True},
        }
    else:
        method = {"tau": 0.7, "gamma": 0.99, "cql_scale": 0.1, "awac_scale": 1.0, "alpha": 0.001, "beta": 0.0,
                  "steps_for_target_q_sync": 5, "two_qs": True,
                  "gen_kwargs": {"max_new_tokens": g.max_new_tokens, "top_k": 20, "beta": 1.0,
                                 "temperature": g.temperature}}
    method["name"] = METHODS[algorithm]
    return {
        "train": train,
        "model": model,
        # SFT batches are padded on the right like every other backend; PPO/ILQL generate, so they pad left.
        "tokenizer": {"tokenizer_path": "<tokenizer>", "padding_side": "right" if algorithm == "sft" else "left",
                      "truncation_side": "right"},
        "optimizer": {"name": "adamw", "kwargs": {"lr": t.learning_rate, "betas": [0.9, 0.999], "eps": 1e-8,
                                                  "weight_decay": t.weight_decay}},
        "scheduler": _scheduler(spec, total),
        "method": method,
    }


def apply_overrides(config: dict[str, Any], overrides: dict[str, Any]) -> list[str]:
    """Apply ``backend_options.trlx`` as dotted keys ("method.ppo_epochs": 2); returns notes."""
    notes = []
    for dotted, value in overrides.items():
        section, _, key = dotted.partition(".")
        if section not in config or not key:
            from tunebridge.errors import SpecError

            raise SpecError([(f"backend_options.trlx.{dotted}", f"use 'section.key' with a section of "
                              f"{', '.join(sorted(config))} (e.g. 'method.ppo_epochs')")])
        target = config[section]
        *parents, leaf = key.split(".")
        for part in parents:
            target = target.setdefault(part, {})
        notes.append(f"backend_options.trlx.{dotted}={redact({leaf: value})[leaf]!r} overrides "
                     f"{target.get(leaf, '(trlx default)')!r}")
        target[leaf] = value
    return notes


def native_config(spec: Spec, examples: Examples | None, work_dir: Path) -> tuple[dict[str, Any], list[str], list[str]]:
    """The TRLConfig dict plus what trlx gets as data, settings not honoured, and notes."""
    config = trlx_config(spec, examples, work_dir)
    unhonoured: list[str] = []
    notes = apply_overrides(config, native_options(spec, "trlx"))
    t = spec.training
    algorithm = algorithm_of(spec)
    if t.warmup_ratio:
        unhonoured.append("training.warmup_ratio: trlx's schedulers (linear, cosine_annealing) have no warmup")
    unhonoured.append(f"training.max_grad_norm={t.max_grad_norm}: trlx 0.7 never clips gradients (other backends do)")
    if examples is not None and examples.eval:
        unhonoured.append("data.eval_fraction: the trlx backend does not evaluate on the held-out split")
    if t.precision != "fp32":
        unhonoured.append(f"training.precision {t.precision!r}: the trlx backend trains in fp32")
    if t.gradient_checkpointing:
        unhonoured.append("training.gradient_checkpointing: not available through trlx's config")
    for tracker in t.report_to:
        if tracker != "tensorboard":
            unhonoured.append(f"training.report_to {tracker}: the trlx backend logs to tensorboard only (trlx takes "
                              "one tracker, and starts W&B online)")
    if spec.task == "sft" and not spec.sft.completion_only_loss and spec.data_kind != "text":
        unhonoured.append("sft.completion_only_loss: false — trlx masks the prompt of [prompt, completion] samples "
                          "(use a `text` template for loss on everything)")
    if algorithm == "ppo":
        notes.append("PPO: batch_size counts prompts; each round of batch_size rollouts feeds ppo_epochs=4 optimizer "
                      "steps; rl.generation.num_generations does not apply")
        notes.append("PPO: num_layers_unfrozen=1: only the top block, the final norm and the heads train (trlx's "
                      "frozen reference branch shares the rest)")
    if algorithm == "sft":
        notes.append("SFT: trlx reads the examples in the core's order; its loss runs with the model in train "
                     "mode (dropout on), as on the other backends")
    else:
        notes.append(f"{algorithm.upper()}: trlx computes the loss with the model in eval mode, so the model's "
                     "dropout does not apply")
        notes.append(f"{algorithm.upper()}: trlx shuffles its rollouts/samples itself (seeded with training.seed), "
                     "whatever training.shuffle says")
    data = {"sft": "samples=[[prompt, completion], ...] (or plain text)", "ppo": "prompts=[{prompt, **columns}]",
            "ilql": "samples=[[prompt, completion], ...] + rewards (from data.reward)"}[algorithm]
    native = {"trainer": f"trlx.train ({config['train']['trainer']})", "TRLConfig": config, "data": data}
    if spec.task == "rl" and algorithm == "ppo":
        native["reward_fn"] = [source.model or source.model_dump(mode="json")["function"]
                               for source in spec.rl.reward]
    return native, unhonoured, notes
