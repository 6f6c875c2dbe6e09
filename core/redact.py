"""Keeping secrets out of everything tunebridge writes or prints."""

from __future__ import annotations

import re
from typing import Any

# Keys that hold credentials (hf_token, api_key, ARGILLA_API_KEY, password, ...), but not tokenizer
# settings such as pad_token or eos_token.
SECRET_KEY = re.compile(
    r"(^|[_-])(token|api[_-]?key|apikey|secret|password|passwd|credentials?|authorization)$", re.IGNORECASE
)
TOKENIZER_KEYS = re.compile(r"^(pad|eos|bos|unk|sep|cls|mask|additional_special|special)_tokens?$", re.IGNORECASE)
SECRET_VALUE = re.compile(r"^(hf_[A-Za-z0-9]{20,}|sk-[A-Za-z0-9_-]{20,}|argilla\.apikey)")
REDACTED = "***"


def is_secret_key(key: str) -> bool:
    """True for mapping keys that name a credential."""
    return bool(SECRET_KEY.search(key)) and not TOKENIZER_KEYS.match(key)


def redact(value: Any) -> Any:
    """A copy of ``value`` with credentials replaced by ``***`` (by key name, or by a token-like value)."""
    if isinstance(value, dict):
        return {k: (REDACTED if isinstance(k, str) and is_secret_key(k) and v not in (None, "", False)
                    else redact(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str) and SECRET_VALUE.match(value):
        return REDACTED
    return value
