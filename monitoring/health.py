"""Health of each queue, from the job ledger and the workers' heartbeats (so it survives restarts).

The contract's rules, per queue, over a recent window (HEALTH_WINDOW_MINUTES, 15 by default):

- unhealthy: no live worker consumes the queue; or jobs wait while its consumers make no progress
  ("paused unexpectedly"; a queue held back by its own rate limit is not); or the failure rate is
  above 5 % (judged once HEALTH_MIN_SAMPLE jobs finished in the window); or no job was processed for
  5+ minutes and errors > 5;
- healthy: errors < 3, failure rate < 5 %, and jobs are being processed (or none are waiting);
- degraded: anything between;
- paused: paused on purpose (manage.py pause_queue); never counted as unhealthy.
And for the whole system: no live dispatcher leader (its heartbeat row) is unhealthy, whatever the queues say.

"errors" are failed attempts (a job that failed twice and then succeeded made 2); the failure rate is
dead-lettered jobs / finished jobs. A job rejected for its own input (workers.errors.InvalidData) is
counted as rejected: neither an error, nor a failure, nor in the rate's sample.

Every query reads O(queues) rows or the recent window through an index, never the whole ledger:
lifetime counts come from JobCount (kept by triggers) plus the daily statistics of pruned jobs.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Q, Sum

from resilience.db import db_now
from resilience.http import iso_utc
from resilience.numbers import percent
from workers import ratelimit
from workers.models import Job, JobCount, JobFailure, QueueDailyStats, QueuePause, WorkerHeartbeat

logger = logging.getLogger(__name__)
State = Job.State

# The contract's thresholds.
IDLE_MINUTES = 5
UNHEALTHY_ERRORS = 5  # errors > 5 (with nothing processed for IDLE_MINUTES) is unhealthy
HEALTHY_ERRORS = 3  # errors < 3 is needed for healthy
FAILURE_RATE_LIMIT = 5.0  # percent

HEALTHY, DEGRADED, UNHEALTHY, PAUSED = "healthy", "degraded", "unhealthy", "paused"
STATUSES = (HEALTHY, DEGRADED, UNHEALTHY, PAUSED)  # a queue's status and the overall one: the document's enum
_SEVERITY = {HEALTHY: 0, PAUSED: 0, DEGRADED: 1, UNHEALTHY: 2}


@dataclass
class QueueFigures:
    """What the rules look at, for one queue."""

    name: str
    by_state: dict[str, int] = field(default_factory=dict)  # jobs in the ledger now, per state
    waiting: int = 0  # pending, retrying or published but not started
    active: int = 0  # running
    active_live: int = 0  # running with a lease still alive (the others' worker is gone)
    completed: int = 0  # lifetime: succeeded
    failed: int = 0  # lifetime: dead-lettered, rejected input excepted
    rejected: int = 0  # lifetime: dead-lettered for invalid input
    recent_completed: int = 0
    recent_failed: int = 0
    recent_rejected: int = 0
    recent_errors: int = 0  # failed attempts in the window, rejected input excepted
    processed_last_idle_window: int = 0  # succeeded in the last IDLE_MINUTES
    consumers: int = 0  # workers with a live heartbeat whose consumer runs
    stalled_waiting: int = 0  # due jobs waiting longer than HEALTH_STALL_SECONDS without progress
    rate_limited_for: float | None = None  # its rate limit's window is full: seconds until a slot frees
    last_processed_at: datetime | None = None
    last_started_at: datetime | None = None
    paused: QueuePause | None = None

    @property
    def failure_rate(self) -> float:
        return percent(self.failed, self.completed + self.failed)

    @property
    def recent_finished(self) -> int:
        """The failure rate's sample: finished jobs in the window, rejected input excepted."""
        return self.recent_completed + self.recent_failed

    @property
    def recent_failure_rate(self) -> float:
        return percent(self.recent_failed, self.recent_finished)

    @property
    def failure_rate_judged(self) -> bool:
        return self.recent_finished >= settings.HEALTH_MIN_SAMPLE


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
    rate_judged = q.failure_rate_judged
    if q.consumers == 0:
        bad.append(f"no live worker consumes this queue (none sent a heartbeat within "
                   f"{settings.HEARTBEAT_TTL_SECONDS:g} s with its consumer running)")
    elif q.stalled_waiting and q.rate_limited_for is None:
        bad.append(f"paused unexpectedly: {q.stalled_waiting} job(s) waited over {settings.HEALTH_STALL_SECONDS} s "
                   f"while no job of this queue started, finished or ran")
    if rate_judged and q.recent_failure_rate > FAILURE_RATE_LIMIT:
        bad.append(f"failure rate {q.recent_failure_rate:.2f}% over {window} is above {FAILURE_RATE_LIMIT:g}%")
    if q.processed_last_idle_window == 0 and q.recent_errors > UNHEALTHY_ERRORS:
        bad.append(f"no job processed in {IDLE_MINUTES}+ minutes and {q.recent_errors} errors in {window}")
    if bad:
        return Verdict(UNHEALTHY, bad)
    concerns: list[str] = []
    if q.recent_errors >= HEALTHY_ERRORS:
        concerns.append(f"{q.recent_errors} errors in {window} (healthy is under {HEALTHY_ERRORS})")
    if rate_judged and q.recent_failure_rate >= FAILURE_RATE_LIMIT:
        concerns.append(f"failure rate {q.recent_failure_rate:.2f}% over {window} (healthy is under "
                        f"{FAILURE_RATE_LIMIT:g}%)")
    if q.waiting and not q.active_live and not q.recent_completed and q.rate_limited_for is None:
        concerns.append(f"{q.waiting} job(s) waiting and none processed in {window}")
    return Verdict(DEGRADED, concerns) if concerns else Verdict(HEALTHY)


@dataclass
class LeaderFigures:
    """The dispatcher leader's heartbeat (workers.leader_heartbeat.LeaderHeartbeat)."""

    name: str | None = None  # the live leader's row, else the last one seen
    live: bool = False
    beat_at: datetime | None = None


def judge_leader(leader: LeaderFigures) -> Verdict:
    if leader.live:
        return Verdict(HEALTHY)
    last = f"; the last leader, {leader.name}, beat at {iso_utc(leader.beat_at)}" if leader.name else ""
    return Verdict(UNHEALTHY, [
        f"no live dispatcher leader (no leader heartbeat within {settings.HEARTBEAT_TTL_SECONDS:g} s{last}): "
        "no job is published and no lost job is recovered"])


@contextmanager
def consistent_snapshot() -> Iterator[None]:
    """Read every figure from one snapshot, so that a pruning that moves counts from the ledger to
    the daily statistics between two queries cannot make them disagree. (Inside a caller's
    transaction, that transaction's isolation applies.)"""
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if outermost:
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        yield




def _rate_limited_for(queue: str) -> float | None:
    """Seconds until the queue's rate limit frees a slot when its window is full now, else None
    (no limit, a free slot, or Redis not answering: then the other rules judge alone)."""
    try:
        free, wait = ratelimit.available(queue)
    except Exception as exc:  # Redis away: the health report must still answer
        logger.debug("rate limit of %s unknown: %s", queue, exc)
        return None
    return wait if free == 0 else None


def collect_figures(now: datetime) -> dict[str, QueueFigures]:
    """Every queue's figures as of `now` (db_now()), read in one consistent snapshot."""
    since = now - timedelta(minutes=settings.HEALTH_WINDOW_MINUTES)
    idle_since = now - timedelta(minutes=IDLE_MINUTES)
    stall_before = now - timedelta(seconds=settings.HEALTH_STALL_SECONDS)
    names = list(settings.QUEUE_NAMES)
    figures = {name: QueueFigures(name) for name in names}

    def each(rows):
        for row in rows:
            if row["queue"] in figures:
                yield figures[row["queue"]], row

    with consistent_snapshot():
        for q, row in each(JobCount.objects.values("queue", "state", "rejected").annotate(n=Sum("n"))):
            n = row["n"] or 0
            q.by_state[row["state"]] = q.by_state.get(row["state"], 0) + n
            if row["state"] in (State.PENDING, State.RETRY, State.DISPATCHED):
                q.waiting += n
            elif row["state"] == State.RUNNING:
                q.active += n
            elif row["state"] == State.SUCCEEDED:
                q.completed += n
            elif row["state"] == State.DEAD and row["rejected"]:
                q.rejected += n
            elif row["state"] == State.DEAD:
                q.failed += n
        for q, row in each(QueueDailyStats.objects.values("queue").annotate(
                s=Sum("succeeded"), d=Sum("dead"), r=Sum("rejected"))):
            q.completed += row["s"] or 0
            q.failed += (row["d"] or 0) - (row["r"] or 0)
            q.rejected += row["r"] or 0
        # `queue IN (...)` lets each per-queue index be read from `since` on, not scanned whole.
        recent = Job.objects.filter(queue__in=names, finished_at__gte=since, state__in=Job.FINISHED_STATES)
        for q, row in each(recent.values("queue").annotate(
            ok=Count("id", filter=Q(state=State.SUCCEEDED)),
            dead=Count("id", filter=Q(state=State.DEAD, rejected=False)),
            rejected=Count("id", filter=Q(state=State.DEAD, rejected=True)),
            ok_idle=Count("id", filter=Q(state=State.SUCCEEDED, finished_at__gte=idle_since)),
        )):
            q.recent_completed, q.recent_failed, q.recent_rejected = row["ok"], row["dead"], row["rejected"]
            q.processed_last_idle_window = row["ok_idle"]
        for q, row in each(JobFailure.objects.filter(queue__in=names, failed_at__gte=since, rejected=False)
                           .values("queue").annotate(n=Count("id"))):
            q.recent_errors = row["n"]
        for q in figures.values():
            # Newest first down each queue's index: one row read, however long the ledger.
            q.last_processed_at = (Job.objects.filter(queue=q.name, finished_at__isnull=False, state=State.SUCCEEDED)
                                   .order_by("-finished_at").values_list("finished_at", flat=True).first())
            q.last_started_at = (Job.objects.filter(queue=q.name, started_at__isnull=False)
                                 .order_by("-started_at").values_list("started_at", flat=True).first())
        for q, row in each(Job.objects.filter(state=State.RUNNING, lease_expires_at__gt=now)
                           .values("queue").annotate(n=Count("id"))):
            q.active_live = row["n"]
        for q, row in each(WorkerHeartbeat.objects.filter(expires_at__gt=now, stopped_at__isnull=True,
                                                          consuming=True)
                           .values("queue").annotate(n=Count("id"))):
            q.consumers = row["n"]
        # Waiting since: a due job's next_attempt_at (a deferred job is not due before it), or when
        # it was published.
        for q, row in each(Job.objects.filter(
            Q(state__in=Job.WAITING_STATES, next_attempt_at__lt=stall_before)
            | Q(state=State.DISPATCHED, dispatched_at__lt=stall_before)
        ).values("queue").annotate(n=Count("id"))):
            # Only a running job whose lease is alive is progress: an expired lease is a lost worker.
            no_progress = not q.active_live and (q.last_started_at is None or q.last_started_at < stall_before) and (
                q.last_processed_at is None or q.last_processed_at < stall_before)
            q.stalled_waiting = row["n"] if no_progress else 0
        for pause in QueuePause.objects.all():
            if pause.queue in figures:
                figures[pause.queue].paused = pause
    for q in figures.values():
        # Held back by its own rate limit is the limit working, not a stall (one Redis call, and
        # only for a queue that would otherwise look stuck).
        if q.paused is None and q.consumers and (q.stalled_waiting or (q.waiting and not q.recent_completed)):
            q.rate_limited_for = _rate_limited_for(q.name)
    return figures


def collect_leader(now: datetime) -> LeaderFigures:
    rows = WorkerHeartbeat.objects.filter(pool=WorkerHeartbeat.DISPATCHER_POOL).order_by("-beat_at")
    live = rows.filter(expires_at__gt=now, stopped_at__isnull=True).first()
    if live is not None:
        return LeaderFigures(live.name, True, live.beat_at)
    last = rows.first()
    return LeaderFigures(last.name, False, last.beat_at) if last else LeaderFigures()


def overall_status(verdicts: list[Verdict]) -> str:
    judged = [v.status for v in verdicts if v.status != PAUSED]
    if not judged:
        return PAUSED if verdicts else HEALTHY
    return max(judged, key=_SEVERITY.__getitem__)


def health_report(now: datetime | None = None) -> dict[str, Any]:
    """The body of GET /api/admin/workers/health: the contract's fields, then ours."""
    now = now or db_now()
    figures = collect_figures(now)
    leader = collect_leader(now)
    leader_verdict = judge_leader(leader)
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
            "rejected": q.rejected,
            "status": verdict.status,
            "reasons": verdict.reasons,
            "consumers": q.consumers,
            "paused": q.paused is not None,
            "pausedReason": q.paused.reason if q.paused else None,
            "rateLimitedForSeconds": q.rate_limited_for,
            "recent": {
                "windowMinutes": settings.HEALTH_WINDOW_MINUTES,
                "completed": q.recent_completed,
                "failed": q.recent_failed,
                "rejected": q.recent_rejected,
                "errors": q.recent_errors,
                "failureRate": q.recent_failure_rate,
                "failureRateJudged": q.failure_rate_judged,
                "minSample": settings.HEALTH_MIN_SAMPLE,
            },
            "lastProcessedAt": iso_utc(q.last_processed_at),
        })
    overall = overall_status(verdicts)
    if not leader_verdict.healthy:
        overall = UNHEALTHY
    return {
        "success": True,
        "overall": overall,
        "reasons": leader_verdict.reasons,  # the whole system's, beside each queue's own
        "workers": entries,
        "summary": {
            "totalActive": sum(q.active for q in figures.values()),
            "totalCompleted": sum(q.completed for q in figures.values()),
            "totalFailed": sum(q.failed for q in figures.values()),
            "allHealthy": all(v.healthy for v in verdicts) and leader_verdict.healthy,
            "totalWaiting": sum(q.waiting for q in figures.values()),
            "totalRejected": sum(q.rejected for q in figures.values()),
            "pausedQueues": [q.name for q in figures.values() if q.paused is not None],
        },
        "dispatcher": {"leader": leader.name, "live": leader.live, "lastHeartbeatAt": iso_utc(leader.beat_at)},
        "timestamp": iso_utc(now.replace(microsecond=0)),
    }


def worker_report(now: datetime | None = None) -> list[dict[str, Any]]:
    """Every worker that sent a heartbeat in the last day, live or not, for the dashboard."""
    now = now or db_now()
    rows = WorkerHeartbeat.objects.filter(beat_at__gte=now - timedelta(days=1)).order_by("pool", "queue", "name")
    by_pool: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for hb in rows:
        beating = hb.stopped_at is None and hb.expires_at > now
        live = beating and hb.consuming
        by_pool[hb.pool].append({
            "name": hb.name,
            "pool": hb.pool,
            "queue": hb.queue,
            "host": hb.host,
            "pid": hb.pid,
            "concurrency": hb.concurrency,
            "live": live,
            "state": "live" if live else "not consuming" if beating else "stopped" if hb.stopped_at else "gone",
            "startedAt": iso_utc(hb.started_at),
            "lastHeartbeatAt": iso_utc(hb.beat_at),
            "heartbeatAgeSeconds": round(max(0.0, (now - hb.beat_at).total_seconds()), 1),
            "memoryBytes": hb.memory_bytes,
            "jobsDone": hb.jobs_done,
            "jobsFailed": hb.jobs_failed,  # failed attempts; rejected input apart, as in the queues' figures
            "jobsRejected": hb.jobs_rejected,
            "lastJobAt": iso_utc(hb.last_job_at),
        })
    return [worker for pool in sorted(by_pool) for worker in by_pool[pool]]
