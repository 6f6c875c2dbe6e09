"""How many optimizer steps an AutoTrain 0.8.36 run makes, counted in tunebridge's own environment.

Pure: imports nothing from AutoTrain (transformers only inside the function that loads a tokenizer).
What it replicates (read in the AutoTrain environment: autotrain-advanced 0.8.36, trl 0.13.0,
transformers 4.48.0):

- **block size** (``autotrain/trainers/clm/utils.py``): ``get_tokenizer`` sets
  ``tokenizer.model_max_length = params.model_max_length`` when the tokenizer's own value is over 2048;
  ``configure_block_size`` then uses ``min(block_size, tokenizer.model_max_length)`` (``block_size: -1``:
  ``min(tokenizer.model_max_length, 1024)``).
- **llm-sft packing** (``train_clm_sft.py`` passes ``packing=True, max_seq_length=block_size``; trl
  ``SFTTrainer._prepare_packed_dataloader`` builds a ``ConstantLengthDataset`` with the defaults
  ``num_of_sequences=1024, chars_per_token=3.6``, ``append_concat_token=True``, ``add_special_tokens=True``):
  the texts are read in file order into buffers of at least ``block * 3.6 * 1024`` characters (a text is
  added while the buffer holds fewer characters than that, so the last text of a buffer crosses it);
  each buffer is tokenised with the tokenizer's special tokens (BOS where its post-processor adds one),
  one EOS id is appended to every text, the buffer's ids are concatenated and cut into blocks of exactly
  ``block`` ids, and the remainder of *each buffer* is dropped. The buffer shuffle does not change the count.
- **llm-reward** (``train_clm_reward.py`` + ``utils.preprocess_reward``): chosen and rejected are each
  tokenised with ``truncation=True`` (so cut at ``tokenizer.model_max_length``), and a pair is kept only
  when both are at most ``block`` ids long. trl's RewardTrainer does not filter again (the columns exist).
- **optimizer steps** (``transformers/trainer.py`` ``_inner_training_loop``, 4.48.0): batches per epoch
  ``L = ceil(rows / batch_size)`` (``dataloader_drop_last`` is False); ``max_steps = epochs *
  max(L // accumulation, 1)``; the loop steps after every full accumulation and after the epoch's last
  batch, but its last chunk fetches only ``rows % accumulation`` batches (rows, not batches: 4.48's own
  arithmetic), and training stops at ``max_steps``. So a partial accumulation never adds a step, unlike
  tunebridge's rule (``tunebridge.schedule``), and when ``L < accumulation`` an epoch can make no step at all.
- **llm-dpo / llm-orpo** (``train_clm_dpo.py``, ``train_clm_orpo.py`` on trl 0.13's DPOTrainer / ORPOTrainer):
  no packing and no filter: every pair written is one row; the steps follow the same 4.48 loop.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tunebridge.examples import Examples
    from tunebridge.spec import Spec

NUM_OF_SEQUENCES = 1024  # trl 0.13 SFTConfig.num_of_sequences (AutoTrain never sets it)
CHARS_PER_TOKEN = 3.6  # trl 0.13 SFTConfig.chars_per_token
TOKENIZER_LIMIT = 2048  # autotrain get_tokenizer: a model_max_length above this becomes params.model_max_length
DEFAULT_BLOCK = 1024  # autotrain configure_block_size when block_size is -1
# AutoTrain params that decide the step count, and the trainers this module predicts.
STEP_PARAMS = ("block_size", "model_max_length", "batch_size", "gradient_accumulation", "epochs")
PACKING_TRAINERS = ("sft",)
PAIR_TRAINERS = ("reward",)
POLICY_PAIR_TRAINERS = ("dpo", "orpo")  # every pair is a row (trl 0.13's DPO/ORPO filter none; no packing)


def tokenizer_limit(tokenizer_max_length: int | None, model_max_length: int) -> int:
    """``tokenizer.model_max_length`` inside AutoTrain: its own value, or ``model_max_length`` when it is over 2048."""
    if tokenizer_max_length is None or tokenizer_max_length > TOKENIZER_LIMIT:
        return model_max_length
    return int(tokenizer_max_length)


def effective_block_size(block_size: int | None, model_max_length: int, tokenizer_max_length: int | None) -> int:
    """The block size AutoTrain trains with (``utils.configure_block_size`` after ``utils.get_tokenizer``)."""
    limit = tokenizer_limit(tokenizer_max_length, model_max_length)
    if block_size is None or block_size == -1:
        return min(limit, DEFAULT_BLOCK)
    return min(int(block_size), limit)


def buffer_bounds(char_lengths: Sequence[int], block_size: int, num_of_sequences: int = NUM_OF_SEQUENCES,
                  chars_per_token: float = CHARS_PER_TOKEN) -> list[tuple[int, int]]:
    """``(start, end)`` of each ConstantLengthDataset buffer over texts of ``char_lengths`` characters."""
    max_buffer = block_size * chars_per_token * num_of_sequences
    bounds: list[tuple[int, int]] = []
    start = 0
    while start < len(char_lengths):
        end, filled = start, 0
        while end < len(char_lengths) and filled < max_buffer:
            filled += char_lengths[end]
            end += 1
        bounds.append((start, end))
        start = end
    return bounds


def last_buffer_full(char_lengths: Sequence[int], block_size: int, num_of_sequences: int = NUM_OF_SEQUENCES,
                     chars_per_token: float = CHARS_PER_TOKEN) -> bool:
    """True when the texts end exactly as a buffer fills: trl 0.13 then tokenises an empty buffer, which
    raises IndexError in transformers 4.48 (``_batch_encode_plus``), and AutoTrain's llm-sft fails."""
    bounds = buffer_bounds(char_lengths, block_size, num_of_sequences, chars_per_token)
    if not bounds:
        return True  # no text at all: the first buffer is already empty
    start, end = bounds[-1]
    return sum(char_lengths[start:end]) >= block_size * chars_per_token * num_of_sequences


def packed_rows_from_lengths(token_lengths: Sequence[int], char_lengths: Sequence[int], block_size: int,
                             num_of_sequences: int = NUM_OF_SEQUENCES,
                             chars_per_token: float = CHARS_PER_TOKEN) -> int:
    """Blocks ConstantLengthDataset yields for texts of ``token_lengths`` ids (special tokens included, the
    appended EOS not) and ``char_lengths`` characters."""
    if len(token_lengths) != len(char_lengths):
        raise ValueError("token_lengths and char_lengths must have one entry per text")
    if block_size < 1:
        raise ValueError(f"block_size must be positive, got {block_size}")
    rows = 0
    for start, end in buffer_bounds(char_lengths, block_size, num_of_sequences, chars_per_token):
        rows += sum(n + 1 for n in token_lengths[start:end]) // block_size  # +1: the concat (EOS) id per text
    return rows


def token_lengths(texts: Sequence[str], tokenizer: Any) -> list[int]:
    """Ids per text as ConstantLengthDataset tokenises them: special tokens added, no truncation."""
    if not texts:
        return []
    return [len(ids) for ids in tokenizer(list(texts), add_special_tokens=True, truncation=False)["input_ids"]]


def packed_rows(texts: Sequence[str], tokenizer: Any, block_size: int) -> int:
    """How many rows trl 0.13 packs ``texts`` into with ``max_seq_length=block_size`` (AutoTrain's llm-sft)."""
    return packed_rows_from_lengths(token_lengths(texts, tokenizer), [len(t) for t in texts], block_size)


def reward_rows(chosen: Sequence[str], rejected: Sequence[str], tokenizer: Any, block_size: int,
                truncate_at: int) -> tuple[int, int]:
    """Pairs AutoTrain's llm-reward keeps (both sides at most ``block_size`` ids after truncation to
    ``truncate_at``), and the ids in them."""
    if len(chosen) != len(rejected):
        raise ValueError("chosen and rejected must have one entry per pair")
    kept = tokens = 0
    for c, r in zip(token_lengths(chosen, tokenizer), token_lengths(rejected, tokenizer), strict=True):
        c, r = min(c, truncate_at), min(r, truncate_at)
        if c <= block_size and r <= block_size:
            kept += 1
            tokens += c + r
    return kept, tokens


def _epoch_syncs(rows: int, batch_size: int, accumulation: int) -> int:
    """Optimizer steps transformers 4.48's loop makes in one epoch of ``rows`` rows (no max_steps cap)."""
    batches = math.ceil(rows / batch_size)
    remainder = rows % accumulation or accumulation  # 4.48 takes the dataset length here, not the batches
    full = batches // accumulation
    fetched = min(batches, full * accumulation + remainder)
    syncs = 0
    for step in range(fetched):
        if (step + 1) % accumulation == 0 or step + 1 == batches:
            syncs += 1
    return syncs


def optimizer_steps(rows: int, batch_size: int, gradient_accumulation: int, epochs: int) -> int:
    """The ``global_step`` HF Trainer (transformers 4.48, one process) ends at for ``rows`` training rows."""
    if batch_size < 1 or gradient_accumulation < 1 or epochs < 1:
        raise ValueError("batch_size, gradient_accumulation and epochs must be at least 1")
    if rows <= 0:
        return 0
    batches = math.ceil(rows / batch_size)
    cap = epochs * max(batches // gradient_accumulation, 1)
    return min(cap, epochs * _epoch_syncs(rows, batch_size, gradient_accumulation))


def steps_per_epoch(rows: int, batch_size: int, gradient_accumulation: int) -> int:
    """Optimizer steps of one epoch; every epoch makes the same number, so ``epochs`` epochs make that many times it."""
    return optimizer_steps(rows, batch_size, gradient_accumulation, 1)


def epochs_for_steps(max_steps: int, steps_per_epoch: int) -> int:
    """The smallest whole number of epochs that makes at least ``max_steps`` optimizer steps (1 when an
    epoch makes none: no number of epochs reaches it, and the caller should say so)."""
    if steps_per_epoch <= 0:
        return 1
    return max(1, math.ceil(max_steps / steps_per_epoch))


def step_params(spec: Spec, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """The AutoTrain params that decide the step count: ``params`` (a config.yml's) when given, else the
    spec's training values with ``backend_options.autotrain.params`` on top (``epochs`` None when
    ``training.max_steps`` decides it)."""
    if params is not None:
        return {k: params.get(k) for k in STEP_PARAMS}
    t = spec.training
    out: dict[str, Any] = {"block_size": t.max_length, "model_max_length": t.max_length, "batch_size": t.batch_size,
                           "gradient_accumulation": t.gradient_accumulation,
                           "epochs": None if t.max_steps else max(1, math.ceil(t.epochs))}
    user = spec.backend_options.get("autotrain", {}).get("params") or {}
    out.update({k: user[k] for k in STEP_PARAMS if k in user})
    return out


def load_tokenizer(tokenizer_path: str | Path) -> Any:
    """The tokenizer AutoTrain loads from ``base_model`` (``AutoTokenizer.from_pretrained``)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tokenizer_path))


def predict_steps(spec: Spec, examples: Examples, tokenizer_path: str | Path, params: dict[str, Any] | None = None,
                  tokenizer: Any = None) -> dict[str, Any]:
    """What AutoTrain makes of ``examples.train`` (the rows tunebridge writes to data/train.jsonl).

    Returns ``optimizer_steps``, ``packed_rows`` (sft; None for reward), ``rows`` (training rows the
    Trainer iterates: packed blocks or kept pairs), ``tokens`` (ids packed, or ids in the kept pairs),
    ``epochs``, ``steps_per_epoch``, ``block_size``, and ``problem`` (None, or why the run will fail or
    not train). ``params`` are the config.yml params when the
    caller has them; without them, ``training.max_steps`` picks the epochs with :func:`epochs_for_steps`.
    """
    from .config import example_rows, trainer_of
    from .export import eos_token

    trainer = trainer_of(spec)
    if trainer not in PACKING_TRAINERS + PAIR_TRAINERS + POLICY_PAIR_TRAINERS:
        raise ValueError(f"no step prediction for AutoTrain trainer {trainer!r} (only sft, reward, dpo and orpo)")
    p = step_params(spec, params)
    tok = tokenizer if tokenizer is not None else load_tokenizer(tokenizer_path)
    model_max_length = int(p["model_max_length"] or 2048)  # LLMTrainingParams default
    block = effective_block_size(p["block_size"], model_max_length, getattr(tok, "model_max_length", None))
    data = example_rows(trainer, examples.train, eos_token(Path(tokenizer_path)))
    packed: int | None
    problem = None
    if trainer == "sft":
        texts = [row["text"] for row in data]
        lengths = token_lengths(texts, tok)
        chars = [len(t) for t in texts]
        packed = packed_rows_from_lengths(lengths, chars, block)
        rows, tokens = packed, sum(lengths) + len(lengths)
        if last_buffer_full(chars, block):
            problem = (f"the training texts end exactly as a packing buffer of {block} x 3.6 x 1024 characters "
                       "fills: trl 0.13 then tokenises an empty buffer and AutoTrain's llm-sft fails (IndexError); "
                       "add or remove an example")
        elif not packed:
            problem = (f"the training texts hold {tokens} tokens, less than one block of {block}: trl 0.13 "
                       "packs no row and AutoTrain's llm-sft fails")
    elif trainer in POLICY_PAIR_TRAINERS:
        packed = None
        rows = len(data)
        tokens = sum(examples.token_lengths) if examples.token_lengths is not None else 0
    else:
        packed = None
        limit = tokenizer_limit(getattr(tok, "model_max_length", None), model_max_length)
        rows, tokens = reward_rows([r["chosen"] for r in data], [r["rejected"] for r in data], tok, block, limit)
        if not rows:
            problem = f"no pair fits in {block} tokens: AutoTrain's llm-reward has nothing to train on"
    batch_size, accumulation = int(p["batch_size"] or 2), int(p["gradient_accumulation"] or 4)
    per_epoch = steps_per_epoch(rows, batch_size, accumulation)
    epochs = p["epochs"]
    if epochs is None:
        epochs = epochs_for_steps(spec.training.max_steps or 1, per_epoch)
    epochs = int(epochs)
    if rows and not per_epoch and problem is None:
        problem = (f"{rows} rows make {math.ceil(rows / batch_size)} batches, fewer than gradient_accumulation="
                   f"{accumulation}, and transformers 4.48 then makes no optimizer step at all; lower "
                   "gradient_accumulation or batch_size")
    return {"optimizer_steps": optimizer_steps(rows, batch_size, accumulation, epochs) if rows else 0,
            "packed_rows": packed, "rows": rows, "tokens": tokens, "epochs": epochs,
            "steps_per_epoch": per_epoch, "block_size": block, "problem": problem}
