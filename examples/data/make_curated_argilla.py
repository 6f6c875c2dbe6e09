"""Write ``everyday-curated-argilla.jsonl``: the everyday preference rows as an Argilla 1.x curation dataset.

It mimics the Argilla guide's curated Dolly set in the 1.x Hugging Face format (what
``FeedbackDataset.format_as("datasets")`` / ``push_to_huggingface`` produce): the fields
``original-instruction``, ``original-context`` and ``original-response`` hold the weak answer; the text
questions ``new-instruction``, ``new-context`` and ``new-response`` hold what two annotators wrote. Every
third record is left as it was, every fifth has a second annotator's draft, every seventh was discarded,
and the last four were never annotated. Deterministic; run it again to rebuild the file::

    python examples/data/make_curated_argilla.py
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
ANNA, BEN = "6a1f0c1e-0000-4000-8000-0000000000a1", "6a1f0c1e-0000-4000-8000-0000000000b2"
QUESTIONS = ("new-instruction", "new-context", "new-response")


def record(i: int, row: dict[str, str], total: int) -> dict:
    answers: dict[str, list[dict]] = {q: [] for q in QUESTIONS}
    if i < total - 4:
        kept = i % 3 == 0
        status = "discarded" if i % 7 == 6 else "submitted"
        new = {"new-instruction": row["instruction"], "new-context": row["context"],
               "new-response": row["rejected"] if kept else row["chosen"]}
        for q, value in new.items():
            if value:
                answers[q].append({"user_id": ANNA, "value": value, "status": status})
        if i % 5 == 4:
            answers["new-response"].append({"user_id": BEN, "value": row["chosen"] + " (draft)", "status": "draft"})
    out = {"original-instruction": row["instruction"], "original-context": row["context"],
           "original-response": row["rejected"]}
    for q in QUESTIONS:
        out[q] = answers[q]
        out[f"{q}-suggestion"] = None
        out[f"{q}-suggestion-metadata"] = {"type": None, "score": None, "agent": None}
    out["external_id"] = f"everyday-{i + 1}"
    out["metadata"] = "{}"
    return out


def main() -> None:
    rows = [json.loads(line) for line in (HERE / "everyday-preferences.jsonl").open(encoding="utf-8")][:40]
    with (HERE / "everyday-curated-argilla.jsonl").open("w", encoding="utf-8") as fh:
        for i, row in enumerate(rows):
            fh.write(json.dumps(record(i, row, len(rows)), ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
