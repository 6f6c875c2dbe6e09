"""Anthropic-style dialogue strings (``\\n\\nHuman: ... \\n\\nAssistant: ...``), as in hh-rlhf.

A chosen/rejected pair shares the whole dialogue up to the last Assistant turn; only that last answer
differs. ``split_pair`` cuts it into the shared prompt (ending with ``\\n\\nAssistant:``) and the two
answers, so that ``prompt + answer`` gives back each original string.
"""

from __future__ import annotations

ASSISTANT = "\n\nAssistant:"
HUMAN = "\n\nHuman:"


class DialogueProblem(ValueError):
    """The text is not a dialogue this module can split; the message says why."""


def split_last_turn(dialogue: str, label: str = "dialogue") -> tuple[str, str]:
    """(prompt up to and including the last ``\\n\\nAssistant:``, the last answer)."""
    if not isinstance(dialogue, str):
        raise DialogueProblem(f"{label} holds a {type(dialogue).__name__}, expected a dialogue string")
    cut = dialogue.rfind(ASSISTANT)
    if cut < 0:
        raise DialogueProblem(f"{label} has no '\\n\\nAssistant:' turn")
    if HUMAN not in dialogue[:cut + 1] and not dialogue.startswith(HUMAN.lstrip("\n")):
        raise DialogueProblem(f"{label} has no '\\n\\nHuman:' turn before the last Assistant turn")
    prompt, answer = dialogue[: cut + len(ASSISTANT)], dialogue[cut + len(ASSISTANT):]
    if not answer.strip():
        raise DialogueProblem(f"{label}: the last Assistant answer is empty")
    return prompt, answer


def split_pair(chosen: str, rejected: str) -> tuple[str, str, str]:
    """(shared prompt, chosen answer, rejected answer). Raises DialogueProblem."""
    prompt, chosen_answer = split_last_turn(chosen, "chosen")
    other, rejected_answer = split_last_turn(rejected, "rejected")
    if prompt != other:
        at = next((i for i, (a, b) in enumerate(zip(prompt, other, strict=False)) if a != b),
                  min(len(prompt), len(other)))
        raise DialogueProblem(f"chosen and rejected differ before the last Assistant turn (from character {at})")
    if chosen_answer.strip() == rejected_answer.strip():
        raise DialogueProblem("chosen and rejected answers are identical")
    return prompt, chosen_answer, rejected_answer
