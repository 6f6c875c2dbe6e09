"""Toy rewards for tests and the contract suite, in the neutral signature
``reward(prompts, completions, **columns) -> list[float]``."""

from __future__ import annotations


def letter_e(prompts: list[str], completions: list[str], **columns) -> list[float]:
    """The share of the letter "e" in each completion: a signal a tiny model learns in a few steps."""
    return [c.count("e") / max(len(c), 1) for c in completions]


def constant(prompts: list[str], completions: list[str], **columns) -> list[float]:
    """The same reward for everything: nothing can be learned from it."""
    return [1.0 for _ in completions]


def wrong_length(prompts: list[str], completions: list[str], **columns) -> list[float]:
    """A broken reward: one value too few."""
    return [0.0 for _ in completions[1:]]


def needs_response_column(prompts: list[str], completions: list[str], response: list[str], **columns) -> list[float]:
    """Uses a dataset column (``response``): 1.0 when the completion shares a word with it."""
    return [float(bool(set(c.split()) & set(r.split()))) for c, r in zip(completions, response, strict=True)]
