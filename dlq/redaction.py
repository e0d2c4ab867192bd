"""Keep secrets out of what people read: the dead-letter table, the job ledger's errors, Celery's
events (and so Flower) and every log line.

`redact_text` runs on every failure and, through RedactSecrets, on every log line, so it is a few
compiled regular expressions and nothing else. It keeps what helps a reader (the key, the URL's
user and host, the auth scheme) and replaces only the secret itself. It is idempotent: text that
was redacted once comes out of it unchanged.
"""
from __future__ import annotations

import logging
import re
from typing import Any

REDACTED = "[redacted]"

_SECRET_KEY = re.compile(
    r"pass(word|wd)?|secret|token|api[-_]?key|apikey|auth(orization)?|credential|private[-_]?key|cookie|session",
    re.IGNORECASE,
)

# Secret key names inside text ("password=...", "api_key: ...", '"token": "..."'). Stricter than
# _SECRET_KEY, which sees whole dictionary keys: inside prose "auth" must not take "author".
_TEXT_KEY = (
    r"[A-Za-z0-9_.\-]*?(?:pass(?:word|wd)?|pwd|secret|token|api[_\-]?key|apikey|access[_\-]?key"
    r"|private[_\-]?key|credentials?|session[_\-]?id|sessionid|auth)(?![A-Za-z])[A-Za-z0-9_\-]*"
)
_QUOTED = r"""\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'"""
_AUTH_SCHEME = r"(?:basic|bearer|token|digest|negotiate|ntlm|apikey)"

# "Authorization: Basic dXNl..." (also as a dict item or JSON): keep the scheme, drop the rest.
_AUTHORIZATION = re.compile(
    rf"""((?<![A-Za-z])(?:proxy-)?authorization["']?[ \t]*[:=][ \t]*["']?(?:{_AUTH_SCHEME}[ \t]+)?)[^\s"',;]+""",
    re.IGNORECASE,
)
_BEARER = re.compile(r"\b(bearer[ \t]+)(?!\[redacted\])[A-Za-z0-9._\-~+/]{8,}=*", re.IGNORECASE)
# password=..., "api_key": "...", token: ..., secret='...': the key and the quotes stay.
_KEY_VALUE = re.compile(
    rf"""((?<![A-Za-z0-9_\-])["']?{_TEXT_KEY}["']?[ \t]*[:=][ \t]*)({_QUOTED}|[^\s,;&"'<>{{}}\[\]()]+)""",
    re.IGNORECASE,
)
# Credentials in a URL, with or without a scheme: redis://:pw@host, https://user:pw@host, x:pw@evil.
_URL_PASSWORD = re.compile(
    r"""((?:[A-Za-z][A-Za-z0-9+.\-]*://|(?<![^\s'"<>(\[{,;=]))(?!(?i:mailto):)[^\s:/@'"<>]*:)"""
    r"""[^\s/@'"<>]+(?=@[^\s@'"<>])"""
)
# Secrets recognisable by their shape wherever they are: this project's API tokens (access.auth),
# Anthropic keys and OpenAI-style keys.
_SHAPED = re.compile(r"\brsl_[A-Za-z0-9_\-]{8,}|\bsk-ant-[A-Za-z0-9_\-]{8,}|\bsk-[A-Za-z0-9]{16,}")


def _keep_quotes(match: re.Match[str]) -> str:
    value = match.group(2)
    quote = value[0] if len(value) > 1 and value[0] in "\"'" else ""
    return f"{match.group(1)}{quote}{REDACTED}{quote}"


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
    """`text` with secrets replaced by REDACTED. Shapes first, so "token=sk-ant-..." is caught either way;
    Bearer before key=value, so "token: Bearer abc..." loses the token and not just the word."""
    text = _SHAPED.sub(REDACTED, text)
    text = _AUTHORIZATION.sub(rf"\1{REDACTED}", text)
    text = _BEARER.sub(rf"\1{REDACTED}", text)
    text = _KEY_VALUE.sub(_keep_quotes, text)
    return _URL_PASSWORD.sub(rf"\1{REDACTED}", text)


class RedactSecrets(logging.Filter):
    """A logging filter for every handler: the record's message (with its arguments), exception
    text and stack come out redacted, whoever logged them (our code, Django, Celery, PostgreSQL's
    error text quoted in an exception)."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact_text(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        if record.exc_info and not record.exc_text:
            # What Formatter.format would write; it uses exc_text when it is set.
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info)
        return True
