"""What the core expects a backend to train on, computed by the core alone (torch and transformers imported
when called).

``reference_first_loss(spec)`` is the loss of the first optimizer step as the neutral rules define it: the
core's final examples in the core's order (``training.shuffle`` with ``training.seed``), the first
``batch_size`` of them, tokenised with the published rule (``tunebridge.tokenize``), on the starting weights,
averaged over every trained token of the batch (the mean that transformers' Trainer and TRL log with no
gradient accumulation). A backend that logs every step must log this value at step 1: masking, data order,
tokenisation, EOS handling and the starting weights all show up in it, whatever the backend's own
``first_batch`` says.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..spec import Spec
from ..tokenize import IGNORE, encode_example


@dataclass
class ReferenceBatch:
    """The first batch under the neutral rules: the examples, their ids and labels, and the reference loss."""

    examples: list[dict[str, Any]]
    input_ids: list[list[int]]
    labels: list[list[int]]
    loss: float
    model_path: str
    tokenizer_path: str


def reference_batch(spec: Spec | dict[str, Any]) -> ReferenceBatch:
    """The first training batch and its loss on the starting weights, from the core alone (see the module doc).

    Needs an sft spec without packing (packing builds other sequences; the loss is then the backend's own).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ..run import Run

    run = Run(spec)
    examples = run.validate()
    model_path, tokenizer_path, examples = run.prepared(examples)
    s = run.spec
    if s.task != "sft":
        raise ValueError(f"the reference first batch is an sft batch; the spec's task is {s.task!r}")
    if s.sft.packing:
        raise ValueError("the reference first batch needs sft.packing off (packing builds other sequences)")
    tok = AutoTokenizer.from_pretrained(str(tokenizer_path))
    batch = list(examples.train[: s.training.batch_size])
    ids, labels = [], []
    for example in batch:
        x, y = encode_example(tok, example, s.training.max_length)
        if "text" not in example and not s.sft.completion_only_loss:
            y = list(x)
        ids.append(x)
        labels.append(y)
    width = max(map(len, ids))
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    input_t = torch.tensor([x + [pad] * (width - len(x)) for x in ids])
    label_t = torch.tensor([y + [IGNORE] * (width - len(y)) for y in labels])
    mask_t = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in ids])
    model = AutoModelForCausalLM.from_pretrained(str(model_path), dtype=torch.float32).eval()
    with torch.no_grad():
        logits = model(input_ids=input_t, attention_mask=mask_t).logits.float()
    shift_logits, shift_labels = logits[:, :-1, :], label_t[:, 1:]
    loss = torch.nn.functional.cross_entropy(shift_logits.reshape(-1, shift_logits.size(-1)),
                                             shift_labels.reshape(-1), ignore_index=IGNORE, reduction="sum")
    trained = int((shift_labels != IGNORE).sum())
    return ReferenceBatch(batch, ids, labels, float(loss) / max(trained, 1), str(model_path), str(tokenizer_path))


def stored_dtype(model_dir: str | Path) -> Any:
    """The torch dtype of the weights saved in ``model_dir`` (its first safetensors file; float32 without one)."""
    import torch
    from safetensors import safe_open

    files = sorted(Path(model_dir).glob("*.safetensors"))
    if not files:
        return torch.float32
    with safe_open(str(files[0]), "pt") as fh:
        keys = list(fh.keys())
        return fh.get_tensor(keys[0]).dtype if keys else torch.float32


def reference_first_loss(spec: Spec | dict[str, Any]) -> float:
    """The loss a backend must log at step 1 for ``spec`` (see ``reference_batch``)."""
    return reference_batch(spec).loss
