"""The neutral evaluation: tunebridge's own numbers for a saved model on held-out examples.

Computed in the main environment with transformers (CPU, batched, no gradients), from the model folder a run
saved, so the figures of runs on different backends can be compared whatever each backend logged:

- sft: token-weighted mean cross-entropy over the completion tokens plus EOS, the prompt masked (plain text:
  every token plus EOS), with the rule in ``tunebridge.tokenize``; perplexity = exp(loss).
- reward: pairwise accuracy (share of pairs whose chosen answer scores strictly higher) and the mean margin
  (chosen score - rejected score), each answer scored as prompt + answer + EOS.
- preference: the policy's own preference for the chosen answer: margin = mean over pairs of
  log p(chosen | prompt) - log p(rejected | prompt), each the sum of the answer's token log-probabilities
  (answer + EOS, the prompt as context, the sft tokenisation rule), and accuracy = share of pairs with a
  positive margin. It is the policy alone, not DPO's implicit reward against a reference: compare's baseline
  row holds the same figures for the starting model, so the gain is the difference between the two rows.
- rl: mean reward, through the spec's own reward(s) (weighted sum), of completions sampled for the held-out
  prompts with ``rl.generation`` (``num_generations`` per prompt) and the spec's seed.

torch and transformers are imported when a function here runs, never at import.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import TunebridgeError
from .tokenize import IGNORE, encode_example, encode_prompt, encode_scored

BATCH_SIZE = 8


class EvaluationError(TunebridgeError):
    """A model or run folder cannot be evaluated (no run.json, a failed run, no held-out split, ...)."""


# ---------------------------------------------------------------- held-out examples


def finish_eval_examples(spec: Any, examples: Any, tokenizer_path: str | Path) -> list[dict[str, Any]]:
    """The held-out examples as training saw them: chat rendered with the tokenizer, the length rules applied
    (on a copy: ``examples`` is left as it is)."""
    from .examples import Examples
    from .prepare import finish_examples

    copy = Examples(kind=examples.kind, train=list(examples.train), eval=list(examples.eval),
                    template=examples.template, report=json.loads(json.dumps(examples.report, default=str)),
                    source=examples.source)
    return finish_examples(spec, copy, Path(tokenizer_path)).eval


# ---------------------------------------------------------------- loading


def _is_adapter(folder: Path) -> bool:
    return (folder / "adapter_config.json").is_file() and not (folder / "config.json").is_file()


def _load(task: str, model_dir: Path) -> Any:
    """The saved model, without transformers' loading bar (the compare has its own progress lines)."""
    from transformers.utils import logging as hf_logging

    shown = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        return _load_model(task, model_dir)
    finally:
        if shown:
            hf_logging.enable_progress_bar()


def _load_model(task: str, model_dir: Path) -> Any:
    if task == "reward":
        from transformers import AutoModelForSequenceClassification as Auto
    else:
        from transformers import AutoModelForCausalLM as Auto
    if _is_adapter(model_dir):
        if task == "reward":
            from peft import AutoPeftModelForSequenceClassification as Peft
        else:
            from peft import AutoPeftModelForCausalLM as Peft
        return Peft.from_pretrained(str(model_dir)).eval()
    return Auto.from_pretrained(str(model_dir)).eval()


def _tokenizer(path: Path, padding_side: str = "right") -> Any:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path))
    tok.padding_side = padding_side
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def _pad(rows: list[list[int]], value: int, left: bool = False) -> tuple[Any, Any]:
    import torch

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), value, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        if left:
            ids[i, width - len(r):], mask[i, width - len(r):] = torch.tensor(r), 1
        else:
            ids[i, :len(r)], mask[i, :len(r)] = torch.tensor(r), 1
    return ids, mask


# ---------------------------------------------------------------- the three measures


def _next_token_batches(model: Any, tokenizer: Any, examples: list[dict[str, Any]], max_length: int,
                        batch_size: int) -> Iterator[tuple[Any, Any]]:
    """For each batch of (prompt, completion) examples under the published rule: the logits that predict each
    next token (float, without the last position) and the labels they predict (IGNORE where no loss)."""
    import torch

    encoded = [encode_example(tokenizer, ex, max_length) for ex in examples]
    for start in range(0, len(encoded), batch_size):
        chunk = encoded[start:start + batch_size]
        ids, mask = _pad([c[0] for c in chunk], tokenizer.pad_token_id)
        labels, _ = _pad([c[1] for c in chunk], IGNORE)
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=mask).logits.float()
        yield logits[:, :-1, :], labels[:, 1:]


def sft_loss(model: Any, tokenizer: Any, examples: list[dict[str, Any]], max_length: int,
             batch_size: int = BATCH_SIZE) -> dict[str, Any]:
    """Token-weighted mean cross-entropy over the labelled tokens, and its perplexity."""
    import torch.nn.functional as F

    total, tokens = 0.0, 0
    for shifted, target in _next_token_batches(model, tokenizer, examples, max_length, batch_size):
        total += F.cross_entropy(shifted.reshape(-1, shifted.size(-1)), target.reshape(-1), ignore_index=IGNORE,
                                 reduction="sum").item()
        tokens += int((target != IGNORE).sum())
    if not tokens:
        raise EvaluationError("no held-out token to score (every completion was truncated away)")
    loss = total / tokens
    return {"loss": loss, "perplexity": math.exp(loss) if loss < 700 else float("inf"), "tokens": tokens,
            "examples": len(examples)}


def reward_accuracy(model: Any, tokenizer: Any, examples: list[dict[str, Any]], max_length: int,
                    batch_size: int = BATCH_SIZE) -> dict[str, Any]:
    """Pairwise accuracy and mean margin of a sequence-classification reward model."""
    import torch

    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id

    def scores(answer: str) -> list[float]:
        out: list[float] = []
        rows = [encode_scored(tokenizer, ex["prompt"], ex[answer], max_length) for ex in examples]
        for start in range(0, len(rows), batch_size):
            ids, mask = _pad(rows[start:start + batch_size], tokenizer.pad_token_id)
            with torch.no_grad():
                out += model(input_ids=ids, attention_mask=mask).logits[:, 0].float().tolist()
        return out

    chosen, rejected = scores("chosen"), scores("rejected")
    margins = [c - r for c, r in zip(chosen, rejected, strict=True)]
    return {"accuracy": sum(m > 0 for m in margins) / len(margins), "margin": sum(margins) / len(margins),
            "pairs": len(margins)}


def completion_logps(model: Any, tokenizer: Any, pairs: list[tuple[str, str]], max_length: int,
                     batch_size: int = BATCH_SIZE) -> list[float]:
    """Sum of the log-probabilities of each (prompt, answer)'s answer tokens + EOS under a causal LM."""
    import torch

    out: list[float] = []
    examples = [{"prompt": p, "completion": a} for p, a in pairs]
    for shifted, target in _next_token_batches(model, tokenizer, examples, max_length, batch_size):
        logp = torch.log_softmax(shifted, dim=-1)
        keep = target != IGNORE
        picked = logp.gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        out += (picked * keep).sum(dim=1).tolist()
    return out


def preference_margin(model: Any, tokenizer: Any, examples: list[dict[str, Any]], max_length: int,
                      batch_size: int = BATCH_SIZE) -> dict[str, Any]:
    """A policy's chosen-vs-rejected log-probability margin (mean) and the share of pairs it prefers rightly."""
    chosen = completion_logps(model, tokenizer, [(ex["prompt"], ex["chosen"]) for ex in examples], max_length,
                              batch_size)
    rejected = completion_logps(model, tokenizer, [(ex["prompt"], ex["rejected"]) for ex in examples], max_length,
                                batch_size)
    margins = [c - r for c, r in zip(chosen, rejected, strict=True)]
    return {"accuracy": sum(m > 0 for m in margins) / len(margins), "margin": sum(margins) / len(margins),
            "logps_chosen": sum(chosen) / len(chosen), "logps_rejected": sum(rejected) / len(rejected),
            "pairs": len(margins)}


def rl_reward(model: Any, tokenizer: Any, examples: list[dict[str, Any]], spec: Any,
              batch_size: int = BATCH_SIZE) -> dict[str, Any]:
    """Mean (weighted) reward of completions sampled for the held-out prompts with the spec's generation settings."""
    import torch

    from .rewards import load_rewards

    gen = spec.rl.generation
    rewards = load_rewards(spec)
    torch.manual_seed(spec.training.seed)
    prompts: list[str] = []
    completions: list[str] = []
    columns: dict[str, list[Any]] = {}
    for start in range(0, len(examples), batch_size):
        chunk = examples[start:start + batch_size]
        ids, mask = _pad([encode_prompt(tokenizer, ex["prompt"], spec.training.max_length) for ex in chunk],
                         tokenizer.pad_token_id, left=True)
        with torch.no_grad():
            out = model.generate(input_ids=ids, attention_mask=mask, do_sample=True, temperature=gen.temperature,
                                 top_p=gen.top_p, max_new_tokens=gen.max_new_tokens,
                                 num_return_sequences=gen.num_generations, pad_token_id=tokenizer.pad_token_id)
        texts = tokenizer.batch_decode(out[:, ids.shape[1]:], skip_special_tokens=True)
        for i, ex in enumerate(chunk):
            for j in range(gen.num_generations):
                prompts.append(ex["prompt"])
                completions.append(texts[i * gen.num_generations + j])
                for key, value in ex.items():
                    if key != "prompt":
                        columns.setdefault(key, []).append(value)
    total = [0.0] * len(completions)
    for reward, weight in rewards:
        for i, value in enumerate(reward(prompts, completions, **columns)):
            if not math.isnan(value):
                total[i] += weight * value
    return {"reward_mean": sum(total) / len(total), "samples": len(total), "prompts": len(examples)}


def evaluate_model(spec: Any, model_dir: str | Path, examples: list[dict[str, Any]],
                   tokenizer_dir: str | Path | None = None, batch_size: int = BATCH_SIZE) -> dict[str, Any]:
    """The neutral evaluation of the model in ``model_dir`` on ``examples`` (the spec's task decides which)."""
    if not examples:
        raise EvaluationError("no held-out examples to evaluate on")
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise EvaluationError(f"no model folder at {model_dir}")
    tok_dir = Path(tokenizer_dir) if tokenizer_dir else model_dir
    if spec.task == "rl" and spec.rl.algorithm == "ilql":
        raise EvaluationError("the neutral evaluation of rl samples completions; rl.algorithm 'ilql' has no reward "
                              "function to score them with")
    import torch

    torch.manual_seed(spec.training.seed)  # a head a checkpoint lacks (a causal LM scored as reward model) is seeded
    model = _load(spec.task, model_dir)
    if spec.task == "sft":
        return sft_loss(model, _tokenizer(tok_dir), examples, spec.training.max_length, batch_size)
    if spec.task == "reward":
        return reward_accuracy(model, _tokenizer(tok_dir), examples, spec.training.max_length, batch_size)
    if spec.task == "preference":
        return preference_margin(model, _tokenizer(tok_dir), examples, spec.training.max_length, batch_size)
    return rl_reward(model, _tokenizer(tok_dir, padding_side="left"), examples, spec, batch_size)


# ---------------------------------------------------------------- one run folder


def read_run(run_dir: Path) -> dict[str, Any]:
    """run.json of a completed run, or EvaluationError saying what is wrong."""
    path = run_dir / "run.json"
    if not run_dir.is_dir():
        raise EvaluationError(f"no run folder at {run_dir}")
    if not path.is_file():
        raise EvaluationError(f"{run_dir} is not a run folder (no run.json)")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise EvaluationError(f"cannot read {path}: {exc}") from None
    if record.get("status") != "completed":
        why = f" ({record['error']})" if record.get("error") else ""
        raise EvaluationError(f"the run in {run_dir} did not complete: status {record.get('status')!r}{why}")
    return record


def _spec_of(run_dir: Path, record: dict[str, Any], spec: Any) -> Any:
    from .spec import load_spec, parse_spec

    if spec is not None:
        return load_spec(spec)
    if not isinstance(record.get("spec"), dict):
        raise EvaluationError(f"{run_dir}/run.json holds no spec; pass --spec SPEC")
    base = Path.cwd()
    comparison = run_dir.parent / "comparison.json"  # a run made by compare: paths relative to its spec file
    if comparison.is_file():
        with contextlib.suppress(ValueError):
            base = Path(json.loads(comparison.read_text(encoding="utf-8")).get("spec_base_dir") or base)
    return parse_spec(record["spec"], base_dir=base, source=f"{run_dir}/run.json (spec)")


def held_out_examples(spec: Any, tokenizer_path: str | Path) -> list[dict[str, Any]]:
    """The spec's held-out split, rendered and length-checked as for training."""
    from .examples import prepare_examples

    if spec.data.eval_fraction <= 0:
        raise EvaluationError("the spec has no held-out split (data.eval_fraction is 0): nothing to evaluate on; "
                              "set data.eval_fraction, or compare the backends with `tunebridge compare`, which "
                              "holds out 10 % itself")
    if not spec.resolve_path(spec.data.path).exists() and spec.data.argilla is None:
        raise EvaluationError(f"the data of this run is not at {spec.resolve_path(spec.data.path)}; "
                              "pass --spec SPEC (the spec file the run was trained from)")
    return finish_eval_examples(spec, prepare_examples(spec), tokenizer_path)


def evaluate(run_dir: str | Path, spec: Any = None) -> dict[str, Any]:
    """The neutral evaluation of one run folder on its held-out split (``spec``: default, the one in run.json)."""
    run_dir = Path(run_dir)
    record = read_run(run_dir)
    spec = _spec_of(run_dir, record, spec)
    model_dir = run_dir / (record.get("model_dir") or "model")
    examples = held_out_examples(spec, model_dir)
    result = evaluate_model(spec, model_dir, examples)
    return {"run_dir": str(run_dir), "backend": record.get("backend"), "task": spec.task, **result}
