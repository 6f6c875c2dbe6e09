"""One backend's row of comparison.json, read tolerantly from its run folder, and the end-of-compare table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .differences import effective_settings


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``, or {} when it is missing or unreadable."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The records of a run's metrics.jsonl (bad lines skipped; [] when there is none)."""
    path = run_dir / "metrics.jsonl"
    records = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("step"), int | float):
            records.append(record)
    return records


def effective_batch_size(run: dict[str, Any], spec: dict[str, Any]) -> int | None:
    """Examples per optimizer step: the backend's own figure (plan.effective), else batch x accumulation."""
    value = effective_settings(run).get("effective_batch_size")
    if isinstance(value, int | float) and value > 0:
        return int(value)
    training = spec.get("training") or {}
    batch, accumulation = training.get("batch_size"), training.get("gradient_accumulation", 1)
    if isinstance(batch, int) and isinstance(accumulation, int):
        return batch * accumulation
    return None


def _last(records: list[dict[str, Any]], key: str) -> Any:
    values = [r[key] for r in records if r.get(key) is not None and not str(key).startswith("eval_")]
    return values[-1] if values else None


def backend_record(name: str, status: str, reason: str, run_dir: Path | None, spec: dict[str, Any],
                   relative_to: Path) -> dict[str, Any]:
    """The comparison row of one backend (``eval`` is filled in later by the neutral evaluation)."""
    run = read_json(run_dir / "run.json") if run_dir else {}
    records = read_metrics(run_dir) if run_dir else []
    training_records = [r for r in records if "loss" in r or "reward_mean" in r or "accuracy" in r]
    metrics = run.get("metrics") if isinstance(run.get("metrics"), dict) else {}
    steps = run.get("global_step") or metrics.get("global_step")
    if steps is None and training_records:
        steps = int(max(r["step"] for r in training_records))
    batch = effective_batch_size(run, run.get("spec") or spec)
    examples_seen = run.get("examples_seen")
    if examples_seen is None and steps is not None and batch:
        examples_seen = int(steps) * batch
    final_loss = metrics.get("final_loss", _last(records, "loss"))
    row = {
        "name": name,
        "status": status,
        "reason": reason,
        "run_dir": str(run_dir.relative_to(relative_to)) if run_dir and run_dir.is_relative_to(relative_to)
        else (str(run_dir) if run_dir else None),
        "algorithm": run.get("algorithm"),
        "steps": steps,
        "effective_batch_size": batch,
        "examples_seen": examples_seen,
        "tokens_seen": run.get("tokens_seen"),
        "wall_time_s": run.get("wall_time_s"),
        "peak_memory_mb": run.get("peak_memory_mb"),
        "train_loss_final": final_loss,
        "train_loss": metrics.get("train_loss"),
        "backend_eval_loss": metrics.get("eval_loss"),
        "reward_mean_final": metrics.get("final_reward_mean", _last(records, "reward_mean")),
        "accuracy_final": metrics.get("final_accuracy", _last(records, "accuracy")),
        "model_format": run.get("model_format"),
        "eval": None,
        "versions": run.get("versions") or {},
        "warnings": run.get("warnings") or [],
    }
    return row


def _fmt(value: Any, digits: int = 4) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "?"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def eval_cells(task: str, evaluation: dict[str, Any] | None) -> list[str]:
    """The neutral-evaluation cells of one row: sft loss + perplexity, reward and
    preference accuracy + margin, rl reward."""
    e = evaluation or {}
    if task == "sft":
        return [_fmt(e.get("loss")), _fmt(e.get("perplexity"), 2)]
    if task in ("reward", "preference"):
        return [_fmt(e.get("accuracy"), 3), _fmt(e.get("margin"), 3)]
    return [_fmt(e.get("reward_mean"))]


def eval_headers(task: str) -> list[str]:
    """Column names matching :func:`eval_cells`."""
    return {"sft": ["eval loss", "eval ppl"], "reward": ["eval acc", "margin"],
            "preference": ["eval acc", "logp margin"]}.get(task, ["eval reward"])


def summary_rows(record: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the one-screen table: baseline, then each backend."""
    task = record["spec"]["task"]
    header = ["backend", "status", "steps", "train loss", *eval_headers(task), "wall s"]
    rows = [["(base model)", "baseline", "-", "-", *eval_cells(task, record.get("baseline")), "-"]]
    for b in record["backends"]:
        wall = b.get("wall_time_s")
        rows.append([b["name"], b["status"], _fmt(b.get("steps")), _fmt(b.get("train_loss_final")),
                     *eval_cells(task, b.get("eval")), f"{wall:.1f}" if isinstance(wall, int | float) else "?"])
    return header, rows


def summary_table(record: dict[str, Any]) -> str:
    """The end-of-compare table as aligned text, with the reason under each backend that did not complete."""
    header, rows = summary_rows(record)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in [header, *rows]]
    for b in record["backends"]:
        if b["status"] != "completed" and b.get("reason"):
            lines.append(f"{b['name']} {b['status']}: {one_line(b['reason'])}")
        elif b.get("eval_error"):
            lines.append(f"{b['name']}: no neutral evaluation: {b['eval_error']}")
    return "\n".join(lines)


def one_line(text: str) -> str:
    """A multi-line reason (``invalid spec in s.yaml:`` + its problems) on one line."""
    return " ".join(part.strip() for part in text.splitlines() if part.strip())
