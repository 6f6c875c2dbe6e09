"""How many sequences a TRL 1.16 trainer draws its batches from, counted the way TRL builds its dataset.

Used by ``plan`` so that the predicted optimizer steps are exact: SFT drops examples whose labels are all
masked (unpacked, completion-only) and packs with best-fit-decreasing (``packing_strategy="bfd"``, each
sequence cut at max_length); GRPO/RLOO repeat each prompt ``num_generations`` times in whole generation
batches. Imports transformers and trl when called.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunebridge.examples import Examples
from tunebridge.spec import Spec


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def sft_sequences(spec: Spec, examples: Examples, tokenizer_path: Path) -> list[list[int]]:
    """Token ids and labels of each SFT example as TRL prepares them: tokenizer(prompt + completion + EOS)
    with the tokenizer's own special tokens; the prompt masked where completion-only loss applies."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tokenizer_path))
    eos = tok.eos_token or ""
    out: list[list[int]] = []
    for ex in examples.train:
        if "text" in ex:
            text = ex["text"] if ex["text"].endswith(eos) else ex["text"] + eos
            out.append([1] * len(tok(text)["input_ids"]))
            continue
        completion = ex["completion"] if ex["completion"].endswith(eos) else ex["completion"] + eos
        full = tok(ex["prompt"] + completion)["input_ids"]
        if spec.sft.completion_only_loss:
            prompt_len = _common_prefix(tok(ex["prompt"])["input_ids"], full)
            out.append([0] * prompt_len + [1] * (len(full) - prompt_len))
        else:
            out.append([1] * len(full))
    return out  # one "is trained on" flag per token


def sft_rows(spec: Spec, examples: Examples, tokenizer_path: Path) -> tuple[int, int]:
    """(sequences per epoch, tokens in them) for TRL's SFTTrainer."""
    masks = sft_sequences(spec, examples, tokenizer_path)
    n = spec.training.max_length
    if not spec.sft.packing:
        kept = [m[:n] for m in masks if any(m[:n])]  # TRL drops examples left fully masked by truncation
        return len(kept), sum(len(m) for m in kept)
    from datasets import Dataset
    from trl.data_utils import pack_dataset

    dataset = Dataset.from_dict({"input_ids": [list(range(len(m))) for m in masks if m]})
    packed = pack_dataset(dataset, n, "bfd")
    return len(packed), sum(len(ids) for ids in packed["input_ids"])


def rl_rows(spec: Spec, n_prompts: int) -> int:
    """Completions per epoch of GRPO/RLOO: whole generation batches of prompts (batch_size x accumulation
    completions each, so batch_size x accumulation / num_generations prompts), each prompt num_generations
    times. One generation batch makes one optimizer step."""
    t = spec.training
    g = spec.rl.generation.num_generations
    prompts_per_generation = t.batch_size * t.gradient_accumulation // g
    whole = (n_prompts // prompts_per_generation) * prompts_per_generation
    return whole * g


def plan_counts(spec: Spec, examples: Examples | None) -> dict[str, Any]:
    """``train_rows`` and ``tokens_per_epoch`` for the plan, or {} when they follow the neutral rule."""
    if examples is None:
        return {}
    if spec.task == "rl":
        return {"train_rows": rl_rows(spec, len(examples.train))}
    if spec.task == "sft" and examples.tokenizer_path is not None:
        rows, tokens = sft_rows(spec, examples, Path(examples.tokenizer_path))
        return {"train_rows": rows, "tokens_per_epoch": tokens}
    return {}
