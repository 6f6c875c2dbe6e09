"""Mapping the neutral spec onto an AutoTrain Advanced 0.8 ``config.yml``. Pure: imports nothing from AutoTrain.

The YAML is what ``autotrain --config`` parses (``autotrain.parser.AutoTrainConfigParser``): top-level
``task``, ``base_model``, ``project_name``, ``log``, ``backend``, a ``data`` block (path, splits,
chat_template, column_mapping), ``params`` (``LLMTrainingParams`` fields) and an optional ``hub`` block.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunebridge.errors import SpecError

if TYPE_CHECKING:  # type hints only: `tunebridge backends` must not pay for pydantic
    from tunebridge.examples import Examples
    from tunebridge.spec import Spec

AUTOTRAIN_VERSION = "0.8.36"
# backend_options.autotrain keys tunebridge understands.
OPTION_KEYS = ("python", "trainer", "project_name", "params", "push_to_hub", "hub_username")
# spec task -> the AutoTrain trainers it can run (first = default).
TRAINERS = {"sft": ("sft",), "reward": ("reward",), "preference": ("dpo", "orpo")}
POLICY_TRAINERS = ("dpo", "orpo")  # llm-dpo / llm-orpo: task preference (preference.algorithm)
ORPO_BETA = 0.1  # AutoTrain's llm-orpo passes no beta: trl 0.13's ORPOConfig default
# Params tunebridge decides itself; backend_options.autotrain.params may not override them.
CORE_OWNED = ("model", "project_name", "data_path", "train_split", "valid_split", "text_column",
              "rejected_text_column", "prompt_text_column", "token", "username", "push_to_hub", "log",
              "dpo_beta", "model_ref")
_DATA = "tunebridge writes the data and its columns itself: set data: (and data.eval_fraction) in the spec"
# Each core-owned params key, refused in backend_options.autotrain.params, with the way to get what it is for.
OWNED_HOW = {
    "model": "set model.path or model.builtin", "project_name": "set backend_options.autotrain.project_name",
    "data_path": _DATA, "train_split": _DATA, "valid_split": _DATA, "text_column": _DATA,
    "rejected_text_column": _DATA, "prompt_text_column": _DATA,
    "token": "tunebridge passes ${HF_TOKEN}: set the HF_TOKEN environment variable",
    "username": "set backend_options.autotrain.hub_username",
    "push_to_hub": "set backend_options.autotrain.push_to_hub",
    "log": "tunebridge reads AutoTrain's tensorboard scalars into metrics.jsonl, so it stays tensorboard; set "
           "training.report_to: [tensorboard] to keep the event files in logs/tensorboard",
    "dpo_beta": "set preference.beta (task preference, preference.algorithm: dpo)",
    "model_ref": "the reference model follows the core's rule (a frozen copy of the starting model; with LoRA the "
                 "adapter-disabled base), the same on every backend",
}
DATA_DIR = "data"
TOKEN_PLACEHOLDER = "${HF_TOKEN}"  # AutoTrain expands ${ENV} in hub.username / hub.token
USERNAME_PLACEHOLDER = "${HF_USERNAME}"
SCHEDULERS = {"linear": "linear", "cosine": "cosine", "constant": "constant",
              "constant_with_warmup": "constant_with_warmup"}
AUTOTRAIN_SEED = 42  # AutoTrain never passes `seed` to TrainingArguments, whose default is 42


@dataclass
class AutoTrainConfig:
    """An AutoTrain project: the config.yml content, the data columns, and what the mapping could not honour."""

    config: dict[str, Any]
    trainer: str
    columns: dict[str, str]  # data column -> the tunebridge example fields joined into it
    unhonoured: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    prediction: dict[str, Any] | None = None  # steps.predict_steps: exact steps, rows, tokens (with a tokenizer)


def options(spec: Spec) -> dict[str, Any]:
    """``backend_options.autotrain``, checked: unknown keys and literal secrets are SpecErrors."""
    opts = dict(spec.backend_options.get("autotrain", {}))
    problems = [(f"backend_options.autotrain.{k}", f"unknown option (known: {', '.join(OPTION_KEYS)})")
                for k in opts if k not in OPTION_KEYS]
    trainer = opts.get("trainer")
    if trainer in POLICY_TRAINERS and spec.task != "preference":
        problems.append(("backend_options.autotrain.trainer",
                         f"{trainer!r} trains a policy from the pairs, not a {spec.task} model: write `task: "
                         f"preference` with `preference.algorithm: {trainer}` (the same on every backend)"))
    elif trainer is not None and spec.task == "preference":
        problems.append(("backend_options.autotrain.trainer",
                         "not accepted with task preference: set preference.algorithm (dpo or orpo on AutoTrain)"))
    elif trainer is not None and trainer not in TRAINERS.get(spec.task, ()):
        allowed = ", ".join(TRAINERS.get(spec.task, ())) or "none"
        problems.append(("backend_options.autotrain.trainer",
                         f"{trainer!r} is not an AutoTrain trainer for task {spec.task!r} (allowed: {allowed})"))
    if (spec.task == "preference" and spec.preference.resolved_algorithm == "orpo"
            and spec.preference.beta != ORPO_BETA):
        problems.append(("preference.beta", f"AutoTrain's llm-orpo always uses beta {ORPO_BETA} (it passes none to "
                         "trl's ORPOConfig): leave preference.beta at 0.1, or run ORPO on trl"))
    params = opts.get("params", {})
    if not isinstance(params, dict):
        problems.append(("backend_options.autotrain.params", "must be a mapping of AutoTrain LLM parameters"))
    elif "token" in params and params["token"] not in (None, TOKEN_PLACEHOLDER):
        problems.append(("backend_options.autotrain.params.token",
                         "never put a hub token in a spec: set the HF_TOKEN environment variable instead"))
    if isinstance(params, dict):  # keys tunebridge decides are refused, not silently dropped
        said = {path for path, _ in problems}
        problems += [(path, f"set by tunebridge, not accepted: {OWNED_HOW[key]}") for key in CORE_OWNED
                     if key in params and (path := f"backend_options.autotrain.params.{key}") not in said]
    if "project_name" in opts and not valid_project_name(str(opts["project_name"])):
        problems.append(("backend_options.autotrain.project_name",
                         "AutoTrain needs letters, digits and hyphens only, at most 50 characters"))
    if problems:
        raise SpecError(problems, spec.source)
    return opts


def base_model_ref(model_path: str | Path | None, fallback: str = "") -> str:
    """What ``base_model`` says: a local model folder as an absolute path, anything else (a hub id) as given."""
    if not model_path:
        return fallback
    path = Path(model_path).expanduser()
    return str(path.resolve()) if path.exists() else str(model_path)


def valid_project_name(name: str) -> bool:
    """AutoTrain's own rule: alphanumeric once hyphens are removed, at most 50 characters."""
    return bool(name) and name.replace("-", "").isalnum() and name.isascii() and len(name) <= 50


def project_name(spec: Spec) -> str:
    """A project name AutoTrain accepts (it is also its output folder): from the option, the spec name, or the task."""
    given = spec.backend_options.get("autotrain", {}).get("project_name")
    if given:
        return str(given)
    base = spec.name or f"tunebridge-{spec.task}"
    name = re.sub(r"[^a-z0-9]+", "-", base.lower()).strip("-")[:50].strip("-")
    return name if valid_project_name(name) else f"tunebridge-{spec.task}"


def trainer_of(spec: Spec) -> str:
    """The AutoTrain trainer a spec runs: sft, reward, or (task preference) dpo / orpo."""
    if spec.task == "preference":
        return spec.preference.resolved_algorithm
    return spec.backend_options.get("autotrain", {}).get("trainer") or TRAINERS[spec.task][0]


def reference_model(spec: Spec) -> str:
    """What AutoTrain's llm-dpo compares the policy with: the core's rule (``tunebridge.planning.reference_model``),
    carried out by leaving model_ref unset (trl copies the model; with peft AutoTrain passes None)."""
    from tunebridge.planning import reference_model as rule

    return rule(spec) or ""


def epochs_for(spec: Spec, n_train: int | None, prediction: dict[str, Any] | None = None) -> tuple[int, str | None]:
    """AutoTrain's integer ``epochs`` for the spec, and a line when that is not what the spec asked.

    ``prediction`` (from ``steps.predict_steps``, counted with the run's tokenizer) makes the step count exact;
    without it, max_steps is turned into epochs over the unpacked examples, an estimate.
    """
    t = spec.training
    if t.max_steps:
        if prediction is not None:
            epochs, made = prediction["epochs"], prediction["optimizer_steps"]
            if made == t.max_steps:
                return epochs, None
            return epochs, (f"training.max_steps={t.max_steps}: AutoTrain has no max_steps; it runs {epochs} whole "
                            f"epoch(s) of {prediction['steps_per_epoch']} step(s) over {prediction['rows']} training "
                            f"rows = {made} steps")
        if not n_train:
            return 1, f"training.max_steps={t.max_steps}: AutoTrain has no max_steps; the run makes whole epochs"
        per_epoch = math.ceil(math.ceil(n_train / t.batch_size) / t.gradient_accumulation)
        epochs = max(1, math.ceil(t.max_steps / per_epoch))
        if epochs * per_epoch == t.max_steps:
            return epochs, None
        return epochs, (f"training.max_steps={t.max_steps}: AutoTrain has no max_steps; it runs {epochs} epoch(s) "
                        f"of about {per_epoch} step(s) (an estimate from the unpacked examples: `plan` counts "
                        "AutoTrain's packing exactly)")
    epochs = max(1, math.ceil(t.epochs))
    if epochs != t.epochs:
        return epochs, f"training.epochs={t.epochs}: AutoTrain takes whole epochs; it runs {epochs}"
    return epochs, None


def predict(spec: Spec, examples: Examples | None) -> dict[str, Any] | None:
    """AutoTrain's exact step count for ``examples`` (see steps.py), once the core has a tokenizer for them."""
    if examples is None or examples.tokenizer_path is None or not examples.train:
        return None
    from .steps import PACKING_TRAINERS, PAIR_TRAINERS, POLICY_PAIR_TRAINERS, predict_steps

    if trainer_of(spec) not in PACKING_TRAINERS + PAIR_TRAINERS + POLICY_PAIR_TRAINERS:
        return None
    return predict_steps(spec, examples, examples.tokenizer_path)


def _lora_params(spec: Spec, unhonoured: list[str], notes: list[str]) -> dict[str, Any]:
    if spec.lora is None:
        return {"peft": False}
    lora = spec.lora
    alpha = int(lora.alpha)
    if alpha != lora.alpha:
        unhonoured.append(f"lora.alpha={lora.alpha}: AutoTrain takes an integer, it uses {alpha}")
    if lora.target_modules:
        targets = ",".join(lora.target_modules)
    else:
        targets = "all-linear"
        unhonoured.append("lora.target_modules unset: AutoTrain adapts all linear layers (all-linear), not only "
                          "the attention projections peft picks by default; list the modules to match other backends")
    if lora.merge:
        notes.append("lora.merge: AutoTrain merges the adapter and saves the merged model in float16")
    return {"peft": True, "lora_r": lora.r, "lora_alpha": alpha, "lora_dropout": lora.dropout,
            "target_modules": targets, "merge_adapter": lora.merge, "quantization": "none"}


def _unhonoured(spec: Spec, trainer: str, examples: Examples | None) -> tuple[list[str], list[str]]:
    t = spec.training
    unhonoured: list[str] = []
    notes: list[str] = []
    if (examples is not None and examples.eval) or spec.data.eval_fraction:
        unhonoured.append("data.eval_fraction: AutoTrain drops the validation split of local data files, so the "
                          "held-out examples (exported as data/valid.jsonl) are never evaluated")
    if t.shuffle:
        unhonoured.append("training.shuffle: AutoTrain's trainer draws batches in its own random order (seed 42), "
                          "not in the order tunebridge shuffled the examples into")
    else:
        unhonoured.append("training.shuffle: false: AutoTrain's trainer shuffles the examples anyway")
    if t.seed != AUTOTRAIN_SEED:
        unhonoured.append(f"training.seed={t.seed}: AutoTrain passes the seed only to its data split; its trainer "
                          f"always seeds with {AUTOTRAIN_SEED} (tunebridge's data order, the builtin model and, "
                          "when tunebridge launches AutoTrain, the packing shuffle use the spec's seed)")
    if t.save_steps:
        unhonoured.append("training.save_steps: AutoTrain writes no checkpoints without a validation split")
    if t.eval_steps:
        unhonoured.append("training.eval_steps: AutoTrain does not evaluate local data (validation split dropped)")
    if t.precision != "fp32":
        notes.append(f"training.precision {t.precision}: AutoTrain's mixed_precision={t.precision} needs a GPU")
    for tracker in t.report_to:
        if tracker != "tensorboard":
            unhonoured.append(f"training.report_to {tracker}: the AutoTrain backend logs to tensorboard only (its "
                              "`log` takes one tracker, and tunebridge reads the tensorboard scalars)")
    if "tensorboard" in t.report_to:
        notes.append("training.report_to tensorboard: AutoTrain's event files are copied to logs/tensorboard")
    if trainer in POLICY_TRAINERS:
        notes.append(f"preference.algorithm {trainer}: llm-{trainer} trains the policy on the preference pairs "
                     f"(the result is a causal LM); reference model: {reference_model(spec)}")
        notes.append(f"llm-{trainer}: max_prompt_length and max_completion_length are set to training.max_length, "
                     "so only max_length cuts, and the core has already fitted every pair into it")
    if trainer == "reward":
        notes.append("AutoTrain's reward trainer reads only the chosen/rejected texts: tunebridge writes "
                     "prompt + answer + EOS into each")
    return unhonoured, notes


def data_columns(trainer: str, kind: str | None) -> tuple[dict[str, str], dict[str, str]]:
    """The AutoTrain column_mapping and what each exported column holds (for the README and the plan)."""
    if trainer == "sft":
        holds = {"text": "text" if kind == "text" else "prompt + completion"}
        return {"text_column": "text"}, holds
    if trainer == "reward":
        return ({"text_column": "chosen", "rejected_text_column": "rejected"},
                {"chosen": "prompt + chosen + EOS", "rejected": "prompt + rejected + EOS"})
    return ({"prompt_text_column": "prompt", "text_column": "chosen", "rejected_text_column": "rejected"},
            {"prompt": "prompt", "chosen": "chosen", "rejected": "rejected"})


def autotrain_config(spec: Spec, examples: Examples | None, base_model: str) -> AutoTrainConfig:
    """The AutoTrain config.yml for ``spec`` (data in ``./data``), what it cannot honour, and notes."""
    opts = options(spec)
    trainer = trainer_of(spec)
    t = spec.training
    unhonoured, notes = _unhonoured(spec, trainer, examples)
    prediction = predict(spec, examples)
    if prediction is not None and prediction.get("problem"):
        from tunebridge.errors import DataError

        raise DataError(f"AutoTrain cannot train on these examples: {prediction['problem']}")
    epochs, epoch_line = epochs_for(spec, len(examples.train) if examples else None, prediction)
    if epoch_line:
        unhonoured.append(epoch_line)
    params: dict[str, Any] = {
        "block_size": t.max_length,
        "model_max_length": t.max_length,
        "padding": "right",
        "epochs": epochs,
        "batch_size": t.batch_size,
        "gradient_accumulation": t.gradient_accumulation,
        "lr": t.learning_rate,
        "warmup_ratio": t.warmup_ratio,
        "scheduler": SCHEDULERS[t.lr_scheduler],
        "optimizer": "adamw_torch",
        "weight_decay": t.weight_decay,
        "max_grad_norm": t.max_grad_norm,
        "seed": t.seed,
        "logging_steps": t.logging_steps,
        "mixed_precision": "none" if t.precision == "fp32" else t.precision,
        "disable_gradient_checkpointing": not t.gradient_checkpointing,
        "quantization": "none",
        "save_total_limit": 1,
        "auto_find_batch_size": False,
    }
    params.update(_lora_params(spec, unhonoured, notes))
    if trainer in POLICY_TRAINERS:
        # trl 0.13 cuts every prompt at max_prompt_length and every answer at max_completion_length, whatever the
        # total: at max_length neither cuts a pair the core has fitted into max_length.
        params.update({"max_prompt_length": t.max_length, "max_completion_length": t.max_length})
        if trainer == "dpo":
            params["dpo_beta"] = spec.preference.beta
    user_params = dict(opts.get("params", {}))
    for key in CORE_OWNED:
        if key in user_params:
            user_params.pop(key)
            unhonoured.append(f"backend_options.autotrain.params.{key}: set by tunebridge, override ignored")
    for key, value in user_params.items():
        notes.append(f"backend_options.autotrain.params.{key}={value!r} overrides {params.get(key, '(default)')!r}")
    params.update(user_params)
    mapping, holds = data_columns(trainer, examples.kind if examples else spec.data_kind)
    has_eval = bool(examples and examples.eval)
    config: dict[str, Any] = {
        "task": f"llm-{trainer}",
        "base_model": base_model,
        "project_name": project_name(spec),
        "log": "tensorboard",
        "backend": "local",
        "data": {
            "path": DATA_DIR,
            "train_split": "train",
            "valid_split": "valid" if has_eval else None,
            "chat_template": None,
            "column_mapping": mapping,
        },
        "params": params,
    }
    if opts.get("push_to_hub"):
        config["hub"] = {"username": opts.get("hub_username") or USERNAME_PLACEHOLDER,
                         "token": TOKEN_PLACEHOLDER, "push_to_hub": True}
    if spec.model.tokenizer:
        unhonoured.append("model.tokenizer: AutoTrain loads the tokenizer from base_model; a separate tokenizer "
                          "folder is not used")
    return AutoTrainConfig(config, trainer, holds, unhonoured, notes, prediction)


def example_rows(trainer: str, rows: list[dict[str, Any]], eos: str) -> list[dict[str, str]]:
    """The tunebridge examples as the rows of AutoTrain's data file for ``trainer``."""
    out = []
    for ex in rows:
        if trainer == "sft":
            out.append({"text": ex["text"] if "text" in ex else ex["prompt"] + ex["completion"]})
        elif trainer == "reward":
            out.append({"chosen": ex["prompt"] + ex["chosen"] + eos, "rejected": ex["prompt"] + ex["rejected"] + eos})
        else:
            out.append({"prompt": ex["prompt"], "chosen": ex["chosen"], "rejected": ex["rejected"]})
    return out
