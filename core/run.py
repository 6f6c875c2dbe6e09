"""A Run: one spec on one backend, orchestrated: validate -> plan -> prepare -> execute -> finish.

How the backend runs (this interpreter, a worker, torchrun, its own CLI) is the execution layer's job
(tunebridge.execution); the run folder's creation and lock are tunebridge.run_folder's.
"""

from __future__ import annotations

import contextlib
import errno
import json
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .backend import Backend, BackendOutput, Plan, TrainingJob, checked_status
from .errors import BackendUnavailable, RunFailed, TunebridgeError
from .examples import Examples, Preparing, prepare_examples
from .execution import Executor, executor_for
from .files import WriteError, folder_contents, write_atomic
from .hf_compat import make_tokenizer_portable
from .lock import OutputLock
from .memory import PeakMemory
from .modelcard import model_card
from .planning import complete_plan, examples_seen
from .plugins import Registry, get_registry
from .prepare import check_model_source, finish_examples, protected_paths, resolve_model
from .progress import RunReporter, note, remove_empty_dirs, run_warnings, summarise
from .redact import redact, scrub_text
from .result import TrainResult
from .resume import ResumePoint, metrics_text, resume_point
from .rewards import check_rewards
from .run_folder import prepare_output_dir
from .signals import interrupt_on_signals, interrupted_by
from .spec import Spec, load_spec
from .support import Difference, adapt_to_backend

ProgressCallback = Callable[[int, int | None, dict], None]
WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG)  # a backend's OSError that means "disk"


def saved_model_problem(model_dir: Path) -> str | None:
    """Why ``model_dir`` holds no model ``from_pretrained`` can load (None: it holds one). Reads files only: a
    ``config.json`` with a ``model_type`` and weights, or a PEFT adapter (``adapter_config.json`` + weights)."""
    if not model_dir.is_dir():
        return f"saved nothing in {model_dir}"
    names = {p.name for p in model_dir.iterdir()}
    weights = [n for n in names if n.endswith((".safetensors", ".bin", ".pt", ".pth"))
               or n.endswith(".safetensors.index.json") or n.endswith(".bin.index.json")]
    if "adapter_config.json" in names:
        if not any(n.startswith("adapter_model") for n in weights):
            return f"{model_dir} has adapter_config.json but no adapter weights (adapter_model.safetensors)"
        return None
    if "config.json" not in names:
        return f"{model_dir} holds no loadable model (no config.json or adapter_config.json)"
    try:
        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"{model_dir / 'config.json'} cannot be read: {exc}"
    if not isinstance(config, dict) or "model_type" not in config:
        return f"{model_dir / 'config.json'} is not a transformers model config (no model_type)"
    if not weights:
        return f"{model_dir} has a config.json but no weights (model.safetensors)"
    return None


class Run:
    """One spec on one backend. ``backend`` overrides ``spec.backend``.

    ``launch`` overrides the spec's ``launch`` block (``{"nproc_per_node": 2}``: one run on two processes).
    ``preparing(stage, done, total)``, when given, hears how data preparation goes: ``reading`` (done None,
    then the rows read), ``rendering`` and ``tokenising`` (rows done of total), ``building the builtin model``.
    """

    def __init__(self, spec: Spec | str | Path | dict, backend: str | None = None, registry: Registry | None = None,
                 preparing: Preparing | None = None, launch: dict[str, Any] | None = None):
        self.spec = load_spec(spec).with_backend(backend).with_launch(**(launch or {}))
        self.preparing = preparing
        self.requested_spec = self.spec  # as the user wrote it; ``spec`` becomes what this backend runs
        self.differences: list[Difference] = []
        self.registry = registry or get_registry()
        self.backend: Backend = self.registry.get(self.spec.backend)
        self.executor: Executor = executor_for(self.backend, self.spec)
        self._prepared: tuple[Path, Path, Examples] | None = None
        self.notes: list[str] = []  # said on stderr and kept in run.json (a stale lock taken over, a cache rebuilt)
        self.resumed_from: str | None = None  # the checkpoint a resumed run continues from (run.json resumed_from)

    def _protected_paths(self) -> list[Path]:
        return protected_paths(self.spec)

    def check_support(self) -> None:
        """Fail fast (UnsupportedFeature, SpecError) when the backend cannot do what the spec asks.

        Defaults the backend cannot honour are adapted: ``spec`` becomes the spec this backend runs and
        ``differences`` lists what changed (see tunebridge.support).
        """
        self.spec, self.differences = adapt_to_backend(self.requested_spec, self.backend, self.registry)
        self.executor.check_spec(self.spec)

    def check_model_source(self) -> None:
        """A model path written as a local path must exist (anything else is looked up as a hub id), and a local
        folder must hold a model (config.json) or a tokenizer."""
        check_model_source(self.spec)

    def validate(self) -> Examples:
        """Check spec, backend capabilities and data, without importing torch. Returns the rendered examples."""
        self.check_support()
        self._require_implemented()
        self.check_model_source()
        if self.spec.task == "rl":
            check_rewards(self.spec)
        return prepare_examples(self.spec, progress=self.preparing)

    def plan(self) -> Plan:
        """What the backend will run (nothing is trained): native config, exact optimizer steps, example counts,
        the normalised settings it uses and the defaults it adapts. Builds a builtin model (cached) to count
        tokens with the run's own tokenizer."""
        _, _, examples = self.prepared(self.validate())
        return self._plan(examples)

    def _plan(self, examples: Examples) -> Plan:
        plan = self.backend.plan(self.spec, examples)
        plan.notes.extend(self.executor.notes())
        complete_plan(plan, self.spec, examples, self.differences)
        plan.native_config = redact(plan.native_config)
        return plan

    def _require_ready(self) -> None:
        self._require_implemented()
        status = self.executor.status()
        if not status.ready:
            installable = status.kind in ("missing", "broken") and self.executor.install_hint
            hint = f"\n  install: {self.executor.install_hint}" if installable else ""
            raise BackendUnavailable(f"backend {self.backend.name!r} cannot run here ({status.describe()}){hint}")

    def _require_implemented(self) -> None:
        status = checked_status(self.backend)
        if status.kind == "not-implemented":
            raise BackendUnavailable(f"backend {self.backend.name!r} cannot run any spec yet ({status.describe()})")

    def training_versions(self) -> dict[str, str | None]:
        """The versions of what trains: the backend's own environment when it runs in another one, else this
        interpreter's; never a mix of the two."""
        return self.executor.versions()

    def _failure(self, exc: BaseException) -> str:
        if isinstance(exc, TunebridgeError):
            return scrub_text(str(exc).split("\n(what the run wrote")[0])
        return scrub_text(f"training on {self.backend.name!r} failed: {type(exc).__name__}: {exc}")

    def _record(self, status: str, started: float, examples: Examples, **extra: Any) -> dict[str, Any]:
        if self.notes:
            extra = {"notes": list(self.notes), **extra}
        if self.resumed_from:
            extra = {"resumed_from": self.resumed_from, **extra}
        record = {
            "status": status,
            "backend": self.backend.name,
            "task": self.spec.task,
            "algorithm": self.backend.capabilities.resolve_algorithm(self.spec.task, self.spec.requested_algorithm),
            "seed": self.spec.training.seed,
            "spec": self.spec.to_dict(),
            "differences": [d.to_dict() for d in self.differences],
            "versions": self.training_versions(),
            "execution": self.executor.describe(),
            "data": {**examples.report, "template_strings": examples.template.describe() if examples.template else {}},
            "wall_time_s": round(time.monotonic() - started, 3),
            **extra,
        }
        return redact(record)

    def prepared(self, examples: Examples) -> tuple[Path, Path, Examples]:
        """The resolved model and tokenizer folders and the final examples (chat rendered, length rules applied);
        computed once per Run."""
        if self._prepared is None:
            model_path, tokenizer_path = resolve_model(self.spec, examples, self.preparing, self.notes)
            self._prepared = (model_path, tokenizer_path,
                              finish_examples(self.spec, examples, tokenizer_path, self.preparing))
        return self._prepared

    def _prepare(self, out: Path, reporter: RunReporter, examples: Examples, plan: Plan | None = None) -> TrainingJob:
        model_path, tokenizer_path, examples = self.prepared(examples)
        if plan is not None and plan.optimizer_steps:
            reporter.set_total_steps(plan.optimizer_steps)
        return TrainingJob(self.spec, examples, model_path, tokenizer_path, out, reporter, plan=plan)

    def first_batch(self) -> dict[str, Any]:
        """The backend's first SFT training batch (``input_ids``, ``labels``) and the examples it came from."""
        import tempfile

        if self.spec.task != "sft":
            raise TunebridgeError(f"first_batch shows SFT batches; this spec's task is {self.spec.task!r}")

        self._require_ready()
        examples = self.validate()
        if not self.executor.in_process:
            raise TunebridgeError(f"first_batch inspects the backend in this interpreter; {self.backend.name!r} runs "
                                  f"through the {self.executor.kind} executor here (capabilities.first_batch is off)")
        with tempfile.TemporaryDirectory(prefix="tunebridge-batch-") as tmp:
            job = self._prepare(Path(tmp), RunReporter(Path(tmp) / "metrics.jsonl"), examples)
            batch = self.backend.first_batch(job)
        return {**batch, "examples": job.examples.train[: len(batch["input_ids"])],
                "tokenizer_path": str(job.tokenizer_path)}

    def export(self, output_dir: str | Path, overwrite: bool = False) -> Path:
        """Write a project the backend's own tool runs (config + rendered data + README); returns its main file.

        Unsupported features fail before anything is written. The examples are the ones training would use.
        """
        from .errors import UnsupportedFeature

        out = Path(output_dir)
        if not self.backend.can_export():
            exporters = [name for name, item in self.registry.backends.items() if item.backend.can_export()]
            raise UnsupportedFeature(self.backend.name, "export", exporters)
        examples = self.validate()
        _, _, examples = self.prepared(examples)
        self._plan(examples)  # mapping problems surface before the folder is touched
        with interrupt_on_signals(), prepare_output_dir(out, overwrite, protect=self._protected_paths()) as lock:
            self._say_lock_note(lock)
            job = self._prepare(out, RunReporter(out / "metrics.jsonl"), examples)
            try:
                return self.backend.export(self.spec, job.examples, out, model_path=job.model_path)
            except OSError as exc:
                raise WriteError(exc.filename or out, exc, folder_contents(out)) from None

    def write_data(self, path: str | Path, split: str = "train",
                   overwrite: bool = False) -> tuple[Path, int, Examples]:
        """Write the examples this run would train on (rendered, split, length-checked) to ``path`` (.csv, .jsonl
        or .parquet); ``split`` is train, eval or all. Returns the file, the rows written and the examples."""
        from .data_export import columns_for, file_format, rows_for, write_rows

        path = Path(path)
        file_format(path)  # a bad extension fails before the data is prepared
        _, _, examples = self.prepared(self.validate())
        columns = columns_for(self.spec.task, examples.kind, self.spec.template_task == "rl-offline")
        rows = rows_for(examples, columns, split)
        return write_rows(rows, columns, path, overwrite), len(rows), examples

    def _say_lock_note(self, lock: OutputLock) -> None:
        if lock.note:
            self.notes.append(lock.note)
            note(lock.note)
        if lock.deleting:  # already said on stderr, before deleting
            self.notes.append(lock.deleting)

    def train(self, output_dir: str | Path, overwrite: bool = False,
              progress: ProgressCallback | None = None, preparing: Preparing | None = None,
              resume: bool = False) -> TrainResult:
        """Train and write ``output_dir`` (model/, run.json, metrics.jsonl, README.md).

        ``progress(step, total, record)`` hears each logged step; ``preparing`` (see ``Run``) the data preparation.
        The folder is locked for the run's life (a second run into it is refused); SIGTERM and SIGHUP stop the
        run like Ctrl-C (``KeyboardInterrupt``; run.json says ``interrupted``, naming the signal).
        ``resume`` continues the run in ``output_dir`` from its newest complete checkpoint (see tunebridge.resume).
        """
        out = Path(output_dir)
        if preparing is not None:
            self.preparing = preparing
        if resume:
            self._require_resumable(out, overwrite)
        with interrupt_on_signals():
            self.check_support()  # what the backend cannot do is said before whether it is installed here
            self._require_ready()
            examples = self.validate()
            _, _, examples = self.prepared(examples)
            plan = self._plan(examples)
            if self.spec.launch.node_rank > 0:
                return self._train_other_node(out, examples, plan)
            with prepare_output_dir(out, overwrite, protect=self._protected_paths(), keep=resume) as lock:
                self._say_lock_note(lock)
                point = self._resume_point(out, plan) if resume else None
                return self._train(out, examples, plan, progress, point)

    def _require_resumable(self, out: Path, overwrite: bool) -> None:
        """--resume is refused before anything is read or touched: with --overwrite, on a backend that cannot
        resume, or into a folder no run started in."""
        from .errors import UnsupportedFeature
        from .resume import previous_run

        if overwrite:
            raise TunebridgeError("--resume continues the run in the output folder and --overwrite deletes it: "
                                  "pass one of them")
        if self.spec.launch.nnodes > 1:
            raise TunebridgeError("--resume continues a run on one node (its checkpoints are in node 0's run folder); "
                                  "a run over several nodes cannot resume yet: start it again with --overwrite")
        if not self.backend.capabilities.resume:
            others = [name for name, item in sorted(self.registry.backends.items())
                      if item.backend.capabilities.resume and name != self.backend.name]
            raise UnsupportedFeature(self.backend.name, "resuming a run from a checkpoint (--resume)", others,
                                     hint="Start the run again with --overwrite, or use a backend that resumes")
        previous_run(out)

    def _resume_point(self, out: Path, plan: Plan) -> ResumePoint:
        """Under the folder's lock: the checkpoint to continue from (read-only checks, nothing written yet)."""
        point = resume_point(out, redact(self.spec.to_dict()), self.backend.name, plan.optimizer_steps)
        self.resumed_from = point.checkpoint.relative_to(out)
        total = f" of {plan.optimizer_steps}" if plan.optimizer_steps else ""
        dropped = f", replacing {point.dropped} logged after it" if point.dropped else ""
        text = (f"resuming from {self.resumed_from} (step {point.checkpoint.step}{total}); metrics.jsonl keeps the "
                f"{len(point.records)} line(s) up to it{dropped}")
        self.notes.append(text)
        note(text)
        return point

    def _train_other_node(self, out: Path, examples: Examples, plan: Plan) -> TrainResult:
        """Node ``launch.node_rank`` > 0 of a multi-node run: its ranks join the world; node 0 writes the run
        folder. Here only ``logs/`` (and torchrun's own output, ``logs/torchrun.log``) is written; nothing is
        locked or deleted."""
        started = time.monotonic()
        try:
            (out / "logs").mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TunebridgeError(f"cannot create {out / 'logs'}: {exc.strerror or exc}") from None
        job = TrainingJob(self.spec, examples, *self.prepared(examples)[:2], out, RunReporter(None), plan=plan)
        try:
            self.executor.run(job)
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            raise RunFailed(self._failure(exc), str(out)) from exc
        launch = self.spec.launch
        return TrainResult(backend=self.backend.name, output_dir=out, model_dir=out / "model", metrics={},
                           log_history=[], native_config=plan.native_config, versions=self.training_versions(),
                           wall_time_s=round(time.monotonic() - started, 3), plan=plan.to_dict(),
                           warnings=[f"node {launch.node_rank} of {launch.nnodes}: its ranks trained; node 0 wrote "
                                     "the run folder (model, run.json, metrics)"])

    def _check_world(self, output: BackendOutput) -> None:
        """A run launched on N processes must have trained on N (a trainer that does not see the process group
        trains alone on every rank)."""
        expected = self.spec.world_size
        seen = output.world_size or 1
        if seen != expected:
            raise TunebridgeError(f"the run was launched on {expected} processes but {self.backend.name!r}'s trainer "
                                  f"saw a world of {seen} (distributed type {output.distributed_type or 'none'}): "
                                  "each rank would train alone")

    def _write(self, path: Path, text: str) -> None:
        try:
            write_atomic(path, text)
        except WriteError as exc:
            raise exc.with_kept(folder_contents(path.parent)) from None

    def _train(self, out: Path, examples: Examples, plan: Plan, progress: ProgressCallback | None,
               resume: ResumePoint | None = None) -> TrainResult:
        started = time.monotonic()
        run_json = out / "run.json"
        reporter = RunReporter(out / "metrics.jsonl", progress)
        if resume is not None:  # the steps up to the checkpoint are kept; the resumed run logs the later ones again
            self._write(reporter.metrics_path, metrics_text(resume.records))
            reporter.records = list(resume.records)
        planned = {k: v for k, v in plan.to_dict().items() if k != "native_config"}
        peak = PeakMemory()
        try:
            job = self._prepare(out, reporter, examples, plan)
            job.resume_from = resume.checkpoint.path if resume is not None else None
            self._write(run_json, json.dumps(self._record("running", started, examples, plan=planned,
                                                          native_config=plan.native_config), indent=2, default=str))
            with peak:
                output = self.executor.run(job)
            self._check_world(output)
            if output.global_step < 1:
                raise TunebridgeError(f"backend {self.backend.name!r} finished without a single optimizer step")
            if not any("loss" in r for r in reporter.records):  # (a step with no trainable token logs loss None)
                names = sorted({k for r in reporter.records for k in r if k != "step"})
                raise TunebridgeError(f"backend {self.backend.name!r} logged no line with 'loss' (the neutral name; "
                                      f"it logged {', '.join(names) or 'nothing'})")
            try:
                output.metrics = {**output.metrics, **summarise(reporter.records)}
            except ValueError as exc:
                raise TunebridgeError(str(exc)) from None
            problem = saved_model_problem(job.model_dir)
            if problem:
                raise TunebridgeError(f"backend {self.backend.name!r} finished but {problem}")
            make_tokenizer_portable(job.model_dir)  # loadable on transformers 4 and 5, whoever saved it
            remove_empty_dirs(job.work_dir)
        except KeyboardInterrupt as exc:
            stopped = self._record("interrupted", started, examples, plan=planned,
                                   native_config=redact(plan.native_config),
                                   error=f"interrupted by {interrupted_by(exc)}")
            with contextlib.suppress(WriteError):  # the interrupt is what the caller must hear about
                self._write(run_json, json.dumps(stopped, indent=2, default=str))
            raise
        except Exception as exc:
            if isinstance(exc, OSError) and exc.filename and exc.errno in WRITE_ERRNOS:
                exc = WriteError(exc.filename, exc)  # a full disk or read-only folder under the backend
            message = scrub_text(f"{type(exc).__name__}: {exc}")
            failed = self._record("failed", started, examples, plan=planned, native_config=redact(plan.native_config),
                                  error=message, traceback=scrub_text(traceback.format_exc(limit=20)))
            try:
                self._write(run_json, json.dumps(failed, indent=2, default=str))
            except WriteError as write_error:
                if exc is write_error or (isinstance(exc, WriteError) and exc.path == write_error.path):
                    raise write_error from None
                raise RunFailed(f"{self._failure(exc)}\nand the failure could not be recorded: {write_error}",
                                str(out)) from exc
            if isinstance(exc, WriteError):
                raise exc.with_kept(folder_contents(out)) from None
            raise RunFailed(self._failure(exc), str(out)) from exc
        warnings = [*examples.report.get("warnings", []), *run_warnings(self.spec, reporter.records)]
        if plan.optimizer_steps is not None and plan.optimizer_steps != output.global_step:
            warnings.append(f"the plan predicted {plan.optimizer_steps} optimizer steps; backend "
                            f"{self.backend.name!r} made {output.global_step}")
        seen, tokens = examples_seen(plan, self.spec, output.global_step,
                                     examples.token_lengths if plan.train_rows == len(examples.train) else None)
        record = self._record(
            "completed", started, examples, warnings=warnings, plan=planned,
            native_config=redact(output.native_config), metrics=output.metrics, model_format=output.model_format,
            global_step=output.global_step, examples_seen=seen, tokens_seen=tokens, peak_memory_mb=peak.mb,
            unhonoured=plan.unhonoured, model_dir="model", base_model=str(job.model_path),
            world_size=output.world_size or 1, distributed_type=output.distributed_type or "none",
            global_batch_size=self.spec.global_batch_size,
        )
        self._write(run_json, json.dumps(record, indent=2, default=str))
        self._write(out / "README.md", model_card(record))
        return TrainResult(
            backend=self.backend.name, output_dir=out, model_dir=job.model_dir, metrics=output.metrics,
            log_history=reporter.records, native_config=record["native_config"], versions=record["versions"],
            model_format=output.model_format, wall_time_s=record["wall_time_s"], data=record["data"],
            unhonoured=plan.unhonoured, base_model=str(job.model_path), warnings=warnings,
            differences=record["differences"], plan=planned, examples_seen=seen, tokens_seen=tokens,
            peak_memory_mb=peak.mb, world_size=record["world_size"], distributed_type=record["distributed_type"],
        )
