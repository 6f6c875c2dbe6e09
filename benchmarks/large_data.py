"""Large data: a plain TRL script and ``tunebridge train`` side by side, on the same rows and the same model.

Run from anywhere (the [trl] extra installed)::

    python benchmarks/large_data.py [--rows 50000,200000] [--steps 2] [--batch-size 4]

For each size it generates that many instruction rows (instruction / context / response, seeded, varied),
writes them as JSONL, and runs, each in its own process with fresh caches:

- ``plain TRL``: ``load_dataset("json")``, the instruction template as prompt/completion columns, and
  ``trl.SFTTrainer`` (completion-only loss, max_length 512), ``max_steps`` steps, then the model saved;
- ``tunebridge``: ``tunebridge train`` on a spec with the same template, model folder and settings.

Both start from one model folder (the builtin tiny Llama, built once from a small sample of the rows), so
neither pays for building a model. It prints each run's wall time and peak memory (``ru_maxrss`` from
``os.wait4``) and tunebridge's ratios against the plain script. Targets: wall time <= 0.5 x, peak memory
<= 1.0 x. These are figures, not a test: the script exits 0 unless a run fails.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_TIME, TARGET_MEMORY = 0.5, 1.0
MAX_LENGTH = 512

SUBJECTS = ["the cat", "my neighbour", "a teacher", "the old farmer", "our team", "the river", "a small robot",
            "the city council", "my sister", "the orchestra", "a careful student", "the baker"]
VERBS = ["reads", "builds", "paints", "follows", "cleans", "measures", "answers", "plants", "carries", "explains",
         "repairs", "collects"]
OBJECTS = ["a book", "the fence", "an apple", "the map", "three letters", "the garden", "a question", "the bridge",
           "old photographs", "the recipe", "a long song", "the lesson"]
TIMES = ["in the morning", "every day", "after lunch", "on Sundays", "before the storm", "at night", "twice a week"]
ASKS = ["What does {s} do?", "Describe what {s} does {t}.", "Summarise the text about {s}.",
        "Answer briefly: who {v} {o}?", "Rewrite this in one sentence.", "Explain why {s} {v} {o}."]

PLAIN_TRL = r'''
import json, sys
from datasets import load_dataset
from trl import SFTConfig, SFTTrainer
data, model, out, steps, batch = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
WITH = "### Instruction\n{instruction}\n\n### Context\n{context}\n\n### Response:\n"
WITHOUT = "### Instruction\n{instruction}\n\n### Response:\n"
def fmt(row):
    template = WITH if row["context"] else WITHOUT
    return {"prompt": template.format(**row), "completion": row["response"]}
ds = load_dataset("json", data_files=data, split="train")
ds = ds.map(fmt, remove_columns=ds.column_names)
args = SFTConfig(output_dir=out + "/checkpoints", max_steps=steps, per_device_train_batch_size=batch,
                 learning_rate=3e-3, max_length=MAX_LENGTH, completion_only_loss=True, logging_steps=1,
                 save_strategy="no", report_to="none", disable_tqdm=True, bf16=False, use_cpu=True,
                 activation_checkpointing=False, seed=42)
trainer = SFTTrainer(model=model, args=args, train_dataset=ds)
trainer.train()
trainer.save_model(out + "/model")
print(json.dumps({"global_step": trainer.state.global_step}))
'''.replace("MAX_LENGTH", str(MAX_LENGTH))


def generate_rows(n: int, seed: int = 0) -> list[dict[str, str]]:
    """``n`` varied instruction rows (about a third without context)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        s, v, o, t = rng.choice(SUBJECTS), rng.choice(VERBS), rng.choice(OBJECTS), rng.choice(TIMES)
        sentences = [f"{rng.choice(SUBJECTS).capitalize()} {rng.choice(VERBS)} {rng.choice(OBJECTS)} "
                     f"{rng.choice(TIMES)}." for _ in range(rng.randint(1, 6))]
        rows.append({
            "instruction": rng.choice(ASKS).format(s=s, v=v, o=o, t=t),
            "context": "" if rng.random() < 0.33 else " ".join(sentences),
            "response": " ".join([f"{s.capitalize()} {v} {o} {t}."] + sentences[: rng.randint(0, 3)]),
        })
    return rows


def measured(cmd: list[str], env: dict[str, str], log: Path) -> tuple[float, float, int]:
    """(wall seconds, peak RSS in MB, exit status) of ``cmd`` run as a child process."""
    start = time.perf_counter()
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - start, usage.ru_maxrss / 1024, proc.returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default="50000,200000", help="comma-separated dataset sizes")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--keep", type=Path, help="keep the generated files and logs in this folder")
    args = parser.parse_args(argv)
    sizes = [int(x) for x in args.rows.split(",") if x.strip()]
    from tunebridge.builtin_models import build_builtin

    with tempfile.TemporaryDirectory(prefix="tunebridge-large-") as tmp:
        root = args.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        sample = generate_rows(2000, seed=1)
        model = build_builtin("tiny-llama", [v for r in sample for v in r.values() if v], seed=42,
                              cache_dir=root / "model-cache")
        results = []
        for n in sizes:
            data = root / f"rows-{n}.jsonl"
            with data.open("w", encoding="utf-8") as fh:
                for row in generate_rows(n):
                    fh.write(json.dumps(row) + "\n")
            script = root / "plain_trl.py"
            script.write_text(PLAIN_TRL)
            spec = root / f"spec-{n}.json"
            spec.write_text(json.dumps({
                "task": "sft", "backend": "trl", "model": {"path": str(model)},
                "data": {"path": str(data), "template": "instruction"},
                "training": {"max_steps": args.steps, "batch_size": args.batch_size, "learning_rate": 3e-3,
                             "max_length": MAX_LENGTH, "seed": 42, "logging_steps": 1}}))
            runs = {
                "plain TRL": [sys.executable, str(script), str(data), str(model), str(root / f"plain-{n}"),
                              str(args.steps), str(args.batch_size)],
                "tunebridge": [sys.executable, "-m", "tunebridge", "train", str(spec), "--output",
                               str(root / f"tunebridge-{n}"), "--overwrite"],
            }
            figures = {}
            for label, cmd in runs.items():
                caches = root / f"caches-{label.replace(' ', '-')}-{n}"
                env = {**os.environ, "HF_HOME": str(caches / "hf"), "HF_HUB_OFFLINE": "1",
                       "TUNEBRIDGE_CACHE_DIR": str(caches / "tb"), "PYTHONUNBUFFERED": "1"}
                log = root / f"{label.replace(' ', '-')}-{n}.log"
                wall, peak, rc = measured(cmd, env, log)
                if rc != 0:
                    print(f"{label} on {n} rows failed (exit {rc}); last lines of {log}:", file=sys.stderr)
                    print("\n".join(log.read_text(errors="replace").splitlines()[-20:]), file=sys.stderr)
                    return 1
                figures[label] = (wall, peak)
                print(f"{n:>8} rows  {label:11} {wall:8.1f} s  {peak:8.0f} MB", flush=True)
            results.append((n, figures))
        print()
        print(f"{'rows':>8}  {'plain TRL s':>11} {'MB':>7}  {'tunebridge s':>12} {'MB':>7}  {'time x':>6} "
              f"{'memory x':>8}  targets: time <= {TARGET_TIME}, memory <= {TARGET_MEMORY}")
        for n, f in results:
            (pw, pm), (tw, tm) = f["plain TRL"], f["tunebridge"]
            rt, rm = tw / pw, tm / pm
            verdict = "ok" if rt <= TARGET_TIME and rm <= TARGET_MEMORY else "MISSED"
            print(f"{n:>8}  {pw:11.1f} {pm:7.0f}  {tw:12.1f} {tm:7.0f}  {rt:6.2f} {rm:8.2f}  {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
