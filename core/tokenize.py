"""The one published tokenisation rule tunebridge's neutral evaluation uses, whatever the backend trained with.

- sft, prompt + completion: ``ids(prompt) + ids(completion) + [EOS]``, each part tokenised on its own with no
  special tokens added; labels are -100 on the prompt and the token ids on the completion and the EOS.
  A completion that already ends with the EOS token's text (a chat template that closes the assistant turn
  with it) gets no second EOS.
- sft, plain text: ``ids(text) + [EOS]`` (no second EOS either), loss on every token.
- reward: each answer is scored as it was trained, ``ids(prompt + answer) + [EOS]``.
- rl prompts: ``ids(prompt)``.

- BOS: never added by the rule (every call is ``add_special_tokens=False``), whether or not the tokenizer has a
  BOS token. A chat template that writes one into the rendered text keeps it there, as text, in the prompt.
- The prompt and the completion are tokenised separately and concatenated: the mask boundary is exactly the
  end of the prompt's ids. A prompt that ends in a space keeps that space in its own ids (``"Answer: "`` ends
  with the tokenizer's token for the space) and the completion starts without one, so the ids can differ from
  ``ids(prompt + completion)``; a backend that tokenises the joined text and masks by character offsets trains on
  other ids and fails the contract's step-1 loss check. Templates put the separator at the end of the prompt.

A backend that tokenises itself must produce exactly these ids and labels; the simplest way is to call
``encode_example`` (sft), ``encode_scored`` (reward) and ``encode_prompt`` (rl) here, as the example plugin does
(examples/plugin). The contract suite computes its step-1 reference loss with them
(``tunebridge.testing.reference``).

Sequences longer than ``max_length`` lose their end (the same side every backend truncates). No torch here:
the functions take any Hugging Face tokenizer and return plain lists.

``tokenise_sft`` applies the same rule to a whole split in batches (the fast tokenizer's batch encoding) and
keeps the ids as flat numpy arrays (``Tokenised``): the core's length rules read them, and the TRL backend
trains on exactly them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

IGNORE = -100
BATCH_ROWS = 5000  # rows tokenised per batch: bounds the Python lists alive at once


def _ids(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []


def _eos(tokenizer: Any, text: str = "") -> list[int]:
    eos = tokenizer.eos_token
    if tokenizer.eos_token_id is None or (eos and text.endswith(eos)):
        return []
    return [tokenizer.eos_token_id]


def encode_sft(tokenizer: Any, prompt: str, completion: str, max_length: int) -> tuple[list[int], list[int]]:
    """``(input_ids, labels)`` of one prompt/completion pair: the prompt masked (-100), EOS appended."""
    prompt_ids = _ids(tokenizer, prompt)
    completion_ids = _ids(tokenizer, completion) + _eos(tokenizer, completion)
    input_ids = (prompt_ids + completion_ids)[:max_length]
    labels = ([IGNORE] * len(prompt_ids) + completion_ids)[:max_length]
    return input_ids, labels


def encode_text(tokenizer: Any, text: str, max_length: int) -> tuple[list[int], list[int]]:
    """``(input_ids, labels)`` of plain text: loss on every token, EOS appended."""
    ids = (_ids(tokenizer, text) + _eos(tokenizer, text))[:max_length]
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


@dataclass
class Tokenised:
    """One split's sft examples under the rule, row after row in one flat array (numpy, imported when built).

    Row ``i`` is ``input_ids[offsets[i]:offsets[i + 1]]`` (already cut at max_length); its first ``masked[i]``
    labels are -100 (the prompt, under completion-only loss), the rest are its ids. Labels are made when asked
    for, so a large split holds its ids once. ``full_lengths`` and ``prompt_lengths`` are the token counts
    before the cut.
    """

    input_ids: Any  # int32, all rows end to end
    offsets: Any  # int64, one more than there are rows
    masked: Any  # int64 per row: leading tokens whose label is -100
    full_lengths: Any  # int64 per row: prompt + completion + EOS, before the max_length cut
    prompt_lengths: Any  # int64 per row (0 for plain text)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> Any:
        """Tokens per row after the cut (numpy)."""
        import numpy as np

        return np.diff(self.offsets)

    @property
    def labels(self) -> Any:
        """The labels of every row, end to end (a new int32 array)."""
        labels = self.input_ids.copy()
        for start, n in zip(self.offsets[:-1][self.masked > 0].tolist(), self.masked[self.masked > 0].tolist(),
                            strict=True):
            labels[start:start + n] = IGNORE
        return labels

    def row(self, i: int) -> tuple[list[int], list[int]]:
        """``(input_ids, labels)`` of row ``i`` as lists."""
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        ids = self.input_ids[a:b].tolist()
        m = int(self.masked[i])
        return ids, [IGNORE] * m + ids[m:]

    def trainable(self) -> Any:
        """Per row: whether any label is trained on (numpy bool)."""
        return self.lengths > self.masked

    def select(self, keep: Any) -> Tokenised:
        """The rows where the boolean array ``keep`` is true, in order."""
        import numpy as np

        keep = np.asarray(keep, dtype=bool)
        starts, ends = self.offsets[:-1][keep], self.offsets[1:][keep]
        parts = [self.input_ids[a:b] for a, b in zip(starts.tolist(), ends.tolist(), strict=True)]
        ids = np.concatenate(parts) if parts else self.input_ids[:0]
        return Tokenised(ids, np.concatenate(([0], np.cumsum(ends - starts))), self.masked[keep],
                         self.full_lengths[keep], self.prompt_lengths[keep])

    def to_arrow(self) -> Any:
        """A pyarrow table with ``input_ids`` (sharing this array's memory) and ``labels`` (list<int32>)."""
        import pyarrow as pa

        offsets = pa.array(self.offsets.astype("int32", copy=False))
        return pa.table({"input_ids": pa.ListArray.from_arrays(offsets, pa.array(self.input_ids)),
                         "labels": pa.ListArray.from_arrays(offsets, pa.array(self.labels))})


def _batch_ids(tokenizer: Any, texts: list[str]) -> list[list[int]]:
    if not texts:
        return []
    out = tokenizer(texts, add_special_tokens=False, return_attention_mask=False, return_token_type_ids=False)
    return out["input_ids"]


def tokenise_sft(tokenizer: Any, examples: Sequence[dict[str, Any]], max_length: int, completion_only_loss: bool = True,
                 progress: Callable[[int, int], None] | None = None, batch_rows: int = BATCH_ROWS) -> Tokenised:
    """Every sft example (``text``, or ``prompt`` + ``completion``) under the rule, tokenised in batches.

    ``completion_only_loss=False`` trains on the prompt too (labels = input_ids). ``progress(done, total)`` is
    called after each batch.
    """
    import itertools

    import numpy as np

    eos_id, eos = tokenizer.eos_token_id, tokenizer.eos_token or ""
    total = len(examples)
    id_parts, lengths, full, prompts = [], [np.zeros(1, dtype=np.int64)], [], []
    for start in range(0, total, batch_rows):
        chunk = examples[start:start + batch_rows]
        is_text = ["text" in ex for ex in chunk]
        texts = [ex["text"] if t else ex["completion"] for ex, t in zip(chunk, is_text, strict=True)]
        tails = _batch_ids(tokenizer, texts)
        heads = _batch_ids(tokenizer, [ex["prompt"] for ex, t in zip(chunk, is_text, strict=True) if not t])
        rows, n_full, n_prompt = [], [], []
        head_iter = iter(heads)
        for text, tail, t in zip(texts, tails, is_text, strict=True):
            if eos_id is not None and not (eos and text.endswith(eos)):
                tail = [*tail, eos_id]
            head = [] if t else next(head_iter)
            ids = head + tail
            n_full.append(len(ids))
            n_prompt.append(len(head))
            rows.append(ids[:max_length])
        n = sum(map(len, rows))
        id_parts.append(np.fromiter(itertools.chain.from_iterable(rows), dtype=np.int32, count=n))
        lengths.append(np.fromiter(map(len, rows), dtype=np.int64, count=len(rows)))
        full.append(np.asarray(n_full, dtype=np.int64))
        prompts.append(np.asarray(n_prompt, dtype=np.int64))
        del rows, tails, heads
        if progress is not None:
            progress(min(start + batch_rows, total), total)
    empty64 = np.zeros(0, dtype=np.int64)
    input_ids = np.concatenate(id_parts) if id_parts else np.zeros(0, dtype=np.int32)
    del id_parts
    offsets = np.cumsum(np.concatenate(lengths))
    prompt_lengths = np.concatenate(prompts) if prompts else empty64
    masked = np.minimum(prompt_lengths, np.diff(offsets)) if completion_only_loss else np.zeros_like(prompt_lengths)
    return Tokenised(input_ids=input_ids, offsets=offsets, masked=masked,
                     full_lengths=np.concatenate(full) if full else empty64, prompt_lengths=prompt_lengths)
