"""Run orchestration on a test backend: output folders, failures, run.json, metrics, secrets, support checks."""

from __future__ import annotations

import json
import re

import pytest

import tunebridge as tb
from tunebridge.run import Run
from tunebridge.spec import parse_spec
from tunebridge.testing import contract_rows, sft_spec_dict, write_jsonl

import fake_backend

pytest.importorskip("transformers", reason="runs load the tokenizer: needs the [trl] extra")
# Fixtures `registry` (the fake test backends) and `spec` (a 4-step fake SFT spec) come from conftest.py.


def test_a_run_writes_the_whole_folder(spec, registry, tmp_path):
    seen = []
    result = Run(spec, registry=registry).train(tmp_path / "out", progress=lambda s, t, r: seen.append((s, t)))
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "metrics.jsonl", "model", "run.json"]
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "completed" and record["backend"] == "fake" and record["seed"] == 1234
    assert record["spec"]["training"]["max_steps"] == 4 and record["data"]["train"] == 12
    assert record["versions"]["tunebridge"] and record["metrics"]["train_loss"] == 1.0
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [1, 2, 3, 4] and lines == result.log_history
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert (out / "model" / "config.json").is_file()
    card = (out / "README.md").read_text()
    assert "builtin `tiny-llama`" in card and '"max_steps": 4' in card and "### Instruction" in card
    assert tb.TrainResult.load(out).metrics == result.metrics


def test_non_empty_output_is_refused_and_kept(spec, registry, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("precious")
    with pytest.raises(tb.OutputExistsError, match="--overwrite"):
        Run(spec, registry=registry).train(out)
    assert (out / "mine.txt").read_text() == "precious"
    Run(spec, registry=registry).train(out, overwrite=True)
    assert not (out / "mine.txt").exists() and (out / "run.json").is_file()


def test_overwrite_never_deletes_the_training_data(spec, registry, tmp_path):
    with pytest.raises(tb.OutputExistsError, match="refusing to overwrite"):
        Run(spec, registry=registry).train(tmp_path / "data", overwrite=True)
    assert (tmp_path / "data" / "rows.jsonl").is_file()


def test_output_path_that_is_a_file_is_refused(spec, registry, tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(tb.OutputExistsError, match="not a folder"):
        Run(spec, registry=registry).train(tmp_path / "file")


def test_a_failed_run_keeps_what_it_wrote_and_says_where(spec, registry, tmp_path, monkeypatch):
    monkeypatch.setattr(fake_backend.FakeBackend, "fail_at_step", 3)
    out = tmp_path / "out"
    with pytest.raises(tb.RunFailed) as info:
        Run(spec, registry=registry).train(out)
    assert "boom at step 3" in str(info.value) and str(out) in str(info.value)
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "failed" and "RuntimeError: boom at step 3" in record["error"]
    assert [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    with pytest.raises(ValueError, match="not 'completed'"):
        tb.TrainResult.load(out)


def test_bad_data_fails_before_the_output_folder_is_made(tmp_path, registry):
    data = write_jsonl(tmp_path / "rows.jsonl", [{"instruction": "x"}])
    spec = parse_spec(sft_spec_dict(data, "fake"))
    with pytest.raises(tb.DataError, match="rows.jsonl line 1: missing column 'response'"):
        Run(spec, registry=registry).train(tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_secrets_never_reach_the_run_folder(spec, registry, tmp_path):
    secret = "hf_" + "a" * 30
    spec = parse_spec({**spec.to_dict(), "backend_options": {"fake": {"hub_token": secret, "note": secret,
                                                                      "pad_token": "<pad>"}}})
    Run(spec, registry=registry).train(tmp_path / "out")
    for path in (tmp_path / "out").rglob("*"):
        if path.is_file():
            assert secret not in path.read_text(errors="ignore"), path
    record = json.loads((tmp_path / "out" / "run.json").read_text())
    assert record["spec"]["backend_options"]["fake"] == {"hub_token": "***", "note": "***", "pad_token": "<pad>"}
    assert record["native_config"]["options"]["hub_token"] == "***"


def test_unsupported_feature_names_the_backends_that_have_it(spec, registry, tmp_path):
    packed = parse_spec({**spec.to_dict(), "sft": {"packing": True}})
    with pytest.raises(tb.UnsupportedFeature) as info:
        Run(packed, registry=registry).train(tmp_path / "out")
    assert str(info.value) == ("backend 'fake' does not support packing (sft.packing: true); "
                               "backends that do: packer")
    assert not (tmp_path / "out").exists()
    reward = parse_spec({**spec.to_dict(), "task": "reward", "sft": {},
                         "data": {**spec.to_dict()["data"], "template": "preference"}})
    with pytest.raises(tb.UnsupportedFeature, match="task 'reward'; backends that do: packer"):
        Run(reward, registry=registry).validate()


def test_unsupported_algorithm_names_backends_that_will_have_it(spec):
    ppo = parse_spec({**spec.to_dict(), "backend": "trl", "task": "rl", "sft": {},
                      "rl": {"algorithm": "ppo", "reward": "tunebridge.testing.rewards:letter_e"}})
    with pytest.raises(tb.UnsupportedFeature) as info:
        Run(ppo).check_support()
    assert str(info.value) == ("backend 'trl' does not support rl.algorithm 'ppo'; "
                               "backends that do: trlx")


def test_trainer_facades_check_the_task(spec, registry):
    with pytest.raises(tb.SpecError, match="RewardTrainer runs task 'reward'"):
        tb.RewardTrainer(spec, registry=registry)
    trainer = tb.SFTTrainer(spec, backend="fake", registry=registry)
    assert trainer.plan().native_config == {"steps": 4, "options": {}}
    assert trainer.validate().report["train"] == 12


def test_backend_that_cannot_run_gives_the_install_hint(spec, registry, tmp_path, monkeypatch):
    monkeypatch.setattr(fake_backend.FakeBackend, "install_hint", "pip install fake-framework")
    monkeypatch.setattr(fake_backend.FakeBackend, "check",
                        lambda self: tb.BackendStatus("missing", "not installed: fake-framework"))
    expected = "(?s)missing: not installed: fake-framework.*install: pip install fake-framework"
    with pytest.raises(tb.BackendUnavailable, match=expected):
        Run(spec, registry=registry).train(tmp_path / "out")


def test_backend_options_for_an_unknown_backend_are_a_spec_error(spec, registry):
    typo = parse_spec({**spec.to_dict(), "backend_options": {"fak": {"x": 1}}})
    with pytest.raises(tb.SpecError, match=r"backend_options.fak: no backend named 'fak' \(registered: fake, packer\)"):
        Run(typo, registry=registry).validate()


def test_overwrite_never_deletes_the_model_or_the_spec(tmp_path, registry):
    from tunebridge.testing import build_tiny_llama

    project = tmp_path / "project"
    model = build_tiny_llama(["some text for the tokenizer"], seed=1, cache_dir=tmp_path / "cache")
    import shutil

    shutil.copytree(model, project / "model")
    write_jsonl(tmp_path / "rows.jsonl", contract_rows(8))
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps({**sft_spec_dict(tmp_path / "rows.jsonl", "fake"),
                                     "model": {"path": str(project / "model")}}))
    with pytest.raises(tb.OutputExistsError, match="refusing to overwrite"):
        Run(tb.load_spec(spec_file), registry=registry).train(project, overwrite=True)
    assert (project / "model" / "config.json").is_file()
    with pytest.raises(tb.OutputExistsError, match="refusing to overwrite"):
        Run(tb.load_spec(spec_file), registry=registry).train(tmp_path, overwrite=True)
    assert spec_file.is_file()


def test_an_interrupted_run_is_recorded_as_such(spec, registry, tmp_path, monkeypatch):
    def interrupted(self, job):
        job.reporter.log(1, {"loss": 1.0, "learning_rate": 0.1})
        raise KeyboardInterrupt

    monkeypatch.setattr(fake_backend.FakeBackend, "train", interrupted)
    with pytest.raises(KeyboardInterrupt):
        Run(spec, registry=registry).train(tmp_path / "out")
    record = json.loads((tmp_path / "out" / "run.json").read_text())
    assert record["status"] == "interrupted"
    assert (tmp_path / "out" / "metrics.jsonl").read_text().count("\n") == 1


def test_a_backend_that_makes_no_step_fails_the_run(spec, registry, tmp_path, monkeypatch):
    from tunebridge.backend import BackendOutput

    monkeypatch.setattr(fake_backend.FakeBackend, "train", lambda self, job: BackendOutput({}, {}, global_step=0))
    with pytest.raises(tb.RunFailed, match="without a single optimizer step"):
        Run(spec, registry=registry).train(tmp_path / "out")


@pytest.fixture
def not_implemented(monkeypatch):
    monkeypatch.setattr(fake_backend.FakeBackend, "check",
                        lambda self: tb.BackendStatus("not-implemented", "the Fake backend is not implemented yet"))


@pytest.mark.usefixtures("not_implemented")
def test_not_implemented_backends_fail_validate_and_plan_cleanly(spec, registry):
    with pytest.raises(tb.BackendUnavailable, match="not implemented yet"):
        Run(spec, registry=registry).validate()
    with pytest.raises(tb.BackendUnavailable, match="cannot run any spec yet"):
        Run(spec, registry=registry).plan()


def test_overwrite_never_empties_a_folder_inside_the_model_cache(spec, registry, tmp_path, monkeypatch):
    monkeypatch.setenv("TUNEBRIDGE_CACHE_DIR", str(tmp_path / "cache"))
    inside = tmp_path / "cache" / "builtin" / "something"
    inside.mkdir(parents=True)
    (inside / "weights").write_text("x")
    with pytest.raises(tb.OutputExistsError, match="refusing to overwrite"):
        Run(spec, registry=registry).train(inside, overwrite=True)
    assert (inside / "weights").is_file()


@pytest.mark.usefixtures("not_implemented")
def test_train_on_a_not_implemented_backend_says_so(spec, registry, tmp_path):
    with pytest.raises(tb.BackendUnavailable, match="cannot run any spec yet"):
        Run(spec, registry=registry).train(tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_secret_keys_are_told_apart_from_tokenizer_settings():
    from tunebridge.redact import is_secret_key

    for key in ("token", "hf_token", "HUB_TOKEN", "push_to_hub_token", "api_key", "ARGILLA_API_KEY", "password",
                "client_secret", "access-token"):
        assert is_secret_key(key), key
    for key in ("pad_token", "eos_token", "add_eos_token", "bos_token_id", "max_new_tokens", "tokenizer",
                "num_tokens", "sep_token", "chat_template"):
        assert not is_secret_key(key), key


def test_every_backend_gets_the_same_run_summary(spec, registry, tmp_path):
    result = Run(spec, registry=registry).train(tmp_path / "out")
    assert (result.metrics["first_loss"], result.metrics["final_loss"]) == (2.0, 0.5)
    assert result.metrics["train_loss"] == 1.0  # the backend's own figures stay


def test_a_non_finite_loss_fails_the_run(spec, registry, tmp_path, monkeypatch):
    from tunebridge.backend import BackendOutput

    def diverging(self, job):
        job.reporter.log(1, {"loss": 1.0, "learning_rate": 0.1})
        job.reporter.log(2, {"loss": float("nan"), "learning_rate": 0.1})
        return BackendOutput({}, {}, global_step=2)

    monkeypatch.setattr(fake_backend.FakeBackend, "train", diverging)
    with pytest.raises(tb.RunFailed, match=r"non-finite loss at step\(s\) \[2\]"):
        Run(spec, registry=registry).train(tmp_path / "out")
    assert json.loads((tmp_path / "out" / "run.json").read_text())["status"] == "failed"


@pytest.mark.parametrize("saved, message", [
    (None, "saved nothing in"),
    ({"notes.txt": "x"}, "holds no loadable model (no config.json or adapter_config.json)"),
    ({"config.json": "{}", "model.safetensors": ""}, "not a transformers model config (no model_type)"),
    ({"config.json": '{"model_type": "llama"}'}, "has a config.json but no weights"),
    ({"adapter_config.json": "{}"}, "no adapter weights"),
])
def test_a_run_whose_model_folder_holds_no_loadable_model_fails(spec, registry, tmp_path, monkeypatch, saved,
                                                                message):
    from tunebridge.backend import BackendOutput

    def train(self, job):
        job.reporter.log(1, {"loss": 1.0, "learning_rate": 0.1})
        if saved is not None:
            job.model_dir.mkdir(parents=True)
            for name, text in saved.items():
                (job.model_dir / name).write_text(text)
        return BackendOutput({}, {}, global_step=1)

    monkeypatch.setattr(fake_backend.FakeBackend, "train", train)
    with pytest.raises(tb.RunFailed, match=re.escape(message)):
        Run(spec, registry=registry).train(tmp_path / "out")
    assert json.loads((tmp_path / "out" / "run.json").read_text())["status"] == "failed"


def test_a_run_that_logs_no_loss_fails_naming_what_it_logged(spec, registry, tmp_path, monkeypatch):
    import shutil

    from tunebridge.backend import BackendOutput

    def train(self, job):
        job.reporter.log(1, {"train_loss": 1.0, "lr": 0.1})  # native names, not the neutral ones
        shutil.copytree(job.model_path, job.model_dir)
        return BackendOutput({}, {}, global_step=1)

    monkeypatch.setattr(fake_backend.FakeBackend, "train", train)
    with pytest.raises(tb.RunFailed, match="logged no line with 'loss'.*it logged lr, train_loss"):
        Run(spec, registry=registry).train(tmp_path / "out")
