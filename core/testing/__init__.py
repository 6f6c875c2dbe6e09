"""Test helpers for tunebridge and its backend plugins.

- ``build_tiny_llama``: the same local tiny model the ``{builtin: tiny-llama}`` spec uses.
- ``contract_rows`` / ``write_jsonl``: small deterministic SFT data.
- ``tunebridge.testing.contract``: the contract suite (``SFTContract``, ``RewardContract``, ``RLContract``) a
  backend's tests subclass; ``tunebridge.testing.preference``: ``PreferenceContract`` (task preference). They
  import pytest, so they are separate modules.
- ``tunebridge.testing.reference``: the first batch and its step-1 loss as the core computes them (torch).
- ``tunebridge.testing.pytest_plugin``: registered as the ``pytest11`` entry point; readable suite failures.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..builtin_models import build_builtin, build_tiny_llama

__all__ = ["build_builtin", "build_tiny_llama", "contract_rows", "preference_rows", "write_jsonl", "sft_spec_dict",
           "reward_spec_dict", "rl_spec_dict", "preference_spec_dict"]

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


_BAD_ANSWERS = ["I do not know.", "Nothing at all.", "Bad answer.", "No."]


def preference_rows(n: int = 24) -> list[dict[str, str]]:
    """``n`` prompt/chosen/rejected rows a tiny reward model can learn to rank in a few steps."""
    rows = []
    for i, row in enumerate(contract_rows(n)):
        chosen = row["response"] if i % 2 else row["response"].rstrip(".") + " every day, with care."
        rows.append({"prompt": row["instruction"] + "\n", "chosen": chosen,
                     "rejected": _BAD_ANSWERS[i % len(_BAD_ANSWERS)]})
    return rows


def reward_spec_dict(data_path: Path | str, backend: str, **training: Any) -> dict[str, Any]:
    """A small reward-modelling spec on the builtin tiny model (template: preference)."""
    base = {"max_steps": 24, "learning_rate": 2e-3, "batch_size": 4, "max_length": 128, "seed": 1234}
    base.update(training)
    return {"task": "reward", "model": {"builtin": "tiny-llama"},
            "data": {"path": str(data_path), "template": "preference"}, "training": base, "backend": backend}


def rl_spec_dict(data_path: Path | str, backend: str, reward: Any = "tunebridge.testing.rewards:letter_e",
                 algorithm: str = "auto", model: str = "tiny-llama", **training: Any) -> dict[str, Any]:
    """A small RL spec: instruction prompts, a toy reward the tiny model learns in ~20 steps."""
    base = {"max_steps": 20, "learning_rate": 3e-2, "batch_size": 8, "seed": 1234}
    base.update(training)
    return {"task": "rl", "model": {"builtin": model},
            "data": {"path": str(data_path), "template": "instruction"}, "training": base, "backend": backend,
            "rl": {"algorithm": algorithm, "reward": reward,
                   "generation": {"max_new_tokens": 12, "num_generations": 4}}}


def preference_spec_dict(data_path: Path | str, backend: str, algorithm: str = "auto",
                         **training: Any) -> dict[str, Any]:
    """A small preference spec (DPO / KTO / ORPO) on the builtin tiny model (template: preference)."""
    base = {"max_steps": 12, "learning_rate": 3e-3, "batch_size": 4, "max_length": 128, "seed": 1234}
    base.update(training)
    return {"task": "preference", "model": {"builtin": "tiny-llama"},
            "data": {"path": str(data_path), "template": "preference"}, "training": base, "backend": backend,
            "preference": {"algorithm": algorithm}}
