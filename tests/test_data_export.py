"""`tunebridge data`: the examples a run would train on, written to .csv, .jsonl or .parquet."""

from __future__ import annotations

import csv
import json

import pytest

import tunebridge as tb
from tunebridge.cli import main
from tunebridge.run import Run
from tunebridge.spec import parse_spec
from tunebridge.testing import contract_rows, preference_rows, reward_spec_dict, sft_spec_dict, write_jsonl

pytest.importorskip("transformers", reason="the length rules load the run's tokenizer: needs the [trl] extra")


@pytest.fixture
def sft(tmp_path):
    spec = sft_spec_dict(write_jsonl(tmp_path / "rows.jsonl", contract_rows(20)), "trl")
    spec["data"]["eval_fraction"] = 0.2
    return parse_spec(spec)


def test_csv_holds_the_train_examples_a_run_uses(sft, tmp_path):
    run = Run(sft)
    path, n, examples = run.write_data(tmp_path / "train.csv")
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert n == len(rows) == len(examples.train) == 16
    assert rows == [{"prompt": e["prompt"], "completion": e["completion"]} for e in examples.train]
    assert rows[0]["prompt"].startswith("### Instruction\n")  # rendered, not the raw columns


def test_jsonl_with_every_split_says_which(sft, tmp_path):
    path, n, _ = Run(sft).write_data(tmp_path / "all.jsonl", split="all")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert n == 20 and [r["split"] for r in rows].count("eval") == 4 and set(rows[0]) == {
        "prompt", "completion", "split"}


def test_parquet_of_reward_pairs(tmp_path):
    import pyarrow.parquet as pq

    spec = parse_spec(reward_spec_dict(write_jsonl(tmp_path / "p.jsonl", preference_rows(12)), "trl"))
    path, n, examples = Run(spec).write_data(tmp_path / "pairs.parquet")
    table = pq.read_table(path)
    assert table.column_names == ["prompt", "chosen", "rejected"] and table.num_rows == n == len(examples.train)
    assert table.to_pylist()[0]["chosen"] == examples.train[0]["chosen"]


def test_the_cli_prints_counts_and_refuses_to_overwrite(sft, tmp_path, capsys):
    import yaml

    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(sft.to_dict()))
    out = tmp_path / "eval.csv"
    assert main(["data", str(spec_file), "--output", str(out), "--split", "eval"]) == 0
    printed = capsys.readouterr().out
    assert "data ok: 20 rows -> 16 train / 4 eval examples" in printed and f"wrote 4 eval examples to {out}" in printed
    before = out.read_text()
    assert main(["data", str(spec_file), "--output", str(out)]) == 1
    assert "exists; pass --overwrite" in capsys.readouterr().err and out.read_text() == before
    assert main(["data", str(spec_file), "--output", str(out), "--overwrite"]) == 0
    assert out.read_text() != before  # now the 16 train examples


@pytest.mark.parametrize("name, message", [("rows.txt", "cannot tell the format from '.txt'"),
                                           ("missing/rows.csv", "no folder")])
def test_a_bad_output_file_is_an_error_before_anything_is_written(sft, tmp_path, name, message):
    with pytest.raises(tb.TunebridgeError, match=message):
        Run(sft).write_data(tmp_path / name)
    assert not (tmp_path / name).exists()


def test_offline_rl_writes_prompt_completion_and_reward(tmp_path, capsys):
    """The guide's rated samples (examples/argilla-ilql.yaml) as a file: what ILQL would learn from."""
    pytest.importorskip("pyarrow", reason="the Argilla jsonl export is read with pyarrow (the [trl] extra)")
    from pathlib import Path

    example = Path(__file__).resolve().parents[1] / "examples" / "argilla-ilql.yaml"
    out = tmp_path / "rated.jsonl"
    assert main(["data", str(example), "--output", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 42 and all(set(r) == {"prompt", "completion", "reward"} for r in rows)
    assert sorted({r["reward"] for r in rows}) == [1.0, 2.0]
    assert "wrote 42 train examples" in capsys.readouterr().out
