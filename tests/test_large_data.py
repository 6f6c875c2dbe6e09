"""Large data: sft examples are tokenised once, in the core, in batches, with the published rule; TRL trains on
exactly those ids; the builtin tokenizer reads a bounded sample; data preparation reports its progress."""

from __future__ import annotations

import pytest

from tunebridge import builtin_models
from tunebridge.examples import Examples, prepare_examples
from tunebridge.prepare import corpus, finish_examples, resolve_model
from tunebridge.spec import parse_spec
from tunebridge.testing import contract_rows, sft_spec_dict, write_jsonl
from tunebridge.tokenize import IGNORE, encode_example, tokenise_sft


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    pytest.importorskip("transformers")
    rows = contract_rows(40)
    return builtin_models.build_builtin("tiny-llama", [v for r in rows for v in r.values() if v],
                                        cache_dir=tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def tok(tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tokenizer_dir))


def _examples():
    rows = contract_rows(30)
    pairs = [{"prompt": f"### Instruction\n{r['instruction']}\n\n### Response:\n", "completion": r["response"]}
             for r in rows]
    chat = {"prompt": "<|user|>hi</s><|assistant|>", "completion": "yo</s>"}
    return [*pairs, {"text": "The cat reads a book."}, chat, {"prompt": "", "completion": "x"}]


@pytest.mark.parametrize("max_length", [512, 12])
def test_batch_tokenisation_is_the_published_rule(tok, max_length):
    examples = _examples()
    tokens = tokenise_sft(tok, examples, max_length, batch_rows=7)
    assert len(tokens) == len(examples)
    for i, ex in enumerate(examples):
        assert tokens.row(i) == encode_example(tok, ex, max_length)
    assert (tokens.lengths <= max_length).all()


def test_a_completion_ending_in_eos_gets_no_second_eos(tok):
    ids, labels = encode_example(tok, {"prompt": "<|user|>hi</s><|assistant|>", "completion": "yo</s>"}, 64)
    assert ids.count(tok.eos_token_id) == 2 and ids[-1] == tok.eos_token_id  # one after the user turn, one here
    assert tok.decode([i for i, lab in zip(ids, labels, strict=True) if lab != IGNORE]) == "yo</s>"


def test_full_loss_labels_every_token(tok):
    tokens = tokenise_sft(tok, _examples()[:3], 512, completion_only_loss=False)
    assert (tokens.labels == tokens.input_ids).all()


def test_length_rules_read_the_tokenised_examples(tmp_path, tokenizer_dir):
    spec = parse_spec(sft_spec_dict(write_jsonl(tmp_path / "rows.jsonl", contract_rows(20)), "trl", max_length=40))
    spec = spec.model_copy(update={"model": spec.model.model_copy(update={"builtin": None,
                                                                          "path": str(tokenizer_dir)})})
    finished = finish_examples(spec, prepare_examples(spec), tokenizer_dir)
    tokens = finished.tokens
    assert len(tokens) == len(finished.train)
    assert finished.report["truncated"] == int((tokens.full_lengths > 40).sum()) > 0
    assert finished.token_lengths == [min(int(n), 40) for n in tokens.full_lengths]
    assert finished.report["completion_truncated_away"] == int((tokens.prompt_lengths >= 40).sum()) > 0


def test_progress_hears_reading_rendering_and_tokenising(tmp_path, tokenizer_dir):
    spec = parse_spec(sft_spec_dict(write_jsonl(tmp_path / "rows.jsonl", contract_rows(20)), "trl"))
    heard: list[tuple] = []
    examples = prepare_examples(spec, progress=lambda *a: heard.append(a))
    finish_examples(spec, examples, tokenizer_dir, progress=lambda *a: heard.append(a))
    stages = [h[0] for h in heard]
    assert stages[0] == "reading" and heard[0] == ("reading", None, None) and ("reading", 20, 20) in heard
    assert ("rendering", 20, 20) in heard
    assert heard[-1] == ("tokenising", 20, 20) and ("tokenising", 0, 20) in heard
    assert stages.index("reading") < stages.index("rendering") < stages.index("tokenising")


def test_the_cli_shows_preparation_on_stderr(capsys):
    from tunebridge.progress import ProgressLine

    line = ProgressLine()
    line.stage("reading")
    line.stage("tokenising", 5000, 200000)
    line.stage("tokenising", 200000, 200000)
    err = capsys.readouterr().err
    assert "reading" in err and "tokenising 200000/200000 rows" in err


def test_builtin_tokenizer_reads_a_bounded_seeded_sample(tmp_path, monkeypatch):
    seen: list[list[str]] = []
    def fake_tokenizer(lines, folder):
        seen.append(lines)
        (folder / "tokenizer.json").write_text("{}")

    monkeypatch.setattr(builtin_models, "_write_tokenizer", fake_tokenizer)
    monkeypatch.setattr(builtin_models, "_write_model", lambda folder, *_: (folder / "config.json").write_text("{}"))
    monkeypatch.setattr(builtin_models, "TOKENIZER_SAMPLE", 1000)
    monkeypatch.setenv("TUNEBRIDGE_CACHE_DIR", str(tmp_path / "cache"))
    big = Examples("prompt_completion", [{"prompt": f"p{i}", "completion": f"c{i}"} for i in range(25000)])
    spec = parse_spec({"task": "sft", "model": {"builtin": "tiny-llama"}, "data": {"path": "x.jsonl"}})
    first, _ = resolve_model(spec, big)
    assert len(seen) == 1 and len(seen[0]) == 2 * 1000  # 1000 examples of 25000, prompt + completion each
    assert seen[0] == corpus(big, 1000)
    again, _ = resolve_model(spec, big)
    assert again == first and len(seen) == 1  # the same sample: the cached folder is reused
    assert "1000 of 25000 examples" in (first / "tunebridge_builtin.json").read_text()
    small = Examples("prompt_completion", big.train[:500])
    resolve_model(spec, small)
    assert len(seen[1]) == 1000  # below the bound: every example


@pytest.mark.training
def test_trl_trains_on_exactly_the_core_token_ids(tmp_path, trl_available):
    from tunebridge.run import Run

    data = write_jsonl(tmp_path / "rows.jsonl", contract_rows(16))
    run = Run(parse_spec(sft_spec_dict(data, "trl", batch_size=4)))
    batch = run.first_batch()
    _, _, examples = run.prepared(run.validate())
    for i, (ids, labels) in enumerate(zip(batch["input_ids"], batch["labels"], strict=True)):
        want_ids, want_labels = examples.tokens.row(i)
        assert ids[: len(want_ids)] == want_ids and labels[: len(want_labels)] == want_labels
        assert all(lab == IGNORE for lab in labels[len(want_labels):])  # padding only after the row


def test_chat_data_is_read_once_and_rendered_as_if_read_again(tmp_path, tokenizer_dir, monkeypatch):
    import dataclasses

    import tunebridge.examples as examples_module

    rows = [{"messages": [{"role": "user", "content": f"hi {i}"}, {"role": "assistant", "content": f"yo {i}"}]}
            for i in range(12)]
    path = write_jsonl(tmp_path / "chat.jsonl", rows)
    spec = parse_spec({**sft_spec_dict(path, "fake"), "data": {"path": str(path), "template": "chat",
                                                               "eval_fraction": 0.25}})
    reads = []
    real = examples_module.read_rows
    monkeypatch.setattr(examples_module, "read_rows", lambda *a, **k: reads.append(a) or real(*a, **k))
    checked = prepare_examples(spec)
    assert len(reads) == 1 and checked.kind == "chat" and checked.source is not None
    finished = finish_examples(spec, checked, tokenizer_dir)
    assert len(reads) == 1  # rendered from the rows kept at the check, not read again
    again = finish_examples(spec, dataclasses.replace(checked, source=None), tokenizer_dir)
    assert len(reads) == 2
    assert (finished.train, finished.eval, finished.report) == (again.train, again.eval, again.report)
    assert finished.kind == "prompt_completion" and finished.train[0]["completion"].startswith("yo ")
