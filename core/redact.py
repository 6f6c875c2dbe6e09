"""Keeping secrets out of everything tunebridge writes or prints."""

from __future__ import annotations

import re
from typing import Any

# Keys that hold credentials (token, hf_token, HUB_TOKEN, api_key, ARGILLA_API_KEY, password, ...), but not
# tokenizer or model settings that merely end in "token" (pad_token, eos_token, add_eos_token, ...).
TOKEN_KEY = re.compile(
    r"^((.*[_-])?(hf|hub|api|access|auth|bearer|refresh|session|github|gh|wandb|private|secret|id)[_-]?)?token$",
    re.IGNORECASE,
)
SECRET_KEY = re.compile(r"(^|[_-])(api[_-]?key|apikey|secret|password|passwd|credentials?|authorization)$",
                        re.IGNORECASE)
SECRET_VALUE = re.compile(r"^(hf_[A-Za-z0-9]{20,}|sk-[A-Za-z0-9_-]{20,}|argilla\.apikey)")
REDACTED = "***"


def is_secret_key(key: str) -> bool:
    """True for mapping keys that name a credential."""
    return bool(TOKEN_KEY.match(key) or SECRET_KEY.search(key))


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


SECRET_IN_TEXT = re.compile(r"(hf_[A-Za-z0-9]{20,}|sk-[A-Za-z0-9_-]{20,})")


def scrub_text(text: str) -> str:
    """``text`` with token-like values (``hf_...``, ``sk-...``) anywhere in it replaced by ``***``."""
    return SECRET_IN_TEXT.sub(REDACTED, text)
