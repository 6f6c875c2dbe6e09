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
    lines += _provenance(data)
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
    if spec["task"] == "preference":
        pref = spec["preference"]
        algorithm = record.get("algorithm") or pref["algorithm"]
        reference = record.get("native_config", {}).get("reference_model") if isinstance(
            record.get("native_config"), dict) else None
        lines += ["", "## Preference tuning", "",
                  f"A causal language model (a policy), trained straight from preference pairs with {algorithm} "
                  "(no separate reward model); load it with `AutoModelForCausalLM`.",
                  f"- algorithm: {algorithm}, beta {pref['beta']}",
                  f"- pairs longer than max_length: {pref['over_length']}"]
        if reference:
            lines.append(f"- reference model: {reference}")
        if algorithm == "kto":
            lines.append("- KTO took each pair as two unpaired examples: prompt + chosen (desirable) and prompt + "
                         "rejected (undesirable)")
        dropped = data.get("dropped")
        if dropped:
            lines.append(f"- dropped: {json.dumps(dropped)}")
    if spec["task"] == "rl":
        rl = spec["rl"]
        rewards = ", ".join(f"{r.get('function') or r.get('model')} (weight {r['weight']})" for r in rl["reward"])
        lines += ["", "## Reinforcement learning", "", f"- algorithm: {record.get('algorithm', rl['algorithm'])}",
                  f"- rewards: {rewards}", f"- generation: {json.dumps(rl['generation'])}",
                  f"- kl_coef: {rl['kl_coef']}"]
    for warning in record.get("warnings", []):
        lines.append(f"\n> warning: {warning}")
    lines += _training(record)
    lines += ["", "## Hyperparameters (the spec as run)", "", "```json", json.dumps(spec["training"], indent=2), "```"]
    if spec.get("lora"):
        lines += ["", "LoRA:", "", "```json", json.dumps(spec["lora"], indent=2), "```"]
    if metrics:
        lines += ["", "## Results", "", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:.6g} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in metrics.items()]
    versions = ", ".join(f"{k} {v}" for k, v in record["versions"].items() if v)
    lines += ["", "## Versions", "", versions, ""]
    return "\n".join(lines)


def _provenance(data: dict[str, Any]) -> list[str]:
    """Where the rows came from: the Argilla recipe and annotator policy, and every drop by reason."""
    lines: list[str] = []
    conversion = data.get("argilla")
    if conversion:
        lines.append(f"- converted from Argilla {conversion.get('format', '?')} records: recipe "
                     f"`{conversion.get('recipe', '?')}`, annotators `{conversion.get('annotators', '?')}`, counting "
                     f"{'/'.join(conversion.get('statuses', []))} responses; {conversion.get('records', '?')} records "
                     f"-> {conversion.get('rows', '?')} rows")
        ignored = ", ".join(f"{n} {status}" for status, n in conversion.get("ignored_responses", {}).items())
        if ignored:
            lines.append(f"  - responses not counted: {ignored}")
        for column, sources in conversion.get("sources", {}).items():
            lines.append(f"  - {column} from: " + ", ".join(f"{name} {n}" for name, n in sources.items()))
        for reason, n in conversion.get("dropped", {}).items():
            lines.append(f"  - records dropped ({reason}): {n}")
        for reason, n in conversion.get("skipped_pairs", {}).items():
            lines.append(f"  - pairs not made ({reason}): {n}")
    for reason, n in data.get("dialogue", {}).get("dropped", {}).items():
        lines.append(f"- dialogue rows dropped ({reason}): {n}")
    for reason, n in data.get("dropped", {}).items():
        lines.append(f"- dropped ({reason}): {n}")
    return lines


def _training(record: dict[str, Any]) -> list[str]:
    """What the run did: steps made (and planned), sequences seen, and where this backend departed from the spec."""
    plan = record.get("plan", {})
    steps = record.get("global_step", record.get("metrics", {}).get("global_step"))
    lines = ["", "## Training", "", f"- optimizer steps made: {steps}"
             + (f" (planned {plan['optimizer_steps']})" if plan.get("optimizer_steps") is not None else "")]
    if record.get("examples_seen"):
        lines.append(f"- sequences seen: {record['examples_seen']}"
                     + (f", tokens seen: {record['tokens_seen']}" if record.get("tokens_seen") else ""))
    effective = plan.get("effective", {})
    if effective:
        lines.append("- effective settings: " + ", ".join(f"{k} {v}" for k, v in effective.items()))
    differences = record.get("differences", [])
    unhonoured = record.get("unhonoured", [])
    if differences or unhonoured:
        lines += ["", "### Differences from the spec on this backend", ""]
        for diff in differences:
            lines.append(f"- adapted `{diff['setting']}`: default {json.dumps(diff['default'])}, ran with "
                         f"{json.dumps(diff['used'])} ({diff['why']})")
        lines += [f"- not honoured: {line}" for line in unhonoured]
    return lines
