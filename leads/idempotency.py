"""Idempotency-Key for the webhook: a sender that retries after a timeout gets the first answer
again, and the batch is stored once.

Only an accepted request (202) is remembered: a refused one stored nothing, so it may be corrected
and sent again under the same key. A key is stored as its SHA-256 (hex), not by value; a lookup hashes
the incoming key.
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from leads.models import WebhookIdempotencyKey

WINDOW = timedelta(hours=24)
MAX_KEY_LENGTH = 255
# Printable ASCII, as header values are in practice, with at least one character that is not a space: HTTP
# servers strip the spaces around a header's value, so a key of spaces only arrives empty. The document
# (resilience/openapi.py) declares this same pattern, in a syntax Python's re and ECMA-262 share.
KEY_PATTERN = r"^[ -~]*[!-~][ -~]*$"
_KEY = re.compile(KEY_PATTERN)


class KeyReused(Exception):
    """The key was used within the window for a different body."""


def check_key(raw: str) -> str | None:
    """The problem with an Idempotency-Key header value, or None when it is usable."""
    if not raw.strip():
        return "Idempotency-Key is empty"
    if len(raw) > MAX_KEY_LENGTH:
        return f"Idempotency-Key is longer than {MAX_KEY_LENGTH} characters"
    if not _KEY.fullmatch(raw):
        return "Idempotency-Key must be printable ASCII characters"
    return None


def fingerprint(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def key_digest(key: str) -> str:
    """What is stored for an Idempotency-Key: its SHA-256, hex (check_key has made it ASCII)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def prune_expired() -> int:
    """Forget keys older than the window; returns how many."""
    deleted, _ = WebhookIdempotencyKey.objects.filter(created_at__lt=timezone.now() - WINDOW).delete()
    return deleted


def answer_once(key: str, body_sha256: str, answer: Callable[[], tuple[int, dict[str, Any]]]
                ) -> tuple[int, dict[str, Any], bool]:
    """(status, body, replayed): `answer()`'s result, run in the transaction that records the key;
    or, when the key was recorded within the window, the recorded answer without running `answer`.

    Raises KeyReused when the recorded request had a different body.
    """
    digest = key_digest(key)
    with transaction.atomic():
        prune_expired()  # cheap (indexed) and keeps an expired key from blocking its reuse
        try:
            with transaction.atomic():
                record = WebhookIdempotencyKey.objects.create(key_sha256=digest, body_sha256=body_sha256,
                                                              status_code=0, response={})
        except IntegrityError:
            # Committed by an earlier request, or by a concurrent one this insert waited for.
            existing = WebhookIdempotencyKey.objects.get(key_sha256=digest)
            if existing.body_sha256 != body_sha256:
                raise KeyReused(f"Idempotency-Key {key[:100]!r} was already used at "
                                f"{existing.created_at:%Y-%m-%d %H:%M:%S} UTC for a different body; "
                                "use a new key for a new request") from None
            return existing.status_code, existing.response, True
        status, body = answer()
        record.status_code, record.response = status, body
        record.save(update_fields=["status_code", "response"])
    return status, body, False
