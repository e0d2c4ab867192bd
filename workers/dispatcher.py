"""The dispatcher: publishes due ledger jobs to Redis and recovers jobs whose worker vanished.

Any number of candidates may run (one per pool); only the leader works. Publishing happens after
the ledger says `dispatched`, so a publish that fails is undone and a publish that succeeds is
always on record.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.db import close_old_connections
from django.db.models import Count

from sites.budget import enforce_daily_budget
from workers import ledger, ratelimit, wakeup
from monitoring.heartbeat import LeaderHeartbeat
from workers.leader import Leadership, dispatcher_leadership
from workers.models import Job, QueuePause
from workers.retention import prune_ledger

logger = logging.getLogger(__name__)


@dataclass
class DispatchStats:
    published: int = 0
    publish_failures: int = 0
    reaped: int = 0
    redispatched: int = 0
    by_queue: dict[str, int] = field(default_factory=dict)


def in_flight_counts() -> dict[str, dict[str, int]]:
    """queue -> {state: count} for jobs published but not finished."""
    counts: dict[str, dict[str, int]] = {}
    rows = Job.objects.filter(state__in=Job.IN_FLIGHT_STATES).values("queue", "state").annotate(n=Count("id"))
    for row in rows:
        counts.setdefault(row["queue"], {})[row["state"]] = row["n"]
    return counts


def max_in_flight(queue: str) -> int:
    """Backpressure: never publish more than the pools can run at once, so a backlog waits in the
    ledger (where it is durable and visible) rather than in Redis."""
    return settings.QUEUE_CONCURRENCY[queue] * settings.WORKER_POOLS


def rate_room(queue: str, not_started: int) -> int | None:
    """Start slots free now that no published job will take; None when the queue has no limit.

    The limit itself is enforced when a job starts (runner); this keeps the dispatcher from
    publishing jobs that would only be refused and deferred."""
    free, _ = ratelimit.available(queue)
    return None if free is None else max(0, free - not_started)


def publish(dispatch: ledger.Dispatch) -> None:
    from resilience.celery import app

    app.send_task(
        dispatch.task,
        args=[dispatch.job_id, dispatch.token],
        task_id=dispatch.job_id,
        queue=dispatch.queue,
        routing_key=dispatch.queue,
        retry=True,
        retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 1},
    )


# Recovery sweeps look for rare events (a dead worker, a lost message): once a second is enough,
# while publishing runs at every nudge.
RECOVERY_INTERVAL_SECONDS = 1.0
# Pruning the ledger of old finished jobs (workers.retention): the leader does it this often.
PRUNE_INTERVAL_SECONDS = 3600.0


def dispatch_due_jobs(stats: DispatchStats | None = None, *, recover: bool = True) -> DispatchStats:
    """One round: recover lost work (unless told not to), then publish what is due within each
    queue's capacity."""
    stats = stats or DispatchStats()
    if recover:
        stats.reaped += ledger.reap_expired_leases()
        stats.redispatched += ledger.redispatch_stale()
        try:  # pauses site-generation at AI_DAILY_BUDGET_USD, lifts its own pause below it
            enforce_daily_budget()
        except Exception:  # the other queues must not wait on it; it is checked again next second
            logger.warning("the AI budget check failed", exc_info=True)
    in_flight = in_flight_counts()
    paused = set(QueuePause.objects.values_list("queue", flat=True))
    for queue in settings.QUEUE_NAMES:
        if queue in paused:
            continue  # paused on purpose: its jobs wait in the ledger until resume_queue
        states = in_flight.get(queue, {})
        room = min(max_in_flight(queue) - sum(states.values()), settings.DISPATCH_BATCH_SIZE)
        by_rate = rate_room(queue, states.get(Job.State.DISPATCHED, 0)) if room > 0 else None
        if by_rate is not None:
            room = min(room, by_rate)
        batch = ledger.take_due_jobs(queue, room)
        for n, dispatch in enumerate(batch):
            try:
                publish(dispatch)
            except Exception as exc:
                # The broker is down: this job and the rest of the batch go back to waiting now,
                # not after JOB_REDISPATCH_SECONDS as jobs whose message was lost would.
                stats.publish_failures += 1
                undone = ledger.undo_dispatches(batch[n:])
                logger.warning("publishing job %s failed (%s); %d job(s) of its batch wait in the ledger",
                               dispatch.job_id, exc, undone)
                break
            stats.published += 1
            stats.by_queue[queue] = stats.by_queue.get(queue, 0) + 1
    return stats


class Dispatcher:
    def __init__(self, leadership: Leadership | None = None, interval: float | None = None) -> None:
        self.leadership = leadership or dispatcher_leadership()
        self.interval = settings.DISPATCH_INTERVAL_SECONDS if interval is None else interval
        self.stop_event = threading.Event()
        self.is_leader = False
        self.last_recovery = 0.0
        self.last_prune = 0.0
        self.redis_run_id: str | None = None
        self.failing_since: float | None = None
        self.heartbeat = LeaderHeartbeat()

    def stop(self) -> None:
        self.stop_event.set()

    def run_forever(self) -> None:
        logger.info("dispatcher candidate started")
        try:
            while not self.stop_event.is_set():
                self.tick()
                if self.is_leader:
                    wakeup.wait(self.interval)
                else:
                    self.stop_event.wait(self.interval)
        finally:
            self.heartbeat.goodbye()
            self.leadership.release()
            logger.info("dispatcher stopped")

    def tick(self) -> None:
        if not self.is_leader:
            self.is_leader = self.leadership.try_acquire()
            if self.is_leader:
                logger.info("dispatcher: this process is now the leader")
            else:
                return
        elif not self.leadership.still_held():
            logger.warning("dispatcher: leadership lost; standing by")
            self.is_leader = False
            self.heartbeat.goodbye()
            return
        self.heartbeat.beat_if_due()
        started = time.monotonic()
        try:
            close_old_connections()
            recover = started - self.last_recovery >= RECOVERY_INTERVAL_SECONDS
            if recover:
                self.notice_redis_restart()
            stats = dispatch_due_jobs(recover=recover)
            if recover:
                self.last_recovery = started
        except Exception as exc:
            # PostgreSQL or Redis is away: nothing is lost (the ledger still says what is due); try
            # again every round, but say so once per outage rather than every half second.
            if self.failing_since is None:
                self.failing_since = started
                logger.warning("dispatch rounds fail (%s); retrying until they work again",
                               str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
                               exc_info=True)
            close_old_connections()
            return
        if self.failing_since is not None:
            logger.warning("dispatch rounds work again after %.0f s", started - self.failing_since)
            self.failing_since = None
        if started - self.last_prune >= PRUNE_INTERVAL_SECONDS:
            self.last_prune = started
            try:
                prune_ledger()
            except Exception:  # pruning can wait an hour; dispatching must go on
                logger.warning("pruning the ledger failed; trying again in an hour", exc_info=True)
        if stats.published or stats.reaped or stats.redispatched:
            logger.info("dispatched %s, reaped %d, redispatched %d in %.0f ms", stats.by_queue or 0,
                        stats.reaped, stats.redispatched, (time.monotonic() - started) * 1000)

    def notice_redis_restart(self) -> None:
        """A restarted Redis has forgotten every queued message: publish those jobs again now rather
        than after JOB_REDISPATCH_SECONDS."""
        run_id = wakeup.redis_run_id()
        if run_id is None:
            return
        if self.redis_run_id is not None and run_id != self.redis_run_id:
            count = ledger.redispatch_stale(older_than=0)
            logger.warning("Redis restarted (its queued messages are gone): dispatching %d job(s) again", count)
        self.redis_run_id = run_id
