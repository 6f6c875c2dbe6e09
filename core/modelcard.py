"""The README.md model card every run writes beside its model."""

from __future__ import annotations

import json
from typing import Any


def model_card(record: dict[str, Any]) -> str:
    """Render a model card from a run record (the content of run.json, secrets already removed)."""
    spec = record["spec"]
    title = spec.get("name") or f"{spec['task']} fine-tune"
    model = spec["model"]
    if model.get("builtin"):
        base = f"builtin `{model['builtin']}` (built locally by tunebridge)"
    else:
        base = f"`{model['path']}`"
    data = record.get("data", {})
    metrics = record.get("metrics", {})
    lines = [
        f"# {title}",
        "",
        f"Trained with tunebridge {record['versions'].get('tunebridge') or ''} "
        f"on the `{record['backend']}` backend.",
        "",
        "## Base model",
        "",
        f"- {base}",
        f"- saved as: {record.get('model_format', 'full')} model in `model/`",
        "",
        "## Data",
        "",
        f"- source: `{data.get('source', spec['data']['path'])}`",
        f"- rows: {data.get('rows', '?')}; examples: train {data.get('train', '?')}, eval {data.get('eval', 0)}",
        f"- template: `{data.get('template', '?')}`",
    ]
    if data.get("truncated"):
        lines.append(f"- truncated to max_length: {data['truncated']} examples")
    template = data.get("template_strings")
    if template:
        lines += ["", "```json", json.dumps(template, indent=2), "```"]
    if spec["task"] == "reward":
        lines += ["", "## Reward model", "", "A sequence-classification model with one output (the score); "
                  "load it with `AutoModelForSequenceClassification`.",
                  f"Pairs longer than max_length: {spec['reward']['over_length']}."]
        dropped = data.get("dropped")
        if dropped:
            lines.append(f"Dropped: {json.dumps(dropped)}.")
    if spec["task"] == "rl":
        rl = spec["rl"]
        rewards = ", ".join(f"{r.get('function') or r.get('model')} (weight {r['weight']})" for r in rl["reward"])
        lines += ["", "## Reinforcement learning", "", f"- algorithm: {record.get('algorithm', rl['algorithm'])}",
                  f"- rewards: {rewards}", f"- generation: {json.dumps(rl['generation'])}",
                  f"- kl_coef: {rl['kl_coef']}"]
    for warning in record.get("warnings", []):
        lines.append(f"\n> warning: {warning}")
    lines += ["", "## Hyperparameters", "", "```json", json.dumps(spec["training"], indent=2), "```"]
    if spec.get("lora"):
        lines += ["", "LoRA:", "", "```json", json.dumps(spec["lora"], indent=2), "```"]
    if metrics:
        lines += ["", "## Results", "", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:.6g} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in metrics.items()]
    versions = ", ".join(f"{k} {v}" for k, v in record["versions"].items() if v)
    lines += ["", "## Versions", "", versions, ""]
    return "\n".join(lines)
