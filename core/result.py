"""The record a finished run returns (and writes as run.json)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class TrainResult:
    """What a training run produced and how."""

    backend: str
    output_dir: Path
    model_dir: Path
    metrics: dict[str, Any]
    log_history: list[dict[str, Any]]
    native_config: dict[str, Any]
    versions: dict[str, str | None]
    model_format: str = "full"
    wall_time_s: float = 0.0
    data: dict[str, Any] = field(default_factory=dict)
    unhonoured: list[str] = field(default_factory=list)
    base_model: str = ""
    warnings: list[str] = field(default_factory=list)
    differences: list[dict[str, Any]] = field(default_factory=list)  # spec defaults adapted to this backend
    plan: dict[str, Any] = field(default_factory=dict)  # what plan() predicted (steps, counts, effective settings)
    examples_seen: int | None = None
    tokens_seen: int | None = None
    peak_memory_mb: float | None = None
    world_size: int = 1  # processes that trained the run (torchrun: launch.nproc_per_node x launch.nnodes)
    distributed_type: str = "none"  # what the trainer ran as (MULTI_CPU, MULTI_GPU, FSDP, DEEPSPEED ...)

    @classmethod
    def load(cls, output_dir: str | Path) -> TrainResult:
        """Read a finished run back from its folder."""
        out = Path(output_dir)
        record = json.loads((out / "run.json").read_text())
        if record.get("status") != "completed":
            raise ValueError(f"{out}/run.json: run status is {record.get('status')!r}, not 'completed'")
        history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
        return cls(
            backend=record["backend"], output_dir=out, model_dir=out / "model", metrics=record["metrics"],
            log_history=history, native_config=record["native_config"], versions=record["versions"],
            model_format=record.get("model_format", "full"), wall_time_s=record.get("wall_time_s", 0.0),
            data=record.get("data", {}), unhonoured=record.get("unhonoured", []),
            base_model=record.get("base_model", ""), warnings=record.get("warnings", []),
            differences=record.get("differences", []), plan=record.get("plan", {}),
            examples_seen=record.get("examples_seen"), tokens_seen=record.get("tokens_seen"),
            peak_memory_mb=record.get("peak_memory_mb"), world_size=record.get("world_size", 1),
            distributed_type=record.get("distributed_type", "none"),
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain data (paths as strings)."""
        d = asdict(self)
        d["output_dir"], d["model_dir"] = str(self.output_dir), str(self.model_dir)
        return d
