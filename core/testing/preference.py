"""The preference contract: what "behave alike" means for task preference (DPO, KTO, ORPO), as pytest tests.

A backend's test module opts in by subclassing, one class per algorithm it runs::

    from tunebridge.testing.preference import PreferenceContract

    class TestMyBackendDPO(PreferenceContract):
        backend_name = "mybackend"
        algorithm = "dpo"          # default: auto (dpo)

It checks, on the builtin tiny model: the policy's chosen-vs-rejected log-probability margin on its training
pairs rises (``tunebridge.evaluation.preference_margin``, the figure ``evaluate`` reports); the saved model is a
causal LM and the card says so; metrics use the neutral names; ``plan``'s optimizer steps are the steps the run
made, and follow the neutral rule (KTO: over two unpaired rows per pair); same seed, same metrics; an algorithm
the backend lacks fails before anything is written, naming the backends that have it.

Flags a subclass may set (each says why it exists):

- ``follows_step_rule``: False when the framework's own step arithmetic differs from the neutral rule
  (AutoTrain's transformers 4.48 loop); ``plan`` must still predict the steps the run made.
- ``runs_twice``: False when a second run is too costly for the suite's budget (AutoTrain: ~60 s a run);
  the determinism test is then skipped.
- ``logs_accuracy``: None takes "every algorithm but KTO" (TRL's KTO logs no pairwise accuracy).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import pytest

from ..errors import UnsupportedFeature
from ..examples import prepare_examples
from ..plugins import get_registry
from ..result import TrainResult
from ..run import Run
from ..schedule import expected_optimizer_steps
from ..spec import PREFERENCE_ALGORITHMS, parse_spec
from . import preference_rows, preference_spec_dict, write_jsonl
from .contract import _copy, _losses, _ready_backend, assert_same_series, is_eval_record


def policy_margin(model_dir: Path | str, tokenizer_dir: Path | str, pairs: list[dict[str, Any]],
                  max_length: int) -> dict[str, Any]:
    """The neutral preference figures (margin, accuracy) of the causal LM in ``model_dir`` on ``pairs``."""
    from transformers import AutoModelForCausalLM

    from ..evaluation import _tokenizer, preference_margin

    model = AutoModelForCausalLM.from_pretrained(str(model_dir)).eval()
    return preference_margin(model, _tokenizer(Path(tokenizer_dir)), pairs, max_length)


class PreferenceContract:
    """Preference contracts (task preference): margin rises, causal LM saved, neutral metrics, planned steps are
    made, same seed same metrics, an algorithm the backend lacks fails early."""

    backend_name: ClassVar[str] = ""
    algorithm: ClassVar[str] = "auto"
    rows: ClassVar[int] = 24
    training: ClassVar[dict[str, Any]] = {}  # overrides of preference_spec_dict's training block
    determinism_rel_tol: ClassVar[float] = 1e-5
    follows_step_rule: ClassVar[bool] = True
    runs_twice: ClassVar[bool] = True
    logs_accuracy: ClassVar[bool | None] = None
    min_margin_gain: ClassVar[float] = 0.5  # nats of log p(chosen) - log p(rejected), mean over the pairs

    @property
    def resolved(self) -> str:
        return "dpo" if self.algorithm == "auto" else self.algorithm

    @pytest.fixture(scope="class")
    @classmethod
    def pref_dir(cls, tmp_path_factory) -> Path:
        return tmp_path_factory.mktemp(f"preference-contract-{cls.backend_name}-{cls.algorithm}")

    @pytest.fixture(scope="class")
    @classmethod
    def pref_data(cls, pref_dir) -> Path:
        return write_jsonl(pref_dir / "pairs.jsonl", preference_rows(cls.rows))

    @pytest.fixture(scope="class")
    @classmethod
    def pref_spec(cls, pref_data) -> dict[str, Any]:
        return preference_spec_dict(pref_data, cls.backend_name, cls.algorithm, **cls.training)

    @pytest.fixture(scope="class")
    @classmethod
    def pref_backend(cls):
        return _ready_backend(cls.backend_name)

    @pytest.fixture(scope="class")
    @classmethod
    def pref_trained(cls, pref_backend, pref_spec, pref_dir) -> TrainResult:
        return Run(parse_spec(pref_spec)).train(pref_dir / "run-a")

    def test_margin_rises_on_its_training_pairs(self, pref_trained, pref_spec):
        spec = parse_spec(pref_spec)
        pairs = prepare_examples(spec).train
        n = spec.training.max_length
        before = policy_margin(pref_trained.base_model, pref_trained.model_dir, pairs, n)
        after = policy_margin(pref_trained.model_dir, pref_trained.model_dir, pairs, n)
        gain = after["margin"] - before["margin"]
        print(f"{self.backend_name} {self.resolved}: log-prob margin on the training pairs {before['margin']:.3f} -> "
              f"{after['margin']:.3f}, accuracy {before['accuracy']:.2f} -> {after['accuracy']:.2f}")
        assert gain >= self.min_margin_gain, (
            f"log-prob margin {before['margin']:.3f} -> {after['margin']:.3f} (accuracy {before['accuracy']:.2f} -> "
            f"{after['accuracy']:.2f}) on the training pairs")
        assert after["accuracy"] >= before["accuracy"]

    def test_saves_a_causal_lm_and_the_card_says_so(self, pref_trained):
        config = json.loads((pref_trained.model_dir / "config.json").read_text())
        assert all(a.endswith("ForCausalLM") for a in config["architectures"]), config["architectures"]
        record = json.loads((pref_trained.output_dir / "run.json").read_text())
        assert record["task"] == "preference" and record["algorithm"] == self.resolved
        card = (pref_trained.output_dir / "README.md").read_text()
        assert "AutoModelForCausalLM" in card and "Sequence" not in card.split("## Preference tuning")[1][:400]

    def test_metrics_use_neutral_names(self, pref_trained):
        lines = [json.loads(x) for x in (pref_trained.output_dir / "metrics.jsonl").read_text().splitlines()]
        train_lines = [r for r in lines if not is_eval_record(r)]
        accuracy = self.logs_accuracy if self.logs_accuracy is not None else self.resolved != "kto"
        names = {"step", "loss", "learning_rate"} | ({"accuracy", "margin"} if accuracy else set())
        assert train_lines and all(names <= set(r) for r in train_lines), train_lines[:2]
        assert any("margin" in r for r in train_lines)
        assert not [k for r in lines for k in r if "/" in k], "framework metric names leaked"

    def test_plan_predicts_the_steps_the_run_made(self, pref_trained):
        record = json.loads((pref_trained.output_dir / "run.json").read_text())
        assert record["plan"]["optimizer_steps"] == record["global_step"] == pref_trained.metrics["global_step"]

    def test_optimizer_steps_follow_the_rule(self, pref_backend, pref_spec, pref_dir):
        if not self.follows_step_rule:
            pytest.skip(f"backend {self.backend_name!r} makes its framework's own step count (plan predicts it)")
        spec_dict = _copy(pref_spec)
        # 10 pairs: a partial last batch and a partial last accumulation in each epoch
        spec_dict["data"]["limit"] = 10
        spec_dict["training"].update(max_steps=None, epochs=2, batch_size=4, gradient_accumulation=2)
        spec = parse_spec(spec_dict)
        plan = Run(spec).plan()
        pairs = len(prepare_examples(spec).train)
        rows = 2 * pairs if self.resolved == "kto" else pairs
        assert plan.train_rows == rows
        assert plan.optimizer_steps == expected_optimizer_steps(rows, 4, 2, 2, None)
        result = Run(spec).train(pref_dir / "steps")
        assert result.metrics["global_step"] == plan.optimizer_steps
        assert max(r["step"] for r in result.log_history) == plan.optimizer_steps

    def test_same_seed_gives_the_same_metrics(self, pref_trained, pref_spec, pref_dir):
        if not self.runs_twice:
            pytest.skip(f"a second {self.backend_name!r} run is outside this suite's time budget")
        again = Run(parse_spec(pref_spec)).train(pref_dir / "run-b")
        assert_same_series(_losses(pref_trained.log_history), _losses(again.log_history), self.determinism_rel_tol)

    def test_unsupported_algorithm_fails_before_training(self, pref_backend, pref_spec, pref_dir):
        supported = pref_backend.capabilities.algorithms.get("preference", ())
        missing = [a for a in PREFERENCE_ALGORITHMS if a not in supported]
        if not missing:
            pytest.skip(f"backend {self.backend_name!r} has every preference algorithm")
        spec = _copy(pref_spec)
        spec["preference"]["algorithm"] = missing[0]
        out = pref_dir / "unsupported"
        with pytest.raises(UnsupportedFeature) as info:
            Run(parse_spec(spec)).train(out)
        assert f"preference.algorithm {missing[0]!r}" in str(info.value) and not out.exists()
        others = [name for name, item in get_registry().backends.items() if name != self.backend_name
                  and missing[0] in item.backend.capabilities.algorithms.get("preference", ())]
        for name in others:
            assert name in str(info.value)


__all__ = ["PreferenceContract", "policy_margin"]
