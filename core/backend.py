"""What a backend is: its capabilities, its status, and the calls the core makes on it.

A backend module must not import its framework at top level: ``check()`` reads package metadata only,
and ``plan``/``train`` import the framework when called.
"""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

if TYPE_CHECKING:
    from .examples import Examples
    from .progress import RunReporter
    from .spec import Spec

StatusKind = Literal["ready", "missing", "broken", "not-implemented"]
Launcher = Literal["python", "command"]
STRATEGIES = ("ddp", "fsdp", "deepspeed-zero2", "deepspeed-zero3")  # launch.strategy values


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do. The core checks a spec against these before anything runs."""

    tasks: frozenset[str] = frozenset()
    algorithms: dict[str, tuple[str, ...]] = field(default_factory=dict)  # task -> algorithms, first = default
    peft: bool = False
    packing: bool = False
    unpacked: bool = True  # False for a backend that always packs examples into blocks
    completion_only_loss: bool = False
    plain_text: bool = False
    precisions: frozenset[str] = frozenset({"fp32"})
    gradient_checkpointing: bool = False
    first_batch: bool = False  # can show its first training batch (for masking / loss parity checks)
    # launch.strategy values it trains under on several processes (torchrun); empty: one process only
    distributed: frozenset[str] = frozenset()
    resume: bool = False  # continues a run from its checkpoint (TrainingJob.resume_from): optimizer, RNG, data position

    def resolve_algorithm(self, task: str, requested: str = "auto") -> str:
        """The algorithm a run of ``task`` uses: ``requested``, or the backend's default for ``auto``."""
        if requested != "auto":
            return requested
        choices = self.algorithms.get(task, ())
        return choices[0] if choices else task

    def to_dict(self) -> dict[str, Any]:
        """Plain data for `tunebridge backends --json`."""
        return {
            "tasks": sorted(self.tasks),
            "algorithms": {k: list(v) for k, v in self.algorithms.items()},
            "peft": self.peft,
            "packing": self.packing,
            "unpacked": self.unpacked,
            "completion_only_loss": self.completion_only_loss,
            "plain_text": self.plain_text,
            "precisions": sorted(self.precisions),
            "gradient_checkpointing": self.gradient_checkpointing,
            "first_batch": self.first_batch,
            "distributed": [s for s in STRATEGIES if s in self.distributed],
            "resume": self.resume,
        }


@dataclass
class BackendStatus:
    """Whether a backend can run here, and why not."""

    kind: StatusKind
    detail: str = ""
    versions: dict[str, str | None] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        """True when the backend can train in this environment."""
        return self.kind == "ready"

    def describe(self) -> str:
        """One line for humans."""
        return self.kind if not self.detail else f"{self.kind}: {self.detail}"


@dataclass
class Plan:
    """What a backend would run: its native configuration and the spec settings it cannot honour.

    A backend fills ``native_config``, ``unhonoured`` and ``notes``; it sets ``optimizer_steps``,
    ``train_rows`` and entries of ``effective`` only where it departs from the neutral rule (packing, whole
    epochs, its own data order ...). The core fills the rest (see ``tunebridge.planning``): the example
    counts, the steps by the neutral rule, the normalised ``effective`` settings and the ``differences``
    (spec defaults adapted to this backend).
    """

    backend: str
    native_config: dict[str, Any]
    unhonoured: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    optimizer_steps: int | None = None  # exact optimizer steps the run will make
    train_rows: int | None = None  # sequences per epoch the trainer draws batches from (after packing, drops)
    tokens_per_epoch: int | None = None  # tokens in those sequences
    train_examples: int | None = None
    eval_examples: int | None = None
    truncation: str = ""
    effective: dict[str, Any] = field(default_factory=dict)
    differences: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (``plan --json``, run.json ``plan``)."""
        return {"backend": self.backend, "optimizer_steps": self.optimizer_steps, "train_examples": self.train_examples,
                "eval_examples": self.eval_examples, "train_rows": self.train_rows,
                "tokens_per_epoch": self.tokens_per_epoch, "truncation": self.truncation,
                "effective": self.effective, "differences": self.differences, "unhonoured": self.unhonoured,
                "notes": self.notes, "native_config": self.native_config}


@dataclass
class TrainingJob:
    """Everything a backend needs to train: resolved paths and the rendered, ordered examples."""

    spec: Spec
    examples: Examples
    model_path: Path
    tokenizer_path: Path
    output_dir: Path
    reporter: RunReporter
    plan: Plan | None = None  # the plan the core computed once (native_config, counts); a backend reuses it
    # A resumed run: the checkpoint folder (under work_dir) to continue from, with the whole training state.
    resume_from: Path | None = None

    @property
    def model_dir(self) -> Path:
        """Where the backend must save the final model (and tokenizer)."""
        return self.output_dir / "model"

    @property
    def work_dir(self) -> Path:
        """Scratch space inside the output folder (checkpoints, native logs)."""
        return self.output_dir / "work"


@dataclass
class BackendOutput:
    """What a backend reports after training. Metrics use the neutral names (see progress.METRIC_NAMES)."""

    metrics: dict[str, Any]
    native_config: dict[str, Any]
    model_format: Literal["full", "merged", "adapter"] = "full"
    global_step: int = 0
    world_size: int | None = None  # processes the trainer itself saw (None: not reported, one process assumed)
    distributed_type: str | None = None  # what the trainer ran as (e.g. accelerate's MULTI_CPU, MULTI_GPU, FSDP)


@dataclass
class FrameworkCommand:
    """A framework's own command line that trains a job (``launcher = "command"`` backends).

    The core runs ``argv`` through its one process streamer (redaction, timeout, signals, process-group stop),
    writes its output to ``<output>/<log_name>``, hands every line to ``on_line`` and, when it exits, calls
    ``finish(returncode, log_path)`` for the result.
    """

    argv: list[str]
    cwd: Path
    env: dict[str, str]
    log_name: str
    on_line: Callable[[str], None]
    finish: Callable[[int, Path], BackendOutput]


def _required(method: Callable) -> Callable:
    """Mark a base method a concrete backend must override (which one depends on its ``launcher``)."""
    method.__tunebridge_required__ = True  # type: ignore[attr-defined]
    return method


class BackendMeta(ABCMeta):
    """``Backend``'s metaclass: an ABC whose required methods depend on ``launcher``.

    ``plan`` is always abstract; ``train`` is required of a ``launcher = "python"`` backend and ``command`` of a
    ``launcher = "command"`` one. A class missing one cannot be instantiated (TypeError naming the methods), so
    the plugin host refuses it when it is registered.
    """

    def __new__(mcls, name, bases, namespace, **kwargs):
        cls = super().__new__(mcls, name, bases, namespace, **kwargs)
        needed = "command" if getattr(cls, "launcher", "python") == "command" else "train"
        method = getattr(cls, needed, None)
        if bases and getattr(method, "__tunebridge_required__", False):
            cls.__abstractmethods__ = frozenset({*cls.__abstractmethods__, needed})
        return cls


def checked_status(backend: Backend) -> BackendStatus:
    """``backend.check()``, with an exception turned into a ``broken`` status naming it (one broken backend
    never takes ``tunebridge backends``, ``validate`` or the other backends down)."""
    try:
        status = backend.check()
    except Exception as exc:
        return BackendStatus("broken", f"check() raised {type(exc).__name__}: {exc}")
    if not isinstance(status, BackendStatus):
        return BackendStatus("broken", f"check() returned {type(status).__name__}, not a BackendStatus")
    return status


class Backend(metaclass=BackendMeta):
    """Base class for backends (an ABC). Subclasses set ``name``/``capabilities`` and implement the methods:
    ``plan`` always, ``train`` (``launcher = "python"``) or ``command`` (``launcher = "command"``).

    ``launcher`` says what the backend needs to run; the core's execution layer (tunebridge.execution) picks how:

    - ``"python"`` (default): ``train(job)`` is Python. It runs in this interpreter, in another one (the worker,
      when ``backend_options.<name>.python`` or ``$TUNEBRIDGE_<NAME>_PYTHON`` names one), or on every rank under
      torchrun (``launch:``, when ``capabilities.distributed`` lists the strategy).
    - ``"command"``: the backend trains by running its framework's own CLI in the named interpreter's
      environment: it implements ``command(job, python)`` and ``environment_status(python)`` instead of
      ``train``.
    """

    name: ClassVar[str] = ""
    capabilities: ClassVar[Capabilities] = Capabilities()
    install_hint: ClassVar[str] = ""
    description: ClassVar[str] = ""
    launcher: ClassVar[Launcher] = "python"

    def check(self) -> BackendStatus:
        """Is the backend usable in this interpreter? Cheap: read metadata, never import the framework."""
        return BackendStatus("ready")

    def environment_status(self, python: Path | None) -> BackendStatus:
        """``launcher = "command"``: is ``python``'s environment (None: none configured) able to run the command?"""
        return self.check()

    @_required
    def command(self, job: TrainingJob, python: Path) -> FrameworkCommand:
        """``launcher = "command"``: write what the framework's CLI reads and return the command that trains."""
        raise NotImplementedError

    def check_spec(self, spec: Spec) -> None:
        """Backend-specific checks of a spec, run by `validate` and before training; raise SpecError."""

    @abstractmethod
    def plan(self, spec: Spec, examples: Examples | None = None) -> Plan:
        """The native configuration this backend would run for ``spec``; no side effects."""
        raise NotImplementedError

    @_required
    def train(self, job: TrainingJob) -> BackendOutput:
        """Train; save the model and tokenizer to ``job.model_dir``; report each logged step to ``job.reporter``."""
        raise NotImplementedError

    def first_batch(self, job: TrainingJob) -> dict[str, list[list[int]]]:
        """The first training batch as the backend would feed it: ``input_ids`` and ``labels`` (-100 = no loss)."""
        raise NotImplementedError

    def can_export(self) -> bool:
        """True when the backend implements ``export``."""
        return type(self).export is not Backend.export

    def export(self, spec: Spec, examples: Examples, output_dir: Path, model_path: Path | None = None) -> Path:
        """Write a project the framework's own CLI can run into ``output_dir``; returns its main file. Optional.

        ``examples`` are final (length rules applied); ``model_path`` is the resolved base model folder.
        """
        from .errors import UnsupportedFeature

        raise UnsupportedFeature(self.name, "export")
