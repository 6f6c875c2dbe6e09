"""The neutral training spec: one format for Python, YAML and JSON, validated before any heavy import."""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from .errors import SpecError
from .feedback.spec import ArgillaSpec

Task = Literal["sft", "reward", "rl", "preference"]
PREFERENCE_ALGORITHMS = ("dpo", "kto", "orpo")
NAMED_TEMPLATES = ("instruction", "prompt-completion", "chat")
BUILTIN_MODELS = ("tiny-llama", "tiny-gpt2")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=(), validate_assignment=True)


class ModelSpec(_Strict):
    """Where the starting weights come from: a local folder / hub id, or a model tunebridge builds."""

    path: str | None = Field(None, description="Local folder or hub id of a causal LM checkpoint.")
    builtin: Literal["tiny-llama", "tiny-gpt2"] | None = Field(
        None, description="Build a tiny model and tokenizer locally (no download): Llama or GPT-2 architecture."
    )
    tokenizer: str | None = Field(None, description="Tokenizer folder or id, if not the model's own.")

    @model_validator(mode="after")
    def _one_source(self) -> ModelSpec:
        if (self.path is None) == (self.builtin is None):
            raise ValueError("give exactly one of `path` or `builtin`")
        return self

    def describe(self) -> str:
        """A short human description of the model source."""
        return f"builtin:{self.builtin}" if self.builtin else str(self.path)


def format_string_problem(fmt: str) -> str | None:
    """What is wrong with a template format string (a lone brace, a placeholder that is not a column name), with
    its position (counting from 1); None when it is fine. Literal braces are written doubled: ``{{`` and ``}}``."""
    i = 0
    while i < len(fmt):
        char = fmt[i]
        if fmt.startswith(("{{", "}}"), i):
            i += 2
            continue
        if char == "}":
            return (f"lone '}}' at position {i + 1} (near {_near(fmt, i)}): write '}}}}' for a literal brace, or "
                    "open the placeholder with '{'")
        if char == "{":
            close, reopen = fmt.find("}", i + 1), fmt.find("{", i + 1)
            if close == -1 or (reopen != -1 and reopen < close):
                return (f"lone '{{' at position {i + 1} (near {_near(fmt, i)}): write '{{{{' for a literal brace, "
                        "or close the placeholder with '}'")
            field = fmt[i + 1:close]
            head, _, spec = field.partition(":")
            name, bang, conversion = head.partition("!")
            if not name.strip() or name.isdigit() or "." in name or "[" in name:
                return (f"placeholder {{{field}}} at position {i + 1} is not a column name: write {{column}} (literal "
                        "braces are written '{{' and '}}')")
            try:
                if bang and conversion not in ("r", "s", "a"):
                    raise ValueError(f"unknown conversion '!{conversion}'")
                format("", spec)  # the values are text: a spec text cannot take (e.g. ':d') fails every row
            except ValueError as exc:
                return f"placeholder {{{field}}} at position {i + 1}: {exc}"
            i = close + 1
            continue
        i += 1
    return None


def _near(fmt: str, i: int) -> str:
    return repr(fmt[max(0, i - 15):i + 15])


class DataSpec(_Strict):
    """The training data and how each row becomes a training example."""

    path: str = Field(..., description="A .jsonl/.json/.csv/.parquet file or a folder saved by `datasets` (or, "
                      "with `argilla`, an Argilla export or to_disk folder).")
    template: Literal["instruction", "prompt-completion", "chat", "preference", "prompt", "hh-dialogue"] | None = Field(
        None, description="A named template (see docs/data.md); or format strings in prompt/completion/chosen/"
        "rejected/text. Default per task: sft prompt-completion, reward preference, rl prompt."
    )
    prompt: str | None = Field(None, description="Format string for the prompt, e.g. 'Q: {question}\\nA: '.")
    completion: str | None = Field(None, description="Format string for the completion (sft), e.g. '{answer}'.")
    chosen: str | None = Field(None, description="Format string for the preferred answer (reward).")
    rejected: str | None = Field(None, description="Format string for the rejected answer (reward).")
    text: str | None = Field(None, description="Format string for plain causal-LM text (loss on all of it).")
    columns: dict[str, str] = Field(
        default_factory=dict, description="Template placeholder -> dataset column, e.g. {instruction: question}."
    )
    messages: str = Field("messages", description="Column holding the message list for the `chat` template.")
    reward: str | None = Field(
        None, description="Column holding an offline reward (a number) per row: task rl with rl.algorithm ilql."
    )
    eval_fraction: float = Field(0.0, ge=0.0, lt=1.0, description="Held-out share of the rows, split with the seed.")
    limit: int | None = Field(None, ge=1, description="Use only the first N rows.")
    argilla: ArgillaSpec | None = Field(
        None, description="Annotated Argilla records (1.x or 2.x): a recipe turns them into rows (see docs/data.md)."
    )

    @field_validator("prompt", "completion", "chosen", "rejected", "text")
    @classmethod
    def _format_string(cls, value: str | None) -> str | None:
        if value is not None:
            problem = format_string_problem(value)
            if problem:
                raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _one_template(self) -> DataSpec:
        strings = [n for n in ("prompt", "completion", "chosen", "rejected") if getattr(self, n) is not None]
        answers = [n for n in strings if n != "prompt"]
        if self.text is not None and (self.template or strings):
            raise ValueError("`text` stands alone: drop `template` and the prompt/completion/chosen/rejected strings")
        if self.template and strings and not (self.template == "instruction" and set(answers) == set(strings)
                                              and set(answers) == {"chosen", "rejected"}):
            raise ValueError(f"give either `template` or format strings ({', '.join(strings)}), not both "
                             "(only `template: instruction` combines with `chosen` + `rejected`)")
        if "completion" in answers and ({"chosen", "rejected"} & set(answers)):
            raise ValueError("`completion` (sft) and `chosen`/`rejected` (reward) do not go together")
        if ("chosen" in answers) != ("rejected" in answers):
            raise ValueError("`chosen` and `rejected` go together")
        return self

    @model_validator(mode="after")
    def _server_needs_argilla(self) -> DataSpec:
        if self.path.startswith("argilla://") and self.argilla is None:
            raise ValueError("`path: argilla://WORKSPACE/DATASET` reads a live Argilla server: add an `argilla:` "
                             "block with the recipe")
        return self

    @property
    def template_kind(self) -> str:
        """Which renderer applies: a named template, 'inline', 'inline-preference', 'inline-prompt' or 'text'.

        Without any template or format string this is '' and the task picks its default (see Spec).
        """
        if self.template:
            return self.template
        if self.text is not None:
            return "text"
        if self.chosen is not None:
            return "inline-preference"
        if self.completion is not None:
            return "inline"
        if self.prompt is not None:
            return "inline-prompt"
        return ""


# Which data templates each task can use, and its default when the data block names none.
TASK_TEMPLATES = {
    "sft": ("prompt-completion", {"instruction", "prompt-completion", "chat", "inline", "text", "hh-dialogue"}),
    "reward": ("preference", {"preference", "inline-preference", "instruction", "hh-dialogue"}),
    "rl": ("prompt", {"prompt", "inline-prompt", "instruction", "hh-dialogue"}),
    # A policy straight from preference pairs: the same data as reward.
    "preference": ("preference", {"preference", "inline-preference", "instruction", "hh-dialogue"}),
    # Offline RL (ilql) learns from finished samples with a reward each: prompt + completion + data.reward.
    "rl-offline": ("prompt-completion", {"prompt-completion", "inline", "instruction"}),
}


class TrainingSpec(_Strict):
    """Hyperparameters with one meaning on every backend."""

    epochs: float = Field(1.0, gt=0, description="Passes over the training data (ignored when max_steps is set).")
    max_steps: int | None = Field(None, ge=1, description="Optimizer steps; overrides epochs.")
    learning_rate: float = Field(2e-4, gt=0)
    batch_size: int = Field(4, ge=1, description="Examples per device per forward pass.")
    gradient_accumulation: int = Field(1, ge=1)
    max_length: int = Field(512, ge=8, description="Tokens per example; longer ones are truncated at the end.")
    seed: int = Field(42, description="Seeds weights, data order, dropout and the eval split.")
    shuffle: bool = Field(True, description="Shuffle the examples once with the seed; every backend reads that order.")
    warmup_ratio: float = Field(0.0, ge=0.0, lt=1.0)
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "linear"
    weight_decay: float = Field(0.0, ge=0.0)
    max_grad_norm: float = Field(1.0, gt=0)
    logging_steps: int = Field(1, ge=1)
    save_steps: int | None = Field(
        None, ge=1, description="Write a checkpoint every N steps (default: only the end). A checkpoint holds the "
        "whole training state (weights, optimizer, scheduler, RNG, data position): `tunebridge train --resume` "
        "continues a stopped run from the newest complete one, on a backend that resumes (trl)."
    )
    eval_steps: int | None = Field(
        None, ge=1, description="Evaluate on the held-out split every N steps (it is always evaluated at the end)."
    )
    precision: Literal["fp32", "bf16", "fp16"] = Field("fp32", description="Mixed precision; fp32 runs everywhere.")
    gradient_checkpointing: bool = False
    report_to: list[Literal["tensorboard", "mlflow", "wandb"]] = Field(
        default_factory=list, description="Experiment trackers, through each backend's own mechanism; files go to "
        "<output>/logs/ unless the tracker's store is configured (docs/tasks.md#experiment-trackers).")

    @field_validator("report_to", mode="before")
    @classmethod
    def _one_or_many_trackers(cls, value: Any) -> Any:
        if value is None or value == "none":
            return []
        if isinstance(value, str):
            return [value]
        return value

    @field_validator("report_to")
    @classmethod
    def _each_once(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))


class LoraSpec(_Strict):
    """Low-rank adapters (through peft). Without this block the whole model is trained."""

    r: int = Field(8, ge=1)
    alpha: float = Field(16, gt=0)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    target_modules: list[str] | None = Field(None, description="Default: the attention projections of the model.")
    merge: bool = Field(True, description="Save the merged model (true) or only the adapter (false).")


class LaunchSpec(_Strict):
    """How many processes train one run (torchrun). ``training.batch_size`` stays per device (process)."""

    nproc_per_node: int = Field(1, ge=1, description="Processes (devices) per node.")
    nnodes: int = Field(1, ge=1, description="Nodes (machines) in the run.")
    node_rank: int = Field(0, ge=0, description="This node's rank: 0 writes the run folder.")
    rdzv_endpoint: str | None = Field(None, description="HOST:PORT of node 0, needed with nnodes > 1.")
    strategy: Literal["ddp", "fsdp", "deepspeed-zero2", "deepspeed-zero3"] = Field(
        "ddp", description="ddp, or (on GPUs) fsdp (FSDP2), deepspeed-zero2, deepspeed-zero3.")

    @model_validator(mode="after")
    def _consistent(self) -> LaunchSpec:
        if self.node_rank >= self.nnodes:
            raise ValueError(f"launch.node_rank: {self.node_rank} is not below launch.nnodes ({self.nnodes})")
        if self.nnodes > 1:
            if not self.rdzv_endpoint:
                raise ValueError("launch.rdzv_endpoint: several nodes need HOST:PORT of node 0 to meet at")
            host, sep, port = self.rdzv_endpoint.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"launch.rdzv_endpoint: {self.rdzv_endpoint!r} is not HOST:PORT")
        return self

    @property
    def world_size(self) -> int:
        """Processes in the whole run."""
        return self.nproc_per_node * self.nnodes

    @property
    def distributed(self) -> bool:
        """True when the run has more than one process (or more than one node)."""
        return self.world_size > 1


class SFTOptions(_Strict):
    """Options of the sft task."""

    packing: bool = Field(False, description="Pack several examples into one sequence.")
    completion_only_loss: bool = Field(True, description="Loss on the completion only, not the prompt.")


class RewardOptions(_Strict):
    """Options of the reward task."""

    over_length: Literal["drop", "truncate"] = Field(
        "drop", description="Pairs longer than training.max_length: drop them (counted and reported) or truncate "
        "the answers to fit."
    )


class PreferenceOptions(_Strict):
    """Options of the preference task: a policy (causal LM) trained straight from preference pairs."""

    algorithm: Literal["auto", "dpo", "kto", "orpo"] = Field(
        "auto", description="auto = dpo. kto takes each pair as two unpaired examples (chosen desirable, "
        "rejected undesirable); orpo needs no reference model."
    )
    beta: float = Field(0.1, gt=0, description="Strength of the preference term: DPO/KTO's KL temperature towards "
                        "the reference model, ORPO's weight of the odds-ratio loss.")
    over_length: Literal["drop", "truncate"] = Field(
        "drop", description="Pairs longer than training.max_length: drop them (counted and reported) or truncate "
        "the answers to fit (the same rule as reward.over_length)."
    )

    @property
    def resolved_algorithm(self) -> str:
        """The algorithm in effect: ``auto`` is dpo on every backend."""
        return "dpo" if self.algorithm == "auto" else self.algorithm


class RewardSource(_Strict):
    """One reward: an importable function or a reward model folder, with a weight."""

    function: str | SkipJsonSchema[Callable[..., Any]] | None = Field(
        None, description="'pkg.module:function' with the signature reward(prompts, completions, **columns) -> "
        "list[float]; in Python a callable works too. Modules next to the spec file are found."
    )
    model: str | None = Field(None, description="A sequence-classification reward model folder (num_labels=1).")
    weight: float = Field(1.0, description="Weight of this reward in the sum.")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, str) or callable(value):
            return {"function": value}
        return value

    @model_validator(mode="after")
    def _one_source(self) -> RewardSource:
        if (self.function is None) == (self.model is None):
            raise ValueError("give exactly one of `function` or `model`")
        if isinstance(self.function, str) and ":" not in self.function:
            raise ValueError(f"function {self.function!r} must look like 'pkg.module:function'")
        return self

    @field_serializer("function")
    def _function_name(self, value: Any) -> str | None:
        if value is None or isinstance(value, str):
            return value
        return f"{getattr(value, '__module__', '?')}:{getattr(value, '__qualname__', repr(value))}"

    @property
    def name(self) -> str:
        """A short name for metrics: the function's name or the model folder's name."""
        if self.model:
            return Path(self.model).name or self.model
        if isinstance(self.function, str):
            return self.function.rsplit(":", 1)[-1]
        return getattr(self.function, "__name__", "reward")


class GenerationOptions(_Strict):
    """How completions are sampled during RL."""

    max_new_tokens: int = Field(32, ge=1)
    num_generations: int = Field(4, ge=2, description="Completions per prompt (the group whose rewards are compared).")
    temperature: float = Field(1.0, gt=0)
    top_p: float = Field(1.0, gt=0, le=1)


class RLOptions(_Strict):
    """Options of the rl task."""

    algorithm: Literal["auto", "grpo", "rloo", "ppo", "ilql"] = Field(
        "auto", description="auto picks the backend's default (TRL: grpo)."
    )
    reward: list[RewardSource] = Field(
        default_factory=list, description="'pkg.module:function', {model: PATH}, or a list of {function|model, weight}."
    )
    generation: GenerationOptions = Field(default_factory=GenerationOptions)
    kl_coef: float | None = Field(
        None, ge=0, description="KL penalty towards the starting model (None: the backend's default)."
    )

    @field_validator("reward", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        if isinstance(value, str | dict) or callable(value):
            return [value]
        return value


class Spec(_Strict):
    """A whole training job: task, model, data, hyperparameters, backend."""

    task: Task = Field(..., description="sft | reward | rl | preference")
    model: ModelSpec
    data: DataSpec
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    lora: LoraSpec | None = None
    sft: SFTOptions = Field(default_factory=SFTOptions)
    reward: RewardOptions = Field(default_factory=RewardOptions)
    rl: RLOptions = Field(default_factory=RLOptions)
    preference: PreferenceOptions = Field(default_factory=PreferenceOptions)
    launch: LaunchSpec = Field(default_factory=LaunchSpec)
    backend: str = Field("trl", description="Backend name; the CLI's --backend overrides it.")
    backend_options: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Per-backend native settings, passed through and shown by plan(). Keys "
        "the core owns, or that the backend would silently ignore, are refused, naming the way to get them (e.g. "
        "trl.resume_from_checkpoint: `tunebridge train --resume`; trl.seed: training.seed)."
    )
    name: str | None = Field(None, description="A name for runs of this spec (model card title).")

    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)
    _source: str | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _fits_the_task(self) -> Spec:
        default, allowed = TASK_TEMPLATES[self.template_task]
        kind = self.data.template_kind or default
        if kind not in allowed:
            names = {"inline": "prompt + completion", "inline-preference": "prompt/chosen/rejected strings",
                     "inline-prompt": "a prompt string alone", "text": "text"}
            raise ValueError(f"data: task {self.task!r} cannot use {names.get(kind, 'template ' + repr(kind))}; "
                             f"it takes: {', '.join(sorted(names.get(k, k) for k in allowed))}")
        if self.data.argilla is not None:
            self._fits_the_recipe(self.data.argilla)
        if self.pair_task == "reward" and kind == "instruction" and self.data.chosen is None:
            raise ValueError(f"data: task {self.task!r} with template instruction needs `chosen` and `rejected` "
                             "strings")
        if self.pair_task != "reward" and self.data.chosen is not None:
            raise ValueError(f"data: `chosen` and `rejected` are for tasks 'reward' and 'preference', not "
                             f"{self.task!r}")
        for block, task, default in (("sft", "sft", SFTOptions()), ("reward", "reward", RewardOptions()),
                                     ("rl", "rl", RLOptions()), ("preference", "preference", PreferenceOptions())):
            if self.task != task and getattr(self, block) != default:
                raise ValueError(f"{block}: this block is for task {task!r}, the spec's task is {self.task!r}")
        if self.task == "rl" and not self.rl.reward and self.rl.algorithm != "ilql":
            raise ValueError("rl.reward: task 'rl' needs a reward ('pkg.module:function' or {model: PATH})")
        if self.template_task == "rl-offline" and not self.data.reward:
            raise ValueError("data.reward: rl.algorithm 'ilql' learns from offline rewards: name the column")
        if self.data.reward and self.template_task != "rl-offline":
            raise ValueError("data.reward: offline rewards are for task 'rl' with rl.algorithm 'ilql'")
        return self

    def _fits_the_recipe(self, block: Any) -> None:
        tasks = block.tasks
        if self.pair_task not in tasks:
            raise ValueError(f"data.argilla.recipe: recipe {block.recipe!r} makes rows for task "
                             f"{' or '.join(map(repr, tasks))}, the spec's task is {self.task!r}")
        if block.recipe == "edited-vs-original" and self.task == "rl":
            if self.template_task != "rl-offline":
                raise ValueError("data.argilla.recipe: edited-vs-original makes rated samples (original and edit, "
                                 "each with a reward) for offline RL: set rl.algorithm: ilql")
            self._rated_samples_column(block)
            if self.data.reward is None:
                self.data.reward = "reward"  # the column the recipe writes
            elif self.data.reward != "reward":
                raise ValueError("data.reward: recipe edited-vs-original puts each sample's reward in the column "
                                 f"'reward'; leave data.reward out or set it to reward (it is {self.data.reward!r})")
        elif block.rewards is not None:
            raise ValueError("data.argilla.rewards: rated samples are for task 'rl' (rl.algorithm ilql); task "
                             f"{self.task!r} makes chosen/rejected pairs")

    def _rated_samples_column(self, block: Any) -> str:
        """The row column edited-vs-original writes each rated sample's answer to: the one the template's
        completion reads (``response`` for template instruction, ``completion`` for prompt-completion)."""
        from .templates import completion_column, resolve_template

        column = completion_column(resolve_template(self.data, self.data_kind, self.template_task))
        if column is None:
            raise ValueError("data.completion: recipe edited-vs-original puts each sample's answer (the original, "
                             "then the edit) in the one column the completion reads; this completion reads "
                             f"{self.data.completion!r}")
        if column in block.columns:
            raise ValueError(f"data.argilla.columns: {column} is made by recipe edited-vs-original (the samples' "
                             "answers, which the template's completion reads); use another name")
        return column

    @property
    def pair_task(self) -> str:
        """The task whose data this spec takes: preference reads exactly reward's pairs (every source and recipe)."""
        return "reward" if self.task == "preference" else self.task

    @property
    def over_length(self) -> str:
        """What the length rules do to a pair over max_length (reward and preference): drop or truncate."""
        return self.preference.over_length if self.task == "preference" else self.reward.over_length

    @property
    def requested_algorithm(self) -> str:
        """The algorithm the spec asks for (``auto`` where the backend picks): rl.algorithm, preference.algorithm."""
        if self.task == "rl":
            return self.rl.algorithm
        if self.task == "preference":
            return self.preference.resolved_algorithm
        return "auto"

    @property
    def template_task(self) -> str:
        """The key into TASK_TEMPLATES: the task, or 'rl-offline' for rl with an offline algorithm."""
        return "rl-offline" if self.task == "rl" and self.rl.algorithm == "ilql" else self.task

    @property
    def data_kind(self) -> str:
        """The template kind in effect, after the task's default."""
        return self.data.template_kind or TASK_TEMPLATES[self.template_task][0]

    @property
    def source(self) -> str | None:
        """The file the spec was loaded from, if any (for error messages)."""
        return self._source

    @property
    def base_dir(self) -> Path:
        """Folder that relative paths in the spec are resolved against (the spec file's folder)."""
        return self._base_dir

    def resolve_path(self, value: str) -> Path:
        """Resolve a path written in the spec relative to the spec file."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else (self._base_dir / p)

    def with_backend(self, backend: str | None) -> Spec:
        """A copy with another backend (the CLI's --backend flag)."""
        if not backend or backend == self.backend:
            return self
        new = self.model_copy(update={"backend": backend})
        new._base_dir, new._source = self._base_dir, self._source
        return new

    def with_launch(self, **changes: Any) -> Spec:
        """A copy whose ``launch`` block has ``changes`` (the CLI's --nproc-per-node, --nnodes, ...), validated."""
        changes = {k: v for k, v in changes.items() if v is not None}
        if not changes:
            return self
        try:
            launch = LaunchSpec.model_validate({**self.launch.model_dump(exclude_unset=True), **changes})
        except ValidationError as exc:
            raise SpecError([(f"launch.{p}" if not p.startswith("launch") else p, m) for p, m in _problems(exc)],
                            self._source) from None
        new = self.model_copy(update={"launch": launch})  # what the user wrote elsewhere stays as written
        new._base_dir, new._source = self._base_dir, self._source
        return new

    @property
    def world_size(self) -> int:
        """Processes that train the run (launch.nproc_per_node x launch.nnodes)."""
        return self.launch.world_size

    @property
    def global_batch_size(self) -> int:
        """Examples per optimizer step: batch_size (per device) x world size x gradient_accumulation."""
        return self.training.batch_size * self.world_size * self.training.gradient_accumulation

    def to_dict(self) -> dict[str, Any]:
        """The spec as plain data, defaults filled in."""
        return self.model_dump(mode="json")


def _did_you_mean(key: str, allowed: list[str]) -> str:
    close = difflib.get_close_matches(key, allowed, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _allowed_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    """The field names allowed at the parent of ``loc`` (best effort, for suggestions)."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int) or not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        field = current.model_fields.get(part)
        if field is None:
            return []
        ann = field.annotation
        args = [a for a in getattr(ann, "__args__", ()) if isinstance(a, type) and issubclass(a, BaseModel)]
        current = args[0] if args else ann
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _problems(exc: ValidationError) -> list[tuple[str, str]]:
    problems = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".") or "(top level)"
        if err["type"] == "extra_forbidden":
            msg = "unknown key" + _did_you_mean(str(loc[-1]), _allowed_keys(Spec, loc))
        elif err["type"] == "missing":
            msg = "required"
        else:
            msg = err["msg"].removeprefix("Value error, ")
            head, sep, rest = msg.partition(": ")
            names_field = sep and head.replace(".", "").replace("_", "").isalnum()
            if names_field and (not loc or head.startswith(path + ".")):
                path, msg = head, rest  # a whole-spec check that names its field
        problems.append((path, msg))
    return problems


def parse_spec(data: dict[str, Any], base_dir: str | Path | None = None, source: str | None = None) -> Spec:
    """Validate a spec given as a dict. Relative paths resolve against ``base_dir`` (default: cwd)."""
    if not isinstance(data, dict):
        raise SpecError([("(top level)", f"expected a mapping, got {type(data).__name__}")], source)
    try:
        spec = Spec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(_problems(exc), source) from None
    spec._base_dir = Path(base_dir).resolve() if base_dir else Path.cwd()
    spec._source = source
    return spec


def load_spec(source: str | Path | dict[str, Any] | Spec) -> Spec:
    """Load and validate a spec from a YAML/JSON file, a dict, or pass a Spec through."""
    if isinstance(source, Spec):
        return source
    if isinstance(source, dict):
        return parse_spec(source)
    path = Path(source)
    if path.is_dir():
        raise SpecError([("(file)", f"{path} is a folder, not a spec file (.yaml, .yml or .json)")], str(path))
    if not path.is_file():
        raise SpecError([("(file)", f"no such spec file: {path}")], str(path))
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SpecError([("(file)", f"cannot read {path}: {exc.strerror or exc}")], str(path)) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise SpecError([("(file)", f"not UTF-8 text: byte 0x{raw[exc.start]:02x} at offset {exc.start} (line "
                          f"{line}) cannot be decoded; save the spec as UTF-8 (a binary file is not a spec)")],
                        str(path)) from None
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:  # yaml.YAMLError / json.JSONDecodeError carry the line
        raise SpecError([("(file)", f"cannot parse: {exc}")], str(path)) from None
    return parse_spec(data, base_dir=path.parent, source=str(path))


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the spec."""
    return Spec.model_json_schema()
