"""The installed plugin from the command line: listed by `tunebridge backends`, trains, appears in a compare."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tunebridge.testing import contract_rows, sft_spec_dict, write_jsonl

pytestmark = pytest.mark.usefixtures("plainhf")


def _tunebridge(*args: str, cwd=None) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "tunebridge", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ}, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def test_backends_lists_the_plugin_with_its_package():
    data = json.loads(_tunebridge("backends", "--json").stdout)
    mine = next(b for b in data["backends"] if b["name"] == "plainhf")
    assert (mine["package"], mine["version"], mine["plugin"], mine["status"]) == (
        "tunebridge-plainhf", "0.1.0", "plainhf", "ready")
    assert mine["capabilities"]["tasks"] == ["reward", "sft"] and mine["capabilities"]["peft"]
    assert not data["failed_plugins"], data["failed_plugins"]
    assert "plainhf  (tunebridge-plainhf 0.1.0)" in _tunebridge("backends").stdout


@pytest.fixture
def spec_file(tmp_path):
    write_jsonl(tmp_path / "rows.jsonl", contract_rows(24))
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(sft_spec_dict("rows.jsonl", "plainhf", max_steps=4)))
    return path


def test_trains_from_the_cli(spec_file, tmp_path):
    _tunebridge("train", str(spec_file), "--output", str(tmp_path / "run"), "--quiet")
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["status"] == "completed" and record["backend"] == "plainhf" and record["global_step"] == 4
    assert (tmp_path / "run" / "model" / "config.json").is_file()


def test_appears_in_a_compare_with_trl(spec_file, tmp_path):
    _tunebridge("compare", str(spec_file), "--backends", "trl,plainhf", "--output", str(tmp_path / "cmp"), "--quiet")
    record = json.loads((tmp_path / "cmp" / "comparison.json").read_text())
    by_name = {b["name"]: b for b in record["backends"]}
    assert set(by_name) == {"trl", "plainhf"} and record["all_completed"], record["backends"]
    assert by_name["plainhf"]["steps"] == by_name["trl"]["steps"] == 4
    # Same examples, same order, same tokenisation rule, same starting weights: the same first loss.
    first = {name: json.loads((tmp_path / "cmp" / name / "metrics.jsonl").read_text().splitlines()[0])["loss"]
             for name in by_name}
    assert abs(first["plainhf"] - first["trl"]) <= 1e-4 * abs(first["trl"]), first
    assert "plainhf" in (tmp_path / "cmp" / "report.md").read_text()
