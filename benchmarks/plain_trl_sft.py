"""SFT with TRL written by hand: the baseline that ``benchmarks/overhead.py`` compares tunebridge against.

Nothing here imports tunebridge. It is the script a user would write to do the same job as
``tunebridge train SPEC --backend trl`` on (prompt, completion) examples that are already in the order
they must be read in::

    python benchmarks/plain_trl_sft.py --model MODEL_DIR --train train.jsonl [--eval eval.jsonl] \\
        --output OUT --losses losses.json --max-steps 30 --learning-rate 3e-3 --batch-size 4 \\
        --max-length 256 --seed 42

It trains with ``trl.SFTTrainer`` (full fine-tuning, loss on the completion only), evaluates on the
held-out file at the end, saves the model and tokenizer to ``--output``, and writes
``trainer.state.log_history`` (one record per logged step, the eval and the summary) to ``--losses``.
"""

from __future__ import annotations

import argparse
import json

from datasets import load_dataset
from transformers import AutoTokenizer
from trl import SFTConfig, SFTTrainer


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="base model folder (or hub id)")
    p.add_argument("--train", required=True, help="JSONL of {prompt, completion}, in training order")
    p.add_argument("--eval", help="JSONL of held-out {prompt, completion}; evaluated once at the end")
    p.add_argument("--output", required=True, help="folder for the trained model and tokenizer")
    p.add_argument("--losses", required=True, help="JSON file for trainer.state.log_history")
    p.add_argument("--max-steps", type=int, default=-1)
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--learning-rate", type=float, default=2e-4)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--gradient-accumulation", type=int, default=1)
    p.add_argument("--max-length", type=int, default=512)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--logging-steps", type=int, default=1)
    opts = p.parse_args(argv)

    data_files = {"train": opts.train, **({"eval": opts.eval} if opts.eval else {})}
    data = load_dataset("json", data_files=data_files)
    tokenizer = AutoTokenizer.from_pretrained(opts.model)

    args = SFTConfig(
        output_dir=f"{opts.output}/checkpoints",
        max_steps=opts.max_steps,
        num_train_epochs=opts.epochs,
        learning_rate=opts.learning_rate,
        per_device_train_batch_size=opts.batch_size,
        per_device_eval_batch_size=opts.batch_size,
        gradient_accumulation_steps=opts.gradient_accumulation,
        max_length=opts.max_length,
        seed=opts.seed,
        data_seed=opts.seed,
        train_sampling_strategy="sequential",  # the file is already in the order to train in
        completion_only_loss=True,
        activation_checkpointing=False,  # SFTConfig turns both on by default: plain fp32 here,
        bf16=False,  # without recomputing activations (a model this small needs neither)
        logging_steps=opts.logging_steps,
        logging_first_step=True,
        save_strategy="no",  # only the final model, saved below
        use_cpu=True,
        report_to="none",
    )
    trainer = SFTTrainer(
        model=opts.model,
        args=args,
        train_dataset=data["train"],
        eval_dataset=data.get("eval"),
        processing_class=tokenizer,
    )
    trainer.train()
    if opts.eval:
        trainer.evaluate()
    trainer.save_model(opts.output)
    with open(opts.losses, "w") as f:
        json.dump(trainer.state.log_history, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
