"""Nothing leaks (no secret in any byte of a run folder, checkpoints included) and bad input is one clear error."""

from __future__ import annotations

import os
import secrets
import stat
import string
import subprocess
import sys
from pathlib import Path

import pytest

import tunebridge as tb
from tunebridge.testing import contract_rows, sft_spec_dict, write_jsonl

pytest.importorskip("transformers", reason="runs load the tokenizer: needs the [trl] extra")


def token() -> str:
    return "hf_" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(40))


def assert_nowhere(folder: Path, secret: str) -> None:
    needle = secret.encode()
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert files
    for path in files:
        assert needle not in path.read_bytes(), f"the secret is in {path}"


# --- secrets ----------------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("trl_available")
@pytest.mark.parametrize("isolated", [False, True], ids=["in-process", "worker"])
def test_a_hub_token_reaches_no_file_of_the_run_folder(tmp_path, isolated, monkeypatch):
    secret = token()
    data = write_jsonl(tmp_path / "rows.jsonl", contract_rows(8))
    spec = sft_spec_dict(data, "trl", max_steps=2, save_steps=1, batch_size=4)
    spec["backend_options"] = {"trl": {"hub_token": secret}}
    monkeypatch.delenv("HF_TOKEN", raising=False)
    if isolated:
        monkeypatch.setenv("TUNEBRIDGE_TRL_PYTHON", sys.executable)
        monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
        (tmp_path / "tmp").mkdir()
        import tempfile

        monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    out = tmp_path / "out"
    tb.SFTTrainer(spec).train(out)
    checkpoints = sorted(out.glob("work/checkpoints/checkpoint-*/training_args.bin"))
    assert len(checkpoints) == 2  # the pickled trainer arguments exist, and hold no token
    assert_nowhere(out, secret)
    assert "HF_TOKEN" not in os.environ  # given to TRL for the trainer's lifetime only
    if isolated:
        assert (out / "worker.log").is_file()
        assert list((tmp_path / "tmp").iterdir()) == []


@pytest.mark.usefixtures("trl_available")
def test_the_token_goes_to_trl_through_the_environment(tmp_path, monkeypatch):
    from tunebridge.backends.trl.runner import secrets_in_environment

    monkeypatch.setenv("HF_TOKEN", "the-users-own")
    with secrets_in_environment({"hub_token": "hf_abc", "optim": "adamw_torch"}) as clean:
        assert clean == {"optim": "adamw_torch"} and os.environ["HF_TOKEN"] == "hf_abc"
    assert os.environ["HF_TOKEN"] == "the-users-own"


def test_other_secrets_in_trl_options_are_refused(tmp_path):
    data = write_jsonl(tmp_path / "rows.jsonl", contract_rows(8))
    spec = {**sft_spec_dict(data, "trl"), "backend_options": {"trl": {"wandb_api_key": "x" * 30}}}
    with pytest.raises(tb.SpecError, match="backend_options.trl.wandb_api_key: looks like a secret"):
        tb.Run(spec).validate()


def test_job_files_are_private(tmp_path, monkeypatch):
    from tunebridge.backend import Backend, BackendOutput, TrainingJob
    from tunebridge.examples import Examples
    from tunebridge.execution import Worker
    from tunebridge.execution.streamer import Streamed
    from tunebridge.progress import RunReporter
    from tunebridge.spec import parse_spec

    seen = {}

    def stream(argv, **kwargs):
        folder = Path(argv[-1])
        seen["folder"] = stat.S_IMODE(folder.stat().st_mode)
        seen["job"] = stat.S_IMODE((folder / "job.json").stat().st_mode)
        return Streamed(returncode=0)

    def result(self, folder, streamed, log_path, job):
        return BackendOutput({}, {}, global_step=1)

    monkeypatch.setattr("tunebridge.execution.interpreter.stream", stream)
    monkeypatch.setattr(Worker, "result", result)
    data = write_jsonl(tmp_path / "rows.jsonl", contract_rows(4))
    spec = parse_spec(sft_spec_dict(data, "trl"))
    job = TrainingJob(spec, Examples(kind="prompt_completion", train=[], eval=[]), tmp_path, tmp_path, tmp_path,
                      RunReporter(tmp_path / "m.jsonl"))
    class Stub(Backend):  # Backend is abstract: a stub that the worker never calls
        def plan(self, spec, examples=None):
            raise NotImplementedError

        def train(self, job):
            raise NotImplementedError

    Worker(Stub(), sys.executable).run(job)
    assert seen == {"folder": 0o700, "job": 0o600}


# --- bad input: one `error: ...` line, no traceback, no output folder ------------------------------------------

BASE = "task: sft\nmodel: {builtin: tiny-llama}\ntraining: {max_steps: 2, batch_size: 2, max_length: 64}\n"
RL = "task: rl\nmodel: {builtin: tiny-llama}\ndata: {path: d.jsonl, template: instruction}\ntraining: {batch_size: 4}\n"


def _files(folder: Path) -> None:
    rows = [{"instruction": f"q{i}", "response": f"a{i}"} for i in range(8)]
    write_jsonl(folder / "d.jsonl", rows)
    (folder / "empty.jsonl").write_text("")
    (folder / "binary.jsonl").write_bytes(bytes(range(256)) * 4)
    (folder / "object.json").write_text('{"a": 1, "b": 2}')
    (folder / "missing.csv").write_text("instruction\nx\ny\n")
    (folder / "datadir").mkdir()
    (folder / "notamodel").mkdir()
    (folder / "notamodel" / "weights.txt").write_text("x")
    (folder / "afile").write_text("x")
    (folder / "rewards_ok.py").write_text("def r(prompts, completions, **kw):\n    return [0.0] * len(completions)\n")
    (folder / "rewards_raise.py").write_text("raise RuntimeError('import boom')\n")


CASES = {
    "spec-not-utf8": (b"task: sft\nname: caf\xe9\n", "(file): not UTF-8 text: byte 0xe9 at offset 19 (line 2)"),
    "spec-empty": ("", "(top level): expected a mapping, got NoneType"),
    "spec-unparsable": ("task: sft\n  model: [\n", "(file): cannot parse"),
    "lone-open-brace": ("task: sft\nmodel: {builtin: tiny-llama}\n"
                        "data: {path: d.jsonl, prompt: 'Q: {instruction', completion: '{response}'}\n",
                        "data.prompt: lone '{' at position 4 (near 'Q: {instruction')"),
    "lone-close-brace": ("task: sft\nmodel: {builtin: tiny-llama}\n"
                         "data: {path: d.jsonl, prompt: '{instruction}', completion: 'A: response}'}\n",
                         "data.completion: lone '}' at position 12"),
    "positional-placeholder": ("task: sft\nmodel: {builtin: tiny-llama}\n"
                               "data: {path: d.jsonl, prompt: 'Q: {}', completion: '{response}'}\n",
                               "data.prompt: placeholder {} at position 4 is not a column name"),
    "model-without-config": ("task: sft\nmodel: {path: ./notamodel}\ndata: {path: d.jsonl, template: instruction}\n",
                             "model.path: {dir}/notamodel is not a model folder (it has no config.json)"),
    "model-is-a-file": ("task: sft\nmodel: {path: ./afile}\ndata: {path: d.jsonl, template: instruction}\n",
                        "model.path: {dir}/afile is a file"),
    "tokenizer-folder-without-tokenizer": (
        "task: sft\nmodel: {builtin: tiny-llama, tokenizer: ./notamodel}\n"
        "data: {path: d.jsonl, template: instruction}\n",
        "model.tokenizer: {dir}/notamodel holds no tokenizer"),
    "empty-data": (BASE + "data: {path: empty.jsonl, template: instruction}\n", "empty.jsonl: no rows"),
    "data-is-a-folder": (BASE + "data: {path: datadir, template: instruction}\n", "a folder must be one saved by"),
    "binary-data": (BASE + "data: {path: binary.jsonl, template: instruction}\n", "binary.jsonl: cannot read"),
    "json-object-not-list": (BASE + "data: {path: object.json, template: instruction}\n",
                             "expected a JSON list of objects, got dict"),
    "csv-missing-column": (BASE + "data: {path: missing.csv, template: instruction}\n", "missing column 'response'"),
    "reward-attribute-missing": (RL + "rl: {reward: 'rewards_ok:missing'}\n",
                                 "cannot import 'rewards_ok:missing': AttributeError: module 'rewards_ok'"),
    "reward-module-missing": (RL + "rl: {reward: 'pkg.nomod:f'}\n", "No module named 'pkg'"),
    "reward-raises-at-import": (RL + "rl: {reward: 'rewards_raise:f'}\n", "RuntimeError: import boom"),
    "unknown-backend": (BASE + "data: {path: d.jsonl, template: instruction}\nbackend: nope\n",
                        "no backend named 'nope'"),
    "worker-timeout-not-a-number": (BASE + "data: {path: d.jsonl, template: instruction}\n"
                                    "backend_options: {trl: {python: /usr/bin/python3, timeout: soon}}\n",
                                    "backend_options.trl.timeout: 'soon' is not a number of seconds"),
    "interpreter-missing": (BASE + "data: {path: d.jsonl, template: instruction}\n"
                            "backend_options: {trl: {python: /nonexistent/python}}\n",
                            "cannot start /nonexistent/python"),
}
TRL_CASES = {
    "trl-option-unknown": (BASE + "data: {path: d.jsonl, template: instruction}\n"
                           "backend_options: {trl: {no_such_arg: 3}}\n",
                           "backend_options.trl.no_such_arg: trl.SFTConfig has no setting 'no_such_arg'"),
    "trl-option-wrong-type": (BASE + "data: {path: d.jsonl, template: instruction}\n"
                              "backend_options: {trl: {warmup_steps: soon}}\n",
                              "backend_options.trl.warmup_steps: expected"),
}


def tunebridge(*args, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tunebridge", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env or {**os.environ}, timeout=600)


def _check(proc: subprocess.CompletedProcess, expected: str) -> None:
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr and proc.stderr.startswith(("error: ", "training: "))
    assert "error: " in proc.stderr and expected in proc.stderr, proc.stderr


def _train_refused(tmp_path: Path, content: str | bytes, expected: str, env: dict | None = None) -> None:
    _files(tmp_path)
    spec = tmp_path / "spec.yaml"
    spec.write_bytes(content if isinstance(content, bytes) else content.encode())
    expected = expected.replace("{dir}", str(tmp_path))
    _check(tunebridge("train", spec, "-q", "-o", tmp_path / "out", cwd=tmp_path, env=env), expected)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_clear_error_and_no_folder(tmp_path, case):
    _train_refused(tmp_path, *CASES[case])


@pytest.mark.usefixtures("trl_available")
@pytest.mark.parametrize("case", list(TRL_CASES))
def test_trl_options_trl_refuses_fail_before_the_folder(tmp_path, case):
    _train_refused(tmp_path, *TRL_CASES[case])


def test_an_interpreter_from_the_environment_that_does_not_exist(tmp_path):
    _train_refused(tmp_path, BASE + "data: {path: d.jsonl, template: instruction}\n",
                   "backend 'trl' cannot run here (broken: cannot start /nope/python",
                   env={**os.environ, "TUNEBRIDGE_TRL_PYTHON": "/nope/python"})


@pytest.mark.parametrize("command", ["validate", "plan", "export", "compare"])
@pytest.mark.parametrize("case", ["spec-not-utf8", "lone-open-brace", "model-without-config"])
def test_every_command_refuses_bad_input_alike(tmp_path, command, case):
    _files(tmp_path)
    content, expected = CASES[case]
    spec = tmp_path / "spec.yaml"
    spec.write_bytes(content if isinstance(content, bytes) else content.encode())
    extra = {"export": ["-b", "autotrain", "-o", tmp_path / "out"], "compare": ["--backends", "trl", "-o",
                                                                                tmp_path / "out"]}.get(command, [])
    _check(tunebridge(command, spec, *extra, cwd=tmp_path), expected.replace("{dir}", str(tmp_path)))
    assert not (tmp_path / "out").exists()


def test_an_output_path_that_is_a_file(tmp_path):
    _files(tmp_path)
    (tmp_path / "spec.yaml").write_text(BASE + "data: {path: d.jsonl, template: instruction}\n")
    proc = tunebridge("train", "spec.yaml", "-q", "-o", "afile", cwd=tmp_path)
    _check(proc, "output path afile exists and is not a folder")
    assert (tmp_path / "afile").read_text() == "x"


@pytest.mark.parametrize("command", [["evaluate", "nowhere"], ["evaluate", "notamodel"], ["report", "notamodel"]])
def test_folders_that_are_not_runs(tmp_path, command):
    _files(tmp_path)
    proc = tunebridge(*command, cwd=tmp_path)
    assert proc.returncode == 1 and proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr


@pytest.mark.parametrize(("fmt", "problem"), [
    ("Q: {question}\nA: ", None), ("{a!r} {b:>5} {{literal}}", None),
    ("Q: {question", "lone '{' at position 4"), ("Q: question}", "lone '}' at position 12"),
    ("{a} {b", "lone '{' at position 5"), ("{a:{b}}", "lone '{' at position 1"),
    ("{}", "placeholder {} at position 1 is not a column name"), ("{0}", "is not a column name"),
    ("x {a.b}", "placeholder {a.b} at position 3 is not a column name"), ("{a[0]}", "is not a column name"),
    ("{a:d}", "Unknown format code 'd'"), ("{a!z}", "unknown conversion '!z'"),
])
def test_format_strings_are_checked_with_the_position(fmt, problem):
    from tunebridge.spec import format_string_problem

    found = format_string_problem(fmt)
    assert (found is None) if problem is None else (problem in found), found


def test_the_spec_error_names_the_field(tmp_path):
    spec = sft_spec_dict(write_jsonl(tmp_path / "d.jsonl", contract_rows(4)), "trl")
    spec["data"] = {"path": spec["data"]["path"], "prompt": "{instruction}", "completion": "{response"}
    with pytest.raises(tb.SpecError, match=r"data.completion: lone '\{' at position 1"):
        tb.load_spec(spec)
