"""A suite that cannot fail is not a contract: the contract suite must fail on a backend with each injected bug.

The mutants (tests/mutant_backend.py) are the example plugin's backend with one bug each; they are installed as
a plugin in a temporary site folder and the SFT contract runs on all of them in one pytest process (one start,
one tiny model), each on the checks that should catch its bug. The example plugin's own contract tests (the same
code without the bugs) are the control: they pass.
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from fake_backend import install_plugin

pytest.importorskip("tb_plainhf", reason="needs the example plugin: pip install --no-deps -e examples/plugin")
pytest.importorskip("transformers", reason="the mutants train with transformers: needs the [trl] extra")

# bug -> (the contract checks run on it, the checks that must fail and a phrase their message must hold)
MUTATIONS: dict[str, tuple[str, dict[str, str]]] = {
    "no-mask-in-train": ("first_batch or step_one_loss_matches",
                         {"test_step_one_loss_matches_the_core_reference": "the core's reference"}),
    "reversed-in-train": ("first_batch or step_one_loss_matches",
                          {"test_step_one_loss_matches_the_core_reference": "the core's reference"}),
    "constant-seed": ("different_seeds", {"test_different_seeds_differ_where_something_is_random":
                                          "two different training.seed values gave the same"}),
    "one-step-fewer": ("optimizer_steps", {"test_optimizer_steps_follow_the_neutral_rule": "optimizer steps"}),
    "nothing-saved": ("saved_model_reloads", {"test_saved_model_reloads_and_differs_from_the_start":
                                              "saved nothing in"}),
    "renamed-metrics": ("metrics_use_neutral_names or same_seed",
                        {"test_metrics_use_neutral_names": "logged no line with 'loss'",
                         "test_same_seed_gives_the_same_metrics": "logged no line with 'loss'"}),
    "lora-ignored": ("lora", {"test_lora_adapter_is_saved_when_not_merged": "must save a PEFT adapter",
                              "test_lora_merged_differs_from_the_base_only_by_a_low_rank_update":
                                  "is not a LoRA target"}),
}
# The training-path bugs must not show in the backend's own first batch: the contract may not rely on it.
FIRST_BATCH_PASSES = ("no-mask-in-train", "reversed-in-train")


def _class(bug: str) -> str:
    return "Test_" + bug.replace("-", "_")


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[str, dict[str, tuple[str, str]]]:
    """Run the contract suite on every mutant; per bug, per check: (outcome, message)."""
    root = tmp_path_factory.mktemp("mutations")
    site = install_plugin(root / "site", "mutant_backend", (Path(__file__).parent / "mutant_backend.py").read_text())
    module = ["from tunebridge.testing.contract import SFTContract", ""]
    for bug in MUTATIONS:
        module += ["", f"class {_class(bug)}(SFTContract):", f"    backend_name = 'mutant-{bug}'", ""]
    (root / "test_mutants.py").write_text("\n".join(module))
    select = " or ".join(f"({_class(bug)} and ({k}))" for bug, (k, _) in MUTATIONS.items())
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_mutants.py",
                           "-k", select, "--junitxml", str(root / "junit.xml")],
                          cwd=root, env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode in (0, 1), proc.stdout[-4000:] + proc.stderr[-4000:]  # 1: tests failed, as they should
    found: dict[str, dict[str, tuple[str, str]]] = {bug: {} for bug in MUTATIONS}
    for case in ET.parse(root / "junit.xml").iter("testcase"):
        bug = next(b for b in MUTATIONS if case.get("classname", "").endswith(_class(b)))
        bad = case.find("failure") if case.find("failure") is not None else case.find("error")
        skipped = case.find("skipped") is not None
        outcome = "failed" if bad is not None else ("skipped" if skipped else "passed")
        text = (bad.get("message", "") + "\n" + (bad.text or "")) if bad is not None else ""
        found[bug][case.get("name")] = (outcome, text)
    return found


@pytest.mark.parametrize("bug", list(MUTATIONS))
def test_the_contract_suite_fails_on_an_injected_bug(outcomes, bug):
    results = outcomes[bug]
    assert any(outcome == "failed" for outcome, _ in results.values()), f"the suite passed on {bug!r}: {results}"
    for check, phrase in MUTATIONS[bug][1].items():
        outcome, message = results.get(check, ("not run", ""))
        assert outcome == "failed", f"{check} did not catch {bug!r} ({outcome})"
        assert phrase in message, f"{check} failed on {bug!r} without saying {phrase!r}:\n{message[-2000:]}"
    if bug in FIRST_BATCH_PASSES:  # the bug is in train only: the backend's own first batch looks right
        first = "test_first_batch_is_the_core_rendering_with_completion_only_masking"
        assert results[first][0] == "passed", results[first]
