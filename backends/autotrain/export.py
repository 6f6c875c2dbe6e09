"""Writing an AutoTrain project folder: config.yml, data/train.jsonl (+ valid.jsonl), README.md. No AutoTrain import."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from tunebridge.examples import Examples
from tunebridge.redact import redact

from .config import AUTOTRAIN_VERSION, DATA_DIR, TOKEN_PLACEHOLDER, AutoTrainConfig, example_rows

CONFIG_FILE = "config.yml"
BUILTIN_MODEL_DIR = "base-model"  # where an export puts a builtin model (tiny-llama), so the folder stands alone


def eos_token(tokenizer_dir: Path | None) -> str:
    """The EOS token text of a local tokenizer folder (read from its JSON files), or '' when unknown."""
    if tokenizer_dir is None:
        return ""
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        path = Path(tokenizer_dir) / name
        if not path.is_file():
            continue
        value = json.loads(path.read_text(encoding="utf-8")).get("eos_token")
        if isinstance(value, dict):
            value = value.get("content")
        if isinstance(value, str) and value:
            return value
    return ""


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def write_project(project: AutoTrainConfig, examples: Examples, folder: Path, eos: str) -> Path:
    """Write config.yml, the data files and a README into ``folder``; returns the config path."""
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / DATA_DIR
    data.mkdir(exist_ok=True)
    _write_jsonl(data / "train.jsonl", example_rows(project.trainer, examples.train, eos))
    if project.config["data"]["valid_split"]:
        _write_jsonl(data / "valid.jsonl", example_rows(project.trainer, examples.eval, eos))
    config_path = folder / CONFIG_FILE
    header = (f"# AutoTrain Advanced {AUTOTRAIN_VERSION} project written by tunebridge.\n"
              f"# Run it from this folder: autotrain --config {CONFIG_FILE}   (see README.md)\n")
    body = yaml.safe_dump(safe_config(project.config), sort_keys=False, default_flow_style=False)
    config_path.write_text(header + body, encoding="utf-8")
    (folder / "README.md").write_text(readme(project, len(examples.train), len(examples.eval)), encoding="utf-8")
    return config_path


def safe_config(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with every credential redacted; the hub block holds only ``${ENV}`` placeholders, kept as they are."""
    safe = redact({k: v for k, v in config.items() if k != "hub"})
    if "hub" in config:
        hub = config["hub"]
        safe["hub"] = {**redact(hub), "token": TOKEN_PLACEHOLDER}
    return safe


def readme(project: AutoTrainConfig, n_train: int, n_eval: int) -> str:
    """How to run the exported project by hand, and what tunebridge could not carry over."""
    cfg = project.config
    columns = "\n".join(f"- `{col}`: {holds}" for col, holds in project.columns.items())
    lines = [
        f"# AutoTrain project `{cfg['project_name']}` ({cfg['task']})",
        "",
        f"Exported by tunebridge for AutoTrain Advanced {AUTOTRAIN_VERSION}. Base model: `{cfg['base_model']}`"
        + (" (tunebridge's builtin model, copied into this folder)." if cfg["base_model"] == BUILTIN_MODEL_DIR
           else "."),
        "",
        "## Run it",
        "",
        "```bash",
        "python3 -m venv at && . at/bin/activate        # activate: AutoTrain starts `accelerate` by name",
        "pip install torch==2.13.0 && pip install --no-deps autotrain-advanced==" + AUTOTRAIN_VERSION,
        "pip install torch==2.13.0 transformers==4.48.0 trl==0.13.0 peft==0.14.0 accelerate==1.2.1 \\",
        "    'datasets~=3.2.0' huggingface-hub==0.27.0 pydantic==2.10.4 loguru pyyaml pandas scikit-learn \\",
        "    tensorboard requests packaging tqdm sentencepiece tiktoken einops",
        "cd <this folder> && autotrain --config config.yml 2>&1 | tee autotrain.log",
        "```",
        "",
        "(tunebridge's `scripts/autotrain-env.sh` builds the same environment.)",
        f"The trained model lands in `./{cfg['project_name']}/`. **AutoTrain exits 0 even when training failed**:",
        f"check that `{cfg['project_name']}/config.json` and `model.safetensors` (or `adapter_model.safetensors`)",
        "exist and that the log has no `train has failed due to an exception`.",
        "",
        "## Data",
        "",
        f"`data/train.jsonl`: {n_train} rows" + (f"; `data/valid.jsonl`: {n_eval} rows" if n_eval else "") + ".",
        columns,
        "",
    ]
    if "hub" in cfg:
        lines += ["Pushing to the hub: set `HF_TOKEN` (and `HF_USERNAME` if shown as `${HF_USERNAME}`) in the",
                  "environment; the token is never written into this folder.", ""]
    always = []
    if cfg["task"] == "llm-sft":
        always.append("llm-sft always packs: the texts are joined (EOS between them) and cut into blocks of "
                      f"block_size={cfg['params']['block_size']} tokens, and every token is trained on, the prompt "
                      "included (tunebridge adapts `sft.packing` and `sft.completion_only_loss` to this when the spec "
                      "leaves them at their defaults)")
    if project.prediction is not None:
        always.append(f"optimizer steps: {project.prediction['optimizer_steps']} ({project.prediction['rows']} "
                      f"training rows per epoch, counted with the base model's tokenizer)")
    if project.unhonoured or always:
        lines += ["## What AutoTrain does differently from the spec", ""]
        lines += [f"- {line}" for line in always + project.unhonoured] + [""]
    if project.notes:
        lines += ["## Notes", ""] + [f"- {line}" for line in project.notes] + [""]
    return "\n".join(lines)
