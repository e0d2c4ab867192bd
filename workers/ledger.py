"""The job ledger's state changes. Every change is one guarded UPDATE, so two processes racing on a
job (a duplicate message, a reaper and a slow worker) cannot both win.

pending/retry --dispatch--> dispatched --claim--> running --complete--> succeeded
      ^                         |                    |--fail--> retry (backoff) or dead (dead-letter row)
      '------ redispatch_stale -'<-- reap_expired ---'
pending/retry/dispatched --cancel_not_started--> cancelled (a person's decision; never claimed again)
"""
from __future__ import annotations

import logging
import os
import traceback
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.db.models.functions import Now

from resilience.redaction import redact_text
from workers.errors import LeaseLost, is_permanent, is_rejected_input
from workers.models import Job, JobFailure
from workers import wakeup
from workers.retry import max_attempts_for, retry_delay_seconds
from workers import registry
from workers.signals import job_dead_lettered, job_requeued
from workers.sql import EXPIRE_LEASES_SQL, NO_FSYNC, RUNNING_PIDS_SQL

logger = logging.getLogger(__name__)
State = Job.State


def enqueue(queue: str, task: str, payload: dict[str, Any], *, idempotency_key: str | None = None,
            delay_seconds: float = 0) -> Job:
    """Record a job; call it inside the transaction that writes the row the job is about.

    With an idempotency key, enqueuing the same work twice returns the first job.
    """
    if queue not in settings.QUEUE_NAMES:
        raise ValueError(f"unknown queue {queue!r}")
    fields = {
        "queue": queue,
        "task": task,
        "payload": payload,
        "max_attempts": max_attempts_for(queue),
        "next_attempt_at": Now() + timedelta(seconds=delay_seconds),
    }
    if idempotency_key is None:
        job = Job.objects.create(**fields)
    else:
        job, _ = Job.objects.get_or_create(idempotency_key=idempotency_key, defaults=fields)
    wakeup.nudge_on_commit()  # after the insert: outside a transaction on_commit runs at once
    return job


@dataclass(frozen=True)
class Dispatch:
    job_id: str
    task: str
    queue: str
    token: int


@dataclass(frozen=True)
class Wanted:
    """What a dispatch round may take from one queue: at most `most` jobs, and then only while the
    queue has fewer than `in_flight_cap` jobs dispatched or running (None: no cap) and, when the
    queue is rate limited, fewer jobs dispatched but not started than `free_slots` (None: no limit)."""
    queue: str
    most: int
    in_flight_cap: int | None = None
    free_slots: int | None = None


# One statement for every queue of the round: per queue, how many it may take (its in-flight jobs
# counted, a paused queue skipped), then its due jobs, oldest first, locked with SKIP LOCKED (a second
# dispatcher during a failover takes other rows instead of waiting), marked dispatched with a new
# token and returned. Counted and taken under one snapshot, in one round trip.
_TAKE_DUE_SQL = NO_FSYNC + """
WITH wanted AS (
  SELECT w.queue,
         GREATEST(0, LEAST(w.most,
                           COALESCE(w.cap - c.in_flight, w.most),
                           COALESCE(w.free_slots - c.not_started, w.most))) AS n
    FROM unnest(%(queues)s::text[], %(most)s::int[], %(caps)s::int[], %(free)s::int[]) AS w(queue, most, cap, free_slots)
    CROSS JOIN LATERAL (
      SELECT count(*) AS in_flight, count(*) FILTER (WHERE f.state = 'dispatched') AS not_started
        FROM workers_job f WHERE f.queue = w.queue AND f.state IN ('dispatched', 'running')) c
   WHERE NOT EXISTS (SELECT 1 FROM workers_queuepause p WHERE p.queue = w.queue)
), due AS (
  SELECT d.id
    FROM wanted CROSS JOIN LATERAL (
      SELECT j.id FROM workers_job j
       WHERE j.queue = wanted.queue AND j.state IN ('pending', 'retry') AND j.next_attempt_at <= statement_timestamp()
       ORDER BY j.next_attempt_at
       LIMIT wanted.n
       FOR UPDATE SKIP LOCKED) d
   WHERE wanted.n > 0
)
UPDATE workers_job SET state = 'dispatched', dispatch_token = dispatch_token + 1,
       dispatched_at = statement_timestamp(), updated_at = statement_timestamp()
 WHERE id IN (SELECT id FROM due)
RETURNING id, task, queue, dispatch_token
"""


def take_due(wanted: list[Wanted]) -> list[Dispatch]:
    """Mark due jobs of every queue in `wanted` dispatched (within each one's bounds) and return what
    to publish, in one round trip."""
    wanted = [w for w in wanted if w.most > 0]
    if not wanted:
        return []
    with connection.cursor() as cur:
        cur.execute(_TAKE_DUE_SQL, {"queues": [w.queue for w in wanted], "most": [w.most for w in wanted],
                                    "caps": [w.in_flight_cap for w in wanted],
                                    "free": [w.free_slots for w in wanted]})
        rows = cur.fetchall()
    order = {w.queue: n for n, w in enumerate(wanted)}
    return [Dispatch(str(job_id), task, queue, token)
            for job_id, task, queue, token in sorted(rows, key=lambda r: order[r[2]])]


def take_due_jobs(queue: str, limit: int) -> list[Dispatch]:
    """Mark up to `limit` due jobs of `queue` dispatched and return what to publish (a paused queue
    gives none)."""
    return take_due([Wanted(queue, limit)])


def undo_dispatch(dispatch: Dispatch) -> bool:
    """The publish failed: put the job back so the next round tries again."""
    return undo_dispatches([dispatch]) == 1


def undo_dispatches(dispatches: list[Dispatch]) -> int:
    """Put back, in one update, every job of a batch whose publish failed or was never tried."""
    if not dispatches:
        return 0
    published_as = Q()
    for dispatch in dispatches:
        published_as |= Q(id=dispatch.job_id, dispatch_token=dispatch.token)
    return Job.objects.filter(published_as, state=State.DISPATCHED).update(state=State.PENDING, updated_at=Now())


# Claims of one worker's processes take turns (an advisory lock for the claim's own transaction), so
# each claim counts the jobs its worker already runs with every earlier claim committed and visible:
# two pool children claiming at once can never both see room for one more. Class id of the lock's
# two-part key (the worker's name hashed is the other part), apart from the dispatcher's lock.
CLAIM_LOCK_CLASS = 0x5E52

# One round trip (psycopg2 sends both statements as one query, one implicit transaction): the lock,
# then the compare-and-set dispatched -> running, which returns the whole row and how many jobs of
# its queue this worker runs besides it.
_CLAIM_SQL = NO_FSYNC + """
SELECT pg_advisory_xact_lock(%(lock_class)s, hashtext(%(worker)s));
UPDATE workers_job SET state = 'running', attempts = attempts + 1, worker = %(worker)s, worker_pid = %(pid)s,
       started_at = statement_timestamp(), slot_at = NULL,
       lease_expires_at = statement_timestamp() + %(lease)s * interval '1 second', updated_at = statement_timestamp()
 WHERE id = %(id)s AND state = 'dispatched' AND dispatch_token = %(token)s
RETURNING workers_job.*,
          (SELECT count(*) FROM workers_job other
            WHERE other.queue = workers_job.queue AND other.state = 'running' AND other.worker = %(worker)s
              AND other.id <> workers_job.id) AS others_running
"""


def claim(job_id: str, token: int, worker: str, *, pid: int | None = None) -> Job | None:
    """Compare-and-set dispatched -> running, in one round trip. None when this message is stale or a
    duplicate. `pid` is the worker's main process (workers.runner.worker_main_pid; this process's own
    by default), so that the jobs of a worker that died can be told from its successor's under the same
    name (expire_leases_of). The job returned carries `running_here`: the jobs of its queue that this
    worker runs, this one included (what workers.runner.worker_at_concurrency checks)."""
    params = {"lock_class": CLAIM_LOCK_CLASS, "worker": worker[:200], "pid": os.getpid() if pid is None else pid,
              "lease": settings.JOB_LEASE_SECONDS, "id": str(job_id), "token": token}
    rows = list(Job.objects.raw(_CLAIM_SQL, params))
    if not rows:
        return None
    job = rows[0]
    job.running_here = job.others_running + 1
    return job


def mark_started(job: Job, slot_at: datetime | None) -> bool:
    """The attempt took its start slot from the rate limit (at `slot_at`, by Redis's clock): it
    starts now, not at its claim, which can come moments before its slot frees (the message was
    published while another slot was free, or the worker was slow to ask). started_at stays on the
    database's clock like every other time of the ledger; slot_at keeps the limiter's own moment,
    so the ledger counts exactly the starts the limit allowed in any window (make chaos does).
    False when this attempt no longer owns the job."""
    with connection.cursor() as cursor:
        cursor.execute(
            NO_FSYNC + f"UPDATE {Job._meta.db_table} SET started_at = now(), slot_at = %s, updated_at = now() "
            "WHERE id = %s AND state = %s AND dispatch_token = %s RETURNING started_at",
            [slot_at, job.id, State.RUNNING, job.dispatch_token],
        )
        row = cursor.fetchone()
    if row is None:
        return False
    job.started_at, job.slot_at = row[0], slot_at
    return True


def _owned(job: Job):
    """The queryset that matches `job` only while this attempt still owns it.

    The fence is the dispatch token the attempt claimed: it grows at every dispatch and nothing resets
    it, whereas `attempts` starts again from 0 after requeue_dead, so a stalled attempt that was reaped
    could otherwise find a requeued run of the same job at its own attempt number and act as its owner.
    """
    return Job.objects.filter(id=job.id, state=State.RUNNING, dispatch_token=job.dispatch_token)


def _lease_lost(job: Job) -> LeaseLost:
    return LeaseLost(f"job {job.id} attempt {job.attempts} (fence {job.dispatch_token}) no longer owns its lease")


def renew_lease(job: Job) -> bool:
    return bool(
        _owned(job).update(lease_expires_at=Now() + timedelta(seconds=settings.JOB_LEASE_SECONDS))
    )


def renew_leases(jobs: list[Job]) -> set[tuple[str, int]]:
    """Renew, in one UPDATE, the leases of the attempts that still own their job; returns the
    (job id, dispatch token) of those renewed."""
    if not jobs:
        return set()
    with connection.cursor() as cur:
        cur.execute(
            NO_FSYNC + "UPDATE workers_job SET lease_expires_at = statement_timestamp() + %s * interval '1 second'"
            " WHERE state = 'running' AND (id, dispatch_token) IN (SELECT * FROM unnest(%s::uuid[], %s::int[]))"
            " RETURNING id, dispatch_token",
            [settings.JOB_LEASE_SECONDS, [str(job.id) for job in jobs], [job.dispatch_token for job in jobs]])
        return {(str(job_id), token) for job_id, token in cur.fetchall()}


def ensure_owned(job: Job) -> None:
    """Renew the lease, or raise LeaseLost if this attempt no longer owns the job. Inside a
    transaction the job's row stays locked until it ends, so nobody takes the job over meanwhile."""
    if not renew_lease(job):
        raise _lease_lost(job)


def complete(job: Job) -> None:
    """Mark the job succeeded. Call inside the transaction holding the job's effects: if the job
    is no longer ours, LeaseLost rolls those effects back."""
    if not _owned(job).update(state=State.SUCCEEDED, finished_at=Now(), lease_expires_at=None,
                              last_error="", updated_at=Now()):
        raise _lease_lost(job)


def _record_failure(job: Job, message: str, *, rejected: bool = False) -> None:
    JobFailure.objects.create(job_id=job.id, queue=job.queue, attempt=job.attempts, worker=job.worker,
                              started_at=job.started_at, slot_at=job.slot_at, error=message[:2000],
                              rejected=rejected)


def fail(job: Job, exc: BaseException) -> str:
    """Record a failed attempt: retry later, or dead-letter it. Returns the new state."""
    # Redacted here, once, so the ledger, the failure history, the log, Celery's event and the
    # dead-letter entry all carry the same text and none of them a secret quoted by the error.
    message = redact_text(f"{type(exc).__name__}: {exc}")
    stack = redact_text("".join(traceback.format_exception(exc)))
    permanent = is_permanent(exc)
    rejected = is_rejected_input(exc)  # its own input was invalid: health counts it apart from failures
    with transaction.atomic():
        _record_failure(job, message, rejected=rejected)
        if permanent or job.attempts >= job.max_attempts:
            if not _owned(job).update(state=State.DEAD, finished_at=Now(), lease_expires_at=None,
                                      last_error=message, updated_at=Now(), rejected=rejected):
                raise _lease_lost(job)
            _dead_letter(job, message, stack)
            return State.DEAD
        delay = retry_delay_seconds(job.attempts, exc)  # a RetryLater may ask for longer than the backoff
        if not _owned(job).update(state=State.RETRY, lease_expires_at=None, last_error=message,
                                  next_attempt_at=Now() + timedelta(seconds=delay), updated_at=Now()):
            raise _lease_lost(job)
    logger.warning("job %s (%s) attempt %d/%d failed, retry in %.1fs: %s",
                   job.id, job.queue, job.attempts, job.max_attempts, delay, message)
    return State.RETRY


def _dead_letter(job: Job, message: str, stack: str) -> None:
    entry = registry.store_dead_letter(
        queue_name=job.queue,
        job_id=str(job.id),
        job_data=job.payload,
        error_message=message,
        error_stack=stack,
        attempts_made=job.attempts,
    )
    job_dead_lettered.send(sender=Job, job=job, entry=entry)
    logger.error("job %s (%s) dead-lettered after %d attempt(s): %s", job.id, job.queue, job.attempts, message)


def _end_lost_attempt(job: Job, message: str) -> str:
    """An attempt whose process is gone (its lease expired, or its pool child died): it counts as a
    failure, so a job that keeps killing its worker ends in the dead-letter queue once its attempts
    are used up; before that it is pending again at once (nothing to wait for: the worker, not the
    work, failed). Inside the caller's transaction, with the job's row locked. Returns the new state."""
    _record_failure(job, message)
    if job.attempts >= job.max_attempts:
        _owned(job).update(state=State.DEAD, finished_at=Now(), lease_expires_at=None,
                           last_error=message, updated_at=Now())
        _dead_letter(job, message, "")
        return State.DEAD
    _owned(job).update(state=State.PENDING, next_attempt_at=Now(), lease_expires_at=None,
                       last_error=message, updated_at=Now())
    logger.warning("job %s (%s): %s; back to pending", job.id, job.queue, message)
    return State.PENDING


def reap_expired_leases(limit: int = 500) -> int:
    """Running jobs whose worker stopped renewing their lease (crashed, killed, cut off) for longer
    than the lease and JOB_LEASE_GRACE_SECONDS: the grace is what a live worker's renewing thread may
    be late by (starved for CPU, a slow commit) before its job is taken from it. A lease ended on
    purpose (expire_leases_of: its process is known gone) lies far in the past and is taken at once.

    The lost attempt counts: a job that keeps killing its worker ends in the dead-letter queue.
    """
    reaped = 0
    with transaction.atomic():
        expired = list(
            Job.objects.select_for_update(skip_locked=True)
            .filter(state=State.RUNNING,
                    lease_expires_at__lt=Now() - timedelta(seconds=settings.JOB_LEASE_GRACE_SECONDS))
            .order_by("lease_expires_at")[:limit]
        )
        for job in expired:
            message = redact_text(
                f"WorkerLost: lease expired on {job.worker or 'an unknown worker'} during attempt {job.attempts}")
            _end_lost_attempt(job, message)
            reaped += 1
    return reaped


def redispatch_stale(limit: int = 500, *, older_than: float | None = None) -> int:
    """Dispatched jobs nobody claimed in time (`older_than` seconds, JOB_REDISPATCH_SECONDS by
    default): their message may be gone (Redis restarted without persistence). Publishing again is
    safe: the old message, if it still exists, carries an older dispatch token and claims nothing."""
    wait = settings.JOB_REDISPATCH_SECONDS if older_than is None else older_than
    cutoff = Now() - timedelta(seconds=wait)
    ids = list(
        Job.objects.filter(state=State.DISPATCHED, dispatched_at__lt=cutoff).values_list("id", flat=True)[:limit]
    )
    if not ids:
        return 0
    count = Job.objects.filter(id__in=ids, state=State.DISPATCHED, dispatched_at__lt=cutoff).update(
        state=State.PENDING, updated_at=Now()
    )
    if count:
        logger.warning("%d dispatched job(s) were not claimed within %ss; dispatching again", count, wait)
    return count


def enqueue_many(queue: str, task: str, jobs: list[tuple[Any, dict[str, Any], str | None]]) -> list[Job]:
    """Record many jobs at once: (job id, payload, idempotency key) each. Same rules as enqueue: a
    key that already has a job returns that job (in the input's place) and creates nothing."""
    if queue not in settings.QUEUE_NAMES:
        raise ValueError(f"unknown queue {queue!r}")
    from django.utils import timezone

    now = timezone.now()
    rows = [
        Job(id=job_id, queue=queue, task=task, payload=payload, idempotency_key=key,
            max_attempts=max_attempts_for(queue), next_attempt_at=now)
        for job_id, payload, key in jobs
    ]
    keys = [key for _, _, key in jobs if key is not None]
    if not keys:
        created = Job.objects.bulk_create(rows)
        wakeup.nudge_on_commit()
        return created
    # ON CONFLICT DO NOTHING: a key already taken (before, earlier in this batch, or by a concurrent
    # transaction this insert waits for) keeps its job; then read back what each entry got.
    Job.objects.bulk_create(rows, ignore_conflicts=True)
    by_key = Job.objects.in_bulk(keys, field_name="idempotency_key")
    by_id = Job.objects.in_bulk([row.id for row in rows if row.idempotency_key is None])
    wakeup.nudge_on_commit()
    return [by_key[row.idempotency_key] if row.idempotency_key is not None else by_id[row.id] for row in rows]


def defer(job: Job, seconds: float, reason: str) -> bool:
    """Give back a claimed job that may not start yet (rate limit): it waits in the ledger for
    `seconds`, and the attempt it never made is not counted."""
    deferred = _owned(job).update(
        state=State.PENDING, attempts=F("attempts") - 1, lease_expires_at=None,
        next_attempt_at=Now() + timedelta(seconds=seconds), updated_at=Now(),
    )
    if deferred:
        logger.debug("job %s (%s) deferred %.2fs: %s", job.id, job.queue, seconds, reason)
    return bool(deferred)


def defer_owned(job: Job, seconds: float, reason: str) -> None:
    """defer() for an attempt that already ran part of its work (a workers.errors.Postpone): refused
    with LeaseLost, like fail(), once this attempt no longer owns the job."""
    if not defer(job, seconds, reason):
        raise _lease_lost(job)


def release_lost(job_id: str, token: int, worker: str, reason: str) -> str | None:
    """The process running this attempt is known to be gone (its Celery pool child died): end the
    attempt now instead of waiting for its lease to expire. Returns the job's new state, or None
    when the attempt is not (or no longer) running: it finished, or the reaper got there first.

    Only the attempt started from message `token` on `worker` matches: a newer dispatch of the same
    job, or a copy running elsewhere, is left alone. Like reap_expired_leases, the lost attempt
    counts, so a job that keeps killing its worker ends in the dead-letter queue.
    """
    with transaction.atomic():
        job = (
            Job.objects.select_for_update()
            .filter(id=job_id, state=State.RUNNING, dispatch_token=token, worker=worker[:200])
            .first()
        )
        if job is None:
            return None
        message = redact_text(f"WorkerLost: {reason} on {worker} during attempt {job.attempts}")
        return _end_lost_attempt(job, message)


def requeue_dead(job_id: str) -> Job | None:
    """Put a dead-lettered job back in its queue with fresh attempts. Returns the job, or None when
    it is not dead (already requeued, or never failed). Call inside the transaction that resolves
    its dead-letter entry; receivers of job_requeued reset their own rows in that transaction too."""
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(id=job_id, state=State.DEAD).first()
        if job is None:
            return None
        Job.objects.filter(id=job.id).update(
            state=State.PENDING, attempts=0, max_attempts=max_attempts_for(job.queue), next_attempt_at=Now(),
            started_at=None, slot_at=None, finished_at=None, lease_expires_at=None, worker="", worker_pid=None,
            updated_at=Now(), rejected=False,
        )
        job.refresh_from_db()
        job_requeued.send(sender=Job, job=job)
        wakeup.nudge_on_commit()
    logger.info("job %s (%s) requeued from the dead-letter queue", job.id, job.queue)
    return job


def cancel_not_started(job_ids: Collection[str]) -> list[str]:
    """Cancel the jobs among `job_ids` that no attempt has claimed yet (pending, retry or dispatched);
    returns the ids cancelled. One guarded UPDATE: a job claimed meanwhile is running and is left to
    finish (its effect may be under way, and cannot be undone halfway). A message already in Redis for
    a cancelled job claims nothing: claim() takes only a job still `dispatched` under its token.
    The queue's app marks the rows the jobs were about (workers.registry.on_cancel) in the same
    transaction: a cancelled job never leaves its message or submission waiting for ever."""
    if not job_ids:
        return []
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute(
            "UPDATE workers_job SET state = %s, finished_at = statement_timestamp(), lease_expires_at = NULL,"
            " updated_at = statement_timestamp() WHERE id = ANY(%s::uuid[]) AND state = ANY(%s)"
            " RETURNING id, queue",
            [State.CANCELLED, [str(job_id) for job_id in job_ids], list(Job.NOT_STARTED_STATES)])
        by_queue: dict[str, list[str]] = {}
        for job_id, queue_name in cur.fetchall():
            by_queue.setdefault(queue_name, []).append(str(job_id))
        for queue_name, ids in sorted(by_queue.items()):
            hook = registry.cancel_hook(queue_name)
            if hook is not None:
                hook.handler(ids)
    return [job_id for ids in by_queue.values() for job_id in ids]


def run_now(job_ids: Collection[str]) -> list[str]:
    """Make the waiting jobs among `job_ids` (pending or retry, waiting on their backoff or delay) due
    now; returns the ids moved. The dispatcher takes them at its next round, which this nudges."""
    if not job_ids:
        return []
    with connection.cursor() as cur:
        cur.execute(
            "UPDATE workers_job SET next_attempt_at = statement_timestamp(), updated_at = statement_timestamp()"
            " WHERE id = ANY(%s::uuid[]) AND state = ANY(%s) AND next_attempt_at > statement_timestamp()"
            " RETURNING id",
            [[str(job_id) for job_id in job_ids], list(Job.WAITING_STATES)])
        moved = [str(job_id) for (job_id,) in cur.fetchall()]
    if moved:
        wakeup.nudge_on_commit()
    return moved


def running_pids_of(worker: str) -> set[int]:
    """The main processes (their pids) that claimed the jobs now running under node name `worker`."""
    with connection.cursor() as cur:
        cur.execute(RUNNING_PIDS_SQL, [worker[:200]])
        return {pid for (pid,) in cur.fetchall()}


def expire_leases_of(worker: str, pids: Collection[int]) -> int:
    """The processes `pids` that ran as node `worker` are known to be gone (supervisord saw them exit,
    or a worker of that name starting again found them dead): end the leases of the jobs they were
    running now, so the reaper returns them at its next sweep (within a second) rather than when the
    leases run out. The reaper does the rest as for any expired lease (the attempt counts; the last
    one dead-letters). A job claimed by another process under the same name (the worker supervisord
    already started again) keeps its lease, however early it claimed; so does one claimed before its
    claim recorded a pid (those leases run out by themselves). The SQL is workers.sql's, which
    deploy/supervisor_events.py runs too (that process does not load Django)."""
    if not pids:
        return 0
    with connection.cursor() as cur:
        cur.execute(EXPIRE_LEASES_SQL, [worker[:200], sorted(pids)])
        return cur.rowcount
