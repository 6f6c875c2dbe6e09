"""The wire format between a run and its worker: job.json, result.json and the event lines.

The parent writes ``job.json`` (spec, final examples, the plan, resolved paths) into a private temporary
folder; ``python -m tunebridge.worker`` reads it back in the backend's environment (one process, or every
rank under torchrun), prints progress as event lines on stdout and writes ``result.json``. References
(reward functions as ``"pkg.module:function"``, paths) travel; Python objects do not.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..backend import BackendOutput, Plan, TrainingJob
from ..errors import UnsupportedFeature

if TYPE_CHECKING:
    from ..spec import Spec

JOB_FORMAT = 2
EVENT_PREFIX = "@@tunebridge "


def check_portable(spec: Spec, backend: str) -> None:
    """A spec holding Python objects (a callable reward) cannot cross to another interpreter."""
    for i, source in enumerate(spec.rl.reward):
        if source.function is not None and not isinstance(source.function, str):
            raise UnsupportedFeature(
                backend, f"a Python callable as rl.reward[{i}] when the backend runs in another interpreter",
                hint="Reference it as 'pkg.module:function' (a module beside the spec file works)",
            )


def job_to_dict(job: TrainingJob, backend: str) -> dict[str, Any]:
    """Plain data for ``job.json``."""
    ex = job.examples
    template = asdict(ex.template) if ex.template else None
    if template:
        template["optional"] = sorted(template["optional"])
    return {
        "format": JOB_FORMAT,
        "backend": backend,
        "spec": job.spec.to_dict(),
        "base_dir": str(job.spec.base_dir),
        "source": job.spec.source,
        "examples": {"kind": ex.kind, "train": ex.train, "eval": ex.eval, "report": ex.report, "template": template},
        "model_path": str(job.model_path),
        "tokenizer_path": str(job.tokenizer_path),
        "output_dir": str(job.output_dir),
        "plan": job.plan.to_dict() if job.plan is not None else None,
        "resume_from": str(job.resume_from) if job.resume_from else None,
    }


def job_from_dict(data: dict[str, Any], reporter: Any) -> TrainingJob:
    """Rebuild the TrainingJob in the worker (``reporter`` streams events back to the parent)."""
    from ..examples import Examples  # the spec's validation (pydantic) loads only where a job is read
    from ..spec import parse_spec
    from ..templates import Template

    if data.get("format") != JOB_FORMAT:
        raise ValueError(f"job format {data.get('format')!r} is not {JOB_FORMAT}: tunebridge versions differ")
    spec = parse_spec(data["spec"], base_dir=data["base_dir"], source=data["source"])
    ex = data["examples"]
    template = None
    if ex["template"]:
        template = Template(**{**ex["template"], "optional": frozenset(ex["template"]["optional"])})
    examples = Examples(kind=ex["kind"], train=ex["train"], eval=ex["eval"], template=template, report=ex["report"])
    plan = Plan(**data["plan"]) if data.get("plan") else None
    resume_from = Path(data["resume_from"]) if data.get("resume_from") else None
    return TrainingJob(spec, examples, Path(data["model_path"]), Path(data["tokenizer_path"]),
                       Path(data["output_dir"]), reporter, plan=plan, resume_from=resume_from)


def output_to_dict(output: BackendOutput) -> dict[str, Any]:
    """Plain data for ``result.json``."""
    return asdict(output)


def output_from_dict(data: dict[str, Any]) -> BackendOutput:
    """The BackendOutput the worker reported."""
    return BackendOutput(**data)


def event_line(event: dict[str, Any]) -> str:
    """One progress event as a line on the worker's stdout."""
    return EVENT_PREFIX + json.dumps(event, default=str)


def parse_event(line: str) -> dict[str, Any] | None:
    """The event in a worker output line, or None for ordinary output."""
    if not line.startswith(EVENT_PREFIX):
        return None
    try:
        return json.loads(line[len(EVENT_PREFIX):])
    except json.JSONDecodeError:
        return None
