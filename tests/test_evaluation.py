"""The neutral evaluation and its tokenisation rule, checked against hand-written computations."""

from __future__ import annotations

import json
import math

import pytest

import tunebridge as tb
from tunebridge import cli
from tunebridge.plugins import load_registry
from tunebridge.run import Run
from tunebridge.spec import parse_spec
from tunebridge.testing import contract_rows, preference_rows, rl_spec_dict, sft_spec_dict, write_jsonl
from tunebridge.tokenize import encode_scored, encode_sft, encode_text

import fake_backend

pytest.importorskip("transformers", reason="the neutral evaluation loads models with transformers")


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from transformers import AutoTokenizer

    from tunebridge.testing import build_tiny_llama

    path = build_tiny_llama([r["instruction"] + r["response"] for r in contract_rows(24)], seed=3,
                            cache_dir=tmp_path_factory.mktemp("cache"))
    return AutoTokenizer.from_pretrained(str(path))


def test_sft_rule_masks_the_prompt_and_appends_eos(tokenizer):
    prompt, completion = "### Instruction:\nWhat does the cat do?\n\n### Response:\n", "The cat reads."
    ids, labels = encode_sft(tokenizer, prompt, completion, 512)
    p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    c = tokenizer(completion, add_special_tokens=False)["input_ids"]
    assert ids == p + c + [tokenizer.eos_token_id]
    assert labels == [-100] * len(p) + c + [tokenizer.eos_token_id]
    short_ids, short_labels = encode_sft(tokenizer, prompt, completion, len(p) + 2)
    assert short_ids == ids[: len(p) + 2] and short_labels == labels[: len(p) + 2]
    text_ids, text_labels = encode_text(tokenizer, completion, 512)
    assert text_ids == text_labels == c + [tokenizer.eos_token_id]
    joined = tokenizer(prompt + completion, add_special_tokens=False)["input_ids"]
    assert encode_scored(tokenizer, prompt, completion, 512) == joined + [tokenizer.eos_token_id]


def hand_sft_loss(model_dir, examples, max_length):
    """The neutral SFT loss written out with plain transformers, one example at a time (no tunebridge code)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir)).eval()
    total, count = 0.0, 0
    for ex in examples:
        prompt = tok(ex["prompt"], add_special_tokens=False)["input_ids"]
        answer = tok(ex["completion"], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        ids = (prompt + answer)[:max_length]
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0]
        logprobs = torch.log_softmax(logits.double(), dim=-1)
        for position in range(len(prompt), len(ids)):  # token `position` is predicted from position - 1
            total -= logprobs[position - 1, ids[position]].item()
            count += 1
    return total / count, count


@pytest.fixture(scope="module")
def sft_run(tmp_path_factory, request):
    tmp = tmp_path_factory.mktemp("sft-run")
    write_jsonl(tmp / "rows.jsonl", contract_rows(30))
    spec = sft_spec_dict(tmp / "rows.jsonl", "fake", max_steps=3)
    spec["data"]["eval_fraction"] = 0.2
    registry = load_registry([fake_backend], entry_points=False)
    Run(parse_spec(spec), registry=registry).train(tmp / "fake")
    return tmp


def _trained_by(backend, sft_run):
    if backend == "fake":
        return sft_run / "fake"
    out = sft_run / "trl"
    if not out.exists():
        spec = json.loads((sft_run / "fake" / "run.json").read_text())["spec"]
        Run(parse_spec({**spec, "backend": "trl"})).train(out)
    return out


@pytest.mark.parametrize("backend", ["fake", "trl"])
def test_the_neutral_sft_loss_matches_a_hand_written_loop(sft_run, backend, request):
    if backend == "trl":
        request.getfixturevalue("trl_available")
    run_dir = _trained_by(backend, sft_run)
    spec = parse_spec(json.loads((run_dir / "run.json").read_text())["spec"])
    from tunebridge.examples import prepare_examples

    held_out = prepare_examples(spec).eval
    assert len(held_out) == 6
    expected, tokens = hand_sft_loss(run_dir / "model", held_out, spec.training.max_length)
    result = tb.evaluate(run_dir)
    assert abs(result["loss"] - expected) < 1e-5 and result["tokens"] == tokens and result["examples"] == 6
    assert math.isclose(result["perplexity"], math.exp(result["loss"]))


def test_evaluate_from_the_cli(sft_run, capsys):
    assert cli.main(["evaluate", str(sft_run / "fake")]) == 0
    text = capsys.readouterr().out
    assert "eval loss " in text and "(6 held-out examples, " in text
    assert cli.main(["evaluate", str(sft_run / "fake"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == tb.evaluate(sft_run / "fake")


def test_evaluate_with_another_spec_file(sft_run, tmp_path):
    spec = json.loads((sft_run / "fake" / "run.json").read_text())["spec"]
    spec["data"]["eval_fraction"] = 0.1
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    assert tb.evaluate(sft_run / "fake", spec=tmp_path / "spec.json")["examples"] == 3


def test_evaluate_bad_run_folders_are_errors(sft_run, tmp_path, capsys):
    assert cli.main(["evaluate", str(tmp_path)]) == 1
    assert capsys.readouterr().err.startswith(f"error: {tmp_path} is not a run folder (no run.json)")
    assert cli.main(["evaluate", str(tmp_path / "missing")]) == 1
    assert "error: no run folder at" in capsys.readouterr().err
    failed = tmp_path / "failed"
    failed.mkdir()
    (failed / "run.json").write_text(json.dumps({"status": "failed", "error": "RuntimeError: boom"}))
    assert cli.main(["evaluate", str(failed)]) == 1
    err = capsys.readouterr().err
    assert "did not complete: status 'failed' (RuntimeError: boom)" in err and "Traceback" not in err
    record = json.loads((sft_run / "fake" / "run.json").read_text())
    record["spec"]["data"]["eval_fraction"] = 0.0
    no_split = tmp_path / "no-split"
    no_split.mkdir()
    (no_split / "run.json").write_text(json.dumps(record))
    assert cli.main(["evaluate", str(no_split)]) == 1
    assert "error: the spec has no held-out split" in capsys.readouterr().err


def test_reward_accuracy_and_margin_score_prompt_answer_eos(tmp_path):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from tunebridge.evaluation import reward_accuracy
    from tunebridge.testing import build_tiny_llama

    pairs = preference_rows(10)
    path = build_tiny_llama([p["prompt"] + p["chosen"] + p["rejected"] for p in pairs], seed=5,
                            cache_dir=tmp_path / "cache")
    tok = AutoTokenizer.from_pretrained(str(path))
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(str(path), num_labels=1).eval()
    model.config.pad_token_id = tok.pad_token_id
    result = reward_accuracy(model, tok, pairs, 128, batch_size=3)

    def score(text):
        ids = tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        with torch.no_grad():
            return model(torch.tensor([ids])).logits[0, 0].item()

    margins = [score(p["prompt"] + p["chosen"]) - score(p["prompt"] + p["rejected"]) for p in pairs]
    assert result["pairs"] == 10
    assert result["accuracy"] == sum(m > 0 for m in margins) / 10
    assert abs(result["margin"] - sum(margins) / 10) < 1e-5


def test_rl_reward_mean_samples_with_the_spec_generation_and_seed(tmp_path):
    from tunebridge.evaluation import evaluate_model
    from tunebridge.examples import prepare_examples
    from tunebridge.testing import build_builtin

    seen = []

    def length_reward(prompts, completions, **columns):
        seen.append((len(prompts), sorted(columns)))
        return [float(len(c)) for c in completions]

    write_jsonl(tmp_path / "rows.jsonl", contract_rows(20))
    spec = parse_spec({**rl_spec_dict(tmp_path / "rows.jsonl", "trl", reward=length_reward),
                       "data": {"path": str(tmp_path / "rows.jsonl"), "template": "instruction",
                                "eval_fraction": 0.2}})
    examples = prepare_examples(spec)
    model = build_builtin("tiny-llama", [ex["prompt"] for ex in examples.train + examples.eval], seed=1)
    first = evaluate_model(spec, model, examples.eval, batch_size=3)
    again = evaluate_model(spec, model, examples.eval, batch_size=3)
    assert first == again and first["prompts"] == 4 and first["samples"] == 16
    assert 0 < first["reward_mean"] <= 12 * 8  # at most max_new_tokens tokens of a few characters each
    assert seen[0] == (16, ["context", "instruction", "response"])
