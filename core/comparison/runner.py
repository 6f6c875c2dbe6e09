"""Run one spec on several backends in turn, evaluate every model the same way, and write the comparison."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from ..errors import (
    BackendNotFound,
    BackendUnavailable,
    RunFailed,
    TunebridgeError,
)
from ..files import write_atomic
from ..progress import note
from ..signals import interrupt_on_signals, interrupted_by
from .differences import build_differences
from .record import backend_record, one_line, summary_table

COMPARE_EVAL_FRACTION = 0.1
AVAILABLE = "available"


class CompareError(TunebridgeError):
    """A compare cannot start (no backend named, none registered, ...)."""


def parse_backends(backends: str | list[str] | tuple[str, ...] | None) -> list[str]:
    """``"trl,trlx"`` or a list -> names in order, duplicates and blanks dropped."""
    items = backends.split(",") if isinstance(backends, str) else list(backends or [])
    names = list(dict.fromkeys(str(n).strip() for n in items if str(n).strip()))
    if not names:
        raise CompareError("no backend to compare: name at least one, e.g. --backends trl,trlx,autotrain "
                           f"(or --backends {AVAILABLE}: every backend ready here for the spec's task)")
    return names


def _ready(name: str, spec: Any, registry: Any) -> bool:
    from ..execution import executor_for

    backend = registry.get(name)
    return spec.task in backend.capabilities.tasks and executor_for(backend, spec).status().ready


def resolve_backends(names: list[str], spec: Any, registry: Any) -> list[str]:
    """Expand ``available``; refuse a list in which no name is a backend at all."""
    resolved: list[str] = []
    for name in names:
        if name == AVAILABLE:
            resolved += [n for n in registry.names() if n not in resolved and _ready(n, spec, registry)]
            if not resolved:
                raise CompareError(f"--backends {AVAILABLE}: no registered backend is ready here for task "
                                   f"{spec.task!r} (see `tunebridge backends`)")
        elif name not in resolved:
            resolved.append(name)
    known = set(registry.backends) | {f.plugin for f in registry.failures} | set(registry.disabled)
    if not any(n in known for n in resolved):
        import difflib

        hints = [f"{n!r} (did you mean {close[0]!r}?)" if (close := difflib.get_close_matches(n, registry.names(), 1))
                 else repr(n) for n in resolved]
        raise CompareError(f"no backend named {', '.join(hints)}; registered backends: "
                           f"{', '.join(registry.names()) or 'none'}")
    return resolved


def held_out_spec(spec: Any) -> tuple[Any, str]:
    """The spec every backend runs, and who holds out the eval split ("spec" or "compare").

    Without a split in the spec, compare holds out 10 % (seeded) itself. The setting is added as a default, not
    as something the user wrote (``model_fields_set`` is left alone), so a backend that adapts defaults may.
    """
    if spec.data.eval_fraction > 0:
        return spec, "spec"
    data = spec.data.model_copy(update={"eval_fraction": COMPARE_EVAL_FRACTION})
    data.__pydantic_fields_set__.discard("eval_fraction")
    new = spec.model_copy(update={"data": data})
    new._base_dir, new._source = spec._base_dir, spec._source
    return new, "compare"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, RunFailed):
        return str(exc).split("\n(what the run wrote")[0]
    if isinstance(exc, TunebridgeError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _say(stream: TextIO | None, text: str) -> None:
    if stream is not None:
        stream.write(text + "\n")
        stream.flush()


def compare(spec: Any, backends: str | list[str], output_dir: str | Path, overwrite: bool = False,
            registry: Any = None, progress: TextIO | bool | None = None, ray: bool = False,
            address: str | None = None, num_cpus: int | None = None) -> dict[str, Any]:
    """Train ``spec`` on each backend into ``output_dir/<backend>/``, evaluate each model the same way, and write
    ``comparison.json``, ``eval.jsonl``, ``report.md`` and ``report.html`` there. Returns the comparison record.

    A backend that is not registered or cannot run here is ``skipped``, one whose spec check or training fails is
    ``failed``; the others go on. ``record["all_completed"]`` says whether every backend completed.
    ``progress``: a stream (or True for stderr) for the per-backend progress lines.

    ``ray=True`` (or an ``address``) trains the backends as Ray tasks, concurrently when resources allow (see
    tunebridge.comparison.on_ray; a local Ray with ``num_cpus`` unless ``address`` names a cluster); the record and
    the report are the same as a sequential compare's. The Ray tasks load the installed backend plugins; a
    ``registry`` given here is used by the driver only.
    """
    from ..examples import prepare_examples
    from ..plugins import get_registry
    from ..prepare import check_model_source, protected_paths, resolve_model
    from ..progress import ProgressLine
    from ..redact import redact
    from ..rewards import check_rewards
    from ..run import Run
    from ..run_folder import prepare_output_dir
    from ..spec import load_spec

    stream: TextIO | None = sys.stderr if progress is True else (progress or None)
    started = time.monotonic()
    if ray or address:
        from ..cluster import import_ray

        import_ray()  # Ray missing: said before anything is written
    spec = load_spec(spec)
    registry = registry or get_registry()
    names = resolve_backends(parse_backends(backends), spec, registry)
    used, held_out_by = held_out_spec(spec)
    check_model_source(used)
    examples = prepare_examples(used)  # a data error stops the whole compare: every backend reads this data
    if used.task == "rl":
        check_rewards(used)
    out = Path(output_dir)
    from ..evaluation import evaluate_model, finish_eval_examples

    # The baseline model and the held-out examples, before the output folder exists (a bad model is a clear error).
    model_path, tokenizer_path = resolve_model(used, examples)
    eval_examples = finish_eval_examples(used, examples, tokenizer_path)
    with interrupt_on_signals(), prepare_output_dir(out, overwrite, protect=protected_paths(spec)) as lock:
        if lock.note:
            note(lock.note)
        write_atomic(out / "eval.jsonl", "".join(json.dumps(ex, ensure_ascii=False, default=str) + "\n"
                                                 for ex in eval_examples))
        spec_dict = redact(used.to_dict())
        record: dict[str, Any] = {
            "spec": spec_dict,
            "spec_source": spec.source,
            "spec_base_dir": str(spec.base_dir),
            "requested_backends": names,
            "eval": {"examples": len(eval_examples), "held_out_by": held_out_by, "fraction": used.data.eval_fraction,
                     "file": "eval.jsonl"},
            "base_model": str(model_path),
            "baseline": None,
            "backends": [],
            "differences": {},
            "all_completed": False,
            "scheduler": {"kind": "sequential"},
        }

        def evaluate_into(row: dict[str, Any], model_dir: Path, tok: Path | None = None) -> None:
            try:
                row["eval"] = evaluate_model(used, model_dir, eval_examples, tokenizer_dir=tok)
            except Exception as exc:  # an unloadable model is recorded, the compare goes on
                row["eval"], row["eval_error"] = None, _reason(exc)

        _say(stream, f"compare: task {used.task} on {', '.join(names)} -> {out} "
                     f"({len(eval_examples)} held-out examples, held out by {held_out_by})")
        baseline: dict[str, Any] = {}
        evaluate_into(baseline, model_path, tokenizer_path)
        record["baseline"] = baseline["eval"]
        if "eval_error" in baseline:
            record["baseline_error"] = baseline["eval_error"]
        run_records: dict[str, dict[str, Any]] = {}
        interrupted: KeyboardInterrupt | None = None
        outcomes: dict[str, tuple[str, str]] | None = None
        if ray or address:
            from .on_ray import train_on_ray

            outcomes, record["scheduler"], interrupted = train_on_ray(names, used, out, registry, address, num_cpus,
                                                                      stream)
        for i, name in enumerate(names, 1):
            if outcomes is not None:
                status, reason = outcomes[name]
                run_dir = out / name
                row = backend_record(name, status, reason, run_dir if run_dir.is_dir() else None, spec_dict, out)
                if status == "completed":
                    run_records[name] = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
                    if interrupted:
                        row["eval_error"] = "not evaluated: the compare was interrupted"
                    else:
                        _say(stream, f"[{i}/{len(names)}] {name}: evaluating ...")
                        evaluate_into(row, run_dir / (run_records[name].get("model_dir") or "model"))
                record["backends"].append(row)
                _say(stream, f"[{i}/{len(names)}] {name}: {status}" + (f": {one_line(reason)}" if reason else ""))
                continue
            if interrupted:
                record["backends"].append(backend_record(name, "skipped", "not run: the compare was interrupted", None,
                                                         spec_dict, out))
                continue
            run_dir = out / name
            _say(stream, f"[{i}/{len(names)}] {name}: training ...")
            line = ProgressLine(stream) if stream is not None else None
            status, reason = "completed", ""
            try:
                Run(used, backend=name, registry=registry).train(run_dir, progress=line.update if line else None)
            except (BackendNotFound, BackendUnavailable) as exc:
                status, reason = "skipped", _reason(exc)
            except KeyboardInterrupt as exc:
                status, reason, interrupted = "failed", f"interrupted by {interrupted_by(exc)}", exc
            except Exception as exc:
                status, reason = "failed", _reason(exc)
            finally:
                if line:
                    line.close()
            row = backend_record(name, status, reason, run_dir if run_dir.is_dir() else None, spec_dict, out)
            if status == "completed":
                run = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
                run_records[name] = run
                _say(stream, f"[{i}/{len(names)}] {name}: evaluating ...")
                evaluate_into(row, run_dir / (run.get("model_dir") or "model"))
            record["backends"].append(row)
            _say(stream, f"[{i}/{len(names)}] {name}: {status}" + (f": {one_line(reason)}" if reason else ""))
        record["differences"] = build_differences(run_records)
        started_from = {name: run.get("base_model") for name, run in run_records.items() if run.get("base_model")}
        other = {name: path for name, path in started_from.items()
                 if Path(path).resolve() != Path(model_path).resolve()}
        if other:
            starts = ", ".join(f"{n} started from {p}" for n, p in other.items())
            record.setdefault("warnings", []).append(f"the baseline is {model_path}, but {starts}")
        record["all_completed"] = all(b["status"] == "completed" for b in record["backends"])
        record["wall_time_s"] = round(time.monotonic() - started, 3)
        write_comparison(out, record)
        if interrupted:
            raise interrupted
        return record


def write_comparison(out: Path, record: dict[str, Any]) -> None:
    """comparison.json, then the report (a report that cannot be drawn never loses the record)."""
    from ..report import write_record_with_report

    write_record_with_report(out, "comparison.json", record)


__all__ = ["AVAILABLE", "CompareError", "compare", "held_out_spec", "parse_backends", "resolve_backends",
           "summary_table", "write_comparison"]
