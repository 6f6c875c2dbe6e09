"""Adapting tunebridge's neutral rewards to TRL's reward_funcs convention."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tunebridge.rewards import NeutralReward, load_rewards
from tunebridge.spec import Spec

# Keyword arguments TRL adds for its own purposes; they are not dataset columns.
TRL_EXTRAS = ("trainer_state", "log_extra", "log_metric", "completion_ids")


def adapt(reward: NeutralReward) -> Callable[..., list[float]]:
    """TRL calls ``fn(prompts, completions, completion_ids, **columns_and_extras)``: pass on the columns only."""

    def trl_reward(prompts: list[Any], completions: list[Any], **kwargs: Any) -> list[float]:
        columns = {k: v for k, v in kwargs.items() if k not in TRL_EXTRAS}
        return reward(list(prompts), list(completions), **columns)

    trl_reward.__name__ = reward.name  # TRL names the rewards/<name>/mean metric after it
    return trl_reward


def trl_reward_funcs(spec: Spec) -> list[Callable[..., list[float]]]:
    """The spec's rewards as TRL reward functions (weights go to the config's reward_weights)."""
    return [adapt(reward) for reward, _ in load_rewards(spec)]
