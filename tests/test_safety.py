"""Nothing is lost or clobbered: the output-folder lock, SIGTERM/SIGHUP, atomic writes, the builtin cache manifest."""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import tunebridge as tb
from tunebridge.files import WriteError, write_atomic
from tunebridge.lock import LOCK_NAME, OutputInUse, OutputLock
from tunebridge.run import Run
from tunebridge.signals import RunInterrupted, exit_code, interrupt_on_signals
from tunebridge.testing import contract_rows, sft_spec_dict, write_jsonl

import fake_backend

pytest.importorskip("transformers", reason="runs load the tokenizer: needs the [trl] extra")
# Fixtures `registry` (the fake test backends) and `spec` (a 4-step fake SFT spec) come from conftest.py.


def hold_lock(folder: Path) -> subprocess.Popen:
    """Another process holding the lock on ``folder`` until it is killed."""
    code = ("import sys, time; from pathlib import Path; from tunebridge.lock import OutputLock; "
            "Path(sys.argv[1]).mkdir(parents=True, exist_ok=True); OutputLock(Path(sys.argv[1])).acquire(); "
            "print('held', flush=True); time.sleep(120)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(folder)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# --- the lock ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_folder_in_use_is_refused_naming_the_holder(spec, registry, tmp_path, overwrite):
    out = tmp_path / "out"
    out.mkdir()
    (out / "theirs.txt").write_text("being written")
    holder = hold_lock(out)
    try:
        with pytest.raises(OutputInUse, match=f"in use by another tunebridge run \\(pid {holder.pid} on host "):
            Run(spec, registry=registry).train(out, overwrite=overwrite)
    finally:
        holder.kill()
        holder.wait()
    assert (out / "theirs.txt").read_text() == "being written"


def test_overwrite_never_empties_a_folder_holding_a_live_run(spec, registry, tmp_path):
    out = tmp_path / "out"
    holder = hold_lock(out / "trl")  # e.g. a compare's backend folder, or a run started into a sub-folder
    try:
        with pytest.raises(OutputInUse, match="trl is in use by another tunebridge run"):
            Run(spec, registry=registry).train(out, overwrite=True)
        assert (out / "trl" / LOCK_NAME).is_file()
    finally:
        holder.kill()
        holder.wait()


def test_the_lock_is_held_for_the_run_and_released_after(spec, registry, tmp_path, monkeypatch):
    out = tmp_path / "out"
    seen = {}

    def train(self, job):
        seen["lock"] = json.loads((job.output_dir / LOCK_NAME).read_text())
        with pytest.raises(OutputInUse, match=f"pid {os.getpid()}"):  # even this process cannot take it twice
            OutputLock(job.output_dir).acquire()
        return original(self, job)

    original = fake_backend.FakeBackend.train
    monkeypatch.setattr(fake_backend.FakeBackend, "train", train)
    Run(spec, registry=registry).train(out)
    assert seen["lock"]["pid"] == os.getpid() and seen["lock"]["host"] == socket.gethostname()
    assert not (out / LOCK_NAME).exists()
    monkeypatch.setattr(fake_backend.FakeBackend, "fail_at_step", 2)
    with pytest.raises(tb.RunFailed):
        Run(spec, registry=registry).train(out, overwrite=True)
    assert not (out / LOCK_NAME).exists()


def test_a_stale_lock_of_a_dead_process_is_taken_over_with_a_note(spec, registry, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    pid = dead_pid()
    (out / LOCK_NAME).write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "started": "earlier"}))
    Run(spec, registry=registry).train(out)
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "completed"
    assert any("took over the stale lock" in n and f"pid {pid}" in n and "no longer running" in n
               for n in record["notes"])
    assert "note: took over the stale lock" in capsys.readouterr().err
    assert not (out / LOCK_NAME).exists()


def killed_mid_run(folder: Path) -> int:
    """A process that takes the lock on ``folder``, writes a run.json at status running and is SIGKILLed."""
    code = ("import json, sys, time; from pathlib import Path; from tunebridge.lock import OutputLock; "
            "out = Path(sys.argv[1]); out.mkdir(parents=True, exist_ok=True); OutputLock(out).acquire(); "
            "(out / 'run.json').write_text(json.dumps({'status': 'running', 'backend': 'fake'})); "
            "print('running', flush=True); time.sleep(120)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(folder)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "running"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return proc.pid


def test_taking_over_a_killed_runs_lock_marks_its_run_json_interrupted(tmp_path):
    out = tmp_path / "out"
    pid = killed_mid_run(out)
    assert json.loads((out / "run.json").read_text())["status"] == "running"
    lock = OutputLock(out).acquire()
    try:
        record = json.loads((out / "run.json").read_text())
        assert record["status"] == "interrupted" and record["backend"] == "fake"
        assert record["error"].startswith(f"the process (pid {pid} on {socket.gethostname()}) died without "
                                          "finishing; its lock was taken over at ")
        assert "run.json, left at status running, now says interrupted" in lock.note
        assert not list(out.glob(".run.json.*.tmp"))
    finally:
        lock.release()


def test_a_run_over_a_killed_run_notes_the_corrected_record(spec, registry, tmp_path):
    out = tmp_path / "out"
    killed_mid_run(out)
    with pytest.raises(tb.TunebridgeError, match="not empty"):  # without --overwrite: refused, as before
        Run(spec, registry=registry).train(out)
    Run(spec, registry=registry).train(out, overwrite=True)
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "completed"
    assert any("now says interrupted" in n for n in record["notes"])


@pytest.mark.parametrize("status", ["completed", "failed"])
def test_a_finished_or_older_record_is_left_alone_on_takeover(tmp_path, status):
    out = tmp_path / "out"
    out.mkdir()
    (out / "run.json").write_text(json.dumps({"status": "running"}))
    old = time.time() - 3600
    os.utime(out / "run.json", (old, old))  # written before the dead holder took its lock: not its record
    (out / LOCK_NAME).write_text(json.dumps({"pid": dead_pid(), "host": socket.gethostname()}))
    with OutputLock(out) as lock:
        assert json.loads((out / "run.json").read_text()) == {"status": "running"}
        assert "now says interrupted" not in lock.note and "took over the stale lock" in lock.note
    (out / "run.json").write_text(json.dumps({"status": status}))
    (out / LOCK_NAME).write_text(json.dumps({"pid": dead_pid(), "host": socket.gethostname()}))
    with OutputLock(out) as lock:
        assert json.loads((out / "run.json").read_text()) == {"status": status}


def test_a_lock_from_another_host_is_refused_naming_it(spec, registry, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK_NAME).write_text(json.dumps({"pid": 1, "host": "gpu-node-7", "started": "earlier"}))
    with pytest.raises(OutputInUse, match=f"on another host \\(pid 1 on host gpu-node-7.*delete {out / LOCK_NAME}"):
        Run(spec, registry=registry).train(out, overwrite=True)
    assert (out / LOCK_NAME).is_file()


def test_a_refused_folder_that_did_not_exist_is_not_left_behind(spec, registry, tmp_path, monkeypatch):
    import tunebridge.run_folder as run_module

    monkeypatch.setattr(run_module, "check_not_in_use", lambda folder: (_ for _ in ()).throw(OutputInUse("busy")))
    with pytest.raises(OutputInUse):
        Run(spec, registry=registry).train(tmp_path / "new")
    assert not (tmp_path / "new").exists()


# --- signals ----------------------------------------------------------------------------------------------------


def test_sigterm_inside_a_run_is_an_interrupt_naming_the_signal(spec, registry, tmp_path, monkeypatch):
    def train(self, job):
        job.reporter.log(1, {"loss": 1.0})
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
        raise AssertionError("SIGTERM did not stop the run")

    monkeypatch.setattr(fake_backend.FakeBackend, "train", train)
    before = signal.getsignal(signal.SIGTERM)
    if before is not signal.SIG_DFL:
        pytest.skip("something in this test process handles SIGTERM already")
    with pytest.raises(RunInterrupted) as info:
        Run(spec, registry=registry).train(tmp_path / "out")
    assert exit_code(info.value) == 143 and isinstance(info.value, KeyboardInterrupt)
    record = json.loads((tmp_path / "out" / "run.json").read_text())
    assert record["status"] == "interrupted" and record["error"] == "interrupted by SIGTERM"
    assert signal.getsignal(signal.SIGTERM) is before
    assert not (tmp_path / "out" / LOCK_NAME).exists()


def test_signal_handlers_another_program_set_are_left_alone():
    mine = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as under nohup
    try:
        with interrupt_on_signals():
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    finally:
        signal.signal(signal.SIGHUP, mine)


SLEEPY_BACKEND = '''
import os, sys, time
from tunebridge.backend import Backend, BackendStatus, Capabilities, Plan
from tunebridge.hookspecs import hookimpl

class Sleepy(Backend):
    name = "sleepy"
    capabilities = Capabilities(tasks=frozenset({"sft"}), algorithms={"sft": ("sft",)}, completion_only_loss=True)

    def check(self):
        return BackendStatus("ready", "", {})

    def plan(self, spec, examples=None):
        return Plan(self.name, {})

    def train(self, job):
        print("sleepy started in", os.getpid(), flush=True)
        job.reporter.set_total_steps(3)
        job.reporter.log(1, {"loss": 1.0, "pid": os.getpid()})
        time.sleep(600)

@hookimpl
def register_backends(register):
    register(Sleepy)
'''


@pytest.fixture
def sleepy_env(tmp_path):
    """A slow backend from an installed-looking distribution, for tunebridge subprocesses and their workers."""
    site = fake_backend.install_plugin(tmp_path / "site", "sleepy_backend", SLEEPY_BACKEND)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    return {**os.environ, "PYTHONPATH": str(site), "TMPDIR": str(tmp)}


def _start(spec_file: Path, out: Path, env: dict, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tunebridge", "train", str(spec_file), "-q", "-o", str(out), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _first_step(out: Path, proc: subprocess.Popen) -> dict:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        metrics = out / "metrics.jsonl"
        if metrics.is_file() and metrics.read_text().strip():
            return json.loads(metrics.read_text().splitlines()[0])
        if proc.poll() is not None:
            raise AssertionError(f"the run ended early: {proc.communicate()}")
        time.sleep(0.2)
    raise AssertionError("the run never logged its first step")


def _gone(pid: int) -> bool:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


@pytest.mark.parametrize("isolated", [False, True], ids=["in-process", "worker"])
def test_sigterm_stops_a_cli_run_cleanly(tmp_path, sleepy_env, isolated):
    data = write_jsonl(tmp_path / "rows.jsonl", contract_rows(8))
    spec = sft_spec_dict(data, "sleepy", max_steps=3)
    if isolated:
        spec["backend_options"] = {"sleepy": {"python": sys.executable}}
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(spec))
    out = tmp_path / "out"
    proc = _start(spec_file, out, sleepy_env)
    try:
        step = _first_step(out, proc)
        # A second run into the folder in use is refused at once, --overwrite or not, and deletes nothing.
        second = subprocess.run([sys.executable, "-m", "tunebridge", "train", str(spec_file), "-q", "-o", str(out),
                                 "--overwrite"], capture_output=True, text=True, env=sleepy_env, timeout=300)
        assert second.returncode == 1 and "Traceback" not in second.stderr
        assert f"is in use by another tunebridge run (pid {proc.pid} on host" in second.stderr
        assert (out / "run.json").is_file() and (out / "metrics.jsonl").is_file()
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, stderr
    assert "interrupted by SIGTERM" in stderr and "Traceback" not in stderr
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "interrupted" and record["error"] == "interrupted by SIGTERM"
    assert not (out / LOCK_NAME).exists()
    if isolated:
        assert step["pid"] != proc.pid and _gone(step["pid"]), "the worker was orphaned"
        log = (out / "worker.log").read_text()
        assert "sleepy started in" in log and "interrupted by SIGTERM" in log
        assert list(Path(sleepy_env["TMPDIR"]).iterdir()) == [], "the job folder was left behind"


# --- atomic writes ----------------------------------------------------------------------------------------------


def _fail_fsync_when(monkeypatch, should_fail):
    real = os.fsync

    def fsync(fd):
        if should_fail():
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)


def test_a_full_disk_at_the_end_keeps_the_previous_run_json_whole(spec, registry, tmp_path, monkeypatch):
    trained = []
    original = fake_backend.FakeBackend.train
    monkeypatch.setattr(fake_backend.FakeBackend, "train", lambda self, job: trained.append(1) or original(self, job))
    _fail_fsync_when(monkeypatch, lambda: bool(trained))
    out = tmp_path / "out"
    with pytest.raises(WriteError) as info:
        Run(spec, registry=registry).train(out)
    message = str(info.value)
    assert message.startswith(f"cannot write {out / 'run.json'}: No space left on device; kept: {out} holds ")
    assert "metrics.jsonl (4 lines)" in message and "model/" in message and "run.json (status 'running')" in message
    assert json.loads((out / "run.json").read_text())["status"] == "running"  # whole, valid JSON
    assert sorted(p.name for p in out.iterdir()) == ["metrics.jsonl", "model", "run.json"]  # no temp file, no lock


def test_a_full_disk_from_the_start_is_one_clear_error(spec, registry, tmp_path, monkeypatch):
    Run(spec, registry=registry).plan()  # the builtin model is in the cache
    _fail_fsync_when(monkeypatch, lambda: True)
    out = tmp_path / "out"
    with pytest.raises(WriteError, match=f"cannot write {out}/\\S+: No space left on device"):
        Run(spec, registry=registry).train(out)
    assert not (out / "run.json").exists()


def test_a_read_only_output_folder_is_a_clear_error(spec, registry, tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    real = os.open

    def read_only(path, flags, *args, **kwargs):
        if str(path).startswith(str(out)) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only)
    with pytest.raises(tb.TunebridgeError, match=f"cannot write {out / LOCK_NAME}: Read-only file system; nothing"):
        Run(spec, registry=registry).train(out)
    assert list(out.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_chmod_read_only_output_folder_is_a_clear_error(spec, registry, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o500)
    try:
        with pytest.raises(tb.TunebridgeError, match="cannot write .*Permission denied"):
            Run(spec, registry=registry).train(out)
    finally:
        out.chmod(0o700)


def test_write_atomic_keeps_the_old_file_when_the_write_fails(tmp_path, monkeypatch):
    target = tmp_path / "run.json"
    write_atomic(target, '{"status": "running"}')
    _fail_fsync_when(monkeypatch, lambda: True)
    with pytest.raises(WriteError, match="No space left on device"):
        write_atomic(target, '{"status": "completed", "cut": "off"}')
    assert json.loads(target.read_text()) == {"status": "running"}
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]


# --- the builtin-model cache ------------------------------------------------------------------------------------


def _fresh_process(monkeypatch):
    import tunebridge.builtin_models as bm

    monkeypatch.setattr(bm, "_VERIFIED", set())


CORPUS = ["the cache is checked", "damaged weights are rebuilt", "hello world"]


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_a_damaged_cache_entry_is_rebuilt_and_said_so(tmp_path, monkeypatch, capsys, damage):
    from tunebridge.builtin_models import build_builtin, check_entry

    _fresh_process(monkeypatch)
    folder = build_builtin("tiny-llama", CORPUS, seed=5, cache_dir=tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())["files"]
    assert {"config.json", "model.safetensors", "tokenizer.json", "pytorch_model.bin"} <= set(manifest)
    weights = folder / "model.safetensors"
    good = weights.read_bytes()
    if damage == "truncate":
        weights.write_bytes(good[: len(good) // 2])
        expected = "model.safetensors: size"
    else:  # same size, different bytes: only the checksum sees it
        middle = len(good) // 2
        weights.write_bytes(good[:middle] + bytes(b ^ 0xFF for b in good[middle:middle + 64]) + good[middle + 64:])
        expected = "model.safetensors: sha256 mismatch"
    assert build_builtin("tiny-llama", CORPUS, seed=5, cache_dir=tmp_path) == folder  # checked once per process
    _fresh_process(monkeypatch)
    notes: list[str] = []
    assert build_builtin("tiny-llama", CORPUS, seed=5, cache_dir=tmp_path, notes=notes) == folder
    assert len(notes) == 1 and notes[0].endswith("; rebuilt it")
    assert notes[0].startswith(f"the cached builtin model {folder} was damaged ({expected}")
    assert expected in capsys.readouterr().err
    assert check_entry(folder) is None and weights.read_bytes() == good
    assert [p.name for p in folder.parent.iterdir() if p.name.startswith(".")] == []
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(folder)


def test_an_entry_without_a_manifest_is_rebuilt(tmp_path, monkeypatch):
    from tunebridge.builtin_models import build_builtin

    _fresh_process(monkeypatch)
    folder = build_builtin("tiny-llama", CORPUS, seed=6, cache_dir=tmp_path)
    (folder / "manifest.json").unlink()
    _fresh_process(monkeypatch)
    notes: list[str] = []
    build_builtin("tiny-llama", CORPUS, seed=6, cache_dir=tmp_path, notes=notes)
    assert "no manifest.json" in notes[0] and (folder / "manifest.json").is_file()


def test_a_run_records_the_rebuild(spec, registry, tmp_path, monkeypatch):
    monkeypatch.setenv("TUNEBRIDGE_CACHE_DIR", str(tmp_path / "cache"))
    _fresh_process(monkeypatch)
    first = Run(spec, registry=registry).train(tmp_path / "one")
    weights = Path(first.base_model) / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    _fresh_process(monkeypatch)
    Run(spec, registry=registry).train(tmp_path / "two")
    record = json.loads((tmp_path / "two" / "run.json").read_text())
    assert any("was damaged (model.safetensors: size 100" in n for n in record["notes"])
