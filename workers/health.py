"""Health of each queue, from the job ledger and the workers' heartbeats (so it survives restarts).

The contract's rules, per queue, over a recent window (HEALTH_WINDOW_MINUTES, 15 by default):

- unhealthy: no live worker consumes the queue; or jobs wait while its consumers make no progress;
  or the failure rate is above 5 %; or no job was processed for 5+ minutes and errors > 5;
- healthy: errors < 3, failure rate < 5 %, and jobs are being processed (or none are waiting);
- degraded: anything between;
- paused: paused on purpose (manage.py pause_queue); never counted as unhealthy.

"errors" are failed attempts (a job that failed twice and then succeeded made 2); the failure rate is
dead-lettered jobs / finished jobs. Lifetime counts come from the ledger plus its daily statistics.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Max, Q, Sum
from django.utils import timezone

from resilience.http import iso_utc
from workers.models import Job, JobFailure, QueueDailyStats, QueuePause, WorkerHeartbeat

State = Job.State

# The contract's thresholds.
IDLE_MINUTES = 5
UNHEALTHY_ERRORS = 5  # errors > 5 (with nothing processed for IDLE_MINUTES) is unhealthy
HEALTHY_ERRORS = 3  # errors < 3 is needed for healthy
FAILURE_RATE_LIMIT = 5.0  # percent

HEALTHY, DEGRADED, UNHEALTHY, PAUSED = "healthy", "degraded", "unhealthy", "paused"
_SEVERITY = {HEALTHY: 0, PAUSED: 0, DEGRADED: 1, UNHEALTHY: 2}


def percent(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 2) if whole else 0.0


@dataclass
class QueueFigures:
    """What the rules look at, for one queue."""

    name: str
    waiting: int = 0  # pending, retrying or published but not started
    active: int = 0  # running
    completed: int = 0  # lifetime: succeeded
    failed: int = 0  # lifetime: dead-lettered
    recent_completed: int = 0
    recent_failed: int = 0
    recent_errors: int = 0  # failed attempts in the window
    processed_last_idle_window: int = 0  # succeeded in the last IDLE_MINUTES
    consumers: int = 0  # workers with a live heartbeat
    stalled_waiting: int = 0  # due jobs waiting longer than HEALTH_STALL_SECONDS without progress
    last_processed_at: datetime | None = None
    last_started_at: datetime | None = None
    paused: QueuePause | None = None

    @property
    def failure_rate(self) -> float:
        return percent(self.failed, self.completed + self.failed)

    @property
    def recent_failure_rate(self) -> float:
        return percent(self.recent_failed, self.recent_completed + self.recent_failed)


@dataclass
class Verdict:
    status: str
    reasons: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return self.status in (HEALTHY, PAUSED)


def judge(q: QueueFigures) -> Verdict:
    """Apply the health rules to one queue's figures."""
    window = f"the last {settings.HEALTH_WINDOW_MINUTES} min"
    if q.paused is not None:
        return Verdict(PAUSED, [f"paused on purpose by {q.paused.paused_by or 'someone'}: {q.paused.reason}"])
    bad: list[str] = []
    if q.consumers == 0:
        bad.append(f"paused unexpectedly: no live worker consumes this queue (no heartbeat within "
                   f"{settings.HEARTBEAT_TTL_SECONDS:g} s)")
    elif q.stalled_waiting:
        bad.append(f"paused unexpectedly: {q.stalled_waiting} job(s) waited over {settings.HEALTH_STALL_SECONDS} s "
                   f"while no job of this queue started, finished or ran")
    if q.recent_failure_rate > FAILURE_RATE_LIMIT:
        bad.append(f"failure rate {q.recent_failure_rate:.2f}% over {window} is above {FAILURE_RATE_LIMIT:g}%")
    if q.processed_last_idle_window == 0 and q.recent_errors > UNHEALTHY_ERRORS:
        bad.append(f"no job processed in {IDLE_MINUTES}+ minutes and {q.recent_errors} errors in {window}")
    if bad:
        return Verdict(UNHEALTHY, bad)
    concerns: list[str] = []
    if q.recent_errors >= HEALTHY_ERRORS:
        concerns.append(f"{q.recent_errors} errors in {window} (healthy is under {HEALTHY_ERRORS})")
    if q.recent_failure_rate >= FAILURE_RATE_LIMIT:
        concerns.append(f"failure rate {q.recent_failure_rate:.2f}% over {window} (healthy is under "
                        f"{FAILURE_RATE_LIMIT:g}%)")
    if q.waiting and not q.active and not q.recent_completed:
        concerns.append(f"{q.waiting} job(s) waiting and none processed in {window}")
    return Verdict(DEGRADED, concerns) if concerns else Verdict(HEALTHY)


@contextmanager
def consistent_snapshot() -> Iterator[None]:
    """Read every figure from one snapshot, so that a pruning that moves counts from the ledger to
    the daily statistics between two queries cannot make them disagree. (Inside a caller's
    transaction, that transaction's isolation applies.)"""
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if outermost and connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        yield


def db_now() -> datetime:
    """The database's clock: the ledger's and the heartbeats' times are all written with it, so
    comparing them with it is right whatever the web host's clock says."""
    if connection.vendor != "postgresql":
        return timezone.now()
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement_timestamp()")
        return cursor.fetchone()[0]


def collect_figures(now: datetime) -> dict[str, QueueFigures]:
    """Every queue's figures as of `now` (db_now()), read in one consistent snapshot."""
    since = now - timedelta(minutes=settings.HEALTH_WINDOW_MINUTES)
    idle_since = now - timedelta(minutes=IDLE_MINUTES)
    stall_before = now - timedelta(seconds=settings.HEALTH_STALL_SECONDS)
    figures = {name: QueueFigures(name) for name in settings.QUEUE_NAMES}

    def each(rows):
        for row in rows:
            if row["queue"] in figures:
                yield figures[row["queue"]], row

    with consistent_snapshot():
        for q, row in each(Job.objects.values("queue", "state").annotate(n=Count("id"))):
            if row["state"] in (State.PENDING, State.RETRY, State.DISPATCHED):
                q.waiting += row["n"]
            elif row["state"] == State.RUNNING:
                q.active += row["n"]
            elif row["state"] == State.SUCCEEDED:
                q.completed += row["n"]
            elif row["state"] == State.DEAD:
                q.failed += row["n"]
        for q, row in each(QueueDailyStats.objects.values("queue").annotate(s=Sum("succeeded"), d=Sum("dead"))):
            q.completed += row["s"] or 0
            q.failed += row["d"] or 0
        recent = Job.objects.filter(finished_at__gte=since, state__in=Job.FINISHED_STATES)
        for q, row in each(recent.values("queue").annotate(
            ok=Count("id", filter=Q(state=State.SUCCEEDED)),
            dead=Count("id", filter=Q(state=State.DEAD)),
            ok_idle=Count("id", filter=Q(state=State.SUCCEEDED, finished_at__gte=idle_since)),
        )):
            q.recent_completed, q.recent_failed, q.processed_last_idle_window = row["ok"], row["dead"], row["ok_idle"]
        for q, row in each(JobFailure.objects.filter(failed_at__gte=since).values("queue").annotate(n=Count("id"))):
            q.recent_errors = row["n"]
        for q, row in each(Job.objects.values("queue").annotate(
            last_ok=Max("finished_at", filter=Q(state=State.SUCCEEDED)), last_start=Max("started_at"),
        )):
            q.last_processed_at, q.last_started_at = row["last_ok"], row["last_start"]
        for q, row in each(WorkerHeartbeat.objects.filter(expires_at__gt=now, stopped_at__isnull=True)
                           .values("queue").annotate(n=Count("id"))):
            q.consumers = row["n"]
        # Waiting since: a due job's next_attempt_at, or when it was published.
        for q, row in each(Job.objects.filter(
            Q(state__in=Job.WAITING_STATES, next_attempt_at__lt=stall_before)
            | Q(state=State.DISPATCHED, dispatched_at__lt=stall_before)
        ).values("queue").annotate(n=Count("id"))):
            no_progress = not q.active and (q.last_started_at is None or q.last_started_at < stall_before) and (
                q.last_processed_at is None or q.last_processed_at < stall_before)
            q.stalled_waiting = row["n"] if no_progress else 0
        for pause in QueuePause.objects.all():
            if pause.queue in figures:
                figures[pause.queue].paused = pause
    return figures



def overall_status(verdicts: list[Verdict]) -> str:
    judged = [v.status for v in verdicts if v.status != PAUSED]
    if not judged:
        return PAUSED if verdicts else HEALTHY
    return max(judged, key=_SEVERITY.__getitem__)


def health_report(now: datetime | None = None) -> dict[str, Any]:
    """The body of GET /api/admin/workers/health: the contract's fields, then ours."""
    now = now or db_now()
    figures = collect_figures(now)
    entries, verdicts = [], []
    for q in figures.values():
        verdict = judge(q)
        verdicts.append(verdict)
        entries.append({
            "name": q.name,
            "healthy": verdict.healthy,
            "waiting": q.waiting,
            "active": q.active,
            "completed": q.completed,
            "failed": q.failed,
            "failureRate": q.failure_rate,
            "status": verdict.status,
            "reasons": verdict.reasons,
            "consumers": q.consumers,
            "paused": q.paused is not None,
            "pausedReason": q.paused.reason if q.paused else None,
            "recent": {
                "windowMinutes": settings.HEALTH_WINDOW_MINUTES,
                "completed": q.recent_completed,
                "failed": q.recent_failed,
                "errors": q.recent_errors,
                "failureRate": q.recent_failure_rate,
            },
            "lastProcessedAt": iso_utc(q.last_processed_at),
        })
    return {
        "success": True,
        "overall": overall_status(verdicts),
        "workers": entries,
        "summary": {
            "totalActive": sum(q.active for q in figures.values()),
            "totalCompleted": sum(q.completed for q in figures.values()),
            "totalFailed": sum(q.failed for q in figures.values()),
            "allHealthy": all(v.healthy for v in verdicts),
            "totalWaiting": sum(q.waiting for q in figures.values()),
            "pausedQueues": [q.name for q in figures.values() if q.paused is not None],
        },
        "timestamp": iso_utc(now.replace(microsecond=0)),
    }


def worker_report(now: datetime | None = None) -> list[dict[str, Any]]:
    """Every worker that sent a heartbeat in the last day, live or not, for the dashboard."""
    now = now or db_now()
    rows = WorkerHeartbeat.objects.filter(beat_at__gte=now - timedelta(days=1)).order_by("pool", "queue", "name")
    by_pool: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for hb in rows:
        live = hb.stopped_at is None and hb.expires_at > now
        by_pool[hb.pool].append({
            "name": hb.name,
            "pool": hb.pool,
            "queue": hb.queue,
            "host": hb.host,
            "pid": hb.pid,
            "concurrency": hb.concurrency,
            "live": live,
            "state": "live" if live else ("stopped" if hb.stopped_at else "gone"),
            "startedAt": iso_utc(hb.started_at),
            "lastHeartbeatAt": iso_utc(hb.beat_at),
            "heartbeatAgeSeconds": round(max(0.0, (now - hb.beat_at).total_seconds()), 1),
            "memoryBytes": hb.memory_bytes,
            "jobsDone": hb.jobs_done,
            "jobsFailed": hb.jobs_failed,
            "lastJobAt": iso_utc(hb.last_job_at),
        })
    return [worker for pool in sorted(by_pool) for worker in by_pool[pool]]
