"""Keep secrets out of what people read: the dead-letter table, the job ledger's errors, Celery's
events (and so Flower) and every log line.

`redact_text` runs on every failure and, through RedactSecrets, on every log line, so it is a few
compiled regular expressions, each run only on text that holds what it looks for. It keeps what helps a reader (the key, the URL's
user and host, the auth scheme) and replaces only the secret itself. It is idempotent: text that
was redacted once comes out of it unchanged.
"""
from __future__ import annotations

import logging
import os
import re
from typing import Any
from urllib.parse import urlsplit

REDACTED = "[redacted]"

_SECRET_KEY = re.compile(
    r"pass(word|wd)?|secret|token|api[-_]?key|apikey|auth(orization)?|credential|private[-_]?key|cookie|session",
    re.IGNORECASE,
)

# --- secrets inside text --------------------------------------------------------------------------
# Each rule is a pattern over the lower-cased text (a case-insensitive pattern costs several times
# more) whose groups named s... are the secret; a rule runs only when the text holds what it needs
# (most log lines hold none of it). Only the secret is replaced: the key, the quotes, the auth
# scheme and the URL's user and host stay for the reader.

# Secret key names inside text ("password=...", "api_key: ...", '"token": "..."'). Stricter than
# _SECRET_KEY, which sees whole dictionary keys: inside prose "auth" must not take "author". The match
# starts at the secret word, so a prefix ("db_", "client") needs no pattern of its own.
_TEXT_KEY = (
    r"(?:pass(?:word|wd)?|pwd|secret|token|api[_\-]?key|apikey|access[_\-]?key|private[_\-]?key|credentials?"
    r"|session[_\-]?id|sessionid|auth)(?![a-z])[a-z0-9_\-]*"
)
# A quoted value may have lost its closing quote (PostgreSQL cuts the JSON it quotes with "...").
_VALUE = r"""(?:"(?P<s1>(?:[^"\\\n]|\\.)*)"?|'(?P<s2>(?:[^'\\\n]|\\.)*)'?|(?P<s3>[^\s,;&"'<>{}\[\]()]+))"""
_AUTH_SCHEME = r"(?:basic|bearer|token|digest|negotiate|ntlm|apikey)"

# (needs one of these in the lower-cased text, pattern)
_RULES: tuple[tuple[tuple[str, ...], re.Pattern[str]], ...] = (
    # Secrets recognisable by their shape wherever they are: this project's API tokens (access.auth),
    # Anthropic keys and OpenAI-style keys.
    (("rsl_", "sk-"), re.compile(r"(?P<s>\brsl_[a-z0-9_\-]{8,}|\bsk-ant-[a-z0-9_\-]{8,}|\bsk-[a-z0-9]{16,})")),
    # "Authorization: Basic dXNl..." (also as a dict item or JSON): the scheme stays.
    (("authorization",), re.compile(
        rf"""(?<![a-z])(?:proxy-)?authorization["']?[ \t]*[:=][ \t]*["']?(?:{_AUTH_SCHEME}[ \t]+)?(?P<s>[^\s"',;]+)""")),
    # A bearer token anywhere.
    (("bearer",), re.compile(r"\bbearer[ \t]+(?P<s>[a-z0-9._\-~+/]{8,}=*)")),
    # password=..., "api_key": "...", token: ..., secret='...'.
    (("pass", "pwd", "secret", "token", "key", "credential", "session", "auth"),
     re.compile(rf"""{_TEXT_KEY}["']?[ \t]*[:=][ \t]*{_VALUE}""")),
    # PostgreSQL's error text quotes the data it refused: the statement near the error ("LINE 1: ...
    # VALUES ('{"passwor..."), the JSON ("JSON data, line 1: ..."), the row ("Failing row contains
    # (...)"), the bad JSON token ("Token "..." is invalid"). Cut, a secret there may have lost its key,
    # so the quoted data goes whole; the rest of the error says what was wrong.
    (("line ", "failing row contains", 'token "'), re.compile(
        r"""(?:\bline \d+: |\bfailing row contains )(?P<s>[^\n]+)|\btoken "(?P<s2>[^"\n]+)" is invalid""")),
)
# Credentials in a URL (redis://:pw@host, https://user:pw@host, jdbc:postgresql://u:pw@host) or in
# something shaped like an email address that is not one (x:pw@evil; not mailto:a@b.io). Matched on
# the REVERSED text, where the pattern starts at the "@": the same pattern read forwards has to try
# every word as the start of a URL, which cost 20 times more on long text. Reversed, it reads
# "@" secret ":" user, then either "//:" scheme or the start of the word, and the user is not "mailto".
_URL_PASSWORD_REVERSED = re.compile(
    r"""@(?<=[^\s@'"<>]@)(?P<s>[^\s/@'"<>]+):[^\s:/@'"<>]*"""
    r"""(?://:[a-z0-9+.\-]*[a-z](?![a-z0-9+.\-])|(?![^\s'"<>(\[{,;=])(?<!:otliam))"""
)
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")

# --- this system's own secrets, by value ------------------------------------------------------------
# A configured secret quoted bare (a lead whose "email" is the webhook secret, an error echoing a
# password) has nothing around it a pattern could recognise: its value is looked for as it is.
_SECRET_SETTINGS = ("SECRET_KEY", "EMAIL_SIGNING_KEY", "CLAY_WEBHOOK_SECRET", "ANTHROPIC_API_KEY",
                    "EMAIL_HOST_PASSWORD", "DELIVERY_NOTIFY_WEBHOOK_URL")
_SECRET_URL_SETTINGS = ("REDIS_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND")
# Shorter values would redact ordinary words; every secret this system makes or asks for is longer.
_MIN_SECRET_LENGTH = 8
_configured: tuple[str, ...] | None = None


def configured_secrets() -> tuple[str, ...]:
    """The values of the secrets in the settings (and FLOWER_BASIC_AUTH's passwords), longest first.
    Empty until the settings are loaded (a line logged while they load is redacted by pattern only)."""
    global _configured
    if _configured is None:
        from django.conf import settings

        if not settings.configured:
            return ()
        values = [getattr(settings, name, "") for name in _SECRET_SETTINGS]
        values += [db.get("PASSWORD") for db in settings.DATABASES.values()]
        # The email provider's tokens, signing keys and webhook logins (resilience.mail_provider_settings),
        # and the webhook logins' passwords alone (an error may quote just that part).
        provider = list(getattr(settings, "EMAIL_PROVIDER_SECRETS", ()))
        values += provider + [login.partition(":")[2] for login in provider if ":" in login]
        values += [urlsplit(url).password for name in _SECRET_URL_SETTINGS
                   if isinstance(url := getattr(settings, name, ""), str) and "@" in url]
        values += [login.partition(":")[2] for login in os.environ.get("FLOWER_BASIC_AUTH", "").split(",")]
        _configured = tuple(sorted({v for v in values if isinstance(v, str) and len(v) >= _MIN_SECRET_LENGTH},
                                   key=len, reverse=True))
    return _configured


def _configured_spans(text: str) -> list[tuple[int, int]]:
    spans = []
    for secret in configured_secrets():
        start = text.find(secret)
        while start != -1:
            spans.append((start, start + len(secret)))
            start = text.find(secret, start + len(secret))
    return spans


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
    """`text` with every secret replaced by REDACTED (overlapping finds become one)."""
    lower = text.lower()
    if len(lower) != len(text):  # a few non-ASCII letters lower-case to two characters
        lower = text.translate(_ASCII_LOWER)
    spans = []
    for needs, pattern in _RULES:
        if any(word in lower for word in needs):
            for match in pattern.finditer(lower):
                spans.extend(match.span(name) for name, value in match.groupdict().items() if value)
    if "@" in lower:
        size = len(lower)
        for match in _URL_PASSWORD_REVERSED.finditer(lower[::-1]):
            spans.append((size - match.end("s"), size - match.start("s")))
    spans.extend(_configured_spans(text))
    if not spans:
        return text
    spans.sort()
    parts, done = [], 0
    for start, end in spans:
        if end <= done:
            continue
        if start >= done:
            parts.append(text[done:start])
            parts.append(REDACTED)
        done = end
    parts.append(text[done:])
    return "".join(parts)


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
