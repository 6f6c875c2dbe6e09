"""Pure adapters between tunebridge's neutral data/rewards/metrics and trlx's conventions (no trlx import)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from tunebridge.examples import Examples

# trlx stat names -> tunebridge's neutral metric names (others pass through unchanged).
RENAMES = {
    "loss": "loss",                       # SFT
    "losses/total_loss": "loss",          # PPO
    "losses/loss": "loss",                # ILQL
    "learning_rate_group_0": "learning_rate",
    "rollout_scores/mean": "reward_mean",
    "rollout_scores/std": "reward_std",
    "policy/approx_kl": "approx_kl",      # PPO's old-vs-new policy KL (not the KL to the reference)
    "reward/mean": "eval_reward_mean",    # trlx's evaluation on eval_prompts
}
ROLLOUT_KEYS = ("reward_mean", "reward_std")  # carried onto the training steps that use those rollouts


def sft_samples(examples: Examples, eos_token: str | None = None) -> list[Any]:
    """trlx ``samples``: [prompt, completion] pairs (prompt tokens get no loss) or plain strings.

    trlx appends EOS to pairs but not to plain strings; the core's rule is EOS after every example.
    """
    if examples.kind == "text":
        eos = eos_token or ""
        return [ex["text"] if ex["text"].endswith(eos) else ex["text"] + eos for ex in examples.train]
    return [[ex["prompt"], ex["completion"]] for ex in examples.train]


def ppo_prompts(examples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Fresh prompt dicts ({prompt, **columns}): trlx pops "prompt" from the dicts it is given."""
    return [{key: value for key, value in ex.items()} for ex in examples]


def make_reward_fn(rewards: Sequence[tuple[Callable[..., list[float]], float]],
                   eos_token: str | None) -> Callable[..., list[float]]:
    """trlx's ``reward_fn(samples, prompts, outputs, **metadata)`` over the neutral weighted rewards.

    Completions reach the neutral rewards as TRL gives them: without the EOS trlx appends to finished outputs.
    """

    def reward_fn(samples: list[str], prompts: list[str], outputs: list[str], **metadata: Any) -> list[float]:
        columns = {k: v for k, v in metadata.items() if k != "tokenizer"}
        completions = [o[: -len(eos_token)] if eos_token and o.endswith(eos_token) else o for o in outputs]
        total = [0.0] * len(outputs)
        for reward, weight in rewards:
            values = reward(list(prompts), completions, **columns)
            total = [t + weight * (0.0 if math.isnan(v) else v) for t, v in zip(total, values, strict=True)]
        return total

    return reward_fn


def normalise(stats: dict[str, Any]) -> dict[str, float]:
    """trlx stats in neutral names; non-numbers (tables, histograms) dropped."""
    out: dict[str, float] = {}
    for key, value in stats.items():
        if hasattr(value, "item"):
            value = value.item()
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        out[RENAMES.get(key, key)] = float(value)
    return out


class StepMetrics:
    """Merges trlx's several ``log`` calls per step into one record per step, in order.

    PPO logs its rollout scores whenever it generates a new round of rollouts; those become ``reward_mean``
    / ``reward_std`` on each training step that learns from that round. A record without a loss (trlx's
    evaluation at step 0) is an evaluation record: its keys get the ``eval_`` prefix.
    """

    def __init__(self, sink: Callable[[int, dict[str, Any]], None]):
        self.sink = sink
        self.step: int | None = None
        self.pending: dict[str, float] = {}
        self.rollout: dict[str, float] = {}

    def add(self, step: int | None, stats: dict[str, Any]) -> None:
        """One ``accelerator.log`` call."""
        values = normalise(stats)
        if not values:
            return
        if "rollout_scores/mean" in stats:
            self.rollout = {k: values[k] for k in ROLLOUT_KEYS if k in values}
            if "policy/sqrt_kl" in values:  # the KL to the reference model, measured on the rollouts
                self.rollout["kl"] = values["policy/sqrt_kl"] ** 2
            return
        step = int(step or 0)
        if step != self.step:
            self.flush()
            self.step = step
        if "loss" in values:
            for key, value in self.rollout.items():
                values.setdefault(key, value)
        self.pending.update(values)

    def flush(self) -> None:
        """Send the record being built, if any."""
        if self.step is None or not self.pending:
            return
        record = dict(self.pending)
        if "loss" not in record:
            record = {k if k.startswith("eval_") else f"eval_{k}": v for k, v in record.items()}
        self.sink(self.step, record)
        self.pending = {}
