"""Small fixes that keep saved folders loadable across transformers 4.x and 5.x."""

from __future__ import annotations

import json
from pathlib import Path


def make_tokenizer_portable(folder: Path) -> None:
    """Write ``tokenizer_class: PreTrainedTokenizerFast`` (transformers 5 writes a name 4.x cannot load)."""
    config_path = Path(folder) / "tokenizer_config.json"
    if not config_path.is_file():
        return
    config = json.loads(config_path.read_text())
    if config.get("tokenizer_class") in (None, "TokenizersBackend"):
        config["tokenizer_class"] = "PreTrainedTokenizerFast"
        config_path.write_text(json.dumps(config, indent=2))
