"""The ``data.argilla`` spec block: which Argilla export it is and which recipe turns its records into rows."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

Recipe = Literal["sft", "edited-vs-original", "ranking", "rating", "label", "prompts"]
Policy = Literal["first", "majority", "all", "unanimous"]
Status = Literal["submitted", "draft", "discarded", "unknown"]

# Which tasks each recipe feeds (preference reads reward's pairs); edited-vs-original for rl makes rated samples.
RECIPE_TASKS: dict[str, tuple[str, ...]] = {
    "sft": ("sft",), "edited-vs-original": ("reward", "rl"), "ranking": ("reward",), "rating": ("reward",),
    "label": ("reward",), "prompts": ("rl",),
}
# edited-vs-original for task rl: the reward of the original and of the edited answer (the Argilla guide's 1 and 2).
DEFAULT_REWARDS = {"original": 1.0, "edited": 2.0}
# The recipe-specific keys each recipe needs (required) and accepts (allowed, required included).
_REQUIRED: dict[str, tuple[str, ...]] = {
    "sft": (), "edited-vs-original": ("edited", "original"), "ranking": ("question",),
    "rating": ("ratings",), "label": ("question", "candidates"), "prompts": (),
}
_ALLOWED: dict[str, tuple[str, ...]] = {
    "sft": (), "edited-vs-original": ("edited", "original", "rewards"),
    "ranking": ("question", "candidates", "pairs"),
    "rating": ("ratings", "pairs"), "label": ("question", "candidates"), "prompts": ("reward",),
}
_RECIPE_KEYS = ("edited", "original", "rewards", "question", "candidates", "ratings", "pairs", "reward")


class ArgillaSpec(BaseModel):
    """Annotated Argilla records (1.x HF format, 2.x export or to_disk folder) turned into rows for the template."""

    # ``columns`` says which columns each converted row gets (the template then renders them); the recipe
    # adds its own: chosen/rejected for the preference recipes, reward for ``prompts`` with a reward.

    model_config = ConfigDict(extra="forbid", protected_namespaces=(), validate_assignment=True)

    format: Literal["auto", "v1", "v2", "v2-disk", "server"] = Field(
        "auto", description="auto (detected), v1 (1.x FeedbackDataset in its Hugging Face format), v2 (2.x "
        "to_datasets/to_hub table), v2-disk (2.x to_disk folder) or server (data.path argilla://WORKSPACE/DATASET "
        "on a live 2.x server)."
    )
    recipe: Recipe = Field(
        ..., description="sft (task sft) | edited-vs-original (task reward/preference; task rl: rated samples) | "
        "ranking | rating | label (task reward/preference) | prompts (task rl)."
    )
    columns: dict[str, str | list[str]] = Field(
        default_factory=dict, description="Row column -> a field or question; a list: the first that has a value "
        "(a question's answer, else the next name), e.g. {response: [new-response, original-response]}."
    )
    edited: str | None = Field(None, description="edited-vs-original: the text question holding the edit (chosen).")
    original: str | None = Field(None, description="edited-vs-original: the field holding the original (rejected).")
    rewards: dict[Literal["original", "edited"], float] | None = Field(
        None, description="edited-vs-original with task rl: the reward of each sample, the original answer and "
        "the edit (default {original: 1, edited: 2}); they land in a `reward` column."
    )
    question: str | None = Field(None, description="ranking: the RankingQuestion; label: the LabelQuestion.")
    candidates: dict[str, str] | list[str] | None = Field(
        None, description="ranking/label: answer value -> field holding that response ({A: response1, ...}); a "
        "list when the values are the field names. label needs exactly two."
    )
    ratings: dict[str, str] | None = Field(
        None, description="rating: response field -> the RatingQuestion that rates it (at least two)."
    )
    pairs: Literal["best-vs-each", "best-vs-worst", "all"] = Field(
        "best-vs-each", description="ranking/rating: which pairs to make: the best against each worse one, the "
        "best against the worst, or every pair with a different rank. Ties make no pair."
    )
    reward: str | None = Field(None, description="prompts: a RatingQuestion whose value becomes a `reward` column.")
    annotators: Policy = Field(
        "first", description="Several annotators: first (first counted response), majority (most common "
        "answer; ties dropped), all (one example per annotator), unanimous (only where all agree)."
    )
    api_url: str | None = Field(None, description="server: the Argilla URL (default: $ARGILLA_API_URL).")
    api_key: SecretStr | None = Field(
        None, description="server: the API key (default: $ARGILLA_API_KEY); never written anywhere."
    )
    statuses: list[Status] = Field(
        default_factory=lambda: ["submitted"], min_length=1, description="Response statuses that count; 2.x "
        "to_disk folders keep no status, so their responses are 'unknown'."
    )

    @field_validator("columns")
    @classmethod
    def _non_empty_sources(cls, value: dict[str, str | list[str]]) -> dict[str, str | list[str]]:
        for column, sources in value.items():
            if isinstance(sources, list) and not sources:
                raise ValueError(f"columns.{column}: give at least one field or question")
        return value

    @model_validator(mode="after")
    def _recipe_keys(self) -> ArgillaSpec:
        recipe = self.recipe
        given = [k for k in _RECIPE_KEYS if getattr(self, k) not in (None, "best-vs-each")]
        stray = [k for k in given if k not in _ALLOWED[recipe]]
        if stray:
            raise ValueError(f"recipe {recipe!r} does not take {', '.join(map(repr, stray))} "
                             f"(it takes: {', '.join(_ALLOWED[recipe]) or 'columns only'})")
        missing = [k for k in _REQUIRED[recipe] if getattr(self, k) is None]
        if missing:
            raise ValueError(f"recipe {recipe!r} needs {', '.join(map(repr, missing))}")
        if recipe in ("sft", "prompts") and not self.columns:
            raise ValueError(f"recipe {recipe!r} needs `columns` (row column -> field or question)")
        if recipe == "label" and len(self.candidate_map) != 2:
            raise ValueError("recipe 'label' needs exactly two candidates (the two response fields)")
        if recipe == "rating" and len(self.ratings or {}) < 2:
            raise ValueError("recipe 'rating' needs at least two ratings ({response field: rating question})")
        reserved = {"chosen", "rejected"} if "reward" in RECIPE_TASKS[recipe] else set()
        reserved |= {"reward"} if self.reward else set()
        reserved |= {"reward"} if recipe == "edited-vs-original" else set()
        clash = sorted(reserved & set(self.columns))
        if clash:
            verb = "is" if len(clash) == 1 else "are"
            raise ValueError(f"columns: {', '.join(clash)} {verb} made by recipe {recipe!r}; use other names")
        return self

    @property
    def candidate_map(self) -> dict[str, str]:
        """Answer value -> response field (a list of fields maps each to itself)."""
        if isinstance(self.candidates, list):
            return {name: name for name in self.candidates}
        return dict(self.candidates or {})

    @property
    def tasks(self) -> tuple[str, ...]:
        """The tasks this recipe makes rows for (the first when the spec does not say)."""
        return RECIPE_TASKS[self.recipe]

    @property
    def sample_rewards(self) -> dict[str, float]:
        """edited-vs-original with task rl: the reward of the original and of the edited sample."""
        return {**DEFAULT_REWARDS, **(self.rewards or {})}

    def describe(self) -> dict[str, Any]:
        """The block as plain data, without defaults (for reports)."""
        return self.model_dump(mode="json", exclude_defaults=True)
