"""The rows a TRL 1.16 trainer draws its batches from, and (for SFT) the datasets it is handed.

SFT: TRL trains on the core's token ids (``examples.tokens``, the rule in ``tunebridge.tokenize``), handed over
as ``input_ids`` + ``labels`` with TRL's own preparation skipped; this module does what that preparation
would still have done to processed data: unpacked, examples whose labels are all masked are dropped (a prompt
that fills max_length); packed, rows are packed with TRL's own ``pack_dataset`` (best-fit-decreasing,
``packing_strategy="bfd"``). ``plan`` counts exactly these rows. GRPO/RLOO repeat each prompt
``num_generations`` times in whole generation batches. KTO trains on two unpaired rows per pair.
Imports numpy, pyarrow, datasets and trl when called.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from tunebridge.examples import Examples
from tunebridge.spec import Spec


def sft_tokens(spec: Spec, examples: Examples, tokenizer_path: Path | None = None, tokenizer: Any = None) -> Any:
    """``examples.tokens`` (and ``eval_tokens``), tokenised here when the examples came without them (a job
    read back by the worker of another interpreter)."""
    if examples.tokens is None or (examples.eval and examples.eval_tokens is None):
        from tunebridge.lengths import tokenise_examples

        if tokenizer is None:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_path or examples.tokenizer_path))
        tokenise_examples(examples, tokenizer, spec)
    return examples.tokens


def sft_dataset(tokens: Any, packing: bool, max_length: int, strategy: str = "bfd") -> Any:
    """The ``datasets.Dataset`` TRL trains on: ``input_ids`` + ``labels`` (arrow, no Python copy); fully masked
    rows dropped when unpacked; packed with TRL's ``pack_dataset`` when packing."""
    from datasets import Dataset
    from datasets.table import InMemoryTable

    if not packing:
        keep = tokens.trainable()
        if not keep.all():
            tokens = tokens.select(keep)
    elif not tokens.lengths.all():
        tokens = tokens.select(tokens.lengths > 0)
    # A fingerprint of our own: datasets would otherwise hash the whole table (a full serialised copy).
    dataset = Dataset(InMemoryTable(tokens.to_arrow()), fingerprint=uuid.uuid4().hex)
    if packing:
        from trl.data_utils import pack_dataset

        dataset = pack_dataset(dataset, max_length, strategy)
    return dataset


def sft_rows(spec: Spec, examples: Examples, tokenizer_path: Path) -> tuple[int, int]:
    """(sequences per epoch, tokens in them) for TRL's SFTTrainer, from the rows it will be handed."""
    tokens = sft_tokens(spec, examples, tokenizer_path)
    n = spec.training.max_length
    if not spec.sft.packing:
        keep = tokens.trainable()
        return int(keep.sum()), int(tokens.lengths[keep].sum())
    import pyarrow.compute as pc

    packed = sft_dataset(tokens, True, n, "bfd")
    return len(packed), int(pc.sum(pc.list_value_length(packed.data.column("input_ids"))).as_py() or 0)


def rl_rows(spec: Spec, n_prompts: int) -> int:
    """Completions per epoch of GRPO/RLOO: whole generation batches of prompts (batch_size x accumulation
    completions each, so batch_size x accumulation / num_generations prompts), each prompt num_generations
    times. One generation batch makes one optimizer step."""
    t = spec.training
    g = spec.rl.generation.num_generations
    prompts_per_generation = t.batch_size * spec.world_size * t.gradient_accumulation // g
    whole = (n_prompts // prompts_per_generation) * prompts_per_generation
    return whole * g


def plan_counts(spec: Spec, examples: Examples | None) -> dict[str, Any]:
    """``train_rows`` and ``tokens_per_epoch`` for the plan, or {} when they follow the neutral rule."""
    if examples is None:
        return {}
    if spec.task == "rl":
        return {"train_rows": rl_rows(spec, len(examples.train))}
    if spec.task == "preference" and spec.preference.resolved_algorithm == "kto":
        # KTO trains on two unpaired rows per pair (config.unpaired_rows); the tokens are the pairs' both sides.
        tokens = sum(examples.token_lengths) if examples.token_lengths is not None else None
        return {"train_rows": 2 * len(examples.train), "tokens_per_epoch": tokens}
    if spec.task == "sft" and examples.tokenizer_path is not None:
        rows, tokens = sft_rows(spec, examples, Path(examples.tokenizer_path))
        return {"train_rows": rows, "tokens_per_epoch": tokens}
    return {}
