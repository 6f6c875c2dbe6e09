"""How many optimizer steps a run makes: one rule that every backend must follow."""

from __future__ import annotations

import math


def expected_optimizer_steps(n_examples: int, batch_size: int, gradient_accumulation: int,
                             epochs: float, max_steps: int | None) -> int:
    """Optimizer steps for ``n_examples`` (unpacked): max_steps if set, else epochs over the batches.

    A last partial batch still counts as a batch, and a last partial accumulation still makes a step.
    """
    if max_steps:
        return max_steps
    batches = math.ceil(n_examples / batch_size)
    per_epoch = max(batches // gradient_accumulation + int(batches % gradient_accumulation > 0), 1)
    return math.ceil(epochs * per_epoch)
