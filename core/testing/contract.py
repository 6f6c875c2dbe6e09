"""The contract suite: what "backends behave alike" means, as pytest tests any backend can run.

A backend's test module opts in by subclassing (fsspec / SQLAlchemy style), one class per task it has::

    from tunebridge.testing.contract import RewardContract, RLContract, SFTContract

    class TestMyBackendSFT(SFTContract):
        backend_name = "mybackend"

    class TestMyBackendRL(RLContract):
        backend_name = "mybackend"
        algorithm = "ppo"          # default: auto (the backend's default algorithm)

Capability flags come from the backend's ``capabilities``; a subclass may switch parts off where its
framework legitimately differs (each flag says why it exists):

- ``SFTContract.supports_first_batch``: None takes ``capabilities.first_batch``; False when the backend
  cannot show the batch it trains on (AutoTrain: it runs in another process and packs).
- ``SFTContract.follows_step_rule``: False when the backend packs examples whatever ``sft.packing`` says
  (AutoTrain's llm-sft), so its optimizer steps depend on token counts, not on the neutral rule.
- ``RewardContract.logs_train_accuracy``: False when the framework logs no pairwise accuracy while it
  trains (AutoTrain 0.8 on trl 0.13); the ranking test still checks the trained model.

Fixtures a subclass may override: ``contract_data``
(a JSONL file of instruction/context/response rows) and ``contract_spec`` (a spec dict).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, ClassVar

import pytest

from ..errors import DataError, OutputExistsError, RunFailed, UnsupportedFeature
from ..examples import prepare_examples
from ..execution import executor_for
from ..plugins import get_registry
from ..progress import METRIC_NAMES
from ..result import TrainResult
from ..run import Run
from ..schedule import expected_optimizer_steps
from ..spec import parse_spec
from . import contract_rows, preference_rows, reward_spec_dict, rl_spec_dict, sft_spec_dict, write_jsonl

# Candidate specs for "an unsupported feature fails before training": (label, change to the spec dict).
UNSUPPORTED_CANDIDATES: list[tuple[str, Any]] = [
    ("task reward", lambda d: (d.pop("sft", None), d.update(task="reward"),
                               d["data"].update(template="preference"))),
    ("task rl", lambda d: (d.pop("sft", None),
                           d.update(task="rl", rl={"reward": "tunebridge.testing.rewards:letter_e"}))),
    ("lora", lambda d: d.update(lora={"r": 4})),
    ("packing", lambda d: d.update(sft={"packing": True})),
    ("plain text", lambda d: d["data"].update(template=None, text="{instruction} {response}")),
    ("precision fp16", lambda d: d["training"].update(precision="fp16")),
]


def is_eval_record(record: dict[str, Any]) -> bool:
    """Evaluation records carry ``eval_``-prefixed metrics; training records carry the loss."""
    return any(key.startswith("eval_") for key in record)


def _losses(history: list[dict[str, Any]]) -> list[float]:
    return [r["loss"] for r in history if r.get("loss") is not None]


def assert_same_series(a: list[float], b: list[float], rel_tol: float) -> None:
    """Two runs with the same seed must log the same values, step for step."""
    assert len(a) == len(b), (a, b)
    for x, y in zip(a, b, strict=True):
        assert math.isclose(x, y, rel_tol=rel_tol, abs_tol=1e-9), (a, b)


class SFTContract:
    """SFT contracts from the design: same examples and masking, step count, loss falls, reload, metrics,
    determinism, unsupported features fail early, output folders are protected."""

    backend_name: ClassVar[str] = ""
    supports_first_batch: ClassVar[bool | None] = None  # None: take it from the backend's capabilities
    follows_step_rule: ClassVar[bool] = True  # False: the backend always packs (see the module docstring)
    rows: ClassVar[int] = 24
    determinism_rel_tol: ClassVar[float] = 1e-5

    # -- fixtures a backend may override -------------------------------------------------------------

    @pytest.fixture(scope="class")
    @classmethod
    def contract_dir(cls, tmp_path_factory) -> Path:
        return tmp_path_factory.mktemp(f"contract-{cls.backend_name}")

    @pytest.fixture(scope="class")
    @classmethod
    def contract_data(cls, contract_dir) -> Path:
        return write_jsonl(contract_dir / "data.jsonl", contract_rows(cls.rows))

    @pytest.fixture(scope="class")
    @classmethod
    def contract_spec(cls, contract_data) -> dict[str, Any]:
        return sft_spec_dict(contract_data, cls.backend_name, max_steps=16)

    # -- shared runs ---------------------------------------------------------------------------------

    @pytest.fixture(scope="class")
    @classmethod
    def backend(cls):
        return _ready_backend(cls.backend_name)

    @pytest.fixture(scope="class")
    @classmethod
    def trained(cls, backend, contract_spec, contract_dir) -> TrainResult:
        return Run(parse_spec(contract_spec)).train(contract_dir / "run-a")

    @pytest.fixture(scope="class")
    @classmethod
    def trained_again(cls, backend, contract_spec, contract_dir) -> TrainResult:
        return Run(parse_spec(contract_spec)).train(contract_dir / "run-b")

    # -- contracts -----------------------------------------------------------------------------------

    def test_first_batch_is_the_core_rendering_with_completion_only_masking(self, backend, contract_spec):
        enabled = self.supports_first_batch
        if enabled is None:
            enabled = backend.capabilities.first_batch
        if not enabled:
            pytest.skip(f"backend {self.backend_name!r} cannot show its first batch")
        from transformers import AutoTokenizer

        spec = parse_spec(contract_spec)
        batch = Run(spec).first_batch()
        tok = AutoTokenizer.from_pretrained(batch["tokenizer_path"])
        expected = prepare_examples(spec).train
        assert batch["examples"] == expected[: len(batch["input_ids"])], "backend reordered or re-rendered examples"
        for ids, labels, example in zip(batch["input_ids"], batch["labels"], batch["examples"], strict=True):
            real = [i for i in ids if i != tok.pad_token_id]
            assert tok.decode(real) == example["prompt"] + example["completion"] + tok.eos_token
            trained_on = [i for i, lab in zip(ids, labels, strict=True) if lab != -100]
            assert tok.decode(trained_on) == example["completion"] + tok.eos_token

    def test_optimizer_steps_follow_the_neutral_rule(self, backend, contract_spec, contract_dir):
        if not self.follows_step_rule:
            pytest.skip(f"backend {self.backend_name!r} always packs examples, so its step count follows token counts")
        spec_dict = json.loads(json.dumps(contract_spec))
        spec_dict["training"].update(max_steps=None, epochs=2, batch_size=4, gradient_accumulation=2)
        spec = parse_spec(spec_dict)
        result = Run(spec).train(contract_dir / "steps")
        n_train = len(prepare_examples(spec).train)
        expected = expected_optimizer_steps(n_train, 4, 2, 2, None)
        assert result.metrics["global_step"] == expected
        assert max(r["step"] for r in result.log_history) == expected

    def test_loss_falls(self, trained):
        losses = _losses(trained.log_history)
        assert len(losses) >= 6, losses
        assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3, losses

    def test_saved_model_reloads_and_differs_from_the_start(self, trained):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tok = AutoTokenizer.from_pretrained(trained.model_dir)
        ids = torch.tensor([tok("What does the cat do?").input_ids])
        with torch.no_grad():
            after = AutoModelForCausalLM.from_pretrained(trained.model_dir).eval()(ids).logits
            before = AutoModelForCausalLM.from_pretrained(trained.base_model).eval()(ids).logits
        assert torch.isfinite(after).all()
        assert (after - before).abs().max().item() > 1e-4, "the saved model equals the starting model"

    def test_metrics_use_neutral_names(self, trained):
        lines = [json.loads(line) for line in (trained.output_dir / "metrics.jsonl").read_text().splitlines()]
        assert lines == trained.log_history
        steps = [r["step"] for r in lines]
        assert steps == sorted(steps) and isinstance(steps[0], int)
        train_lines = [r for r in lines if not is_eval_record(r)]
        assert train_lines
        for record in train_lines:
            assert {"step", "loss", "learning_rate"} <= set(record), record
            assert math.isfinite(record["loss"])
        assert set(METRIC_NAMES) >= {"step", "loss", "learning_rate"}
        record = json.loads((trained.output_dir / "run.json").read_text())
        for key in ("spec", "backend", "versions", "native_config", "metrics", "wall_time_s", "seed", "status"):
            assert key in record, key
        assert record["status"] == "completed" and record["backend"] == self.backend_name
        assert (trained.output_dir / "README.md").read_text().strip()

    def test_same_seed_gives_the_same_metrics(self, trained, trained_again):
        assert_same_series(_losses(trained.log_history), _losses(trained_again.log_history), self.determinism_rel_tol)

    def test_unsupported_feature_fails_before_training(self, backend, contract_spec, contract_dir):
        spec = label = None
        for candidate_label, change in UNSUPPORTED_CANDIDATES:
            spec_dict = json.loads(json.dumps(contract_spec))
            change(spec_dict)
            candidate = parse_spec(spec_dict)
            try:
                Run(candidate).check_support()
            except UnsupportedFeature:
                spec, label = candidate, candidate_label
                break
        if spec is None:
            pytest.skip(f"backend {self.backend_name!r} supports every candidate feature")
        out = contract_dir / "unsupported"
        with pytest.raises(UnsupportedFeature) as info:
            Run(spec).train(out)
        assert self.backend_name in str(info.value), label
        assert not out.exists(), "an unsupported run must not create its output folder"

    def test_non_empty_output_folder_is_refused(self, backend, contract_spec, contract_dir):
        out = contract_dir / "occupied"
        out.mkdir()
        keep = out / "notes.txt"
        keep.write_text("mine")
        with pytest.raises(OutputExistsError):
            Run(parse_spec(contract_spec)).train(out)
        assert keep.read_text() == "mine"


def _values(history: list[dict[str, Any]], key: str) -> list[float]:
    return [r[key] for r in history if r.get(key) is not None]


def _ready_backend(name: str):
    backend = executor_for(get_registry().get(name))  # how it runs here: its capabilities, status, hint
    status = backend.status()
    if not status.ready:
        hint = f"; install: {backend.install_hint}" if status.kind in ("missing", "broken") else ""
        pytest.skip(f"backend {name!r} cannot run here: {status.describe()}{hint}")
    return backend


def _copy(spec: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(spec))


class RewardContract:
    """Reward-modelling contracts: the model ranks chosen over rejected on its training pairs, metrics are
    neutral, same seed same metrics, over-long pairs are dropped and counted (or truncated)."""

    backend_name: ClassVar[str] = ""
    rows: ClassVar[int] = 24
    determinism_rel_tol: ClassVar[float] = 1e-5
    min_accuracy: ClassVar[float] = 0.75
    logs_train_accuracy: ClassVar[bool] = True  # False: no per-step accuracy (see the module docstring)

    @pytest.fixture(scope="class")
    @classmethod
    def reward_dir(cls, tmp_path_factory) -> Path:
        return tmp_path_factory.mktemp(f"reward-contract-{cls.backend_name}")

    @pytest.fixture(scope="class")
    @classmethod
    def reward_data(cls, reward_dir) -> Path:
        return write_jsonl(reward_dir / "pairs.jsonl", preference_rows(cls.rows))

    @pytest.fixture(scope="class")
    @classmethod
    def reward_spec(cls, reward_data) -> dict[str, Any]:
        return reward_spec_dict(reward_data, cls.backend_name)

    @pytest.fixture(scope="class")
    @classmethod
    def reward_backend(cls):
        return _ready_backend(cls.backend_name)

    @pytest.fixture(scope="class")
    @classmethod
    def reward_trained(cls, reward_backend, reward_spec, reward_dir) -> TrainResult:
        return Run(parse_spec(reward_spec)).train(reward_dir / "run-a")

    def test_ranks_chosen_over_rejected_on_its_training_pairs(self, reward_trained, reward_spec):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        tok = AutoTokenizer.from_pretrained(reward_trained.model_dir)
        model = AutoModelForSequenceClassification.from_pretrained(reward_trained.model_dir).eval()
        assert model.config.num_labels == 1
        pairs = prepare_examples(parse_spec(reward_spec)).train

        def score(texts: list[str]) -> list[float]:
            batch = tok([t + tok.eos_token for t in texts], return_tensors="pt", padding=True)
            with torch.no_grad():
                return model(**batch).logits[:, 0].tolist()

        chosen = score([p["prompt"] + p["chosen"] for p in pairs])
        rejected = score([p["prompt"] + p["rejected"] for p in pairs])
        accuracy = sum(c > r for c, r in zip(chosen, rejected, strict=True)) / len(pairs)
        assert accuracy >= self.min_accuracy, f"pairwise accuracy {accuracy:.2f} on the training pairs"

    def test_metrics_use_neutral_names(self, reward_trained):
        lines = [json.loads(x) for x in (reward_trained.output_dir / "metrics.jsonl").read_text().splitlines()]
        train_lines = [r for r in lines if not is_eval_record(r)]
        names = {"step", "loss", "learning_rate"} | ({"accuracy"} if self.logs_train_accuracy else set())
        assert train_lines and all(names <= set(r) for r in train_lines)
        assert reward_trained.metrics["global_step"] == parse_spec_steps(reward_trained)

    def test_same_seed_gives_the_same_metrics(self, reward_trained, reward_spec, reward_dir):
        again = Run(parse_spec(reward_spec)).train(reward_dir / "run-b")
        assert_same_series(_losses(reward_trained.log_history), _losses(again.log_history), self.determinism_rel_tol)

    def test_over_length_pairs_are_dropped_and_counted(self, reward_backend, reward_spec, reward_dir):
        spec = _copy(reward_spec)
        spec["training"].update(max_length=16, max_steps=2)
        result = Run(parse_spec(spec)).train(reward_dir / "drop")
        dropped = result.data["dropped"]["train_over_max_length"]
        assert 0 < dropped < self.rows and result.data["train"] == self.rows - dropped
        assert any("dropped" in w for w in result.warnings)

    def test_truncate_keeps_over_length_pairs(self, reward_backend, reward_spec, reward_dir):
        spec = _copy(reward_spec)
        spec["training"].update(max_length=16, max_steps=2)
        spec["reward"] = {"over_length": "truncate"}
        result = Run(parse_spec(spec)).train(reward_dir / "truncate")
        assert result.data["train_truncated_pairs"] > 0
        assert result.data["train"] + result.data.get("dropped", {}).get("train_over_max_length", 0) == self.rows

    def test_nothing_left_after_dropping_fails_before_training(self, reward_backend, reward_spec, reward_dir):
        spec = _copy(reward_spec)
        spec["training"].update(max_length=8)
        out = reward_dir / "nothing-left"
        # The length rules run while planning, before the output folder exists.
        with pytest.raises(DataError, match="no training pair fits training.max_length=8"):
            Run(parse_spec(spec)).train(out)
        assert not out.exists()


def parse_spec_steps(result: TrainResult) -> int:
    """The optimizer steps a finished run should have made, from its own run.json."""
    record = json.loads((result.output_dir / "run.json").read_text())
    t = record["spec"]["training"]
    return expected_optimizer_steps(record["data"]["train"], t["batch_size"], t["gradient_accumulation"],
                                    t["epochs"], t["max_steps"])


UNSUPPORTED_ALGORITHMS = ("ppo", "ilql", "grpo", "rloo")


class RLContract:
    """RL contracts: mean reward rises on a toy reward, neutral metrics, same seed same metrics, an
    algorithm the backend lacks fails before training naming the backends that have it, bad rewards fail
    clearly, a constant reward is warned about."""

    backend_name: ClassVar[str] = ""
    algorithm: ClassVar[str] = "auto"
    builtin_model: ClassVar[str] = "tiny-llama"
    rl_overrides: ClassVar[dict[str, dict[str, Any]]] = {}  # e.g. {"training": {"max_steps": 40}}
    determinism_rel_tol: ClassVar[float] = 1e-5

    @pytest.fixture(scope="class")
    @classmethod
    def rl_dir(cls, tmp_path_factory) -> Path:
        return tmp_path_factory.mktemp(f"rl-contract-{cls.backend_name}")

    @pytest.fixture(scope="class")
    @classmethod
    def rl_data(cls, rl_dir) -> Path:
        return write_jsonl(rl_dir / "prompts.jsonl", contract_rows(24))

    @pytest.fixture(scope="class")
    @classmethod
    def rl_spec(cls, rl_data) -> dict[str, Any]:
        spec = rl_spec_dict(rl_data, cls.backend_name, algorithm=cls.algorithm, model=cls.builtin_model)
        for section, values in cls.rl_overrides.items():
            spec[section].update(values)
        return spec

    @pytest.fixture(scope="class")
    @classmethod
    def rl_backend(cls):
        return _ready_backend(cls.backend_name)

    @pytest.fixture(scope="class")
    @classmethod
    def rl_trained(cls, rl_backend, rl_spec, rl_dir) -> TrainResult:
        return Run(parse_spec(rl_spec)).train(rl_dir / "run-a")

    def test_mean_reward_rises_on_a_toy_reward(self, rl_trained):
        rewards = _values(rl_trained.log_history, "reward_mean")
        assert len(rewards) >= 6, rewards
        third = len(rewards) // 3
        first, last = sum(rewards[:third]) / third, sum(rewards[-third:]) / third
        assert last > first, f"mean reward did not rise: {rewards}"

    def test_metrics_use_neutral_names(self, rl_trained, rl_spec):
        train_records = [r for r in rl_trained.log_history if not is_eval_record(r)]
        assert train_records
        for record in train_records:
            assert {"step", "loss", "learning_rate", "reward_mean", "reward_std"} <= set(record), record
        assert rl_trained.metrics["global_step"] == rl_spec["training"]["max_steps"]
        assert (rl_trained.model_dir / "config.json").is_file()

    def test_same_seed_gives_the_same_metrics(self, rl_trained, rl_spec, rl_dir):
        again = Run(parse_spec(rl_spec)).train(rl_dir / "run-b")
        assert_same_series(_values(rl_trained.log_history, "reward_mean"), _values(again.log_history, "reward_mean"),
                           self.determinism_rel_tol)

    def test_unsupported_algorithm_fails_before_training(self, rl_backend, rl_spec, rl_dir):
        supported = rl_backend.capabilities.algorithms.get("rl", ())
        missing = [a for a in UNSUPPORTED_ALGORITHMS if a not in supported]
        if not missing:
            pytest.skip(f"backend {self.backend_name!r} has every RL algorithm")
        spec = _copy(rl_spec)
        spec["rl"]["algorithm"] = missing[0]
        out = rl_dir / "unsupported"
        with pytest.raises(UnsupportedFeature) as info:
            Run(parse_spec(spec)).train(out)
        assert f"rl.algorithm {missing[0]!r}" in str(info.value) and not out.exists()
        others = [name for name, item in get_registry().backends.items()
                  if missing[0] in item.backend.capabilities.algorithms.get("rl", ()) and name != self.backend_name]
        for name in others:
            assert name in str(info.value)

    def test_a_broken_reward_fails_the_run_naming_it(self, rl_backend, rl_spec, rl_dir):
        spec = _copy(rl_spec)
        spec["rl"]["reward"] = "tunebridge.testing.rewards:wrong_length"
        spec["training"]["max_steps"] = 2
        with pytest.raises(RunFailed, match=r"reward 'wrong_length' returned (\d+) values for \d+ completions"):
            Run(parse_spec(spec)).train(rl_dir / "broken")
        assert json.loads((rl_dir / "broken" / "run.json").read_text())["status"] == "failed"

    def test_a_reward_that_cannot_be_imported_fails_validation(self, rl_backend, rl_spec):
        spec = _copy(rl_spec)
        spec["rl"]["reward"] = "tunebridge.testing.rewards:no_such_reward"
        with pytest.raises(Exception, match=r"rl.reward\[0\].function: cannot import"):
            Run(parse_spec(spec)).validate()

    def test_columns_reach_the_reward_and_callables_work(self, rl_backend, rl_spec, rl_dir):
        from . import rewards

        spec = _copy(rl_spec)
        # A callable stays in this interpreter; a backend running elsewhere gets the same function by reference.
        isolated = not rl_backend.in_process
        spec["rl"]["reward"] = [f"{rewards.__name__}:needs_response_column" if isolated
                                else rewards.needs_response_column]
        spec["training"]["max_steps"] = 2
        result = Run(parse_spec(spec)).train(rl_dir / "columns")
        assert result.metrics["global_step"] == 2
        record = json.loads((rl_dir / "columns" / "run.json").read_text())
        assert record["spec"]["rl"]["reward"][0]["function"] == (
            "tunebridge.testing.rewards:needs_response_column")

    def test_a_constant_reward_is_warned_about(self, rl_backend, rl_spec, rl_dir):
        spec = _copy(rl_spec)
        spec["rl"]["reward"] = "tunebridge.testing.rewards:constant"
        spec["training"]["max_steps"] = 3
        result = Run(parse_spec(spec)).train(rl_dir / "constant")
        assert any("same reward" in w for w in result.warnings), result.warnings


__all__ = ["SFTContract", "RewardContract", "RLContract", "DataError"]
