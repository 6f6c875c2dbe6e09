"""The isolated runner: a backend in another interpreter gives the same result, and failures are clear."""

from __future__ import annotations

import json
import sys

import pytest

import tunebridge as tb
from tunebridge.execution import Worker, interpreter_for, native_options
from tunebridge.plugins import load_registry
from tunebridge.run import Run
from tunebridge.spec import parse_spec
from tunebridge.testing import contract_rows, sft_spec_dict, write_jsonl

import fake_backend

pytest.importorskip("transformers", reason="runs load the tokenizer: needs the [trl] extra")

WORKER_BACKEND = '''
import os, sys, time
from tunebridge.backend import Backend, BackendOutput, BackendStatus, Capabilities, Plan
from tunebridge.hookspecs import hookimpl

class Moody(Backend):
    name = "moody"
    capabilities = Capabilities(tasks=frozenset({"sft", "rl"}), algorithms={"rl": ("grpo",)},
                                completion_only_loss=True)

    def check(self):
        return BackendStatus("ready", "", {"moodylib": "1.2.3", "python": sys.version.split()[0]})

    def plan(self, spec, examples=None):
        return Plan(self.name, {"options": spec.backend_options.get("moody", {})})

    def train(self, job):
        mode = job.spec.name or "ok"
        print("moody starting", mode, flush=True)
        job.reporter.set_total_steps(3)
        for step in (1, 2, 3):
            job.reporter.log(step, {"loss": 1.0 / step, "learning_rate": 0.1, "pid": os.getpid()})
            if mode == "die" and step == 2:
                print("about to die", flush=True)
                os._exit(3)
            if mode == "hang" and step == 2:
                time.sleep(600)
            if mode == "raise" and step == 2:
                raise ValueError("bad things at step 2")
        import shutil
        shutil.copytree(job.model_path, job.model_dir)
        return BackendOutput({"global_step": 3, "train_loss": 0.5}, {"ran_in": sys.executable}, global_step=3)

@hookimpl
def register_backends(register):
    register(Moody)
'''


@pytest.fixture
def moody(tmp_path, monkeypatch):
    """A backend from an installed-looking distribution, visible to this process and to workers."""
    site = fake_backend.install_plugin(tmp_path / "site", "moody_backend", WORKER_BACKEND)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", str(site))
    return load_registry()


def moody_spec(tmp_path, mode="ok", **options):
    data = write_jsonl(tmp_path / "rows.jsonl", contract_rows(8))
    spec = sft_spec_dict(data, "moody", max_steps=3)
    spec["name"] = mode
    spec["backend_options"] = {"moody": {"python": sys.executable, **options}}
    return parse_spec(spec)


def test_a_worker_run_streams_progress_and_writes_the_same_layout(moody, tmp_path):
    seen = []
    run = Run(moody_spec(tmp_path), registry=moody)
    assert isinstance(run.executor, Worker)
    result = run.train(tmp_path / "out", progress=lambda s, t, r: seen.append((s, t)))
    assert seen == [(1, 3), (2, 3), (3, 3)]
    assert [r["loss"] for r in result.log_history] == [1.0, 0.5, 1 / 3]
    assert result.log_history[0]["pid"] != __import__("os").getpid()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "README.md", "metrics.jsonl", "model", "run.json", "worker.log"]
    assert "moody starting ok" in (tmp_path / "out" / "worker.log").read_text()
    record = json.loads((tmp_path / "out" / "run.json").read_text())
    assert record["versions"]["moodylib"] == "1.2.3" and record["native_config"]["ran_in"] == sys.executable


def test_the_runner_keys_never_reach_the_backend(moody, tmp_path):
    plan = Run(moody_spec(tmp_path, secret_level=3), registry=moody).plan()
    assert any("runs in another interpreter" in n for n in plan.notes)
    spec = moody_spec(tmp_path, secret_level=3, timeout=5)
    assert native_options(spec, "moody") == {"secret_level": 3}
    trl_spec = parse_spec({**spec.to_dict(), "backend": "trl",
                           "backend_options": {"trl": {"python": "py", "timeout": 3, "optim": "adamw_torch"}}})
    from tunebridge.backends.trl.config import native_config

    native, _, _ = native_config(trl_spec, None, tmp_path)
    assert "python" not in native["SFTConfig"] and native["SFTConfig"]["optim"] == "adamw_torch"


def test_a_worker_that_dies_gives_its_log_tail_and_keeps_the_output(moody, tmp_path):
    with pytest.raises(tb.RunFailed) as info:
        Run(moody_spec(tmp_path, "die"), registry=moody).train(tmp_path / "out")
    message = str(info.value)
    assert "died without a result (exit code 3)" in message and "about to die" in message
    assert json.loads((tmp_path / "out" / "run.json").read_text())["status"] == "failed"
    assert len((tmp_path / "out" / "metrics.jsonl").read_text().splitlines()) == 2


def test_a_worker_that_hangs_is_stopped_at_its_timeout(moody, tmp_path):
    import time

    started = time.monotonic()
    with pytest.raises(tb.RunFailed, match="timed out after 3 s"):
        Run(moody_spec(tmp_path, "hang", timeout=3), registry=moody).train(tmp_path / "out")
    assert time.monotonic() - started < 60


def test_an_error_in_the_worker_is_reported_with_its_traceback_in_the_log(moody, tmp_path):
    with pytest.raises(tb.RunFailed, match="failed: ValueError: bad things at step 2"):
        Run(moody_spec(tmp_path, "raise"), registry=moody).train(tmp_path / "out")
    assert "Traceback" in (tmp_path / "out" / "worker.log").read_text()


def test_an_interpreter_that_does_not_exist_is_a_broken_backend(moody, tmp_path):
    spec = moody_spec(tmp_path)
    spec = parse_spec({**spec.to_dict(), "backend_options": {"moody": {"python": str(tmp_path / "nopython")}}},
                      base_dir=tmp_path)
    run = Run(spec, registry=moody)
    assert run.executor.status().kind == "broken" and "cannot start" in run.executor.status().detail
    with pytest.raises(tb.BackendUnavailable, match="cannot start"):
        run.train(tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_the_interpreter_can_come_from_the_environment(moody, tmp_path, monkeypatch):
    spec = parse_spec({**moody_spec(tmp_path).to_dict(), "backend_options": {}})
    assert interpreter_for(spec, "moody") is None
    monkeypatch.setenv("TUNEBRIDGE_MOODY_PYTHON", sys.executable)
    assert interpreter_for(spec, "moody") == sys.executable
    assert isinstance(Run(spec, registry=moody).executor, Worker)


def test_a_callable_reward_cannot_cross_interpreters(moody, tmp_path):
    def my_reward(prompts, completions, **columns):
        return [0.0] * len(completions)

    spec = parse_spec({"task": "rl", "model": {"builtin": "tiny-llama"},
                       "data": {"path": str(write_jsonl(tmp_path / "p.jsonl", contract_rows(4)))},
                       "rl": {"reward": my_reward, "algorithm": "grpo"}, "backend": "moody",
                       "backend_options": {"moody": {"python": sys.executable}}})
    with pytest.raises(tb.UnsupportedFeature, match="a Python callable as rl.reward\\[0\\].*'pkg.module:function'"):
        Run(spec, registry=moody).validate()


@pytest.mark.usefixtures("trl_available")
def test_trl_through_a_worker_matches_trl_in_process(tmp_path):
    data = write_jsonl(tmp_path / "rows.jsonl", contract_rows(16))
    spec = sft_spec_dict(data, "trl", max_steps=4)
    here = tb.SFTTrainer(spec).train(tmp_path / "here")
    spec["backend_options"] = {"trl": {"python": sys.executable}}
    there = tb.SFTTrainer(spec).train(tmp_path / "there")
    assert [r["loss"] for r in there.log_history] == [r["loss"] for r in here.log_history]
    assert there.metrics["global_step"] == here.metrics["global_step"] == 4
    assert sorted(p.name for p in (tmp_path / "there" / "model").iterdir()) == sorted(
        p.name for p in (tmp_path / "here" / "model").iterdir())
