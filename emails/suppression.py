"""The suppressed-address service (issue 18 item 3).

A minimal stand-in with the agreed signature, over today's Suppression model (bounced_at /
unsubscribed_at; a complaint counts as a bounce: all mail stops). Item 3's full service replaces
this module at merge.
"""
from __future__ import annotations

import uuid

from django.db import transaction
from django.db.models.functions import Now

from emails.models import Suppression

REASONS = ("bounce", "complaint", "unsubscribe", "manual")


def suppress(address: str, reason: str, *, message_id: uuid.UUID | None = None, event_id: str = "",
             detail: str = "", by: str = "") -> Suppression:
    """Stop mail to `address`: an unsubscribe stops marketing mail, anything else all mail. Idempotent:
    the first reason and time stay."""
    if reason not in REASONS:
        raise ValueError(f"reason must be one of {REASONS}, not {reason!r}")
    words = " ".join(part for part in (reason, detail, f"event {event_id}" if event_id else "",
                                       f"message {message_id}" if message_id else "", f"by {by}" if by else "") if part)
    with transaction.atomic():
        suppression, _ = Suppression.objects.get_or_create(email=address)
        mine = Suppression.objects.filter(pk=suppression.pk)
        if reason == "unsubscribe":
            mine.filter(unsubscribed_at__isnull=True).update(unsubscribed_at=Now())
        else:
            mine.filter(bounced_at__isnull=True).update(bounced_at=Now(), bounce_reason=words[:2000])
        suppression.refresh_from_db()
    return suppression
