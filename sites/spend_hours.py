"""AI spend per UTC hour for the dashboard's chart (SpendHour), kept by triggers on the paid requests
(migration 0005_spend_hours) as SpendDay is, and pruned after CHART_RETENTION_DAYS (registered with the
runtime in SitesConfig.ready)."""
from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import Sum
from django.db.models.functions import Now

from sites.models import SpendHour
from workers.retention import delete_slice

PRUNE_KIND = "hourly AI spend"


def prune_spend_hours(limit: int) -> int:
    cutoff = Now() - timedelta(days=settings.CHART_RETENTION_DAYS)
    return delete_slice(SpendHour.objects.filter(hour__lt=cutoff).order_by("hour"), limit)


def spend_by_hour(since: datetime, *, mock: bool = False) -> dict[datetime, tuple[int, Decimal]]:
    """{hour: (paid requests, cost in USD)} for the hours from `since` on (MOCK_MODE's made-up ones
    with mock=True, apart)."""
    rows = (SpendHour.objects.filter(hour__gte=since, mock=mock).values("hour")
            .annotate(requests=Sum("requests"), cost=Sum("cost_usd")))
    return {row["hour"]: (int(row["requests"]), row["cost"]) for row in rows}
