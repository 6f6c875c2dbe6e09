"""Against a real AutoTrain environment ($TUNEBRIDGE_AUTOTRAIN_PYTHON, built by scripts/autotrain-env.sh):
exported configs pass AutoTrain's own parser and parameter validation, a run AutoTrain fails (while exiting 0)
fails in tunebridge, and a LoRA run trains and reloads. The contract suite covers plain SFT and reward."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tunebridge.backends.autotrain import launch
from tunebridge.errors import RunFailed
from tunebridge.run import Run
from tunebridge.spec import parse_spec
from tunebridge.testing import (
    contract_rows,
    preference_rows,
    preference_spec_dict,
    reward_spec_dict,
    sft_spec_dict,
    write_jsonl,
)

pytestmark = pytest.mark.usefixtures("trl_available")


def sft_spec(tmp_path: Path, **extra) -> dict:
    spec = sft_spec_dict(write_jsonl(tmp_path / "rows.jsonl", contract_rows(12)), "autotrain", max_steps=None,
                         epochs=1, batch_size=2)
    spec["sft"] = {"completion_only_loss": False}
    spec.update(extra)
    return spec


def reward_spec(tmp_path: Path, **options) -> dict:
    spec = reward_spec_dict(write_jsonl(tmp_path / "pairs.jsonl", preference_rows(8)), "autotrain", max_steps=None)
    if options:
        spec["backend_options"] = {"autotrain": options}
    return spec


@pytest.mark.parametrize("kind", ["sft", "sft-lora-eval", "reward", "dpo", "orpo", "hub"])
def test_exported_configs_pass_autotrain_validation(autotrain_python, tmp_path, kind):
    if kind == "sft":
        spec = sft_spec(tmp_path)
    elif kind == "sft-lora-eval":
        spec = sft_spec(tmp_path, lora={"r": 4, "alpha": 8}, data={
            "path": str(tmp_path / "rows.jsonl"), "template": "instruction", "eval_fraction": 0.25})
    elif kind == "hub":
        spec = sft_spec(tmp_path, backend_options={"autotrain": {"push_to_hub": True}})
    elif kind == "reward":
        spec = reward_spec(tmp_path)
    else:  # task preference: llm-dpo / llm-orpo
        spec = preference_spec_dict(write_jsonl(tmp_path / "pairs.jsonl", preference_rows(8)), "autotrain", kind,
                                    max_steps=None)
    Run(parse_spec(spec)).export(tmp_path / "out")
    proc = launch.validate_config(autotrain_python, tmp_path / "out")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    trainer = {"sft-lora-eval": "sft", "hub": "sft"}.get(kind, kind)
    assert proc.stdout.strip().splitlines()[-1].startswith(f"OK {trainer} ")


def test_the_validator_rejects_what_autotrain_rejects(autotrain_python, tmp_path):
    Run(parse_spec(sft_spec(tmp_path))).export(tmp_path / "out")
    config_path = tmp_path / "out" / "config.yml"
    good = yaml.safe_load(config_path.read_text())
    for change, expected in ((lambda c: c.update(project_name="bad_name"), "INVALID"),
                             (lambda c: c["params"].update(epochs="many"), "epochs"),
                             (lambda c: c["data"].pop("chat_template"), "chat_template")):
        bad = json.loads(json.dumps(good))
        change(bad)
        config_path.write_text(yaml.safe_dump(bad))
        proc = launch.validate_config(autotrain_python, tmp_path / "out")
        assert proc.returncode == 1 and expected in proc.stdout, proc.stdout


def test_a_run_autotrain_fails_while_exiting_zero_fails(autotrain_python, tmp_path):
    # int4 quantization needs CUDA bitsandbytes (not installed): AutoTrain logs the error and exits 0.
    spec = sft_spec(tmp_path, lora={"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]},
                    backend_options={"autotrain": {"params": {"quantization": "int4"}}})
    out = tmp_path / "failed"
    with pytest.raises(RunFailed, match="AutoTrain reported that training failed"):
        Run(parse_spec(spec)).train(out)
    assert json.loads((out / "run.json").read_text())["status"] == "failed"
    assert "has failed due to an exception" in (out / "autotrain.log").read_text()
    assert not (out / "model").exists()


def test_lora_sft_trains_merges_and_reloads(autotrain_python, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec = sft_spec(tmp_path, lora={"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]},
                    training={"epochs": 2, "batch_size": 2, "learning_rate": 3e-3, "max_length": 128, "seed": 42})
    seen: list[tuple[int, int | None]] = []
    result = Run(parse_spec(spec)).train(tmp_path / "lora", progress=lambda step, total, record: seen.append(
        (step, total)))
    assert result.model_format == "merged" and result.metrics["global_step"] >= 1
    # streamed while AutoTrain ran, with AutoTrain's own step total (packing), not the neutral estimate
    assert [step for step, _ in seen] == [r["step"] for r in result.log_history]
    assert seen[-1] == (result.metrics["global_step"], result.metrics["global_step"])
    model = AutoModelForCausalLM.from_pretrained(result.model_dir, torch_dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(result.model_dir)
    with torch.no_grad():
        logits = model(torch.tensor([tok("What does the cat do?").input_ids])).logits
    assert torch.isfinite(logits).all()
    assert not any(p.name.startswith("adapter_") for p in result.model_dir.iterdir())
    record = json.loads((tmp_path / "lora" / "run.json").read_text())
    assert record["native_config"]["environment"]["transformers"] == "4.48.0"
    assert record["native_config"]["autotrain_config"]["params"]["peft"] is True

