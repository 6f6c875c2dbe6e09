"""`tunebridge sweep` without Ray: --param parsing, values validated against the spec schema before Ray starts,
the dotted overrides, the best trial, the report of a sweep.json (the Ray runs are in tests/test_ray.py)."""

from __future__ import annotations

import json

import pytest

from tunebridge import cli
from tunebridge.spec import load_spec
from tunebridge.sweeps import ParamError, best_trial, default_metric, parse_param, parse_params, spec_with, validate
from tunebridge.sweeps.params import apply, grid, split_values, trial_count
from tunebridge.testing import contract_rows, sft_spec_dict, write_jsonl


@pytest.fixture
def spec_file(tmp_path):
    write_jsonl(tmp_path / "data" / "rows.jsonl", contract_rows(12))
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(sft_spec_dict("data/rows.jsonl", "trl", max_steps=2)))
    return path


@pytest.fixture
def no_ray(monkeypatch):
    """Fails the test if the sweep gets as far as connecting to Ray."""
    def refuse(*args, **kwargs):
        raise AssertionError("the sweep connected to Ray before refusing its input")

    monkeypatch.setattr("tunebridge.cluster.connect", refuse)


@pytest.mark.parametrize(("text", "key", "kind", "values"), [
    ("training.learning_rate=1e-3,3e-3", "training.learning_rate", "grid", (1e-3, 3e-3)),
    ("lora.r=4,8,16", "lora.r", "grid", (4, 8, 16)),
    ("training.shuffle=true,false", "training.shuffle", "grid", (True, False)),
    ("lora.target_modules=[q_proj,v_proj],[q_proj]", "lora.target_modules", "grid", (["q_proj", "v_proj"], ["q_proj"])),
    ("training.lr_scheduler=choice:linear,cosine", "training.lr_scheduler", "choice", ("linear", "cosine")),
    ("training.learning_rate=loguniform:1e-4,1e-2", "training.learning_rate", "loguniform", (1e-4, 1e-2)),
    ("name= a , 'b,c' ", "name", "grid", ("a", "b,c")),
])
def test_param_syntax(text, key, kind, values):
    p = parse_param(text)
    assert (p.key, p.kind, p.values) == (key, kind, values)
    assert p.random == (kind != "grid")


@pytest.mark.parametrize(("text", "message"), [
    ("training.learning_rate", "expected KEY=V1,V2"),
    ("=1,2", "expected KEY=V1,V2"),
    ("training..learning_rate=1", "is not a dotted spec path"),
    ("training.learning_rate=", "no values"),
    ("training.learning_rate=1e-3,,2e-3", "an empty value"),
    ("training.learning_rate=1e-3,1e-3", "given twice"),
    ("training.learning_rate=loguniform:1e-2", "takes two numbers"),
    ("training.learning_rate=loguniform:1e-2,1e-4", "0 < LO < HI"),
    ("training.learning_rate=loguniform:0,1e-4", "0 < LO < HI"),
    ("training.learning_rate=1e-3,inf", "inf and nan cannot be swept"),
    ("training.learning_rate=[1,", "cannot read"),
])
def test_bad_param_syntax_is_an_error(text, message):
    with pytest.raises(ParamError, match=message) as info:
        parse_param(text)
    assert str(info.value).startswith(f"--param {text}:")


def test_params_together():
    assert trial_count(parse_params(["lora.r=4,8", "training.learning_rate=1e-3,2e-3,3e-3"]), None) == 6
    assert grid(parse_params(["lora.r=4,8", "training.seed=1,2"])) == [
        {"lora.r": 4, "training.seed": 1}, {"lora.r": 4, "training.seed": 2},
        {"lora.r": 8, "training.seed": 1}, {"lora.r": 8, "training.seed": 2}]
    assert trial_count(parse_params(["lora.r=4,8", "training.learning_rate=loguniform:1e-4,1e-2"], 3), 3) == 6
    with pytest.raises(ParamError, match="given twice"):
        parse_params(["lora.r=4", "lora.r=8"])
    with pytest.raises(ParamError, match="one is inside the other"):
        parse_params(["lora=4", "lora.r=8"])
    with pytest.raises(ParamError, match="needs --samples N"):
        parse_params(["lora.r=choice:4,8"])
    with pytest.raises(ParamError, match="is for random search"):
        parse_params(["lora.r=4,8"], samples=2)
    with pytest.raises(ParamError, match="at least one --param"):
        parse_params([])
    assert split_values("a,[b,c],{d: 1, e: 2}") == ["a", "[b,c]", "{d: 1, e: 2}"]


def test_overrides_keep_what_the_user_wrote_and_resolve_paths_against_the_spec_file(spec_file, tmp_path):
    spec = load_spec(spec_file)
    trial = spec_with(spec, {"training.learning_rate": 1e-3, "lora.r": 4})
    assert trial.training.learning_rate == 1e-3 and trial.lora.r == 4 and trial.training.max_steps == 2
    assert trial.base_dir == spec.base_dir and trial.source == spec.source
    assert trial.resolve_path(trial.data.path) == tmp_path / "data" / "rows.jsonl"
    # A default the user did not write stays a default (a backend may adapt it, as in a plain run).
    assert "eval_fraction" not in trial.data.model_fields_set and "learning_rate" in trial.training.model_fields_set
    assert spec.training.learning_rate == 3e-3  # the base spec is left alone
    with pytest.raises(ParamError, match=r"training\.max_steps is 2 in the spec, not a mapping"):
        apply(spec.to_dict(), {"training.max_steps.x": 1})


@pytest.mark.parametrize(("param", "message"), [
    ("training.learning_rate=abc", "--param training.learning_rate=abc: training.learning_rate: Input should be a "
                                   "valid number"),
    ("training.learning_rate=1e-3,-1", "--param training.learning_rate=-1: training.learning_rate: Input should be "
                                       "greater than 0"),
    ("training.learnin_rate=1e-3", "--param training.learnin_rate=0.001: training.learnin_rate: unknown key (did you "
                                   "mean 'learning_rate'?)"),
    ("lora.r=loguniform:0.5,8", "--param lora.r=0.5: lora.r: Input should be a valid integer"),
])
def test_each_value_is_validated_before_ray_starts(spec_file, param, message, no_ray, capsys):
    with pytest.raises(ParamError) as info:
        validate(load_spec(spec_file), parse_params([param], 2 if "loguniform" in param else None))
    assert str(info.value).startswith(message)
    rc = cli.main(["sweep", str(spec_file), "--param", param, "--output", str(spec_file.parent / "out")]
                  + (["--samples", "2"] if "loguniform" in param else []))
    err = capsys.readouterr().err
    assert rc == 1 and err.startswith(f"error: {message}"), err
    assert not (spec_file.parent / "out").exists()  # nothing written


def test_bad_options_are_refused_before_ray_starts(spec_file, no_ray, capsys, tmp_path):
    base = ["sweep", str(spec_file), "--param", "training.learning_rate=1e-3,2e-3"]
    assert cli.main([*base, "--output", str(tmp_path / "o"), "--max-concurrent", "0"]) == 1
    assert "--max-concurrent 0: give 1 or more" in capsys.readouterr().err
    assert cli.main([*base, "--output", str(tmp_path / "o"), "--samples", "2"]) == 1
    assert "--samples 2 is for random search" in capsys.readouterr().err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    assert cli.main([*base, "--output", str(tmp_path / "full")]) == 1
    assert "is not empty; pass --overwrite" in capsys.readouterr().err
    assert cli.main(["sweep", str(spec_file), "--output", str(tmp_path / "o")]) == 1
    assert "a sweep needs at least one --param" in capsys.readouterr().err


def test_default_metric(spec_file):
    spec = load_spec(spec_file)
    assert default_metric(spec) == "final_loss"
    assert default_metric(spec_with(spec, {"data.eval_fraction": 0.2})) == "eval_loss"


def test_best_trial_by_metric_and_mode():
    trials = [{"id": "a", "status": "completed", "metrics": {"eval_loss": 2.0}},
              {"id": "b", "status": "completed", "metrics": {"eval_loss": 1.0}},
              {"id": "c", "status": "failed", "metrics": {"eval_loss": 0.5}},
              {"id": "d", "status": "completed", "metrics": {}}]
    assert best_trial(trials, "eval_loss", "min")["id"] == "b"
    assert best_trial(trials, "eval_loss", "max")["id"] == "a"
    assert best_trial(trials, "nope", "min") is None


def test_report_of_a_sweep_folder(tmp_path, capsys):
    """`tunebridge report DIR` reads sweep.json: a trials table, the metric against each parameter, the curves."""
    pytest.importorskip("matplotlib", reason="the report's plots need matplotlib (pip install 'tunebridge[report]')")
    out = tmp_path / "sweep"
    trials = []
    for i, (lr, status) in enumerate([(1e-3, "completed"), (3e-3, "completed"), (1e-2, "failed")]):
        run_dir = out / "trials" / f"t{i}"
        run_dir.mkdir(parents=True)
        (run_dir / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "loss": 3.0 - s * lr * 100}) + "\n"
                                                       for s in (1, 2, 3)))
        trials.append({"id": f"t{i}", "params": {"training.learning_rate": lr}, "status": status,
                       "reason": "" if status == "completed" else "boom | <b>", "run_dir": f"trials/t{i}",
                       "metrics": {"final_loss": 3.0 - 3 * lr * 100} if status == "completed" else {},
                       "steps": 3, "wall_time_s": 1.5})
    params = [{"key": "training.learning_rate", "kind": "grid", "values": [1e-3, 3e-3, 1e-2]}]
    record = {"kind": "sweep", "spec": {"task": "sft", "model": {"builtin": "tiny-llama"}}, "task": "sft",
              "backend": "trl", "params": params, "trial_count": 3, "metric": "final_loss", "mode": "min",
              "trials": trials, "best": trials[1], "status": "finished",
              "scheduler": {"kind": "ray", "address": "local", "ray_version": "2.60.0", "cpus": 2}}
    (out / "sweep.json").write_text(json.dumps(record))
    assert cli.main(["report", str(out)]) == 0
    md = (out / "report.md").read_text()
    html = (out / "report.html").read_text()
    assert "# tunebridge sweep" in md and "## Trials" in md and "| t1 (best) | completed | 0.003 |" in md
    assert "boom \\| <b>" in md and "boom | &lt;b&gt;" in html and "boom | <b>" not in html  # escaped
    assert "Differences" not in md and "Backends" not in md
    assert (out / "plots" / "curves.png").is_file() and (out / "plots" / "metric.png").is_file()
    assert html.count("data:image/png;base64,") == 2
    (out / "sweep.json").write_text("{}")
    assert cli.main(["report", str(out)]) == 1
    assert "is not a tunebridge sweep" in capsys.readouterr().err


def test_without_ray_the_sweep_says_how_to_install_it(spec_file, monkeypatch, capsys, tmp_path):
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as if it were not installed
    rc = cli.main(["sweep", str(spec_file), "--param", "training.learning_rate=1e-3,2e-3", "--output",
                   str(tmp_path / "out")])
    assert rc == 1 and "this needs Ray (Ray Tune): pip install 'tunebridge[ray]'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    rc = cli.main(["compare", str(spec_file), "--backends", "trl", "--ray", "--output", str(tmp_path / "out")])
    assert rc == 1 and "this needs Ray (Ray Tune)" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_which_interpreter_a_compare_task_starts_in(spec_file):
    """compare --ray: a backend with its own interpreter gets its task started there only when that interpreter has
    the same Ray; otherwise the task runs here and the run starts its worker there, as a sequential compare does."""
    from types import SimpleNamespace

    from tunebridge.comparison.on_ray import task_interpreter, without_interpreter

    here = SimpleNamespace(executor=SimpleNamespace(kind="in-process"))
    assert task_interpreter(here, "2.60.0") == (None, "")
    elsewhere = SimpleNamespace(executor=SimpleNamespace(kind="worker", python="/nonexistent/bin/python"))
    python, why = task_interpreter(elsewhere, "2.60.0")
    assert python is None and "/nonexistent/bin/python has no Ray 2.60.0" in why and "starts its worker" in why
    spec = spec_with(load_spec(spec_file), {"backend_options.trl": {"python": "/x/bin/python", "timeout": 9}})
    stripped = without_interpreter(spec, "trl")
    assert stripped.backend_options == {"trl": {"timeout": 9}} and spec.backend_options["trl"]["python"]
    assert stripped.base_dir == spec.base_dir and without_interpreter(stripped, "trl") is stripped
