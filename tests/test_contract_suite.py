"""The contract suite itself: readable failures when installed, series that must not be empty, the reference."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from tunebridge.testing.contract import assert_different_series, assert_same_series


def test_installed_suite_asserts_are_rewritten(tmp_path):
    """The pytest11 entry point registers the suite for assertion rewriting: failures show the values."""
    (tmp_path / "test_probe.py").write_text(textwrap.dedent("""
        import tunebridge.testing.contract as contract

        def test_rewritten():
            assert type(contract.__loader__).__name__ == "AssertionRewritingHook"

        def test_values_are_shown():
            contract.assert_same_series([1.0, 2.0], [1.0, 2.5], 1e-5)
    """))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_probe.py"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert "1 failed, 1 passed" in proc.stdout, proc.stdout[-3000:]
    assert "the same seed gave different 'loss' at record 1: 2.0 vs 2.5" in proc.stdout


def test_compared_series_must_not_be_empty():
    with pytest.raises(AssertionError, match="no 'loss' values were logged"):
        assert_same_series([], [], 1e-5)
    with pytest.raises(AssertionError, match="no 'reward_mean' values were logged"):
        assert_different_series([], [], what="reward_mean")
    with pytest.raises(AssertionError, match="gave the same 'loss' series"):
        assert_different_series([1.0, 0.5], [1.0, 0.5])
    assert_different_series([1.0, 0.5], [1.0, 0.6])


def test_the_reference_batch_follows_the_published_rule(tmp_path):
    """Prompt ids then completion ids then EOS, no BOS, the prompt (ending in a space) masked, core order."""
    pytest.importorskip("transformers", reason="the reference loss needs the [trl] extra")
    from transformers import AutoTokenizer

    from tunebridge.examples import prepare_examples
    from tunebridge.spec import parse_spec
    from tunebridge.testing import contract_rows, sft_spec_dict, write_jsonl
    from tunebridge.testing.reference import reference_batch
    from tunebridge.tokenize import IGNORE

    write_jsonl(tmp_path / "rows.jsonl", contract_rows(8))
    spec = sft_spec_dict(tmp_path / "rows.jsonl", "trl", batch_size=3)
    spec["data"] = {"path": str(tmp_path / "rows.jsonl"), "prompt": "Question: {instruction}\nAnswer: ",
                    "completion": "{response}"}
    ref = reference_batch(spec)
    assert ref.examples == prepare_examples(parse_spec(spec)).train[:3]
    tok = AutoTokenizer.from_pretrained(ref.tokenizer_path)
    for example, ids, labels in zip(ref.examples, ref.input_ids, ref.labels, strict=True):
        prompt = tok(example["prompt"], add_special_tokens=False)["input_ids"]
        completion = tok(example["completion"], add_special_tokens=False)["input_ids"]
        assert example["prompt"].endswith(" ")
        assert ids == prompt + completion + [tok.eos_token_id]
        assert labels == [IGNORE] * len(prompt) + completion + [tok.eos_token_id]
        assert tok.bos_token_id is None or ids[0] != tok.bos_token_id or prompt[0] == tok.bos_token_id
    assert ref.loss > 0


def test_the_plugin_guide_quotes_every_hookspec(repo):
    """docs/plugins.md's hook reference is the hookspecs' own signature and docstring, word for word."""
    import ast

    source = (repo / "core" / "hookspecs.py").read_text()
    guide = (repo / "docs" / "plugins.md").read_text()
    hooks = [n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef)]
    assert hooks
    for hook in hooks:
        signature = source.splitlines()[hook.lineno - 1]
        assert signature in guide, signature
        doc = ast.get_docstring(hook)
        quoted = "\n".join(("    " + line) if line else "" for line in doc.splitlines())
        assert quoted.strip() in guide, f"docs/plugins.md does not quote {hook.name}'s docstring"
