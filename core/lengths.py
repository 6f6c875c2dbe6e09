"""Token-length rules, decided once in the core so every backend sees the same examples.

- sft: tokenise every example once, in batches, with the published rule (``tunebridge.tokenize``; the ids
  are kept on the examples, and the TRL backend trains on them); count examples longer than max_length (their
  end is cut) and, with completion-only loss on unpacked examples, those whose prompt alone fills max_length
  (nothing left to learn): a warning, or an error when that is every example. Packed or whole-text training
  cuts no completion away.
- reward and preference: a pair whose prompt + answer (+ EOS) is longer than max_length is dropped and counted
  (``reward.over_length`` / ``preference.over_length: drop``) or has its answers cut to fit (``truncate``).
  Nothing left is an error.
- rl: report the longest prompt.
"""

from __future__ import annotations

from typing import Any

from .errors import DataError
from .examples import Examples, Preparing
from .spec import Spec


def _count(tok: Any, texts: list[str]) -> list[int]:
    return [len(ids) for ids in tok(texts)["input_ids"]] if texts else []


def _warn(examples: Examples, message: str) -> None:
    examples.report.setdefault("warnings", []).append(message)


def apply_length_rules(examples: Examples, tok: Any, spec: Spec, progress: Preparing | None = None) -> Examples:
    """Count, warn, drop or truncate by token length; returns the (possibly filtered) examples.

    ``progress("tokenising", done, total)`` is called after each batch of sft examples.
    """
    max_length = spec.training.max_length
    if examples.kind in ("prompt_completion", "text"):
        _sft_lengths(examples, tok, max_length, spec, progress)
    elif examples.kind == "preference":
        examples.train = _fit_pairs(examples, tok, max_length, spec.over_length, "train", spec.task)
        if examples.eval:
            examples.eval = _fit_pairs(examples, tok, max_length, spec.over_length, "eval", spec.task)
    elif examples.kind == "prompt_only":
        examples.token_lengths = _count(tok, [ex["prompt"] for ex in examples.train])
        examples.report["longest_prompt_tokens"] = max(examples.token_lengths)
    return examples


def masks_prompt(spec: Spec) -> bool:
    """Whether the loss skips the prompt: completion-only sft, and offline RL (which masks its prompts too)."""
    return spec.task != "sft" or spec.sft.completion_only_loss


def tokenise_examples(examples: Examples, tok: Any, spec: Spec, progress: Preparing | None = None) -> Examples:
    """Set ``examples.tokens`` (and ``eval_tokens``): every sft example under the rule, in batches."""
    from .tokenize import tokenise_sft

    max_length = spec.training.max_length
    n_train, n_all = len(examples.train), len(examples.train) + len(examples.eval)

    def told(offset: int) -> Any:
        return None if progress is None else (lambda done, _total: progress("tokenising", offset + done, n_all))

    if progress is not None:
        progress("tokenising", 0, n_all)
    examples.tokens = tokenise_sft(tok, examples.train, max_length, masks_prompt(spec), told(0))
    examples.eval_tokens = (tokenise_sft(tok, examples.eval, max_length, masks_prompt(spec), told(n_train))
                            if examples.eval else None)
    return examples


def _sft_lengths(examples: Examples, tok: Any, max_length: int, spec: Spec, progress: Preparing | None) -> None:
    import numpy as np

    tokens = tokenise_examples(examples, tok, spec, progress).tokens
    lengths = tokens.full_lengths
    packed = spec.task == "sft" and spec.sft.packing
    examples.report["truncated"] = 0 if packed else int((lengths > max_length).sum())
    examples.report["longest_tokens"] = int(lengths.max())
    examples.token_lengths = (lengths if packed else np.minimum(lengths, max_length)).tolist()
    if examples.kind != "prompt_completion" or packed or not masks_prompt(spec):
        return
    prompt_lengths = tokens.prompt_lengths
    lost = int((prompt_lengths >= max_length).sum())
    examples.report["completion_truncated_away"] = lost
    if lost == len(examples.train):
        raise DataError(
            f"training.max_length={max_length} is shorter than every prompt (shortest prompt "
            f"{int(prompt_lengths.min())} tokens): no completion token would be trained on; raise max_length"
        )
    if lost:
        _warn(examples, f"{lost} of {len(examples.train)} training examples have a prompt of max_length="
                        f"{max_length} tokens or more: their completion is cut off entirely, so they teach nothing "
                        "(and a backend may drop them); raise training.max_length")


def _truncate_answer(tok: Any, prompt: str, answer: str, budget: int) -> str | None:
    """``answer`` cut so that prompt + answer fits in ``budget`` tokens, or None when the prompt alone does not."""
    ids = tok(prompt + answer)["input_ids"]
    if len(ids) <= budget:
        return answer
    text = tok.decode(ids[:budget])
    if not text.startswith(prompt) or not text[len(prompt):].strip():
        return None
    return text[len(prompt):]


def _fit_pairs(examples: Examples, tok: Any, max_length: int, policy: str, split: str,
               task: str = "reward") -> list[dict]:
    pairs = examples.train if split == "train" else examples.eval
    budget = max_length - 1  # room for the EOS the backend appends
    chosen = _count(tok, [ex["prompt"] + ex["chosen"] for ex in pairs])
    rejected = _count(tok, [ex["prompt"] + ex["rejected"] for ex in pairs])
    kept: list[dict] = []
    too_long = truncated = 0
    for ex, c, r in zip(pairs, chosen, rejected, strict=True):
        if max(c, r) <= budget:
            kept.append(ex)
            continue
        if policy == "drop":
            too_long += 1
            continue
        new_chosen = _truncate_answer(tok, ex["prompt"], ex["chosen"], budget)
        new_rejected = _truncate_answer(tok, ex["prompt"], ex["rejected"], budget)
        if new_chosen is None or new_rejected is None or new_chosen == new_rejected:
            too_long += 1
            continue
        truncated += 1
        kept.append({**ex, "chosen": new_chosen, "rejected": new_rejected})
    if split == "train":
        fitted = {id(ex): c + r + 2 for ex, c, r in zip(pairs, chosen, rejected, strict=True)}
        examples.token_lengths = [fitted.get(id(ex), 2 * budget + 2) for ex in kept]
    report = examples.report.setdefault("dropped", {})
    if too_long:
        report[f"{split}_over_max_length"] = too_long
        _warn(examples, f"{too_long} of {len(pairs)} {split} pairs are longer than training.max_length={max_length} "
                        f"tokens and were dropped" + (" (their prompt alone does not fit)" if policy == "truncate"
                                                      else f"; set {task}.over_length: truncate to keep them"))
    if truncated:
        examples.report[f"{split}_truncated_pairs"] = truncated
    examples.report["train" if split == "train" else "eval"] = len(kept)
    if split == "train" and not kept:
        raise DataError(f"no training pair fits training.max_length={max_length} tokens "
                        f"(shortest pair {min(max(c, r) for c, r in zip(chosen, rejected, strict=True)) + 1} tokens); "
                        "raise max_length")
    return kept
