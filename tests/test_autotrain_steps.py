"""Predicting AutoTrain's optimizer steps (backends/autotrain/steps.py): trl 0.13's packing and
transformers 4.48's step loop on hand-computed inputs, and one real llm-sft run against the prediction."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunebridge.backends.autotrain import steps
from tunebridge.examples import Examples
from tunebridge.schedule import expected_optimizer_steps
from tunebridge.spec import parse_spec
from tunebridge.testing import contract_rows, sft_spec_dict, write_jsonl

WORDS = ["a", "b", "c", "d", "e"]


@pytest.fixture(scope="module")
def word_tokenizer(tmp_path_factory) -> Path:
    """A tokenizer folder whose ids are countable by hand: one id per word, BOS in front of every text."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, **{w: 4 + i for i, w in enumerate(WORDS)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                 pad_token="<pad>")
    hf.model_max_length = 2048
    folder = tmp_path_factory.mktemp("word-tokenizer")
    hf.save_pretrained(folder)
    return folder


def test_buffers_take_texts_until_the_character_budget_is_reached():
    # budget = block * chars_per_token * num_of_sequences = 1 * 10 * 1 = 10 characters
    assert steps.buffer_bounds([4, 4, 4, 4], 1, num_of_sequences=1, chars_per_token=10) == [(0, 3), (3, 4)]
    assert steps.buffer_bounds([10, 1, 9, 1], 1, num_of_sequences=1, chars_per_token=10) == [(0, 1), (1, 3), (3, 4)]
    assert steps.buffer_bounds([], 64) == []
    # with trl's defaults a buffer holds block * 3686.4 characters
    assert steps.buffer_bounds([1000] * 300, 64) == [(0, 236), (236, 300)]


def test_each_buffer_drops_its_own_remainder():
    # two texts of 3 ids (+1 EOS each): one buffer packs 8 ids into one block of 5, two buffers pack none
    assert steps.packed_rows_from_lengths([3, 3], [10, 10], 5, num_of_sequences=1, chars_per_token=100) == 1
    assert steps.packed_rows_from_lengths([3, 3], [10, 10], 5, num_of_sequences=1, chars_per_token=1) == 0
    assert steps.packed_rows_from_lengths([9, 0, 4], [1, 1, 1], 5) == 3  # (10 + 1 + 5) // 5
    with pytest.raises(ValueError):
        steps.packed_rows_from_lengths([1], [1, 2], 4)


def test_a_run_that_ends_exactly_as_a_buffer_fills_is_flagged():
    # trl 0.13 then tokenises an empty buffer and transformers 4.48 raises IndexError
    assert steps.last_buffer_full([6, 6], 1, num_of_sequences=1, chars_per_token=10)
    assert not steps.last_buffer_full([6, 3], 1, num_of_sequences=1, chars_per_token=10)
    assert not steps.last_buffer_full([100] * 10, 64)


def test_packed_rows_counts_bos_and_one_eos_per_text(word_tokenizer):
    tok = steps.load_tokenizer(word_tokenizer)
    assert tok("a b c")["input_ids"] == [1, 4, 5, 6]
    texts = ["a b c"] * 10 + ["d e"]  # 10 * (4 + 1) + (3 + 1) = 54 ids
    assert steps.token_lengths(texts, tok) == [4] * 10 + [3]
    assert steps.packed_rows(texts, tok, 8) == 6
    assert steps.packed_rows(texts, tok, 54) == 1
    assert steps.packed_rows(texts, tok, 55) == 0


@pytest.mark.parametrize(("rows", "batch", "accum", "epochs", "expected"), [
    (10, 2, 1, 1, 5),
    (10, 2, 1, 3, 15),
    (10, 2, 2, 1, 2),   # 5 batches: the last half accumulation makes no step in 4.48
    (11, 2, 2, 2, 6),   # 6 batches: 3 steps an epoch
    (6, 2, 4, 2, 0),    # 3 batches < 4: 4.48 fetches 6 % 4 = 2 batches, never reaches a step
    (5, 1, 8, 3, 3),    # 5 batches < 8: 5 % 8 = 5 batches fetched, the epoch's last one steps
    (7, 2, 4, 2, 2),    # 4 batches = one full accumulation
    (0, 2, 1, 1, 0),
])
def test_optimizer_steps_follow_transformers_4_48(rows, batch, accum, epochs, expected):
    assert steps.optimizer_steps(rows, batch, accum, epochs) == expected


def test_the_4_48_count_differs_from_tunebridges_rule():
    assert steps.optimizer_steps(10, 2, 2, 1) == 2
    assert expected_optimizer_steps(10, 2, 2, 1, None) == 3


@pytest.mark.parametrize(("block", "model_max", "tokenizer_max", "expected"), [
    (256, 256, 2048, 256),
    (256, 256, int(1e30), 256),      # an unset tokenizer limit becomes params.model_max_length
    (4096, 4096, int(1e30), 4096),
    (512, 512, 128, 128),            # clamped to the tokenizer's own limit
    (512, 256, 4096, 256),           # over 2048: model_max_length replaces it, then clamps
    (-1, 2048, 2048, 1024),
])
def test_effective_block_size(block, model_max, tokenizer_max, expected):
    assert steps.effective_block_size(block, model_max, tokenizer_max) == expected


@pytest.mark.parametrize(("max_steps", "per_epoch", "expected"), [(10, 4, 3), (10, 5, 2), (3, 10, 1), (10, 0, 1)])
def test_epochs_for_steps(max_steps, per_epoch, expected):
    assert steps.epochs_for_steps(max_steps, per_epoch) == expected


def test_reward_rows_truncate_then_filter(word_tokenizer):
    tok = steps.load_tokenizer(word_tokenizer)
    chosen = ["a b", "a b c d e", "a"]        # 3, 6, 2 ids with BOS
    rejected = ["c", "d", "a b c d e a b"]    # 2, 2, 8 ids
    assert steps.reward_rows(chosen, rejected, tok, 5, 2048) == (1, 5)
    assert steps.reward_rows(chosen, rejected, tok, 6, 2048) == (2, 13)
    assert steps.reward_rows(chosen, rejected, tok, 6, 6) == (3, 21)  # cut at 6 ids: all fit


def _sft_spec(data: Path, **training) -> object:
    spec = sft_spec_dict(data, "autotrain", **training)
    spec["sft"] = {"completion_only_loss": False}
    return parse_spec(spec)


def test_predict_steps_for_sft(tmp_path, word_tokenizer):
    data = write_jsonl(tmp_path / "rows.jsonl", [{"instruction": "a", "context": "", "response": "b"}])
    spec = _sft_spec(data, max_steps=None, epochs=2, batch_size=2, gradient_accumulation=2, max_length=8)
    examples = Examples("prompt_completion", [{"prompt": "a b ", "completion": "c"}] * 10)
    pred = steps.predict_steps(spec, examples, word_tokenizer)
    # 10 texts of 4 ids + EOS = 50 ids -> 6 blocks of 8 -> 3 batches -> 1 step an epoch (cap), 2 epochs
    assert pred == {"optimizer_steps": 2, "packed_rows": 6, "rows": 6, "tokens": 50, "epochs": 2,
                    "steps_per_epoch": 1, "block_size": 8, "problem": None}
    # max_steps picks whole epochs of the packed count
    spec = _sft_spec(data, max_steps=5, batch_size=2, gradient_accumulation=1, max_length=8)
    pred = steps.predict_steps(spec, examples, word_tokenizer)
    assert (pred["steps_per_epoch"], pred["epochs"], pred["optimizer_steps"]) == (3, 2, 6)
    # the config's own params win (here: epochs and a user override of batch_size)
    pred = steps.predict_steps(spec, examples, word_tokenizer,
                               params={"block_size": 8, "model_max_length": 8, "batch_size": 1,
                                       "gradient_accumulation": 1, "epochs": 1})
    assert pred["optimizer_steps"] == 6


def test_predict_steps_for_reward(tmp_path, word_tokenizer):
    spec = parse_spec({"task": "reward", "model": {"builtin": "tiny-llama"}, "backend": "autotrain",
                       "data": {"path": str(tmp_path / "pairs.jsonl"), "template": "preference"},
                       "training": {"epochs": 1, "batch_size": 2, "max_length": 8}})
    pairs = [{"prompt": "a ", "chosen": "b c", "rejected": "d"}] * 4 + [{"prompt": "a ", "chosen": "b c d e a b",
                                                                       "rejected": "c"}]
    pred = steps.predict_steps(spec, Examples("preference", pairs), word_tokenizer)
    # "a b c</s>" = BOS a b c EOS = 5 ids; the last chosen has 9 ids > 8: dropped
    assert (pred["rows"], pred["optimizer_steps"], pred["packed_rows"]) == (4, 2, None)


@pytest.mark.parametrize("rows, why", [(8, "less than one block of 256"), (50, "no optimizer step at all")])
def test_a_run_autotrain_would_not_step_fails_at_plan_before_anything_is_written(tmp_path, rows, why):
    """Too little data for one block, or too few packed rows for one accumulation: AutoTrain would fail or make
    no step (and exit 0 either way)."""
    import tunebridge as tb
    from tunebridge.run import Run

    spec = _sft_spec(write_jsonl(tmp_path / "rows.jsonl", contract_rows(rows)), max_steps=None, epochs=1,
                     batch_size=2, gradient_accumulation=4, max_length=256)
    with pytest.raises(tb.DataError, match=f"AutoTrain cannot train on these examples: .*{why}"):
        Run(spec).plan()
    with pytest.raises(tb.DataError, match=why):  # export plans first: nothing is written
        Run(spec).export(tmp_path / "out")
    assert not (tmp_path / "out").exists()
