"""The providers' tracking events are pruned after EMAIL_EVENT_RETENTION_DAYS; the suppressions they
caused stay (emails.retention, registered in EmailsConfig.ready)."""
from datetime import timedelta

import pytest

from emails.models import EmailEvent, Suppression
from emails.suppression import suppress
from resilience.db import db_now
from workers.retention import prune_ledger

pytestmark = pytest.mark.django_db


def event(n: int, days_ago: float) -> EmailEvent:
    row = EmailEvent.objects.create(provider="mailgun", event_id=f"ev-{n}", event_type=EmailEvent.Type.BOUNCED,
                                    recipient="gone@example.com", suppressed=True)
    EmailEvent.objects.filter(pk=row.pk).update(received_at=db_now() - timedelta(days=days_ago))
    return row


def test_old_events_go_recent_ones_and_every_suppression_stay(settings):
    settings.EMAIL_EVENT_RETENTION_DAYS = 90
    for n in range(3):
        event(n, 91)
    recent = event(9, 89)
    suppress("gone@example.com", "bounce", event_id="ev-0", by="mailgun")
    assert prune_ledger(batch_size=2).by_app["email tracking events"] == 3
    assert list(EmailEvent.objects.values_list("pk", flat=True)) == [recent.pk]
    assert Suppression.objects.filter(email="gone@example.com").exists()
