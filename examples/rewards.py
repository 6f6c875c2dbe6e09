"""Reward functions for the example RL specs, in tunebridge's neutral signature:

    reward(prompts: list[str], completions: list[str], **columns) -> list[float]

``columns`` holds the other dataset columns (here: instruction, context, response), one list each.
"""

from __future__ import annotations


def letter_e(prompts: list[str], completions: list[str], **columns) -> list[float]:
    """A toy reward a tiny model can learn in a few steps: the share of the letter "e" in the completion."""
    return [c.count("e") / max(len(c), 1) for c in completions]


def overlap_with_reference(prompts: list[str], completions: list[str], response: list[str], **columns) -> list[float]:
    """Share of the reference answer's words (the `response` column) that appear in the completion."""
    scores = []
    for completion, reference in zip(completions, response, strict=True):
        words = set(reference.lower().split())
        scores.append(len(words & set(completion.lower().split())) / max(len(words), 1))
    return scores
