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

- ``honours_seed`` (SFT and reward): False when the framework's trainer seeds with a constant whatever the spec
  says (AutoTrain 0.8: 42); the seed check then requires the plan to report ``training.seed`` as not honoured.
- ``SFTContract.skip_capability_checks``: ``{"precision bf16": "reason"}``; a declared capability whose check
  cannot run here, with the reason (keys: peft, packing, plain text, gradient checkpointing, precision <p>).

What the suite checks does not rest on the backend's word: the step-1 loss it logs must equal the core's own
reference (``tunebridge.testing.reference``: the core's examples, order and tokenisation rule on the starting
weights), every capability it declares is exercised, and different seeds must give different series wherever
something is random. tests/test_contract_mutations.py proves the suite fails on injected bugs.

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
from .reference import reference_batch

STEP_ONE_REL_TOL = 1e-4  # the backend's logged step-1 loss vs the core's reference, fp32
LORA_TARGETS = ["q_proj", "v_proj"]  # attention projections of the builtin tiny models (Llama)

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


def assert_same_series(a: list[float], b: list[float], rel_tol: float, what: str = "loss") -> None:
    """Two runs with the same seed must log the same values, step for step; an empty series proves nothing."""
    assert a and b, f"no {what!r} values were logged to compare (first run: {a}, second run: {b})"
    assert len(a) == len(b), f"the same seed logged {len(a)} vs {len(b)} {what!r} values: {a} vs {b}"
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        assert math.isclose(x, y, rel_tol=rel_tol, abs_tol=1e-9), (
            f"the same seed gave different {what!r} at record {i}: {x} vs {y}\n  run a: {a}\n  run b: {b}")


def assert_different_series(a: list[float], b: list[float], what: str = "loss") -> None:
    """Two runs with different seeds (same base model, same data order) must differ where something is random."""
    assert a and b, f"no {what!r} values were logged to compare (seed 1: {a}, seed 2: {b})"
    same = len(a) == len(b) and all(math.isclose(x, y, rel_tol=1e-7, abs_tol=1e-9) for x, y in zip(a, b, strict=True))
    assert not same, (f"two different training.seed values gave the same {what!r} series {a}: the backend does not "
                      "seed its randomness (dropout, a new head, sampling) with training.seed")


def _base_model(spec: dict[str, Any]) -> Path:
    """The resolved starting-model folder of ``spec`` (a builtin model is built, cached)."""
    run = Run(parse_spec(spec))
    return Path(run.prepared(run.validate())[0])


def _assert_seed_reported(spec: dict[str, Any]) -> None:
    """A backend whose trainer cannot take the spec's seed must say so in its plan (``unhonoured``)."""
    plan = Run(parse_spec(_unseeded(spec, 2, 3))).plan()
    assert any("training.seed" in line for line in plan.unhonoured), (
        f"honours_seed is False, but the plan does not report training.seed as not honoured: {plan.unhonoured}")


def _unseeded(spec: dict[str, Any], seed: int, steps: int) -> dict[str, Any]:
    """``spec`` with another seed, the data order fixed (shuffle off) and ``steps`` steps: only the backend's own
    randomness can differ between two such runs."""
    spec = _copy(spec)
    spec["training"].update(seed=seed, shuffle=False, max_steps=steps)
    spec.get("data", {}).pop("eval_fraction", None)  # the eval split is drawn with the seed too
    return spec


class SFTContract:
    """SFT contracts from the design: same examples and masking, step count, loss falls, reload, metrics,
    determinism, unsupported features fail early, output folders are protected."""

    backend_name: ClassVar[str] = ""
    supports_first_batch: ClassVar[bool | None] = None  # None: take it from the backend's capabilities
    follows_step_rule: ClassVar[bool] = True  # False: the backend always packs (see the module docstring)
    rows: ClassVar[int] = 24
    determinism_rel_tol: ClassVar[float] = 1e-5
    honours_seed: ClassVar[bool] = True  # False: the trainer seeds with a constant, and its plan must say so
    step_one_rel_tol: ClassVar[float] = STEP_ONE_REL_TOL
    # capability checks to skip, with the reason (e.g. {"precision fp16": "needs a GPU this CI lacks"}); keys:
    # "peft", "packing", "plain text", "gradient checkpointing", "precision <p>"
    skip_capability_checks: ClassVar[dict[str, str]] = {}

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
        assert result.metrics["global_step"] == expected, (
            f"{n_train} examples, batch 4, accumulation 2, 2 epochs: the neutral rule gives {expected} optimizer "
            f"steps; backend {self.backend_name!r} made {result.metrics['global_step']}")
        last = max(r["step"] for r in result.log_history)
        assert last == expected, f"the last logged step is {last}; the run's optimizer steps are {expected}"

    def test_loss_falls(self, trained):
        losses = _losses(trained.log_history)
        assert len(losses) >= 6, f"expected a loss on each of 16 steps (logging_steps 1), got {losses}"
        assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3, f"the loss did not fall: {losses}"

    def test_saved_model_reloads_and_differs_from_the_start(self, trained):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tok = AutoTokenizer.from_pretrained(trained.model_dir)
        ids = torch.tensor([tok("What does the cat do?").input_ids])
        with torch.no_grad():
            after = AutoModelForCausalLM.from_pretrained(trained.model_dir).eval()(ids).logits
            before = AutoModelForCausalLM.from_pretrained(trained.base_model).eval()(ids).logits
        assert torch.isfinite(after).all(), "the saved model gives non-finite logits"
        change = (after - before).abs().max().item()
        assert change > 1e-4, f"the saved model equals the starting model (largest logit change {change:.2e})"

    def test_metrics_use_neutral_names(self, trained):
        lines = [json.loads(line) for line in (trained.output_dir / "metrics.jsonl").read_text().splitlines()]
        assert lines == trained.log_history, "metrics.jsonl differs from the run's log history"
        steps = [r["step"] for r in lines]
        assert steps == sorted(steps) and isinstance(steps[0], int), f"steps not increasing integers: {steps}"
        train_lines = [r for r in lines if not is_eval_record(r)]
        assert train_lines, f"no training record in metrics.jsonl: {lines}"
        for record in train_lines:
            missing = {"step", "loss", "learning_rate"} - set(record)
            assert not missing, f"a training record lacks the neutral name(s) {sorted(missing)}: {record}"
            assert math.isfinite(record["loss"]), f"non-finite loss: {record}"
        assert set(METRIC_NAMES) >= {"step", "loss", "learning_rate"}
        record = json.loads((trained.output_dir / "run.json").read_text())
        for key in ("spec", "backend", "versions", "native_config", "metrics", "wall_time_s", "seed", "status"):
            assert key in record, key
        assert record["status"] == "completed" and record["backend"] == self.backend_name
        assert (trained.output_dir / "README.md").read_text().strip()

    def test_same_seed_gives_the_same_metrics(self, trained, trained_again):
        assert_same_series(_losses(trained.log_history), _losses(trained_again.log_history), self.determinism_rel_tol)

    # -- what the backend really trains on -----------------------------------------------------------

    def _capability(self, backend, key: str, declared: bool) -> None:
        if not declared:
            pytest.skip(f"backend {self.backend_name!r} does not declare {key}")
        if key in self.skip_capability_checks:
            pytest.skip(f"{key}: {self.skip_capability_checks[key]}")

    def _check_step_one(self, spec_dict: dict[str, Any], out: Path, rel_tol: float | None = None,
                        label: str = "", result: TrainResult | None = None) -> TrainResult:
        """Train ``spec_dict`` (or take ``result``, trained from it) and compare its logged step-1 loss with the
        core's own reference (tunebridge.testing.reference)."""
        ref = reference_batch(spec_dict)
        if result is None:
            result = Run(parse_spec(spec_dict)).train(out)
        first = next((r for r in result.log_history if r.get("step") == 1 and r.get("loss") is not None), None)
        assert first is not None, (f"{label}: no 'loss' logged at step 1 (logging_steps is 1); logged: "
                                   f"{result.log_history[:2]}")
        tol = self.step_one_rel_tol if rel_tol is None else rel_tol
        assert math.isclose(first["loss"], ref.loss, rel_tol=tol), (
            f"{label}: backend {self.backend_name!r} logged step-1 loss {first['loss']!r}; the core's reference on "
            f"the starting weights is {ref.loss!r} (relative difference "
            f"{abs(first['loss'] - ref.loss) / max(abs(ref.loss), 1e-12):.2e} > {tol:g}). The batch it trained on "
            "is not the first {n} examples in the core's order under the published tokenisation rule "
            "(tunebridge.tokenize: prompt masked, EOS appended), or it did not start from the given weights."
            .replace("{n}", str(len(ref.examples))))
        return result

    def _step_one_spec(self, contract_spec: dict[str, Any], steps: int = 1, **training: Any) -> dict[str, Any]:
        spec = _copy(contract_spec)
        spec["training"].update(max_steps=steps, logging_steps=1, gradient_accumulation=1, **training)
        return spec

    def test_step_one_loss_matches_the_core_reference(self, backend, contract_spec, trained, contract_dir):
        if not backend.capabilities.unpacked:
            pytest.skip(f"backend {self.backend_name!r} always packs examples: its first batch is its own blocks")
        t = contract_spec["training"]
        reuse = (t.get("logging_steps", 1) == 1 and t.get("gradient_accumulation", 1) == 1
                 and not contract_spec.get("sft", {}).get("packing"))
        spec = contract_spec if reuse else self._step_one_spec(contract_spec)
        self._check_step_one(spec, contract_dir / "step-one", label="sft", result=trained if reuse else None)

    @pytest.mark.parametrize("variant", ["plain text", "gradient checkpointing"])
    def test_step_one_loss_with_a_declared_feature(self, backend, contract_spec, contract_dir, variant):
        caps = backend.capabilities
        self._capability(backend, variant, caps.plain_text if variant == "plain text" else caps.gradient_checkpointing)
        if not caps.unpacked:
            pytest.skip(f"backend {self.backend_name!r} always packs examples: its first batch is its own blocks")
        spec = self._step_one_spec(contract_spec, steps=2)
        if variant == "plain text":
            spec["data"].update(template=None, text="{instruction} {response}")
        else:
            spec["training"]["gradient_checkpointing"] = True
        result = self._check_step_one(spec, contract_dir / variant.replace(" ", "-"), label=variant)
        assert result.metrics["global_step"] == 2, result.metrics

    @pytest.mark.parametrize("precision", ["bf16", "fp16"])
    def test_each_declared_precision_trains(self, backend, contract_spec, contract_dir, precision):
        self._capability(backend, f"precision {precision}", precision in backend.capabilities.precisions)
        import torch

        if precision == "fp16" and not torch.cuda.is_available():
            pytest.skip("fp16 mixed precision needs a CUDA device")
        if precision == "bf16" and torch.cuda.is_available() and not torch.cuda.is_bf16_supported():
            pytest.skip("this GPU has no bf16")
        spec = self._step_one_spec(contract_spec, steps=2, precision=precision)
        if not backend.capabilities.unpacked:
            result = Run(parse_spec(spec)).train(contract_dir / f"precision-{precision}")
        else:  # half precision rounds: the same batch, a looser tolerance
            result = self._check_step_one(spec, contract_dir / f"precision-{precision}", rel_tol=5e-2,
                                          label=f"precision {precision}")
        losses = _losses(result.log_history)
        assert losses and all(math.isfinite(x) for x in losses), losses
        planned = result.plan["optimizer_steps"]
        assert result.metrics["global_step"] == planned, (
            f"precision {precision}: {result.metrics['global_step']} steps made, {planned} planned")

    def test_packing_packs_and_makes_the_planned_steps(self, backend, contract_spec, contract_dir):
        self._capability(backend, "packing", backend.capabilities.packing)
        spec = _copy(contract_spec)
        spec["training"].update(max_steps=None, epochs=1, batch_size=2, gradient_accumulation=1)
        spec["sft"] = {**spec.get("sft", {}), "packing": True}
        result = Run(parse_spec(spec)).train(contract_dir / "packed")
        plan = result.plan
        assert plan["train_rows"] is not None and plan["train_rows"] < plan["train_examples"], (
            f"sft.packing: the plan says {plan['train_rows']} rows from {plan['train_examples']} examples "
            "(packing puts several short examples into one sequence)")
        assert result.metrics["global_step"] == plan["optimizer_steps"], (
            f"packed run made {result.metrics['global_step']} steps; its plan said {plan['optimizer_steps']}")
        losses = _losses(result.log_history)
        assert losses and all(math.isfinite(x) for x in losses), losses

    def test_lora_adapter_is_saved_when_not_merged(self, backend, contract_spec, contract_dir):
        self._capability(backend, "peft", backend.capabilities.peft)
        spec = self._step_one_spec(contract_spec, steps=2)
        spec["lora"] = {"r": 4, "alpha": 8, "target_modules": LORA_TARGETS, "merge": False}
        result = Run(parse_spec(spec)).train(contract_dir / "lora-adapter")
        files = sorted(p.name for p in result.model_dir.iterdir())
        assert "adapter_config.json" in files, f"lora.merge false must save a PEFT adapter; model/ holds {files}"
        assert result.model_format == "adapter", f"model_format {result.model_format!r} for an adapter"
        config = json.loads((result.model_dir / "adapter_config.json").read_text())
        assert config.get("r") == 4 and set(config.get("target_modules") or []) == set(LORA_TARGETS), config

    def test_lora_merged_differs_from_the_base_only_by_a_low_rank_update(self, backend, contract_spec, contract_dir):
        self._capability(backend, "peft", backend.capabilities.peft)
        import torch
        from transformers import AutoModelForCausalLM

        from .reference import stored_dtype

        r = 4
        spec = self._step_one_spec(contract_spec, steps=2)
        spec["lora"] = {"r": r, "alpha": 8, "target_modules": LORA_TARGETS, "merge": True}
        result = Run(parse_spec(spec)).train(contract_dir / "lora-merged")
        assert result.model_format == "merged", f"model_format {result.model_format!r} for a merged LoRA run"
        after = AutoModelForCausalLM.from_pretrained(result.model_dir, dtype=torch.float32).state_dict()
        before = AutoModelForCausalLM.from_pretrained(result.base_model, dtype=torch.float32).state_dict()
        assert set(after) == set(before), sorted(set(after) ^ set(before))
        # A backend may save the merged model in half precision: compare with the base rounded the same way.
        saved = stored_dtype(result.model_dir)
        rel = 1e-3 if saved == torch.float32 else 2e-2  # what counts as a direction of the update, not rounding
        changed_targets = 0
        for key, start in before.items():
            diff = (after[key].float() - start.to(saved).float())
            targeted = any(f".{t}." in f".{key}" for t in LORA_TARGETS) and key.endswith(".weight")
            if not targeted:
                assert diff.abs().max().item() <= 1e-6, (
                    f"{key} changed by up to {diff.abs().max().item():.3g}, but it is not a LoRA target "
                    f"({LORA_TARGETS}): the backend trained more than the adapter (lora ignored?)")
                continue
            if diff.abs().max().item() == 0:
                continue
            changed_targets += 1
            sv = torch.linalg.svdvals(diff)
            rank = int((sv > sv[0] * rel).sum())
            assert rank <= r, f"{key} changed by a rank-{rank} update; LoRA r={r} allows rank {r} at most"
        assert changed_targets, "no LoRA target module changed: the merged model equals the base model"

    def test_different_seeds_differ_where_something_is_random(self, backend, contract_spec, contract_dir):
        import shutil

        model = contract_dir / "dropout-model"
        if not model.exists():  # the same starting weights, with dropout on: the seed now matters
            shutil.copytree(_base_model(contract_spec), model)
            config = json.loads((model / "config.json").read_text())
            for key, value in list(config.items()):
                if ("dropout" in key or "pdrop" in key) and isinstance(value, float):
                    config[key] = 0.1
            (model / "config.json").write_text(json.dumps(config))
        base = _copy(contract_spec)
        base["model"] = {"path": str(model)}
        if not self.honours_seed:
            _assert_seed_reported(base)
            return
        runs = {}
        for label, seed in (("a", 1), ("a-again", 1), ("b", 2)):
            runs[label] = _losses(Run(parse_spec(_unseeded(base, seed, 3))).train(
                contract_dir / f"seed-{label}").log_history)
        assert_same_series(runs["a"], runs["a-again"], self.determinism_rel_tol)
        assert_different_series(runs["a"], runs["b"])

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
    honours_seed: ClassVar[bool] = True  # False: the trainer seeds with a constant, and its plan must say so
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
        assert accuracy >= self.min_accuracy, (f"pairwise accuracy {accuracy:.2f} on the training pairs "
                                               f"(needs {self.min_accuracy})")

    def test_metrics_use_neutral_names(self, reward_trained):
        lines = [json.loads(x) for x in (reward_trained.output_dir / "metrics.jsonl").read_text().splitlines()]
        train_lines = [r for r in lines if not is_eval_record(r)]
        names = {"step", "loss", "learning_rate"} | ({"accuracy"} if self.logs_train_accuracy else set())
        assert train_lines and all(names <= set(r) for r in train_lines)
        assert reward_trained.metrics["global_step"] == parse_spec_steps(reward_trained)

    def test_same_seed_gives_the_same_metrics(self, reward_trained, reward_spec, reward_dir):
        again = Run(parse_spec(reward_spec)).train(reward_dir / "run-b")
        assert_same_series(_losses(reward_trained.log_history), _losses(again.log_history), self.determinism_rel_tol)

    def test_different_seeds_give_different_metrics(self, reward_backend, reward_spec, reward_dir):
        # Same base model, same data order: the new reward head is initialised with the seed.
        if not self.honours_seed:
            _assert_seed_reported(reward_spec)
            return
        a = _losses(Run(parse_spec(_unseeded(reward_spec, 1, 3))).train(reward_dir / "seed-1").log_history)
        b = _losses(Run(parse_spec(_unseeded(reward_spec, 2, 3))).train(reward_dir / "seed-2").log_history)
        assert_different_series(a, b)

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
                           self.determinism_rel_tol, what="reward_mean")

    def test_different_seeds_give_different_samples(self, rl_backend, rl_spec, rl_dir):
        # Same base model, same prompts in the same order: sampling draws with the seed.
        a = Run(parse_spec(_unseeded(rl_spec, 1, 2))).train(rl_dir / "seed-1").log_history
        b = Run(parse_spec(_unseeded(rl_spec, 2, 2))).train(rl_dir / "seed-2").log_history
        assert_different_series(_values(a, "reward_mean") + _losses(a), _values(b, "reward_mean") + _losses(b),
                                what="reward_mean")

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
