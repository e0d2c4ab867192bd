"""Per-minute counts of the ledger's attempts, for the dashboard's charts: per queue and minute, the
attempts started, succeeded, failed and rejected, and the waits of first attempts from enqueue to start
as a fixed histogram (JobMinute, JobWaitMinute).

Written where the events happen: a statement-level trigger on the ledger (migration 0010_job_minutes)
reads each statement's old and new rows, as JobCount's triggers do, and appends one delta row per
queue and minute the statement touched; a lease renewal appends none. The leader folds the deltas of
the minutes touched since its last turn into one row each (fold_job_minutes, a duty) and prunes rows
past CHART_RETENTION_DAYS (a registered pruner), so the charts read O(queues x minutes) rows and never
the ledger.

What counts, by the job's row before and after each statement:
- started: an attempt claimed (dispatched -> running), at its started_at; moved to its rate-limit
  slot when mark_started sets a later started_at; taken back when the claim is deferred (running ->
  pending with the attempt given back: the attempt it never made is not counted);
- succeeded: running -> succeeded; failed: running -> retry or dead, or a lost attempt (running ->
  pending, attempt kept); rejected: running -> dead for its own input (workers.errors.InvalidData),
  counted apart from failed, as the health rules do. An attempt's end counts in the minute it ended.
- the wait: started_at - created_at of a job's first attempt. A retry's start is left out: its wait
  is the backoff the policy chose, not the queue's load.

Why a histogram of fixed buckets rather than each minute's sorted waits: a bucket count is a sum, so a
trigger can append it without reading anything and any window's p50/p95 is the sum of its minutes
(waits sampled per minute cannot be merged into a window's quantile), and its size is fixed whatever
the traffic. The price is resolution: a quantile is known to within its bucket, and is reported as
the bucket's upper bound (never better than the truth).
"""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Sum
from django.db.models.functions import Now

from workers.models import JobMinute, JobWaitMinute
from workers.retention import delete_slice

# Lower bounds (seconds) of the wait buckets after the first: bucket 0 is [0, 0.1 s), bucket i is
# [WAIT_BUCKETS[i-1], WAIT_BUCKETS[i]), the last one an hour or more. The trigger's SQL (migration
# 0010_job_minutes) holds the same list; tests/workers/test_job_minutes.py checks they agree.
WAIT_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)

PRUNE_KIND = "per-minute job counts"


def fold_job_minutes() -> int:
    """Fold the delta rows of every minute that has unfolded ones into one folded row per key; returns
    the rows written. One statement per table: a delta committed meanwhile is either folded in or left
    for the next turn, never lost (as workers.retention.fold_job_counts)."""
    written = 0
    with transaction.atomic(), connection.cursor() as cursor:
        for table, key, values in (
            (JobMinute._meta.db_table, "queue, minute", ("started", "succeeded", "failed", "rejected")),
            (JobWaitMinute._meta.db_table, "queue, minute, bucket", ("n",)),
        ):
            cursor.execute(f"""
                WITH touched AS (SELECT DISTINCT queue, minute FROM {table} WHERE NOT folded),
                gone AS (DELETE FROM {table} t USING touched
                          WHERE t.queue = touched.queue AND t.minute = touched.minute
                      RETURNING t.*)
                INSERT INTO {table} ({key}, {", ".join(values)}, folded)
                SELECT {key}, {", ".join(f"sum({v})" for v in values)}, true FROM gone GROUP BY {key}""")
            written += cursor.rowcount
    return written


def prune_job_minutes(limit: int) -> int:
    """Delete at most `limit` rows of either table older than CHART_RETENTION_DAYS (a registered pruner)."""
    cutoff = Now() - timedelta(days=settings.CHART_RETENTION_DAYS)
    deleted = 0
    for model in (JobMinute, JobWaitMinute):
        if deleted < limit:
            deleted += delete_slice(model.objects.filter(minute__lt=cutoff).order_by("minute"), limit - deleted)
    return deleted


def minute_counts(since: datetime) -> dict[str, dict[datetime, dict[str, int]]]:
    """{queue: {minute: {started, succeeded, failed, rejected}}} for the minutes from `since` on."""
    rows = (JobMinute.objects.filter(minute__gte=since).values("queue", "minute")
            .annotate(started=Sum("started"), succeeded=Sum("succeeded"), failed=Sum("failed"),
                      rejected=Sum("rejected")))
    counts: dict[str, dict[datetime, dict[str, int]]] = defaultdict(dict)
    for row in rows:
        counts[row["queue"]][row["minute"]] = {k: int(row[k]) for k in ("started", "succeeded", "failed", "rejected")}
    return counts


def bucket_upper_bound(bucket: int) -> float | None:
    """The largest wait bucket `bucket` holds, in seconds (None for the last: an hour or more)."""
    return WAIT_BUCKETS[bucket] if bucket < len(WAIT_BUCKETS) else None


def quantile_bound(histogram: dict[int, int], q: float) -> dict[str, Any] | None:
    """The wait at or under which a fraction `q` of the histogram's waits fall, as its bucket's upper
    bound (seconds; None with `atLeast` for the open last bucket); None for no waits."""
    total = sum(n for n in histogram.values() if n > 0)
    if total <= 0:
        return None
    rank, seen = q * total, 0
    for bucket in sorted(histogram):
        seen += max(histogram[bucket], 0)
        if seen >= rank:
            upper = bucket_upper_bound(bucket)
            return {"seconds": upper, "atLeast": None if upper is not None else float(WAIT_BUCKETS[-1])}
    return None


def wait_histograms(since: datetime) -> dict[str, dict[int, int]]:
    """{queue: {bucket: first attempts started since `since` whose wait fell in it}}."""
    rows = (JobWaitMinute.objects.filter(minute__gte=since).values("queue", "bucket").annotate(total=Sum("n")))
    histograms: dict[str, dict[int, int]] = defaultdict(dict)
    for row in rows:
        if row["total"]:
            histograms[row["queue"]][row["bucket"]] = int(row["total"])
    return histograms
