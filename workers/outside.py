"""Jobs that call out of the system (Claude, an SMTP server, a webhook): the outside call runs with no
database transaction open, and only the attempt that still owns the job may record its result.

run_job holds one transaction around the whole handler: right for work that only writes rows, wrong
for a call that takes seconds and whose effect cannot be rolled back. Here an attempt is three steps:

    prepare  one short transaction: read what the call needs, maybe write a claim row
    call     no transaction, the lease renewed meanwhile; carries the job's idempotency key
    record   one short transaction with the job's completion, refused unless the fence still matches

The fence is the dispatch token the attempt claimed (only grows, never reset): an attempt that stalled
(a stopped process, a PostgreSQL stall longer than the lease) while the reaper gave its job to another
worker finds its fence stale at record time, and its result is discarded. The call itself may then
have happened twice: that is what the idempotency key is for, and why record() must be idempotent.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from django.db import connection, transaction

from workers import ledger
from workers.errors import LeaseLost
from workers.models import Job
from workers.runner import fail_unless_lost, run_attempt

logger = logging.getLogger(__name__)

P = TypeVar("P")
R = TypeVar("R")


@dataclass(frozen=True)
class Attempt:
    job_id: str  # the ledger job
    queue: str
    payload: dict  # the job's payload: ids only, never a copy of business data
    fence: int  # this attempt's fencing token: only grows (never reset, not even by a requeue)
    attempt: int  # 1, 2, 3 ... (informational; resets on requeue: never use it as a fence)
    idempotency_key: str  # stable for the job (same for every attempt): send it with every outside effect


class AlreadyDone(Exception):
    """Raised by prepare() when the job's effect is already recorded (a redelivered or recovered job whose
    site / message already exists): the runner completes the job without calling out."""


class OutsideWork(Protocol[P, R]):
    def prepare(self, attempt: Attempt) -> P:
        """Runs in ONE short transaction (committed before the call). Reads what the call needs and may
        write a claim row (e.g. an email message pending -> sending, stamped with attempt.fence).
        Raise PermanentError (or a subclass, e.g. InvalidData) for a missing row or invalid data,
        AlreadyDone when the result already exists. Must not call the network."""
        ...

    def call(self, attempt: Attempt, prepared: P) -> R:
        """No transaction is open here and must not be opened. The lease is renewed meanwhile by the runner.
        Call the outside service with attempt.idempotency_key. Raise PermanentError for a permanent
        failure (bad request, rejected key, bad mailbox), anything else for a temporary one (it is retried
        with backoff). Raise workers.errors.Postpone(seconds, reason) when the call may not be made yet
        (a budget spent): the job waits, the attempt uncounted, nothing failed. Raise workers.errors.RetryLater(seconds, message) to ask for a specific delay
        (e.g. HTTP 429 retry-after): counted as a failed attempt, retried after max(backoff, seconds)."""
        ...

    def record(self, attempt: Attempt, prepared: P, result: R) -> None:
        """Runs in the SAME short transaction that completes the job, which commits only if this attempt
        still owns the job (fence). Idempotent: a result already recorded is a success, not a second row."""
        ...

    def failed(self, attempt: Attempt, prepared: P, exc: BaseException) -> None:
        """Optional (default: nothing). Runs in the transaction that records the failed attempt, fenced
        like record(): e.g. put an email message back from `sending` to `pending` when the server said 4xx
        before accepting it, or mark an address bounced on 5xx."""
        # Called when call() or record() failed (prepare() has no `prepared` to hand over).


def idempotency_key_for(job: Job) -> str:
    """The same for every attempt of the job, including after a requeue from the dead-letter queue:
    those are retries of the same effect."""
    return f"job-{job.id}"


def run_outside_job(job_id: str, dispatch_token: int, *, worker: str, work: OutsideWork[Any, Any]) -> str:
    """claim (fence = dispatch token) -> rate-limit slot -> prepare (short tx) -> ownership re-checked
    -> call (no tx, lease renewed) -> record + complete (one tx, refused unless the fence still matches).
    A late attempt (its lease was reaped while it stalled, the job ran elsewhere) is refused at record
    time and logged; its result is discarded. Returns the job's new state like run_job."""
    if connection.in_atomic_block:
        # prepare() would not commit before the call, and the call would hold the caller's transaction open.
        raise RuntimeError("run_outside_job must not run inside a transaction")
    return run_attempt(job_id, dispatch_token, worker=worker, execute=lambda job: _execute(job, work))


def _execute(job: Job, work: OutsideWork[Any, Any]) -> str:
    attempt = Attempt(job_id=str(job.id), queue=job.queue, payload=job.payload, fence=job.dispatch_token,
                      attempt=job.attempts, idempotency_key=idempotency_key_for(job))
    try:
        with transaction.atomic():
            # First in the transaction, after the start slot was taken: the job's row stays locked until
            # prepare's writes commit, so no reaper can hand the job to another worker in between, and
            # the call that follows the commit is made by the job's owner.
            ledger.ensure_owned(job)
            prepared = work.prepare(attempt)
    except AlreadyDone:
        with transaction.atomic():
            ledger.complete(job)
        logger.info("job %s (%s): already done, completed without calling out", job.id, job.queue)
        return Job.State.SUCCEEDED
    except Exception as exc:  # a Postpone too: fail_unless_lost gives the attempt back uncounted
        return fail_unless_lost(job, exc)
    try:
        result = work.call(attempt, prepared)
        with transaction.atomic():
            work.record(attempt, prepared, result)
            ledger.complete(job)  # LeaseLost here rolls record() back: a late attempt records nothing
    except Exception as exc:
        return _failed(job, work, attempt, prepared, exc)
    return Job.State.SUCCEEDED


def _failed(job: Job, work: OutsideWork[Any, Any], attempt: Attempt, prepared: Any, exc: BaseException) -> str:
    """Record the failed attempt and run the work's failed() hook in one transaction, fenced by the
    ledger's update: if this attempt no longer owns the job, neither is kept."""
    hook = getattr(work, "failed", None)
    if hook is None or isinstance(exc, LeaseLost):
        return fail_unless_lost(job, exc)
    try:
        with transaction.atomic():
            hook(attempt, prepared, exc)
            return fail_unless_lost(job, exc)
    except LeaseLost:
        raise
    except Exception:
        # The attempt's failure must be recorded all the same, or the job would wait for its lease.
        logger.exception("job %s (%s): the failed() hook of %s raised; recording the failure without it",
                         job.id, job.queue, type(work).__name__)
        return fail_unless_lost(job, exc)
