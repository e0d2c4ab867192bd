"""Run one ledger job inside a Celery task: claim, keep the lease alive, execute, record the outcome."""
from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.conf import settings
from django.db import (DEFAULT_DB_ALIAS, InterfaceError, OperationalError, close_old_connections, connection,
                       connections, transaction)

from workers import ledger, ratelimit, registry, wakeup
from workers.errors import LeaseLost, Postpone
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
    """Does this worker run more than its queue's configured concurrency, this job included? A worker
    serving several queues has one pool for all of them (deploy/supervisord.conf), so Celery alone
    would let one queue take every slot; the ledger knows what runs where, and the claim counted it
    (ledger.claim: `running_here`)."""
    return job.running_here > settings.QUEUE_CONCURRENCY[job.queue]


def skip_connection_health_checks() -> None:
    """For worker and dispatcher processes: no `SELECT 1` before the first query of every job (or
    round) to test the connection. A connection PostgreSQL dropped is found by the query that uses it
    instead: run_attempt claims again once on a fresh connection, the dispatcher's round fails and the
    next one reconnects, and close_old_connections() drops a connection that saw an error."""
    settings.DATABASES[DEFAULT_DB_ALIAS]["CONN_HEALTH_CHECKS"] = False
    for conn in connections.all(initialized_only=True):
        conn.health_check_enabled = False


# The pid supervisord knows this worker by: its main process, which forks the prefork pool's children
# (they inherit this value) or runs the jobs itself on threads. Set by the main process before the
# pool forks (workers.worker_steps.ReleasePreviousLife); a process that is no Celery worker (a test,
# a shell) claims under its own pid.
_worker_main_pid: int | None = None


def remember_worker_main_process() -> int:
    global _worker_main_pid
    _worker_main_pid = os.getpid()
    return _worker_main_pid


def worker_main_pid() -> int:
    return _worker_main_pid or os.getpid()


def _claim(job_id: str, dispatch_token: int, worker: str) -> Job | None:
    try:
        return ledger.claim(job_id, dispatch_token, worker, pid=worker_main_pid())
    except (InterfaceError, OperationalError) as exc:
        # A connection that died while idle (PostgreSQL restarted): once more on a new one. The claim
        # is a compare-and-set, so one that did commit before the error only makes this one skip.
        logger.info("job %s: claiming failed (%s); once more on a new database connection", job_id,
                    str(exc).strip() or type(exc).__name__)
        connection.close()
        return ledger.claim(job_id, dispatch_token, worker, pid=worker_main_pid())


def _start_slot(job: Job) -> ratelimit.Decision:
    # One member per start: the dispatch token only grows and each token is claimed once, whereas
    # attempts repeat after a requeue, and a repeated member would overwrite an earlier start.
    try:
        return ratelimit.acquire(job.queue, f"{job.id}:{job.dispatch_token}", starting_job=str(job.id))
    except Exception as exc:
        logger.warning("rate limiter unavailable for %s (%s); job %s waits", job.queue, exc, job.id)
        return ratelimit.Decision(False, LIMITER_DOWN_WAIT_SECONDS)


@dataclass
class _Held:
    job: Job
    give_up_at: float


class LeaseKeeper:
    """Renews the leases of the jobs this process runs, from one side thread for all of them.

    The lease dies with the process that runs the job, which is what lets the reaper recover work
    from a vanished host in seconds instead of Redis's visibility timeout. One thread per process
    (started at the first job, again in a forked pool child) renews, every JOB_LEASE_RENEW_SECONDS,
    the lease of every job the process holds in one UPDATE: one write per process per tick however
    many jobs it runs and whenever each started (a job's claim gave it a whole lease, so its first
    renewal can wait for the next tick). The thread does not wait on any job: a job that computes,
    blocks or sleeps for minutes keeps its lease. A lease also stops at CELERY_TASK_TIME_LIMIT: a
    thread-pool worker cannot kill a hung job, so past the limit the job goes back to the reaper and
    runs elsewhere, and the hung attempt's fence is refused.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[tuple[str, int], _Held] = {}
        self._wake = threading.Event()
        self._pid: int | None = None

    def add(self, job: Job) -> tuple[str, int]:
        key = (str(job.id), job.dispatch_token)
        with self._lock:
            if self._pid != os.getpid():  # first use, or a forked child: the parent's thread is not here
                self._held, self._wake, self._pid = {}, threading.Event(), os.getpid()
                threading.Thread(target=self._run, args=(self._wake,), name="lease-keeper", daemon=True).start()
            was_idle = not self._held
            self._held[key] = _Held(job, time.monotonic() + settings.CELERY_TASK_TIME_LIMIT)
        if was_idle:
            self._wake.set()  # the thread waits without a timeout while it holds nothing: start ticking
        return key

    def remove(self, key: tuple[str, int]) -> None:
        with self._lock:
            self._held.pop(key, None)

    def _run(self, wake: threading.Event) -> None:
        while True:
            with self._lock:
                idle = not self._held
            if idle:
                connection.close()  # this thread's own connection: nothing to renew until the next job
                wake.wait()
                wake.clear()
                # The job that woke us was claimed just now with a whole lease: renew it a tick later.
                time.sleep(settings.JOB_LEASE_RENEW_SECONDS)
                continue
            started = time.monotonic()
            try:
                self.renew_due()
            except Exception:  # a database blip: keep trying until the leases run out
                logger.warning("could not renew job leases", exc_info=True)
                close_old_connections()
            # Ticks at a fixed pace from their starts: a slow renewal is followed by the next one
            # sooner, never by two in a row making up for it.
            time.sleep(max(0.0, settings.JOB_LEASE_RENEW_SECONDS - (time.monotonic() - started)))

    def renew_due(self) -> None:
        """Renew every held lease in one UPDATE (all are due at every tick)."""
        now = time.monotonic()
        with self._lock:
            for key, held in list(self._held.items()):
                if now >= held.give_up_at:
                    logger.warning("job %s ran past CELERY_TASK_TIME_LIMIT (%ss): no longer renewing its lease",
                                   held.job.id, settings.CELERY_TASK_TIME_LIMIT)
                    del self._held[key]
            due = dict(self._held)
        if not due:
            return
        renewed = ledger.renew_leases([held.job for held in due.values()])
        with self._lock:
            for key in due:
                if key in self._held and key not in renewed:
                    del self._held[key]  # the job moved on without us; completion will notice


LEASES = LeaseKeeper()


@contextmanager
def keep_lease(job: Job) -> Iterator[None]:
    """Keep the job's lease alive while the block runs (LeaseKeeper)."""
    key = LEASES.add(job)
    try:
        yield
    finally:
        LEASES.remove(key)


def run_attempt(job_id: str, dispatch_token: int, *, worker: str, execute: Callable[[Job], str]) -> str:
    """The frame every attempt runs in, whatever its shape: claim the job for this message, take a
    start slot from the queue's rate limit, then `execute(job)` while the lease is kept alive.
    Returns the job's new state, or what happened instead ("skipped", "held", "deferred", "lost").

    `execute` records its outcome through the ledger (complete or fail), each refused with LeaseLost
    once this attempt no longer owns the job: the refusal is logged here and nothing else happens.
    """
    close_old_connections()
    job = _claim(job_id, dispatch_token, worker)
    if job is None:
        logger.info("job %s token %s: already claimed, finished or re-dispatched; skipping", job_id, dispatch_token)
        return "skipped"
    held = held_by_gate(job)
    if held is not None:
        # Before its rate slot is taken: a held job costs its queue nothing, and waits (pending, its
        # attempt not counted) while the gate keeps the queue paused.
        ledger.defer(job, 0, held)
        logger.info("job %s (%s) waits: %s", job.id, job.queue, held)
        close_old_connections()
        return "held"
    if worker_at_concurrency(job):
        ledger.defer(job, WORKER_FULL_WAIT_SECONDS, "worker at its queue's concurrency")
        close_old_connections()
        return "deferred"
    slot = _start_slot(job)
    if not slot.allowed:
        ledger.defer(job, slot.retry_after, "rate limit")
        close_old_connections()
        return "deferred"
    if slot.at is not None:  # a queue without a limit started at its claim
        ledger.mark_started(job, slot.at)  # if the job moved on meanwhile, execute's first ledger step says so
    try:
        with keep_lease(job):
            return execute(job)
    except LeaseLost:
        _log_refused(job)
        return "lost"
    finally:
        close_old_connections()
        wakeup.nudge(freed=True)  # a slot is free: the dispatcher may publish the next job now


def held_by_gate(job: Job) -> str | None:
    """Why a gate of the job's queue (workers.registry.gate) holds it back, or None to run it."""
    for gate in registry.gates(job.queue):
        reason = gate.hold()
        if reason is not None:
            return f"{gate.name}: {reason}"
    return None


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
    """Record a failed attempt (retry or dead), or give back a postponed one (Postpone: "deferred",
    its attempt not counted, so a wait of any length never dead-letters the job); LeaseLost passes
    through to run_attempt. Every way an attempt ends early comes here (run_job, and each step of
    workers.outside), so a job of either kind may postpone itself at any step."""
    if isinstance(exc, LeaseLost):
        raise exc
    if isinstance(exc, Postpone):
        ledger.defer_owned(job, exc.seconds, exc.reason)
        logger.info("job %s (%s) postponed %.0fs: %s", job.id, job.queue, exc.seconds, exc.reason)
        return "deferred"
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
