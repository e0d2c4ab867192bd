"""The dashboard's charts: per queue, attempts started / succeeded / failed (and rejected) per minute
over the last CHART_HOURS, the first attempts' wait from enqueue to start (p50, p95), and AI spend per
hour. Read from the kept counts (workers.job_minutes, sites.spend_hours), never from the ledger:
O(queues x minutes) folded rows, whatever the traffic was.

Served as JSON at GET /api/admin/workers/charts (admin API: a token, or a staff session allowed to view
jobs); the dashboard's own script draws it as SVG (monitoring/static/workers/charts.js).
"""
from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings

from resilience.http import iso_utc
from sites.services import usd
from sites.spend_hours import spend_by_hour
from workers.job_minutes import WAIT_BUCKETS, minute_counts, quantile_bound, wait_histograms

CHART_HOURS = 6
MINUTES = CHART_HOURS * 60
COUNTS = ("started", "succeeded", "failed", "rejected")


def _floor(moment: datetime, unit: timedelta) -> datetime:
    return moment.replace(second=0, microsecond=0) if unit == timedelta(minutes=1) else moment.replace(
        minute=0, second=0, microsecond=0)


def charts_payload(now: datetime) -> dict[str, Any]:
    """The window ends with the minute (and the hour) `now` is in, that one counted so far; every
    minute has a point, a minute with no attempt a zero."""
    last_minute = _floor(now, timedelta(minutes=1))
    first_minute = last_minute - timedelta(minutes=MINUTES - 1)
    minutes = [first_minute + timedelta(minutes=i) for i in range(MINUTES)]
    counts = minute_counts(first_minute)
    histograms = wait_histograms(first_minute)
    queues = []
    for queue in settings.QUEUE_NAMES:
        by_minute = counts.get(queue, {})
        histogram = histograms.get(queue, {})
        queues.append({
            "queue": queue,
            "perMinute": {name: [by_minute.get(m, {}).get(name, 0) for m in minutes] for name in COUNTS},
            "totals": {name: sum(row[name] for row in by_minute.values()) for name in COUNTS},
            "wait": {"firstAttempts": sum(histogram.values()), "p50": quantile_bound(histogram, 0.5),
                     "p95": quantile_bound(histogram, 0.95)},
        })
    last_hour = _floor(now, timedelta(hours=1))
    hours = [last_hour - timedelta(hours=CHART_HOURS - 1 - i) for i in range(CHART_HOURS)]
    spend, mock = spend_by_hour(hours[0]), spend_by_hour(hours[0], mock=True)
    return {
        "windowStart": iso_utc(first_minute),
        "minuteSeconds": 60,
        "minutes": MINUTES,
        "queues": queues,
        # A quantile is its histogram bucket's upper bound (seconds): the wait is at most that.
        "waitBucketBounds": list(WAIT_BUCKETS),
        "aiSpendPerHour": {
            "hours": [iso_utc(hour) for hour in hours],
            "cost": [usd(spend.get(hour, (0, Decimal(0)))[1]) for hour in hours],
            "requests": [spend.get(hour, (0, Decimal(0)))[0] for hour in hours],
            "mockCost": [usd(mock.get(hour, (0, Decimal(0)))[1]) for hour in hours],
        },
        "generatedAt": iso_utc(now),
    }
