"""The core's half of a plan: example counts, optimizer steps by the neutral rule, the normalised settings a
backend really uses, and the spec defaults it adapted. Backends fill only what departs from the rule."""

from __future__ import annotations

from typing import Any

from .backend import Plan
from .examples import Examples
from .schedule import expected_optimizer_steps
from .spec import Spec
from .support import Difference

# The settings users trip on when comparing frameworks; every backend's plan has each of these keys.
EFFECTIVE_KEYS = ("effective_batch_size", "world_size", "loss_on_prompt", "packing", "template", "lr_schedule",
                  "warmup_ratio", "precision", "seed", "data_order", "length", "gradient_clipping", "truncation")


def loss_on_prompt(spec: Spec) -> bool | None:
    """Whether the prompt tokens are trained on (sft), None where the question does not arise."""
    if spec.task != "sft" and spec.template_task != "rl-offline":
        return None
    return spec.data_kind == "text" or not spec.sft.completion_only_loss


def reference_model(spec: Spec) -> str | None:
    """The core's rule for the model a preference loss compares the policy with (None outside task preference):
    the starting model, frozen; with LoRA the same model with its adapter disabled (no copy); ORPO needs none.
    Every backend follows it (TRL and AutoTrain pass no reference model of their own)."""
    if spec.task != "preference":
        return None
    if spec.preference.resolved_algorithm == "orpo":
        return "none: ORPO needs no reference model"
    if spec.lora is not None:
        return "the starting model itself, with the LoRA adapter disabled (no copy is loaded)"
    return "a frozen copy of the starting model"


def neutral_truncation(spec: Spec, examples: Examples | None) -> str:
    """What the core's length rules do to the examples (backends that cut differently say so)."""
    n = spec.training.max_length
    report = examples.report if examples else {}
    if spec.task in ("reward", "preference"):
        dropped = sum(v for k, v in report.get("dropped", {}).items() if k.endswith("over_max_length"))
        cut = report.get("train_truncated_pairs", 0) + report.get("eval_truncated_pairs", 0)
        return f"pairs over {n} tokens: {spec.over_length} ({dropped} dropped, {cut} cut to fit)"
    if spec.task == "rl" and spec.template_task != "rl-offline":
        return f"prompts not cut (longest {report.get('longest_prompt_tokens', '?')} tokens)"
    if spec.task == "sft" and spec.sft.packing:
        return f"packed into blocks of {n} tokens"
    return f"end cut at {n} tokens ({report.get('truncated', '?')} examples)"


def neutral_effective(spec: Spec, examples: Examples | None) -> dict[str, Any]:
    """The normalised settings a run of ``spec`` uses when a backend follows the spec exactly."""
    t = spec.training
    template = spec.data_kind
    return {
        "effective_batch_size": spec.global_batch_size,  # per device x processes x accumulation
        "world_size": spec.world_size,
        "loss_on_prompt": loss_on_prompt(spec),
        "packing": bool(spec.task == "sft" and spec.sft.packing),
        "template": "chat (the tokenizer's chat template)" if template == "chat" else template,
        "lr_schedule": t.lr_scheduler,
        "warmup_ratio": t.warmup_ratio,
        "precision": t.precision,
        "seed": t.seed,
        "data_order": "shuffled once by tunebridge with the seed" if t.shuffle else "file order",
        "length": f"max_steps {t.max_steps}" if t.max_steps else f"{t.epochs:g} epoch(s)",
        "gradient_clipping": t.max_grad_norm,
        "truncation": neutral_truncation(spec, examples),
    }


def complete_plan(plan: Plan, spec: Spec, examples: Examples | None, differences: list[Difference]) -> Plan:
    """Fill what the core decides into a backend's ``plan`` (in place; returned for chaining)."""
    if examples is not None:
        plan.train_examples = len(examples.train)
        plan.eval_examples = len(examples.eval)
        if plan.train_rows is None and not (spec.task == "sft" and spec.sft.packing):
            plan.train_rows = len(examples.train)
    if plan.optimizer_steps is None and plan.train_rows is not None:
        t = spec.training
        # Each micro-step draws batch_size rows on every process (the sampler shards whole batches across ranks).
        plan.optimizer_steps = expected_optimizer_steps(plan.train_rows, t.batch_size * spec.world_size,
                                                        t.gradient_accumulation, t.epochs, t.max_steps)
    if plan.optimizer_steps is None and spec.training.max_steps:
        plan.optimizer_steps = spec.training.max_steps
    plan.effective = {**neutral_effective(spec, examples), **plan.effective}
    plan.truncation = plan.truncation or plan.effective["truncation"]
    plan.differences = [d.to_dict() for d in differences]
    return plan


def examples_seen(plan: Plan, spec: Spec, steps: int, token_lengths: list[int] | None = None) -> tuple[int, int | None]:
    """Sequences and tokens the trainer drew in ``steps`` optimizer steps, reading rows in order, epoch after
    epoch (a last partial batch is a batch; a last partial accumulation makes a step).

    ``token_lengths`` are the per-row token counts; without them tokens come from ``plan.tokens_per_epoch``.
    """
    rows = plan.train_rows or 0
    t = spec.training
    if rows < 1 or steps < 1:
        return 0, 0 if rows else None
    batch = t.batch_size * spec.world_size
    sizes = [batch] * (rows // batch) + ([rows % batch] if rows % batch else [])
    seen = tokens = 0
    done = 0
    epoch_tokens = plan.tokens_per_epoch
    while done < steps:
        position = 0
        for start in range(0, len(sizes), t.gradient_accumulation):
            group = sizes[start:start + t.gradient_accumulation]
            n = sum(group)
            seen += n
            if token_lengths is not None:
                tokens += sum(token_lengths[position:position + n])
            elif epoch_tokens is not None:
                tokens += round(epoch_tokens * n / rows)
            position += n
            done += 1
            if done >= steps:
                break
    known = token_lengths is not None or epoch_tokens is not None
    return seen, (tokens if known else None)
