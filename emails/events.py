"""A provider's tracking events (delivered, deferred, bounced, complained, opened, clicked,
unsubscribed ...), each recorded once per (provider, event id) however often the provider posts it
again; a hard bounce, a complaint or an unsubscribe stops mail to the address, once, with the event.

Plain arguments: emails/webhooks.py turns a verified post into ProviderEvent values.
"""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction

from emails.models import EmailEvent, Message
from emails.suppression import suppress

logger = logging.getLogger(__name__)

# Sent with every message as the provider's metadata (custom args, user variables, tags): providers
# echo it in their events, so an event finds its message even before the provider's id is stored.
METADATA_KEY = "resilience_message_id"
# What each event type does to its address. A bounce suppresses only when permanent (ProviderEvent.hard).
SUPPRESSES = {EmailEvent.Type.BOUNCED: "bounce", EmailEvent.Type.COMPLAINED: "complaint",
              EmailEvent.Type.UNSUBSCRIBED: "unsubscribe"}


@dataclass(frozen=True)
class ProviderEvent:
    provider: str
    event_id: str
    event_type: str  # one of EmailEvent.Type
    recipient: str = ""
    provider_message_id: str = ""
    message_id: uuid.UUID | None = None  # ours, from METADATA_KEY
    reject_reason: str = ""
    description: str = ""
    occurred_at: datetime | None = None
    hard: bool = True  # a bounce the provider calls permanent (a soft one is only recorded)
    payload: dict[str, Any] = field(default_factory=dict)


def record_event(event: ProviderEvent) -> bool:
    """Record `event` unless it already is; True when it was new. The suppression it causes commits
    with it, so a re-posted event can neither be recorded twice nor suppress twice."""
    if event.event_type not in EmailEvent.Type.values:
        event = ProviderEvent(**{**event.__dict__, "event_type": EmailEvent.Type.UNKNOWN})
    with transaction.atomic():
        message = _message_of(event)
        row, created = EmailEvent.objects.get_or_create(
            provider=event.provider, event_id=event.event_id[:255], defaults=dict(
                event_type=event.event_type, recipient=event.recipient[:254], message=message,
                provider_message_id=event.provider_message_id[:255], reject_reason=event.reject_reason[:30],
                description=event.description[:2000], occurred_at=event.occurred_at, payload=event.payload))
        reason = SUPPRESSES.get(event.event_type)
        if created and reason and (event.hard or reason != "bounce"):
            address = message.to_email if message is not None else event.recipient
            if _is_address(address):
                suppress(address, reason, message_id=message.id if message else None, event_id=event.event_id,
                         detail=f"{event.provider} {event.reject_reason} {event.description}".strip()[:500],
                         by=event.provider)
                EmailEvent.objects.filter(pk=row.pk).update(suppressed=True)
                logger.warning("%s %s event %s: %s suppressed", event.provider, event.event_type, event.event_id,
                               address)
    return created


def _is_address(address: str) -> bool:
    # A recipient the provider garbled is recorded with its event, never made a suppressed "address".
    try:
        validate_email(address)
    except ValidationError:
        return False
    return len(address) <= 254


def _message_of(event: ProviderEvent) -> Message | None:
    if event.message_id is not None:
        message = Message.objects.filter(pk=event.message_id).first()
        if message is not None:
            return message
    if event.provider_message_id:
        return Message.objects.filter(provider_message_id=event.provider_message_id).first()
    return None


def attach_events(message_id: uuid.UUID, provider_message_id: str) -> int:
    """Events that arrived before the message's provider id was stored (a provider can post
    `delivered` before our `sent` commits) now name their message."""
    if not provider_message_id:
        return 0
    return EmailEvent.objects.filter(provider_message_id=provider_message_id, message__isnull=True).update(
        message_id=message_id)
