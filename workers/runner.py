"""Run one ledger job inside a Celery task: claim, keep the lease alive, execute, record the outcome."""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import close_old_connections, connection, transaction

from workers import ledger, ratelimit, wakeup
from workers.errors import LeaseLost
from workers.models import Job

logger = logging.getLogger(__name__)

JobHandler = Callable[[Job], None]

# When Redis cannot be asked for a start slot, the job waits this long in the ledger rather than
# starting unmetered: the limit protects the APIs behind the queue.
LIMITER_DOWN_WAIT_SECONDS = 5.0
# A job given back because its worker already runs its queue's concurrency waits this long; a job
# finishing nudges the dispatcher sooner.
WORKER_FULL_WAIT_SECONDS = 1.0


def worker_at_concurrency(job: Job) -> bool:
    """Does this worker already run its queue's configured concurrency, this job included? A worker
    serving several queues has one pool for all of them (deploy/supervisord.conf), so Celery alone
    would let one queue take every slot; the ledger knows what runs where."""
    running = Job.objects.filter(queue=job.queue, state=Job.State.RUNNING, worker=job.worker).count()
    return running > settings.QUEUE_CONCURRENCY[job.queue]


def _start_slot(job: Job) -> ratelimit.Decision:
    # One member per start: the dispatch token only grows and each token is claimed once, whereas
    # attempts repeat after a requeue, and a repeated member would overwrite an earlier start.
    try:
        return ratelimit.acquire(job.queue, f"{job.id}:{job.dispatch_token}", starting_job=str(job.id))
    except Exception as exc:
        logger.warning("rate limiter unavailable for %s (%s); job %s waits", job.queue, exc, job.id)
        return ratelimit.Decision(False, LIMITER_DOWN_WAIT_SECONDS)


@contextmanager
def keep_lease(job: Job) -> Iterator[None]:
    """Renew the job's lease from a side thread while the handler runs.

    The lease dies with the process that runs the job, which is what lets the reaper
    recover work from a killed worker in seconds instead of Redis's visibility timeout. It also
    stops at CELERY_TASK_TIME_LIMIT: a thread-pool worker cannot kill a hung job, so past the limit
    the job goes back to the reaper and runs elsewhere, and the hung attempt's fence is refused.
    """
    stop = threading.Event()
    interval = settings.JOB_LEASE_SECONDS / 3
    give_up_at = time.monotonic() + settings.CELERY_TASK_TIME_LIMIT

    def renew() -> None:
        try:
            while not stop.wait(interval):
                if time.monotonic() >= give_up_at:
                    logger.warning("job %s ran past CELERY_TASK_TIME_LIMIT (%ss): no longer renewing its lease",
                                   job.id, settings.CELERY_TASK_TIME_LIMIT)
                    return
                try:
                    if not ledger.renew_lease(job):
                        return  # the job moved on without us; completion will notice
                except Exception:  # a database blip: keep trying until the lease runs out
                    logger.warning("could not renew the lease of job %s", job.id, exc_info=True)
                    close_old_connections()
        finally:
            connection.close()  # this thread's own connection

    thread = threading.Thread(target=renew, name=f"lease-{job.id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def run_attempt(job_id: str, dispatch_token: int, *, worker: str, execute: Callable[[Job], str]) -> str:
    """The frame every attempt runs in, whatever its shape: claim the job for this message, take a
    start slot from the queue's rate limit, then `execute(job)` while the lease is kept alive.
    Returns the job's new state, or what happened instead ("skipped", "deferred", "lost").

    `execute` records its outcome through the ledger (complete or fail), each refused with LeaseLost
    once this attempt no longer owns the job: the refusal is logged here and nothing else happens.
    """
    close_old_connections()
    job = ledger.claim(job_id, dispatch_token, worker)
    if job is None:
        logger.info("job %s token %s: already claimed, finished or re-dispatched; skipping", job_id, dispatch_token)
        return "skipped"
    if worker_at_concurrency(job):
        ledger.defer(job, WORKER_FULL_WAIT_SECONDS, "worker at its queue's concurrency")
        close_old_connections()
        return "deferred"
    slot = _start_slot(job)
    if not slot.allowed:
        ledger.defer(job, slot.retry_after, "rate limit")
        close_old_connections()
        return "deferred"
    ledger.mark_started(job, slot.at)  # if the job moved on meanwhile, execute's first ledger step says so
    try:
        with keep_lease(job):
            return execute(job)
    except LeaseLost:
        _log_refused(job)
        return "lost"
    finally:
        close_old_connections()
        wakeup.nudge()  # a slot is free: the dispatcher may publish the next job now


def _log_refused(job: Job) -> None:
    try:
        now = Job.objects.filter(id=job.id).values_list("state", "dispatch_token").first()
    except Exception:  # the database is away: the refusal itself is what matters
        now = None
    state, fence = now or ("unknown", "unknown")
    logger.warning("job %s: late attempt %d (fence %d) refused, the job is %s under fence %s; "
                   "its effects were rolled back and its result discarded",
                   job.id, job.attempts, job.dispatch_token, state, fence)


def fail_unless_lost(job: Job, exc: BaseException) -> str:
    """Record a failed attempt (retry or dead); LeaseLost passes through to run_attempt."""
    if isinstance(exc, LeaseLost):
        raise exc
    return ledger.fail(job, exc)


def run_job(job_id: str, dispatch_token: int, *, worker: str, handler: JobHandler) -> str:
    """Execute `handler(job)` at most once to success for this job; returns the job's new state.

    The handler's database writes and the job's completion commit together, so a crash at any point
    leaves either both or neither. (Work that calls out of the system: workers.outside.)
    """
    def execute(job: Job) -> str:
        try:
            with transaction.atomic():
                handler(job)
                ledger.complete(job)
        except Exception as exc:  # every failure is recorded; PermanentError decides retry vs dead
            return fail_unless_lost(job, exc)
        return Job.State.SUCCEEDED

    return run_attempt(job_id, dispatch_token, worker=worker, execute=execute)
