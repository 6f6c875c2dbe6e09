"""The contract suite: what "backends behave alike" means, as pytest tests any backend can run.

A backend's test module opts in by subclassing (fsspec / SQLAlchemy style)::

    from tunebridge.testing.contract import SFTContract

    class TestMyBackendSFT(SFTContract):
        backend_name = "mybackend"

Capability flags come from the backend's ``capabilities``; a subclass may switch parts off by setting
``supports_first_batch = False`` and so on. Fixtures a subclass may override: ``contract_data``
(a JSONL file of instruction/context/response rows) and ``contract_spec`` (a spec dict).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, ClassVar

import pytest

from ..errors import OutputExistsError, UnsupportedFeature
from ..examples import prepare_examples
from ..plugins import get_registry
from ..progress import METRIC_NAMES
from ..result import TrainResult
from ..run import Run
from ..schedule import expected_optimizer_steps
from ..spec import parse_spec
from . import contract_rows, sft_spec_dict, write_jsonl

# Candidate specs for "an unsupported feature fails before training": (label, change to the spec dict).
UNSUPPORTED_CANDIDATES: list[tuple[str, Any]] = [
    ("task reward", lambda d: d.update(task="reward")),
    ("task rl", lambda d: d.update(task="rl")),
    ("lora", lambda d: d.update(lora={"r": 4})),
    ("packing", lambda d: d.update(sft={"packing": True})),
    ("plain text", lambda d: d["data"].update(template=None, text="{instruction} {response}")),
    ("precision fp16", lambda d: d["training"].update(precision="fp16")),
]


def _losses(history: list[dict[str, Any]]) -> list[float]:
    return [r["loss"] for r in history if r.get("loss") is not None]


class SFTContract:
    """SFT contracts from the design: same examples and masking, step count, loss falls, reload, metrics,
    determinism, unsupported features fail early, output folders are protected."""

    backend_name: ClassVar[str] = ""
    supports_first_batch: ClassVar[bool | None] = None  # None: take it from the backend's capabilities
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
        backend = get_registry().get(cls.backend_name)
        status = backend.check()
        if not status.ready:
            hint = f"; install: {backend.install_hint}" if status.kind in ("missing", "broken") else ""
            pytest.skip(f"backend {cls.backend_name!r} cannot run here: {status.describe()}{hint}")
        return backend

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
        train_lines = [r for r in lines if "eval_loss" not in r]
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
        a, b = _losses(trained.log_history), _losses(trained_again.log_history)
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert math.isclose(x, y, rel_tol=self.determinism_rel_tol), (a, b)

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
