"""Keep secrets out of the dead-letter table: it is read by people and copied into tickets."""
from __future__ import annotations

import re
from typing import Any

REDACTED = "[redacted]"

_SECRET_KEY = re.compile(
    r"pass(word|wd)?|secret|token|api[-_]?key|apikey|auth(orization)?|credential|private[-_]?key|cookie|session",
    re.IGNORECASE,
)
# Values that are secrets whatever key holds them, e.g. inside an exception message.
_SECRET_VALUE = re.compile(
    r"(sk-ant-[A-Za-z0-9_\-]{8,}|sk-[A-Za-z0-9]{16,}|(?i:bearer)\s+[A-Za-z0-9._\-~+/]{8,}=*"
    r"|(?<=://)[^/\s:@]+:[^/\s@]+(?=@))"
)


def redact(value: Any) -> Any:
    """Copy of `value` with secret-named keys and secret-looking strings replaced."""
    if isinstance(value, dict):
        return {
            key: REDACTED if isinstance(key, str) and _SECRET_KEY.search(key) and value[key] not in (None, "")
            else redact(item)
            for key, item in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [redact(item) for item in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


def redact_text(text: str) -> str:
    return _SECRET_VALUE.sub(REDACTED, text)
