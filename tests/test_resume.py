"""Resuming a run from its newest complete checkpoint (`tunebridge train ... --resume`)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import tunebridge as tb
from tunebridge.backend import BackendOutput, Capabilities
from tunebridge.plugins import load_registry
from tunebridge.resume import Checkpoint, ResumeError, missing_parts, newest_complete, spec_differences
from tunebridge.run import Run
from tunebridge.spec import parse_spec
from tunebridge.testing import contract_rows, sft_spec_dict, write_jsonl

import fake_backend

pytest.importorskip("transformers", reason="runs load the tokenizer: needs the [trl] extra")

STATE = ("optimizer.pt", "scheduler.pt", "rng_state.pth", "model.safetensors")


def write_checkpoint(out: Path, step: int, state: bool = True) -> Path:
    """A checkpoint folder as TRL writes it (``state=False``: killed before trainer_state.json was written)."""
    folder = out / "work" / "checkpoints" / f"checkpoint-{step}"
    folder.mkdir(parents=True, exist_ok=True)
    for name in STATE:
        (folder / name).write_bytes(b"x")
    if state:
        (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return folder


class ResumableBackend(fake_backend.FakeBackend):
    """Logs loss 2/step, writes a checkpoint every save_steps and continues from ``job.resume_from``."""

    name = "resumable"
    capabilities = Capabilities(tasks=frozenset({"sft"}), algorithms={"sft": ("sft",)}, completion_only_loss=True,
                                resume=True)
    stop_after: int | None = None  # interrupted (Ctrl-C) once this step is logged, before its checkpoint
    resumed_from: list = []

    def train(self, job):
        steps, every = job.spec.training.max_steps, job.spec.training.save_steps
        start = 0
        if job.resume_from is not None:
            start = json.loads((job.resume_from / "trainer_state.json").read_text())["global_step"]
            type(self).resumed_from.append(job.resume_from)
        for step in range(start + 1, steps + 1):
            job.reporter.log(step, {"loss": 2.0 / step})
            if step == self.stop_after:
                raise KeyboardInterrupt
            if every and (step % every == 0 or step == steps):
                write_checkpoint(job.output_dir, step)
        shutil.copytree(job.model_path, job.model_dir, dirs_exist_ok=True)
        return BackendOutput({"global_step": steps}, {}, global_step=steps)


@pytest.fixture
def resumable(monkeypatch):
    monkeypatch.setattr(ResumableBackend, "stop_after", None)
    monkeypatch.setattr(ResumableBackend, "resumed_from", [])
    return load_registry([fake_backend, fake_backend.plugin_with(ResumableBackend)], entry_points=False)


@pytest.fixture
def rspec(tmp_path):
    data = write_jsonl(tmp_path / "data" / "rows.jsonl", contract_rows(12))
    return sft_spec_dict(data, "resumable", max_steps=6, save_steps=2)


def interrupted_run(spec, registry, out, stop_after=5):
    ResumableBackend.stop_after = stop_after
    with pytest.raises(KeyboardInterrupt):
        Run(spec, registry=registry).train(out)
    ResumableBackend.stop_after = None


def steps_in(out: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]


# --- the core, on a test backend ----------------------------------------------------------------------------------


def test_resume_continues_from_the_newest_complete_checkpoint(resumable, rspec, tmp_path, capsys):
    out = tmp_path / "out"
    interrupted_run(rspec, resumable, out)  # logged 1..5, checkpoints 2 and 4
    write_checkpoint(out, 6, state=False)  # one being written when the run died
    assert steps_in(out) == [1, 2, 3, 4, 5]
    result = Run(rspec, registry=resumable).train(out, resume=True)
    assert ResumableBackend.resumed_from == [out / "work" / "checkpoints" / "checkpoint-4"]
    assert steps_in(out) == [1, 2, 3, 4, 5, 6]  # step 5 replaced, not duplicated
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "completed" and record["resumed_from"] == "work/checkpoints/checkpoint-4"
    assert record["metrics"]["first_loss"] == 2.0 and record["metrics"]["final_loss"] == pytest.approx(2 / 6)
    assert [r["step"] for r in result.log_history] == [1, 2, 3, 4, 5, 6]
    assert "resuming from work/checkpoints/checkpoint-4 (step 4 of 6)" in capsys.readouterr().err
    assert any("replacing 1 logged after it" in n for n in record["notes"])


def test_a_spec_that_differs_is_refused_naming_the_fields(resumable, rspec, tmp_path):
    out = tmp_path / "out"
    interrupted_run(rspec, resumable, out)
    before = sorted(p.name for p in out.rglob("*"))
    changed = {**rspec, "training": {**rspec["training"], "learning_rate": 1e-3, "batch_size": 2}}
    with pytest.raises(ResumeError, match=r"differs .* in training\.batch_size, training\.learning_rate \(only"):
        Run(changed, registry=resumable).train(out, resume=True)
    assert sorted(p.name for p in out.rglob("*")) == before  # nothing touched
    longer = {**rspec, "training": {**rspec["training"], "max_steps": 8}}  # how long it trains may change
    Run(longer, registry=resumable).train(out, resume=True)
    assert steps_in(out) == list(range(1, 9))


def test_spec_differences_are_dotted_paths():
    started = {"training": {"max_steps": 6, "epochs": 1.0, "seed": 1}, "data": {"path": "a"}, "lora": None}
    now = {"training": {"max_steps": 9, "epochs": 2.0, "seed": 2}, "data": {"path": "b"}, "lora": {"r": 8}}
    assert spec_differences(started, now) == ["data.path", "lora", "lora.r", "training.seed"]


def test_no_complete_checkpoint_is_a_clear_error(resumable, rspec, tmp_path):
    out = tmp_path / "out"
    interrupted_run({**rspec, "training": {**rspec["training"], "save_steps": None}}, resumable, out)
    with pytest.raises(ResumeError, match="no complete checkpoint.*would start over: use --overwrite"):
        Run({**rspec, "training": {**rspec["training"], "save_steps": None}}, registry=resumable).train(
            out, resume=True)
    with pytest.raises(ResumeError, match="nothing to resume: .* does not exist"):
        Run(rspec, registry=resumable).train(tmp_path / "new", resume=True)
    assert not (tmp_path / "new").exists()


def test_incomplete_checkpoints_are_skipped(tmp_path):
    write_checkpoint(tmp_path, 2)
    write_checkpoint(tmp_path, 4, state=False)  # killed before trainer_state.json
    cut = write_checkpoint(tmp_path, 6, state=False)
    (cut / "trainer_state.json").write_text('{"global_st')  # killed while writing it
    no_weights = write_checkpoint(tmp_path, 8)
    (no_weights / "model.safetensors").unlink()
    (tmp_path / "work" / "checkpoints" / "checkpoint-10-tmp").mkdir()
    assert newest_complete(tmp_path).step == 2
    assert missing_parts(Checkpoint(4, tmp_path / "work/checkpoints/checkpoint-4")) == ["trainer_state.json"]
    assert missing_parts(Checkpoint(6, cut)) == ["a readable trainer_state.json"]
    assert missing_parts(Checkpoint(8, no_weights)) == ["model weights"]


def test_a_completed_run_resumes_only_to_more_steps(resumable, rspec, tmp_path):
    out = tmp_path / "out"
    Run(rspec, registry=resumable).train(out)
    with pytest.raises(ResumeError, match="completed its 6 steps; raise training.max_steps"):
        Run(rspec, registry=resumable).train(out, resume=True)
    Run({**rspec, "training": {**rspec["training"], "max_steps": 10}}, registry=resumable).train(out, resume=True)
    assert steps_in(out) == list(range(1, 11))
    assert json.loads((out / "run.json").read_text())["resumed_from"] == "work/checkpoints/checkpoint-6"


def test_resume_with_overwrite_is_refused(resumable, rspec, tmp_path):
    out = tmp_path / "out"
    interrupted_run(rspec, resumable, out)
    with pytest.raises(tb.TunebridgeError, match="--resume .* and --overwrite deletes it: pass one of them"):
        Run(rspec, registry=resumable).train(out, resume=True, overwrite=True)
    assert (out / "work" / "checkpoints" / "checkpoint-4").is_dir()


def test_overwrite_says_what_of_an_unfinished_run_it_deletes(resumable, rspec, tmp_path, capsys):
    out = tmp_path / "out"
    interrupted_run(rspec, resumable, out)
    capsys.readouterr()
    Run(rspec, registry=resumable).train(out, overwrite=True)
    said = ("note: --overwrite deletes the 2 checkpoint(s) (newest complete: step 4) of the unfinished (interrupted) "
            f"run in {out}, with its run.json and metrics.jsonl; --resume would continue it instead")
    assert said in capsys.readouterr().err
    assert said.removeprefix("note: ") in json.loads((out / "run.json").read_text())["notes"]
    Run(rspec, registry=resumable).train(out, overwrite=True)  # a completed run's folder: nothing to say
    assert "--overwrite deletes" not in capsys.readouterr().err


@pytest.mark.parametrize("backend", ["trlx", "autotrain"])
def test_backends_that_cannot_resume_refuse_before_anything_is_touched(backend, tmp_path, capsys):
    from tunebridge.cli import main

    data = write_jsonl(tmp_path / "rows.jsonl", contract_rows(8))
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(sft_spec_dict(data, backend, max_steps=2, save_steps=1)))
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("kept")
    assert main(["train", str(spec), "--output", str(out), "--resume", "-q"]) == 1
    err = capsys.readouterr().err
    assert f"error: backend {backend!r} does not support resuming a run from a checkpoint (--resume); " \
           "backends that do: trl" in err
    assert sorted(p.name for p in out.iterdir()) == ["mine.txt"]


def test_core_owned_and_ignored_trl_options_are_refused_with_the_way_to_get_them(tmp_path):
    data = write_jsonl(tmp_path / "rows.jsonl", contract_rows(8))
    spec = {**sft_spec_dict(data, "trl"),
            "backend_options": {"trl": {"resume_from_checkpoint": "somewhere", "seed": 3, "optim": "adamw_torch"}}}
    with pytest.raises(tb.SpecError) as caught:
        tb.Run(spec).validate()
    message = str(caught.value)
    assert "backend_options.trl.resume_from_checkpoint: not accepted: the trainer never reads it; use `tunebridge " \
           "train SPEC --output DIR --resume` (Python: train(..., resume=True))" in message
    assert "backend_options.trl.seed: not accepted: set training.seed" in message
    assert "optim" not in message


def test_the_worker_job_carries_the_checkpoint(spec, tmp_path):
    from tunebridge.backend import TrainingJob
    from tunebridge.examples import Examples
    from tunebridge.execution.wire import job_from_dict, job_to_dict

    job = TrainingJob(spec, Examples("prompt_completion", [], []), tmp_path, tmp_path, tmp_path / "o", None,
                      resume_from=tmp_path / "o" / "work" / "checkpoints" / "checkpoint-2")
    data = json.loads(json.dumps(job_to_dict(job, "trl")))
    assert job_from_dict(data, None).resume_from == job.resume_from
    job.resume_from = None
    assert job_from_dict(json.loads(json.dumps(job_to_dict(job, "trl"))), None).resume_from is None


def test_capabilities_say_which_backends_resume():
    from tunebridge.plugins import get_registry

    registry = get_registry()
    assert registry.get("trl").capabilities.to_dict()["resume"] is True
    assert not registry.get("trlx").capabilities.resume and not registry.get("autotrain").capabilities.resume


# --- TRL, for real: SIGKILL after a checkpoint, then --resume ---------------------------------------------------

# The CLI, with each logged step slowed down so that the test can kill the run between two checkpoints.
SLOW_CLI = textwrap.dedent("""
    import sys, time
    from tunebridge.progress import RunReporter
    log = RunReporter.log
    def slow(self, step, metrics):
        log(self, step, metrics)
        time.sleep(0.4)
    RunReporter.log = slow
    from tunebridge.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def cli(*args: object, slow: bool = False) -> subprocess.Popen:
    command = ["-c", SLOW_CLI] if slow else ["-m", "tunebridge"]
    return subprocess.Popen([sys.executable, *command, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ})


def losses(out: Path) -> dict[int, float]:
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records if "loss" in r]
    assert len(steps) == len(set(steps)), f"a step is logged twice: {steps}"
    return {r["step"]: r["loss"] for r in records if "loss" in r}


@pytest.mark.usefixtures("trl_available")
def test_a_killed_trl_run_resumes_to_the_same_losses(tmp_path):
    data = write_jsonl(tmp_path / "rows.jsonl", contract_rows(16))
    spec_dict = sft_spec_dict(data, "trl", max_steps=6, save_steps=2, logging_steps=1, batch_size=2)
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(spec_dict))
    whole = tmp_path / "whole"
    tb.SFTTrainer(parse_spec(spec_dict)).train(whole)  # uninterrupted

    out = tmp_path / "killed"
    proc = cli("train", spec_file, "--output", out, "-q", slow=True)
    deadline = time.monotonic() + 300
    try:
        while newest_complete(out) is None:
            assert proc.poll() is None, f"the run ended before its first checkpoint: {proc.communicate()}"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.communicate()
    killed_at = newest_complete(out).step
    assert killed_at < 6 and json.loads((out / "run.json").read_text())["status"] == "running"
    assert not (out / "model").exists()

    resumed = cli("train", spec_file, "--output", out, "--resume", "-q")
    stdout, stderr = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, stderr
    assert f"resuming from work/checkpoints/checkpoint-{killed_at} (step {killed_at} of 6)" in stderr
    assert "took over the stale lock" in stderr  # SIGKILL left the lock file; the kernel freed the lock

    expected, got = losses(whole), losses(out)
    assert sorted(got) == [1, 2, 3, 4, 5, 6] == sorted(expected)
    for step, loss in expected.items():
        assert got[step] == pytest.approx(loss, rel=1e-5), f"step {step}"
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "completed" and record["resumed_from"] == f"work/checkpoints/checkpoint-{killed_at}"
    assert record["global_step"] == 6 and (out / "model" / "model.safetensors").is_file()
    whole_record = json.loads((whole / "run.json").read_text())
    for key in ("first_loss", "final_loss", "train_loss"):
        assert record["metrics"][key] == pytest.approx(whole_record["metrics"][key], rel=1e-5), key
    print(f"killed after checkpoint-{killed_at}; per-step losses (whole vs resumed): "
          + ", ".join(f"{s}: {expected[s]:.7f}/{got[s]:.7f}" for s in sorted(expected)))


def test_trlx_options_that_would_resume_or_reseed_are_refused(tmp_path):
    from tunebridge.backends.trlx_backend.config import spec_problems

    data = write_jsonl(tmp_path / "rows.jsonl", contract_rows(8))
    spec = parse_spec({**sft_spec_dict(data, "trlx"), "backend_options": {"trlx": {
        "train.resume_from_checkpoint": "ckpt", "train.seed": 3, "method.gen_kwargs.top_k": 5}}})
    problems = dict(spec_problems(spec))
    assert problems["backend_options.trlx.train.seed"] == "not accepted: set training.seed"
    assert "start again at step 0" in problems["backend_options.trlx.train.resume_from_checkpoint"]
    assert not any("top_k" in path for path in problems)
