"""The dispatcher: publishes due ledger jobs to Redis and recovers jobs whose worker vanished.

Any number of candidates may run (one per pool); only the leader works. Publishing happens after
the ledger says `dispatched`, so a publish that fails is undone and a publish that succeeds is
always on record. The leader's round only dispatches and reaps; everything else the leader does
(its heartbeat, noticing a Redis restart, the apps' registered duties) runs beside it on the
duties' thread (workers.duties), so that none can hold the round.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.db import close_old_connections

from workers import ledger, ratelimit, registry, wakeup
from workers.duties import DutyRunner
from workers.leader import Leadership, dispatcher_leadership
from workers.leader_heartbeat import LeaderHeartbeat
from workers.registry import Duty
from workers.runner import skip_connection_health_checks

logger = logging.getLogger(__name__)


@dataclass
class DispatchStats:
    published: int = 0
    publish_failures: int = 0
    reaped: int = 0
    redispatched: int = 0
    by_queue: dict[str, int] = field(default_factory=dict)


def max_in_flight(queue: str) -> int:
    """Backpressure: never publish more than the pools can run at once, so a backlog waits in the
    ledger (where it is durable and visible) rather than in Redis."""
    return settings.QUEUE_CONCURRENCY[queue] * settings.WORKER_POOLS


def free_slots(queue: str) -> int | None:
    """Start slots free now in the queue's rate limit; None when the queue has no limit.

    The limit itself is enforced when a job starts (runner); the round subtracts the jobs published
    but not started, so the dispatcher does not publish jobs that would only be refused and deferred."""
    free, _ = ratelimit.available(queue)
    return free


def publish(dispatch: ledger.Dispatch, producer=None) -> None:
    from workers.celery_app import celery_app
    app = celery_app()

    app.send_task(
        dispatch.task,
        args=[dispatch.job_id, dispatch.token],
        task_id=dispatch.job_id,
        queue=dispatch.queue,
        routing_key=dispatch.queue,
        producer=producer,
        retry=True,
        retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 1},
    )


def publish_batch(batch: list[ledger.Dispatch], stats: DispatchStats) -> None:
    """Publish a round's jobs through one producer (one broker connection for the whole batch). When
    a publish fails, that job and the rest of the batch go back to waiting in the ledger now, not
    after JOB_REDISPATCH_SECONDS as jobs whose message was lost would."""
    from workers.celery_app import celery_app
    app = celery_app()

    if not batch:
        return
    n = 0
    try:
        with app.producer_or_acquire() as producer:
            for n, dispatch in enumerate(batch):
                publish(dispatch, producer)
                stats.published += 1
                stats.by_queue[dispatch.queue] = stats.by_queue.get(dispatch.queue, 0) + 1
    except Exception as exc:
        stats.publish_failures += 1
        undone = ledger.undo_dispatches(batch[n:])
        logger.warning("publishing job %s failed (%s); %d job(s) of its batch wait in the ledger",
                       batch[n].job_id, exc, undone)


# Recovery sweeps look for rare events (a dead worker, a lost message): twice a second (one indexed
# query each, on job_lease_idx) is part of the vanished host's bound (lease + grace + this), while
# publishing runs at every nudge.
RECOVERY_INTERVAL_SECONDS = 0.5
# A round woken only because a job ended waits this long for more to end (or for new work, which
# cuts the wait short): at most this much later does a freed slot get its next job, and under a
# backlog one round tops up several slots instead of one round per job.
FREED_GATHER_SECONDS = 0.01
# The leader's heartbeat is written only while its round goes on: a round stuck this long (in
# intervals) stops the beats, and health then says there is no live leader.
ROUND_STUCK_INTERVALS = 20


def dispatch_due_jobs(stats: DispatchStats | None = None, *, recover: bool = True, reap: bool = True) -> DispatchStats:
    """One round: recover lost work (unless told not to; reap=False: lost messages only), then
    publish what is due within each queue's capacity."""
    stats = stats or DispatchStats()
    if recover:
        if reap:
            stats.reaped += ledger.reap_expired_leases()
        stats.redispatched += ledger.redispatch_stale()
    wanted = [ledger.Wanted(queue, settings.DISPATCH_BATCH_SIZE, max_in_flight(queue), free_slots(queue))
              for queue in settings.QUEUE_NAMES]
    publish_batch(ledger.take_due(wanted), stats)  # a paused queue gives none: its jobs wait for resume_queue
    return stats


class Dispatcher:
    def __init__(self, leadership: Leadership | None = None, interval: float | None = None, *,
                 duty_thread: bool = True) -> None:
        """duty_thread=False: the duties run only when told (self.duties.run_due()), as tests do."""
        self.leadership = leadership or dispatcher_leadership()
        self.interval = settings.DISPATCH_INTERVAL_SECONDS if interval is None else interval
        self.stop_event = threading.Event()
        self.is_leader = False
        self.last_recovery = 0.0
        self.reap_held_until = 0.0  # after this leader's own rounds stalled (reaper_stalled)
        self.redis_run_id: str | None = None
        self.failing_since: float | None = None
        self.held_checked_at = 0.0
        self.round_at = time.monotonic()  # when a round last ended, for the heartbeat duty
        self.heartbeat = LeaderHeartbeat()
        self.duties = DutyRunner(self.all_duties)
        self.duty_thread = duty_thread

    def all_duties(self) -> list[Duty]:
        """The apps' registered duties, and this leader's own two."""
        return [*registry.duties(),
                Duty("leader heartbeat", self.beat_while_rounds_run, every=min(1.0, self.heartbeat.interval)),
                Duty("noticing a Redis restart", self.notice_redis_restart, every=RECOVERY_INTERVAL_SECONDS)]

    def beat_while_rounds_run(self) -> None:
        # The heartbeat says the leader works: a round stuck in a query or a hung broker stops it.
        if time.monotonic() - self.round_at <= max(ROUND_STUCK_INTERVALS * self.interval, 10.0):
            self.heartbeat.beat_if_due()

    def stop(self) -> None:
        self.stop_event.set()

    def run_forever(self) -> None:
        logger.info("dispatcher candidate started")
        skip_connection_health_checks()  # a round that meets a dropped connection fails; the next reconnects
        try:
            while not self.stop_event.is_set():
                self.tick()
                if self.is_leader:
                    wakeup.wait(self.interval, gather=FREED_GATHER_SECONDS)
                else:
                    self.stop_event.wait(self.interval)
        finally:
            self.duties.stop()
            self.heartbeat.goodbye()
            self.leadership.release()
            logger.info("dispatcher stopped")

    def tick(self) -> None:
        if not self.is_leader:
            self.is_leader = self.leadership.try_acquire()
            if self.is_leader:
                self.held_checked_at = time.monotonic()
                self.last_recovery = 0.0  # a new term: no stall of ours to hold the reaper for
                self.round_at = time.monotonic()
                logger.info("dispatcher: this process is now the leader")
                if self.duty_thread:
                    self.duties.start()
            else:
                return
        elif time.monotonic() - self.held_checked_at >= self.interval:
            # Once per interval, not at every round: a nudged leader runs a round per finished job,
            # and the lock's timeout (DISPATCHER_LEADER_TIMEOUT_SECONDS) is at least 4 intervals.
            # Two leaders for a moment are harmless (every ledger change is a guarded update).
            if not self.leadership.still_held():
                logger.warning("dispatcher: leadership lost; standing by")
                self.is_leader = False
                self.duties.stop()
                self.heartbeat.goodbye()
                return
            self.held_checked_at = time.monotonic()
        started = time.monotonic()
        try:
            close_old_connections()
            recover = started - self.last_recovery >= RECOVERY_INTERVAL_SECONDS
            if recover:
                self.hold_reaper_after_a_stall(started)
            stats = dispatch_due_jobs(recover=recover, reap=started >= self.reap_held_until)
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
        finally:
            self.round_at = time.monotonic()
        if self.failing_since is not None:
            logger.warning("dispatch rounds work again after %.0f s", started - self.failing_since)
            self.failing_since = None
        if stats.published or stats.reaped or stats.redispatched:
            logger.info("dispatched %s, reaped %d, redispatched %d in %.0f ms", stats.by_queue or 0,
                        stats.reaped, stats.redispatched, (time.monotonic() - started) * 1000)

    def hold_reaper_after_a_stall(self, now: float) -> None:
        """The grace rule's second half: a lease is reaped only if its worker could have renewed it.
        When this leader's own sweeps stopped for longer than a renewal tick (PostgreSQL stalled or
        away, this process starved or its rounds failing), the workers' renewals most likely stalled
        alike, and every lease may look expired the moment the database answers again: a slow
        system, not a vanished host. So the reaper waits one whole lease and grace from now, time for
        every live worker to renew; a host that is really gone is reaped after that."""
        if not self.last_recovery:
            return
        silent = now - self.last_recovery
        if silent > RECOVERY_INTERVAL_SECONDS + settings.JOB_LEASE_RENEW_SECONDS:
            self.reap_held_until = now + settings.JOB_LEASE_SECONDS + settings.JOB_LEASE_GRACE_SECONDS
            logger.warning("dispatcher: no recovery sweep for %.1f s; reaping expired leases again in %g s, "
                           "once live workers have had time to renew theirs", silent,
                           settings.JOB_LEASE_SECONDS + settings.JOB_LEASE_GRACE_SECONDS)

    def notice_redis_restart(self) -> None:
        """A restarted Redis has forgotten every queued message: publish those jobs again now rather
        than after JOB_REDISPATCH_SECONDS."""
        run_id = wakeup.redis_run_id()
        if run_id is None:
            return
        if self.redis_run_id is not None and run_id != self.redis_run_id:
            count = ledger.redispatch_stale(older_than=0)
            wakeup.nudge()  # the round publishes them now
            logger.warning("Redis restarted (its queued messages are gone): dispatching %d job(s) again", count)
        self.redis_run_id = run_id
