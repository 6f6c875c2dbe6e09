"""Small fixes that keep saved folders loadable across transformers 4.x and 5.x."""

from __future__ import annotations

import json
from pathlib import Path

MODEL_INPUTS = ["input_ids", "attention_mask"]


def make_tokenizer_portable(folder: Path) -> None:
    """Make a saved tokenizer folder load and behave alike on transformers 4.x and 5.x, for the next backend:

    - ``tokenizer_class: PreTrainedTokenizerFast`` (transformers 5 writes a name 4.x cannot load);
    - ``model_input_names: [input_ids, attention_mask]``: a ``PreTrainedTokenizerFast`` saved by transformers 4
      (trlx, AutoTrain) also returns ``token_type_ids``, which makes ``model.generate(**tokenizer(text))`` fail on
      models that take none (Llama).
    """
    config_path = Path(folder) / "tokenizer_config.json"
    if not config_path.is_file():
        return
    config = json.loads(config_path.read_text())
    changed = False
    if config.get("tokenizer_class") in (None, "TokenizersBackend"):
        config["tokenizer_class"] = "PreTrainedTokenizerFast"
        changed = True
    if "token_type_ids" in config.get("model_input_names", ["token_type_ids"]):
        config["model_input_names"] = list(MODEL_INPUTS)
        changed = True
    if changed:
        config_path.write_text(json.dumps(config, indent=2))
