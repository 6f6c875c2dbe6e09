"""Test helpers for tunebridge and its backend plugins.

- ``build_tiny_llama``: the same local tiny model the ``{builtin: tiny-llama}`` spec uses.
- ``contract_rows`` / ``write_jsonl``: small deterministic SFT data.
- ``tunebridge.testing.contract``: the contract suite (``SFTContract``) a backend's tests subclass.
  It imports pytest, so it is a separate module.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..builtin_models import build_tiny_llama

__all__ = ["build_tiny_llama", "contract_rows", "write_jsonl", "sft_spec_dict"]

_SUBJECTS = ["the cat", "a robot", "my friend", "the teacher", "a bird", "the river"]
_VERBS = ["likes", "builds", "reads", "paints", "follows", "answers"]
_OBJECTS = ["a book", "the garden", "an apple", "the letter", "a song", "the bridge"]


def contract_rows(n: int = 24) -> list[dict[str, str]]:
    """``n`` instruction/context/response rows, deterministic, some with an empty context."""
    rows = []
    for i in range(n):
        s, v, o = _SUBJECTS[i % 6], _VERBS[(i // 2) % 6], _OBJECTS[(i * 5) % 6]
        rows.append({
            "instruction": f"What does {s} do?",
            "context": "" if i % 3 == 0 else f"{s.capitalize()} {v} {o} every day.",
            "response": f"{s.capitalize()} {v} {o}.",
        })
    return rows


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> Path:
    """Write rows as JSON lines; returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
    return path


def sft_spec_dict(data_path: Path | str, backend: str, **training: Any) -> dict[str, Any]:
    """A small SFT spec on the builtin tiny model with the instruction template."""
    base = {"max_steps": 12, "learning_rate": 3e-3, "batch_size": 4, "max_length": 128, "seed": 1234}
    base.update(training)
    return {
        "task": "sft",
        "model": {"builtin": "tiny-llama"},
        "data": {"path": str(data_path), "template": "instruction"},
        "training": base,
        "backend": backend,
    }
