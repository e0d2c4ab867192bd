"""AI spend per hour (SpendHour), kept by triggers on the paid requests and pruned after
CHART_RETENTION_DAYS: equal to the full sums of the books per UTC hour."""
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from sites.models import AiRequest, SpendHour
from sites.spend_hours import PRUNE_KIND, spend_by_hour
from tests.sites.conftest import paid_request
from workers import registry

pytestmark = pytest.mark.django_db(transaction=True)
HOUR = datetime(2026, 12, 7, 9, tzinfo=timezone.utc)


def test_each_paid_request_counts_in_its_utc_hour_as_it_is_written_changed_and_deleted():
    paid_request(cost="0.5", created_at=HOUR + timedelta(minutes=1))
    paid_request(cost="0.25", created_at=HOUR + timedelta(minutes=59, seconds=59))
    moved = paid_request(cost="1", created_at=HOUR + timedelta(hours=1))
    paid_request(cost="7", mock=True, created_at=HOUR)  # MOCK_MODE's made-up spend, apart
    assert spend_by_hour(HOUR) == {HOUR: (2, Decimal("0.75")), HOUR + timedelta(hours=1): (1, Decimal("1"))}
    assert spend_by_hour(HOUR, mock=True) == {HOUR: (1, Decimal("7"))}

    AiRequest.objects.filter(pk=moved.pk).update(cost_usd=Decimal("2"))
    AiRequest.objects.filter(cost_usd=Decimal("0.25")).delete()
    assert spend_by_hour(HOUR) == {HOUR: (1, Decimal("0.5")), HOUR + timedelta(hours=1): (1, Decimal("2"))}
    assert spend_by_hour(HOUR + timedelta(hours=1)) == {HOUR + timedelta(hours=1): (1, Decimal("2"))}


def test_hours_past_the_retention_are_pruned_by_the_registered_pruner(settings):
    settings.CHART_RETENTION_DAYS = 1
    now = datetime.now(timezone.utc)
    paid_request(created_at=now - timedelta(days=2))
    paid_request(created_at=now)
    [pruner] = [p for p in registry.pruners() if p.name == PRUNE_KIND]
    assert pruner.prune(10) == 1
    assert SpendHour.objects.count() == 1
    assert AiRequest.objects.count() == 2  # the books themselves are not this pruner's
