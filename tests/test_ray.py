"""Sweeps and compare on a local Ray with 2 CPUs (real tiny TRL runs): a 3-trial grid whose completed trials equal
plain `tunebridge train` runs and whose failing trial is recorded with its reason, Ctrl-C during a sweep, and
`compare --ray` with the trl backend in a second interpreter giving the sequential compare's results."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("ray", reason="needs Ray (Ray Tune): pip install 'tunebridge[ray]' (make install does)")

import tunebridge as tb  # noqa: E402
from tunebridge import cli  # noqa: E402
from tunebridge.comparison.record import read_metrics  # noqa: E402
from tunebridge.spec import load_spec  # noqa: E402
from tunebridge.sweeps import spec_with  # noqa: E402
from tunebridge.testing import contract_rows, sft_spec_dict, write_jsonl  # noqa: E402

pytestmark = [pytest.mark.training, pytest.mark.usefixtures("trl_available")]
GRID = "lora.target_modules=[q_proj,v_proj],[q_proj],[no_such_module]"


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray with 2 CPUs for the module (every sweep and compare here joins it)."""
    from tunebridge.cluster import connect

    with connect(num_cpus=2) as cluster:
        yield cluster


def _spec_file(folder: Path, **changes) -> Path:
    write_jsonl(folder / "data" / "rows.jsonl", contract_rows(24))
    spec = sft_spec_dict("data/rows.jsonl", "trl", max_steps=3)  # a relative path: resolved in the Ray workers too
    spec.update(changes)
    path = folder / "spec.json"
    path.write_text(json.dumps(spec))
    return path


def _losses(run_dir: Path) -> list[float]:
    return [r["loss"] for r in read_metrics(run_dir) if "loss" in r]


@pytest.fixture(scope="module")
def swept(local_ray, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sweep")
    spec = _spec_file(tmp, lora={"r": 4})
    rc = cli.main(["sweep", str(spec), "--param", GRID, "--max-concurrent", "2", "--output", str(tmp / "out")])
    return spec, tmp / "out", rc, json.loads((tmp / "out" / "sweep.json").read_text())


def test_sweep_json_records_every_trial_and_the_best(swept):
    _, out, rc, record = swept
    assert rc == 1  # one trial failed
    assert record["status"] == "finished" and record["all_completed"] is False and record["trial_count"] == 3
    assert record["metric"] == "final_loss" and record["mode"] == "min"
    assert record["scheduler"]["kind"] == "ray" and record["scheduler"]["cpus"] == 2
    by_modules = {tuple(t["params"]["lora.target_modules"]): t for t in record["trials"]}
    assert set(by_modules) == {("q_proj", "v_proj"), ("q_proj",), ("no_such_module",)}
    for t in record["trials"]:
        assert set(t) >= {"id", "params", "status", "metrics", "run_dir", "reason"}
        assert t["run_dir"] == f"trials/{t['id']}" and (out / t["run_dir"] / "run.json").is_file()
    completed = [t for t in record["trials"] if t["status"] == "completed"]
    assert len(completed) == 2
    for t in completed:
        run = json.loads((out / t["run_dir"] / "run.json").read_text())
        assert run["status"] == "completed" and run["metrics"] == t["metrics"] and t["steps"] == 3
        assert (out / t["run_dir"] / "model" / "config.json").is_file()
    best = min(completed, key=lambda t: t["metrics"]["final_loss"])
    assert record["best"] == best
    for name in ("report.md", "report.html", "plots/curves.png", "plots/metric.png"):
        assert (out / name).is_file(), name
    assert cli.main(["report", str(out)]) == 0


def test_a_failing_trial_is_recorded_with_its_reason_and_the_others_finish(swept):
    _, out, _, record = swept
    failed = [t for t in record["trials"] if t["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["params"]["lora.target_modules"] == ["no_such_module"]
    assert "no_such_module" in failed[0]["reason"] and "not found in the base model" in failed[0]["reason"]
    assert json.loads((out / failed[0]["run_dir"] / "run.json").read_text())["status"] == "failed"
    assert "no_such_module" in (out / "report.md").read_text()


def test_a_trial_gives_the_per_step_losses_of_a_plain_run(swept, tmp_path):
    spec_path, out, _, record = swept
    for t in [t for t in record["trials"] if t["status"] == "completed"]:
        plain = tmp_path / t["id"]
        tb.Run(spec_with(load_spec(spec_path), t["params"])).train(plain)
        trial, alone = _losses(out / t["run_dir"]), _losses(plain)
        assert len(trial) == 3 and trial == pytest.approx(alone, rel=1e-6, abs=1e-7), (t["params"], trial, alone)
        assert t["metrics"]["final_loss"] == pytest.approx(alone[-1], rel=1e-6)


def test_ctrl_c_stops_the_trials_and_leaves_their_statuses(local_ray, tmp_path, capsys):
    spec = _spec_file(tmp_path, training={**sft_spec_dict("x", "trl")["training"], "max_steps": 5000})
    out = tmp_path / "out"

    def interrupt_once_a_trial_trains() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            time.sleep(0.3)
            if any(p.stat().st_size for p in out.glob("trials/*/metrics.jsonl")):
                os.kill(os.getpid(), signal.SIGINT)
                return

    threading.Thread(target=interrupt_once_a_trial_trains, daemon=True).start()
    started = time.monotonic()
    rc = cli.main(["sweep", str(spec), "--param", "training.learning_rate=1e-3,2e-3", "--max-concurrent", "1",
                   "--output", str(out)])
    assert rc == 130 and time.monotonic() - started < 300
    assert "the trials were stopped and their statuses are in" in capsys.readouterr().err
    record = json.loads((out / "sweep.json").read_text())
    assert record["status"] == "interrupted"
    assert [t["status"] for t in record["trials"]] == ["interrupted", "interrupted"]
    assert all(t["reason"] == "interrupted by the user" for t in record["trials"])
    ran = [t for t in record["trials"] if t["run_dir"]]
    assert ran and all(json.loads((out / t["run_dir"] / "run.json").read_text())["status"] == "interrupted"
                       for t in ran)


def test_compare_on_ray_gives_the_sequential_compare(local_ray, tmp_path, monkeypatch):
    """trl through TUNEBRIDGE_TRL_PYTHON (a second interpreter: here the same environment) as a Ray task started
    in that interpreter; the sequential compare trains in this process. Same losses, evaluation and record."""
    spec = _spec_file(tmp_path)
    sequential = tb.compare(spec, "trl", tmp_path / "seq")
    monkeypatch.setenv("TUNEBRIDGE_TRL_PYTHON", sys.executable)
    assert cli.main(["compare", str(spec), "--backends", "trl", "--ray", "--output", str(tmp_path / "ray")]) == 0
    on_ray = json.loads((tmp_path / "ray" / "comparison.json").read_text())
    assert on_ray["scheduler"]["kind"] == "ray" and sequential["scheduler"] == {"kind": "sequential"}
    assert on_ray["scheduler"]["tasks"]["trl"] == {"interpreter": sys.executable}
    assert sorted(on_ray) == sorted(sequential)
    seq_row, ray_row = sequential["backends"][0], on_ray["backends"][0]
    assert sorted(seq_row) == sorted(ray_row) and ray_row["status"] == "completed"
    assert _losses(tmp_path / "ray" / "trl") == pytest.approx(_losses(tmp_path / "seq" / "trl"), rel=1e-6, abs=1e-7)
    assert ray_row["eval"] == pytest.approx(seq_row["eval"], rel=1e-6)
    assert on_ray["baseline"] == sequential["baseline"] and on_ray["differences"] == sequential["differences"]
    for key in ("steps", "examples_seen", "tokens_seen", "train_loss_final", "run_dir"):
        assert ray_row[key] == pytest.approx(seq_row[key]) if isinstance(seq_row[key], float) else \
            ray_row[key] == seq_row[key], key
    assert (tmp_path / "ray" / "report.html").is_file()


def test_ray_leaves_the_signal_handlers_as_they_were(local_ray):
    """ray.init installs a SIGTERM handler; tunebridge puts the previous one back (its own, or the default)."""
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_the_tune_search_space():
    from ray import tune

    from tunebridge.sweeps import parse_params
    from tunebridge.sweeps.runner import param_space

    space = param_space(parse_params(["lora.r=4,8", "training.lr_scheduler=choice:linear,cosine",
                                      "training.learning_rate=loguniform:1e-4,1e-2"], samples=3))
    assert space["lora.r"] == tune.grid_search([4, 8])
    assert isinstance(space["training.lr_scheduler"], tune.search.sample.Categorical)
    assert space["training.lr_scheduler"].categories == ["linear", "cosine"]
    lr = space["training.learning_rate"]
    assert isinstance(lr, tune.search.sample.Float) and (lr.lower, lr.upper) == (1e-4, 1e-2)
    assert isinstance(lr.get_sampler(), tune.search.sample.LogUniform)
