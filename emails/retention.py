"""What emails prunes (registered with the runtime in EmailsConfig.ready): the providers' tracking
events after EMAIL_EVENT_RETENTION_DAYS. An event's effect outlives it: the suppression it caused is
its own table (kept), the message's state is on the message. A provider re-posting an event older
than the retention (they retry for hours or days) would record it again, never suppress twice.

received_at has no index; ids grow with time, so a slice walks the primary key from the oldest row."""
from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models.functions import Now

from emails.models import EmailEvent
from workers.retention import delete_slice


def prune_events(limit: int) -> int:
    cutoff = Now() - timedelta(days=settings.EMAIL_EVENT_RETENTION_DAYS)
    return delete_slice(EmailEvent.objects.filter(received_at__lt=cutoff).order_by("pk"), limit)
