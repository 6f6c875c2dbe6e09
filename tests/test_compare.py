"""`tunebridge compare`: one spec on several backends, their statuses, the held-out split, comparison.json, the
report, and the bad inputs (test backends, no heavy training; one real compare on TRL, one on TRL + AutoTrain)."""

from __future__ import annotations

import json
import math

import pytest

import tunebridge as tb
from tunebridge import cli
from tunebridge.comparison import CompareError, held_out_spec, parse_backends
from tunebridge.comparison.differences import build_differences
from tunebridge.plugins import load_registry
from tunebridge.spec import load_spec, parse_spec
from tunebridge.testing import contract_rows, sft_spec_dict, write_jsonl

import fake_backend

pytest.importorskip("transformers", reason="compare evaluates models with transformers: needs the [trl] extra")


class FailingBackend(fake_backend.FakeBackend):
    name = "failing"
    fail_at_step = 2


@pytest.fixture
def registry():
    return load_registry([fake_backend, fake_backend.plugin_with(FailingBackend)], entry_points=False)


@pytest.fixture
def use_registry(registry, monkeypatch):
    """The CLI (which calls get_registry()) sees the test backends."""
    monkeypatch.setattr("tunebridge.plugins.get_registry", lambda refresh=False: registry)
    return registry


@pytest.fixture
def spec_file(tmp_path):
    write_jsonl(tmp_path / "data" / "rows.jsonl", contract_rows(20))
    spec = sft_spec_dict("data/rows.jsonl", "fake", max_steps=4)
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    return path


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """One compare with a completed, a failed and a skipped (unregistered) backend."""
    tmp = tmp_path_factory.mktemp("mixed")
    registry = load_registry([fake_backend, fake_backend.plugin_with(FailingBackend)], entry_points=False)
    write_jsonl(tmp / "data" / "rows.jsonl", contract_rows(20))
    (tmp / "spec.json").write_text(json.dumps(sft_spec_dict("data/rows.jsonl", "fake", max_steps=4)))
    record = tb.compare(tmp / "spec.json", backends=["fake", "failing", "nope"], output_dir=tmp / "out",
                        registry=registry)
    return tmp / "out", record


def test_each_backend_is_recorded_with_its_status_and_reason(mixed):
    out, record = mixed
    by_name = {b["name"]: b for b in record["backends"]}
    assert [b["name"] for b in record["backends"]] == ["fake", "failing", "nope"]
    assert by_name["fake"]["status"] == "completed" and by_name["fake"]["reason"] == ""
    assert by_name["failing"]["status"] == "failed" and "RuntimeError: boom at step 2" in by_name["failing"]["reason"]
    assert by_name["nope"]["status"] == "skipped" and "no backend named 'nope'" in by_name["nope"]["reason"]
    assert by_name["nope"]["run_dir"] is None and by_name["failing"]["run_dir"] == "failing"
    assert record["all_completed"] is False
    assert json.loads((out / "comparison.json").read_text()) == json.loads(json.dumps(record))
    for name in ("report.md", "report.html", "eval.jsonl", "plots/curves.png", "plots/eval.png"):
        assert (out / name).is_file(), name
    assert json.loads((out / "fake" / "run.json").read_text())["status"] == "completed"


def test_comparison_json_has_the_documented_fields(mixed):
    out, record = mixed
    assert record["spec"]["task"] == "sft" and record["spec"]["data"]["eval_fraction"] == 0.1
    assert record["eval"] == {"examples": 2, "held_out_by": "compare", "fraction": 0.1, "file": "eval.jsonl"}
    fake = record["backends"][0]
    for key in ("name", "status", "reason", "run_dir", "steps", "examples_seen", "tokens_seen", "wall_time_s",
                "peak_memory_mb", "train_loss_final", "eval", "versions"):
        assert key in fake, key
    assert fake["steps"] == 4 and fake["examples_seen"] == 16 and fake["train_loss_final"] == 0.5
    assert set(fake["eval"]) >= {"loss", "perplexity"} and fake["versions"]["tunebridge"]
    assert math.isclose(fake["eval"]["perplexity"], math.exp(fake["eval"]["loss"]))
    # The fake backend saves the base model unchanged: its neutral evaluation is the baseline's.
    assert fake["eval"] == record["baseline"]
    assert set(record["differences"]) >= {"settings", "adapted", "not_honoured"}


def test_eval_jsonl_holds_the_held_out_examples_as_rendered(mixed):
    out, record = mixed
    rows = [json.loads(line) for line in (out / "eval.jsonl").read_text().splitlines()]
    assert len(rows) == record["eval"]["examples"] == 2
    assert all(set(r) == {"prompt", "completion"} and r["prompt"].startswith("### Instruction") for r in rows)
    # The same examples every backend held out: the run's own split.
    spec = load_spec(out.parent / "spec.json")
    used, _ = held_out_spec(spec)
    assert tb.Run(used, registry=load_registry([fake_backend], entry_points=False)).validate().eval == rows


def test_the_held_out_split_is_added_as_a_default_not_as_a_written_setting(spec_file):
    spec = load_spec(spec_file)
    used, by = held_out_spec(spec)
    assert by == "compare" and used.data.eval_fraction == 0.1
    assert "eval_fraction" not in used.data.model_fields_set and spec.data.eval_fraction == 0.0
    assert used.base_dir == spec.base_dir and used.source == spec.source
    own = parse_spec({**spec.to_dict(), "data": {**spec.to_dict()["data"], "eval_fraction": 0.25}})
    assert held_out_spec(own) == (own, "spec")


def test_the_spec_split_is_used_when_there_is_one(tmp_path, registry):
    write_jsonl(tmp_path / "rows.jsonl", contract_rows(20))
    spec = sft_spec_dict(tmp_path / "rows.jsonl", "fake", max_steps=2)
    spec["data"]["eval_fraction"] = 0.2
    record = tb.compare(spec, backends="fake", output_dir=tmp_path / "out", registry=registry)
    assert record["eval"] == {"examples": 4, "held_out_by": "spec", "fraction": 0.2, "file": "eval.jsonl"}
    assert record["all_completed"] is True


def test_cli_compare_progress_table_and_exit_status(spec_file, tmp_path, use_registry, capsys):
    out = tmp_path / "out"
    assert cli.main(["compare", str(spec_file), "--backends", "fake,failing", "--output", str(out)]) == 1
    err = capsys.readouterr().err
    assert "[1/2] fake: training ..." in err and "step 4/4 | loss 0.5000" in err
    assert "[2/2] failing: training ..." in err and "[2/2] failing: failed" in err
    # Every backend completed: exit 0; a non-empty output needs --overwrite.
    assert cli.main(["compare", str(spec_file), "--backends", "fake", "--output", str(out)]) == 1
    assert "not empty; pass --overwrite" in capsys.readouterr().err
    assert cli.main(["compare", str(spec_file), "--backends", "fake", "--output", str(out), "--overwrite",
                     "-q"]) == 0
    text = capsys.readouterr()
    assert "== tunebridge compare finished ==" in text.out and f"report: {out / 'report.html'}" in text.out
    header, base, fake = text.out.split("== tunebridge compare finished ==\n")[1].splitlines()[:3]
    assert header.split() == ["backend", "status", "steps", "train", "loss", "eval", "loss", "eval", "ppl", "wall", "s"]
    assert base.startswith("(base model)  baseline") and fake.split()[:4] == ["fake", "completed", "4", "0.5000"]
    assert "[1/1]" not in text.err and not (out / "failing").exists()


def test_cli_compare_prints_the_summary_with_the_reasons(spec_file, tmp_path, use_registry, capsys):
    assert cli.main(["compare", str(spec_file), "--backends", "fake,failing,nope", "--output",
                     str(tmp_path / "o"), "-q"]) == 1
    out = capsys.readouterr().out
    assert "failing failed: training on 'failing' failed: RuntimeError: boom at step 2" in out
    assert "nope skipped: no backend named 'nope'" in out


@pytest.mark.parametrize("backends, message", [
    ("", "no backend to compare"),
    (" , ", "no backend to compare"),
    ("fak,trll", "no backend named 'fak' (did you mean 'fake'?)"),
])
def test_bad_backend_lists_are_errors_before_anything_is_written(spec_file, tmp_path, use_registry, capsys,
                                                                backends, message):
    assert cli.main(["compare", str(spec_file), "--backends", backends, "--output", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_parse_backends():
    assert parse_backends("trl, trlx,,trl") == ["trl", "trlx"]
    assert parse_backends(["autotrain"]) == ["autotrain"]
    with pytest.raises(CompareError):
        parse_backends([])


def test_available_means_every_ready_backend_for_the_task(spec_file, tmp_path, registry, monkeypatch):
    monkeypatch.setattr(FailingBackend, "check", lambda self: tb.BackendStatus("missing", "not installed"))
    record = tb.compare(spec_file, backends="available", output_dir=tmp_path / "out", registry=registry)
    assert [b["name"] for b in record["backends"]] == ["fake", "packer"] and record["all_completed"]


def test_a_backend_that_cannot_run_here_is_skipped(spec_file, tmp_path, registry, monkeypatch):
    monkeypatch.setattr(FailingBackend, "check", lambda self: tb.BackendStatus("missing", "not installed: x"))
    record = tb.compare(spec_file, backends="fake,failing", output_dir=tmp_path / "out", registry=registry)
    failing = record["backends"][1]
    assert failing["status"] == "skipped" and "missing: not installed: x" in failing["reason"]


def test_a_spec_a_backend_cannot_run_is_failed_for_it(spec_file, tmp_path, registry):
    spec = json.loads(spec_file.read_text())
    spec["sft"] = {"packing": True}
    spec_file.write_text(json.dumps(spec))
    record = tb.compare(spec_file, backends="packer,fake", output_dir=tmp_path / "out", registry=registry)
    packer, fake = record["backends"]
    assert packer["status"] == "completed"
    assert fake["status"] == "failed" and "does not support packing" in fake["reason"]


def test_an_interrupted_compare_still_writes_its_record(spec_file, tmp_path, use_registry, monkeypatch, capsys):
    def interrupted(self, job):
        raise KeyboardInterrupt

    monkeypatch.setattr(FailingBackend, "train", interrupted)
    out = tmp_path / "out"
    assert cli.main(["compare", str(spec_file), "--backends", "fake,failing,packer", "--output", str(out)]) == 130
    record = json.loads((out / "comparison.json").read_text())
    assert [(b["name"], b["status"]) for b in record["backends"]] == [
        ("fake", "completed"), ("failing", "failed"), ("packer", "skipped")]
    assert record["backends"][1]["reason"] == "interrupted by the user" and (out / "report.html").is_file()
    assert "interrupted by the user; what was written is kept in" in capsys.readouterr().err


class RLBackend(fake_backend.FakeBackend):
    name = "fake-rl"
    capabilities = tb.Capabilities(tasks=frozenset({"rl"}), algorithms={"rl": ("grpo",)})


@pytest.mark.parametrize("task", ["reward", "rl"])
def test_reward_and_rl_specs_get_their_own_figures(tmp_path, task):
    from tunebridge.testing import preference_rows, reward_spec_dict, rl_spec_dict

    registry = load_registry([fake_backend, fake_backend.plugin_with(RLBackend)], entry_points=False)
    if task == "reward":
        spec = reward_spec_dict(write_jsonl(tmp_path / "pairs.jsonl", preference_rows(20)), "packer", max_steps=2)
        backend, keys = "packer", {"accuracy", "margin", "pairs"}
    else:
        spec = rl_spec_dict(write_jsonl(tmp_path / "rows.jsonl", contract_rows(20)), "fake-rl", max_steps=2)
        backend, keys = "fake-rl", {"reward_mean", "samples", "prompts"}
    record = tb.compare(spec, backends=backend, output_dir=tmp_path / "out", registry=registry)
    row = record["backends"][0]
    assert row["status"] == "completed" and set(row["eval"]) == keys and set(record["baseline"]) == keys
    assert row["eval"] == record["baseline"]  # the fake backends save the base model unchanged
    rows = [json.loads(x) for x in (tmp_path / "out" / "eval.jsonl").read_text().splitlines()]
    assert {"reward": {"prompt", "chosen", "rejected"}}.get(task, {"prompt"}) <= set(rows[0])
    header = (tmp_path / "out" / "report.md").read_text().split("### Summary")[1]
    assert ("eval acc" if task == "reward" else "eval reward") in header
    assert (tmp_path / "out" / "plots" / "eval.png").is_file()


def test_report_rerenders_from_comparison_json(mixed, capsys):
    out, _ = mixed
    (out / "report.html").unlink()
    (out / "report.md").write_text("stale")
    assert cli.main(["report", str(out)]) == 0
    assert f"report: {out / 'report.html'}" in capsys.readouterr().out
    md = (out / "report.md").read_text()
    assert "| fake | completed | 4 | 0.5000 |" in md and "![" in md and "(plots/curves.png)" in md
    assert "## Differences" in md and (out / "report.html").is_file()


def test_report_on_a_folder_without_a_comparison_is_an_error(tmp_path, capsys):
    assert cli.main(["report", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "holds no comparison.json" in err


def test_html_escapes_every_text(mixed, tmp_path):
    from tunebridge.report import render_report

    out, record = mixed
    evil = json.loads(json.dumps(record))
    evil["spec"]["name"] = "<script>alert(1)</script>"
    evil["backends"][1]["reason"] = "a <b>bold</b> & \"quoted\" reason"
    target = tmp_path / "evil"
    target.mkdir()
    for b in evil["backends"]:
        b["run_dir"] = None
    _, html = render_report(target, evil)
    text = html.read_text()
    assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "<b>bold</b>" not in text and "a &lt;b&gt;bold&lt;/b&gt; &amp; &quot;quoted&quot; reason" in text


def test_differences_list_only_settings_that_differ():
    runs = {
        "a": {"plan": {"effective": {"effective_batch_size": 4, "packing": False, "loss_on_prompt": False}},
              "differences": [], "unhonoured": []},
        "b": {"plan": {"effective": {"effective_batch_size": 4, "packing": True, "loss_on_prompt": True}},
              "differences": [{"setting": "sft.completion_only_loss", "default": True, "used": False, "why": "x"}],
              "unhonoured": ["training.max_grad_norm: never clips"]},
        "c": {},  # an older backend: no plan in run.json
    }
    d = build_differences(runs)
    assert d["settings"] == [{"setting": "packing", "values": {"a": False, "b": True}},
                             {"setting": "loss_on_prompt", "values": {"a": False, "b": True}}]
    assert d["adapted"] == {"b": runs["b"]["differences"]}
    assert d["not_honoured"] == {"b": ["training.max_grad_norm: never clips"]} and d["reported_by"] == ["a", "b"]


@pytest.mark.usefixtures("trl_available")
def test_a_real_compare_on_trl(tmp_path, capsys):
    write_jsonl(tmp_path / "rows.jsonl", contract_rows(24))
    spec = sft_spec_dict(tmp_path / "rows.jsonl", "trl", max_steps=4)
    record = tb.compare(spec, backends=["trl"], output_dir=tmp_path / "out")
    trl = record["backends"][0]
    assert trl["status"] == "completed" and record["all_completed"]
    assert trl["steps"] == 4 and trl["examples_seen"] == 16 and trl["versions"]["trl"]
    assert isinstance(trl["train_loss_final"], float) and trl["wall_time_s"] > 0
    assert record["eval"]["examples"] == 2 and record["eval"]["held_out_by"] == "compare"
    # The numbers in comparison.json are those `evaluate` gives for the run folder (Python and CLI).
    again = tb.evaluate(tmp_path / "out" / "trl")
    assert {k: again[k] for k in trl["eval"]} == trl["eval"]
    assert trl["eval"]["loss"] < record["baseline"]["loss"]  # 4 steps of SFT already beat the start
    assert cli.main(["evaluate", str(tmp_path / "out" / "trl"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["loss"] == trl["eval"]["loss"]


@pytest.mark.training
def test_a_compare_on_trl_and_autotrain(tmp_path, autotrain_python, trl_available):
    write_jsonl(tmp_path / "rows.jsonl", contract_rows(24))
    spec = sft_spec_dict(tmp_path / "rows.jsonl", "trl", max_steps=None, epochs=1)
    spec["training"].pop("max_steps")
    record = tb.compare(spec, backends="trl,autotrain", output_dir=tmp_path / "out")
    by_name = {b["name"]: b for b in record["backends"]}
    assert by_name["trl"]["status"] == "completed", by_name["trl"]["reason"]
    assert by_name["autotrain"]["status"] == "completed", by_name["autotrain"]["reason"]
    for b in by_name.values():
        again = tb.evaluate(tmp_path / "out" / b["name"])
        assert b["eval"]["loss"] > 0 and b["eval"] == {k: again[k] for k in b["eval"]}
    # AutoTrain trains on the prompt too: that adapted default is listed.
    settings = {s["setting"]: s["values"] for s in record["differences"]["settings"]}
    assert settings["loss_on_prompt"] == {"trl": False, "autotrain": True}
    assert settings["packing"] == {"trl": False, "autotrain": True}
    adapted = [a["setting"] for a in record["differences"]["adapted"]["autotrain"]]
    assert adapted == ["sft.packing", "sft.completion_only_loss"] and "trl" not in record["differences"]["adapted"]
    for b in by_name.values():  # each backend made the steps its plan predicted
        run = json.loads((tmp_path / "out" / b["name"] / "run.json").read_text())
        assert b["steps"] == run["plan"]["optimizer_steps"]


def test_a_compare_locks_its_folder_and_each_backend_folder(spec_file, tmp_path, use_registry, monkeypatch):
    from tunebridge.lock import LOCK_NAME, OutputInUse, OutputLock

    out = tmp_path / "out"
    seen = []
    original = fake_backend.FakeBackend.train

    def train(self, job):
        seen.append(sorted(p.name for p in (out, job.output_dir) if (p / LOCK_NAME).is_file()))
        with pytest.raises(OutputInUse):  # the compare's own folder is taken while its backends train
            OutputLock(out).acquire()
        return original(self, job)

    monkeypatch.setattr(fake_backend.FakeBackend, "train", train)
    assert cli.main(["compare", str(spec_file), "--backends", "fake", "--output", str(out)]) == 0
    assert seen == [["fake", "out"]] and not list(out.rglob(LOCK_NAME))


def test_a_report_that_cannot_be_drawn_never_loses_the_record(tmp_path, monkeypatch):
    """compare and sweep write their record, then the report (report.write_record_with_report)."""
    import tunebridge.report as report
    from tunebridge.files import WriteError

    record = {"kind": "comparison", "backends": []}

    def broken(out, rec):
        raise ValueError("cannot draw")

    monkeypatch.setattr(report, "render_report", broken)
    with pytest.raises(ValueError, match="cannot draw"):
        report.write_record_with_report(tmp_path, "comparison.json", record)
    saved = json.loads((tmp_path / "comparison.json").read_text())
    assert saved["report_error"] == "ValueError: cannot draw" and saved["kind"] == "comparison"

    def full(out, rec):
        raise OSError(28, "No space left on device", str(out / "report.html"))

    monkeypatch.setattr(report, "render_report", full)
    with pytest.raises(WriteError) as info:
        report.write_record_with_report(tmp_path, "sweep.json", {"kind": "sweep"})
    assert "sweep.json (complete)" in str(info.value)
    assert json.loads((tmp_path / "sweep.json").read_text()) == {"kind": "sweep"}
