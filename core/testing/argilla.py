"""Synthetic Argilla data in the real export layouts, for tests, benchmarks and examples.

A record here is neutral: ``{"id", "fields": {name: text}, "responses": {question: [{"user_id", "value",
"status"}]}}``. ``v1_rows`` lays records out as an Argilla 1.x ``FeedbackDataset`` in its Hugging Face
format, ``v2_rows`` as a 2.x ``to_datasets`` table, ``write_v2_disk`` as a 2.x ``to_disk`` folder.
Ranking answers are given best first, as a list of candidate names.
"""

from __future__ import annotations

import json
import random
import uuid
from pathlib import Path
from typing import Any

USERS = ["0c2f1a52-0000-4000-8000-00000000000a", "0c2f1a52-0000-4000-8000-00000000000b",
         "0c2f1a52-0000-4000-8000-00000000000c"]


def v1_rows(records: list[dict[str, Any]], questions: dict[str, str]) -> list[dict[str, Any]]:
    """1.x HF format: fields as columns; each question a list of {user_id, value, status}; suggestion columns.

    ``questions`` maps question name -> type (text, rating, ranking, label_selection).
    """
    rows = []
    for rec in records:
        row: dict[str, Any] = dict(rec["fields"])
        for q, kind in questions.items():
            answers = rec.get("responses", {}).get(q, [])
            row[q] = [{"user_id": a["user_id"], "status": a["status"],
                       "value": [{"value": v, "rank": r + 1} for r, v in enumerate(a["value"])]
                       if kind == "ranking" else a["value"]} for a in answers]
            row[f"{q}-suggestion"] = None
            row[f"{q}-suggestion-metadata"] = {"type": None, "score": None, "agent": None}
        row["external_id"] = rec["id"]
        row["metadata"] = "{}"
        rows.append(row)
    return rows


def v2_rows(records: list[dict[str, Any]], questions: dict[str, str]) -> list[dict[str, Any]]:
    """2.x ``to_datasets`` layout: id/status/_server_id, fields, and per question parallel response lists."""
    rows = []
    for rec in records:
        row: dict[str, Any] = {"id": rec["id"], "status": rec.get("status", "completed"),
                               "_server_id": str(uuid.uuid5(uuid.NAMESPACE_URL, rec["id"])), **rec["fields"]}
        for q in questions:
            answers = rec.get("responses", {}).get(q) or None
            row[f"{q}.responses"] = [a["value"] for a in answers] if answers else None
            row[f"{q}.responses.users"] = [a["user_id"] for a in answers] if answers else None
            row[f"{q}.responses.status"] = [a["status"] for a in answers] if answers else None
        rows.append(row)
    return rows


def write_v2_disk(records: list[dict[str, Any]], questions: dict[str, str], folder: Path) -> Path:
    """A 2.x ``to_disk`` folder: records.json (no response status) and .argilla/settings.json."""
    (folder / ".argilla").mkdir(parents=True, exist_ok=True)
    out = [{"id": r["id"], "fields": r["fields"], "metadata": {}, "suggestions": {}, "vectors": {},
            "responses": {q: [{"value": a["value"], "user_id": a["user_id"]} for a in answers]
                          for q, answers in r.get("responses", {}).items() if answers},
            "status": r.get("status", "completed"), "_server_id": str(uuid.uuid5(uuid.NAMESPACE_URL, r["id"]))}
           for r in records]
    (folder / "records.json").write_text(json.dumps(out, indent=1), encoding="utf-8")
    fields = sorted({name for r in records for name in r["fields"]})
    settings = {"fields": [{"name": f, "type": "text"} for f in fields],
                "questions": [{"name": q, "type": kind} for q, kind in questions.items()]}
    (folder / ".argilla" / "settings.json").write_text(json.dumps(settings, indent=1), encoding="utf-8")
    (folder / ".argilla" / "dataset.json").write_text(json.dumps({"name": folder.name}), encoding="utf-8")
    return folder


def write_parquet(rows: list[dict[str, Any]], path: Path) -> Path:
    """Rows as a parquet file (needs pyarrow)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


DOLLY_QUESTIONS = {"new-instruction": "text", "new-context": "text", "new-response": "text"}
PAIR_QUESTIONS = {"ranking": "ranking", "rating-1": "rating", "rating-2": "rating", "better": "label_selection"}
_TOPICS = ["tides", "bread", "compilers", "bees", "glaciers", "chess", "tea", "volcanoes", "maps", "violins"]


def curated_dolly(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """Records shaped like the Argilla guide's curated Dolly set: original-* fields, new-* text questions.

    Annotators (1-3 per record) correct the response about half the time, keep it as it was otherwise;
    some responses are drafts or discarded; some records are not annotated at all.
    """
    rnd = random.Random(seed)
    records = []
    for i in range(n):
        topic = rnd.choice(_TOPICS)
        fields = {"original-instruction": f"Explain {topic} in one sentence ({i}).",
                  "original-context": rnd.choice(["", f"Notes on {topic}."]),
                  "original-response": f"{topic.capitalize()} are a thing."}
        responses: dict[str, list[dict[str, Any]]] = {q: [] for q in DOLLY_QUESTIONS}
        if rnd.random() < 0.9:
            for user in USERS[: rnd.randint(1, 3)]:
                status = rnd.choices(["submitted", "draft", "discarded"], [8, 1, 1])[0]
                edited = rnd.random() < 0.5
                response = f"{topic.capitalize()} explained well, item {i}." if edited else fields["original-response"]
                responses["new-instruction"].append({"user_id": user, "value": fields["original-instruction"],
                                                     "status": status})
                if fields["original-context"]:
                    responses["new-context"].append({"user_id": user, "value": fields["original-context"],
                                                     "status": status})
                responses["new-response"].append({"user_id": user, "value": response, "status": status})
        records.append({"id": f"dolly-{i}", "fields": fields, "responses": responses})
    return records


def pairwise(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """Records with a prompt and two responses, ranked, rated (one RatingQuestion each) and labelled."""
    rnd = random.Random(seed)
    records = []
    for i in range(n):
        topic = rnd.choice(_TOPICS)
        fields = {"prompt": f"Tell me about {topic} ({i}).", "response-1": f"{topic} are fascinating.",
                  "response-2": f"I do not know about {topic}."}
        responses: dict[str, list[dict[str, Any]]] = {q: [] for q in PAIR_QUESTIONS}
        for user in USERS[: rnd.randint(1, 3)]:
            status = rnd.choices(["submitted", "draft", "discarded"], [8, 1, 1])[0]
            first = rnd.random() < 0.8
            order = ["response-1", "response-2"] if first else ["response-2", "response-1"]
            r1, r2 = (rnd.randint(3, 5), rnd.randint(1, 3)) if first else (rnd.randint(1, 3), rnd.randint(3, 5))
            responses["ranking"].append({"user_id": user, "value": order, "status": status})
            responses["rating-1"].append({"user_id": user, "value": r1, "status": status})
            responses["rating-2"].append({"user_id": user, "value": r2, "status": status})
            responses["better"].append({"user_id": user, "value": order[0], "status": status})
        records.append({"id": f"pair-{i}", "fields": fields, "responses": responses})
    return records
