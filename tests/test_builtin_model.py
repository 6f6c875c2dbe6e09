"""The embedded tiny-llama: built locally, cached, deterministic, loadable on transformers 4.x and 5.x."""

from __future__ import annotations

import hashlib
import json

import pytest

from tunebridge.builtin_models import build_tiny_llama

pytest.importorskip("transformers", reason="building the tiny model needs transformers + tokenizers ([trl] extra)")

CORPUS = ["The cat likes a book.", "A robot builds the bridge.", "### Instruction", "### Response:"] * 5


def _digest(folder):
    return hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()


def test_builds_loads_and_is_portable(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = build_tiny_llama(CORPUS, seed=3, cache_dir=tmp_path)
    assert folder.parent == tmp_path / "builtin"
    assert json.loads((folder / "tokenizer_config.json").read_text())["tokenizer_class"] == "PreTrainedTokenizerFast"
    assert (folder / "pytorch_model.bin").is_file() and (folder / "model.safetensors").is_file()
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    assert model.config.model_type == "llama" and model.config.vocab_size == len(tok)
    assert (tok.eos_token, tok.pad_token, tok.bos_token) == ("</s>", "<pad>", "<s>")
    assert tok.decode(tok("The cat likes a book.").input_ids) == "The cat likes a book."
    chat = tok.apply_chat_template([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}],
                                   tokenize=False)
    assert chat == "<|user|>hi</s><|assistant|>yo</s>"
    assert sum(p.numel() for p in model.parameters()) < 1_000_000


def test_cached_and_deterministic(tmp_path):
    a = build_tiny_llama(CORPUS, seed=3, cache_dir=tmp_path / "one")
    mtime = (a / "config.json").stat().st_mtime_ns
    assert build_tiny_llama(CORPUS, seed=3, cache_dir=tmp_path / "one") == a
    assert (a / "config.json").stat().st_mtime_ns == mtime  # reused, not rebuilt
    b = build_tiny_llama(CORPUS, seed=3, cache_dir=tmp_path / "two")
    assert a.name == b.name and _digest(a) == _digest(b)
    assert (a / "tokenizer.json").read_text() == (b / "tokenizer.json").read_text()
    c = build_tiny_llama(CORPUS, seed=4, cache_dir=tmp_path / "one")
    assert c != a and _digest(c) != _digest(a)
    assert build_tiny_llama(CORPUS + ["more text"], seed=3, cache_dir=tmp_path / "one") != a
    assert [p.name for p in (tmp_path / "one" / "builtin").iterdir() if p.name.startswith(".")] == []


def test_needs_some_text(tmp_path):
    with pytest.raises(ValueError, match="needs some text"):
        build_tiny_llama(["", "  "], cache_dir=tmp_path)


def test_env_var_sets_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNEBRIDGE_CACHE_DIR", str(tmp_path / "env"))
    assert build_tiny_llama(CORPUS, seed=3).parent == tmp_path / "env" / "builtin"
