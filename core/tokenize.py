"""The one published tokenisation rule tunebridge's neutral evaluation uses, whatever the backend trained with.

- sft, prompt + completion: ``ids(prompt) + ids(completion) + [EOS]``, each part tokenised on its own with no
  special tokens added; labels are -100 on the prompt and the token ids on the completion and the EOS.
- sft, plain text: ``ids(text) + [EOS]``, loss on every token.
- reward: each answer is scored as it was trained, ``ids(prompt + answer) + [EOS]``.
- rl prompts: ``ids(prompt)``.

Sequences longer than ``max_length`` lose their end (the same side every backend truncates). No torch here:
the functions take any Hugging Face tokenizer and return plain lists.
"""

from __future__ import annotations

from typing import Any

IGNORE = -100


def _ids(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []


def _eos(tokenizer: Any) -> list[int]:
    return [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []


def encode_sft(tokenizer: Any, prompt: str, completion: str, max_length: int) -> tuple[list[int], list[int]]:
    """``(input_ids, labels)`` of one prompt/completion pair: the prompt masked (-100), EOS appended."""
    prompt_ids = _ids(tokenizer, prompt)
    completion_ids = _ids(tokenizer, completion) + _eos(tokenizer)
    input_ids = (prompt_ids + completion_ids)[:max_length]
    labels = ([IGNORE] * len(prompt_ids) + completion_ids)[:max_length]
    return input_ids, labels


def encode_text(tokenizer: Any, text: str, max_length: int) -> tuple[list[int], list[int]]:
    """``(input_ids, labels)`` of plain text: loss on every token, EOS appended."""
    ids = (_ids(tokenizer, text) + _eos(tokenizer))[:max_length]
    return ids, list(ids)


def encode_example(tokenizer: Any, example: dict[str, Any], max_length: int) -> tuple[list[int], list[int]]:
    """The rule for one rendered sft example (``text``, or ``prompt`` + ``completion``)."""
    if "text" in example:
        return encode_text(tokenizer, example["text"], max_length)
    return encode_sft(tokenizer, example["prompt"], example["completion"], max_length)


def encode_scored(tokenizer: Any, prompt: str, answer: str, max_length: int) -> list[int]:
    """The ids a reward model scores for one answer: ``ids(prompt + answer) + [EOS]``."""
    return (_ids(tokenizer, prompt + answer) + _eos(tokenizer))[:max_length]


def encode_prompt(tokenizer: Any, prompt: str, max_length: int) -> list[int]:
    """The ids of an rl prompt (generation continues after them); the start is kept."""
    return _ids(tokenizer, prompt)[:max_length]
