"""TEMP stand-in for the runner engineer's workers/outside.py (dropped at merge): the documented names
only, so that emails/ can run its tests. Not the real implementation."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

from django.db import close_old_connections, transaction

from workers import ledger, wakeup
from workers.errors import LeaseLost
from workers.models import Job
from workers.runner import _start_slot, keep_lease

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Attempt:
    job_id: str
    queue: str
    payload: dict
    fence: int
    attempt: int
    idempotency_key: str


class AlreadyDone(Exception):
    """prepare() found the effect already recorded: the job completes without calling out."""


class OutsideWork(Protocol):
    def prepare(self, attempt: Attempt) -> Any: ...
    def call(self, attempt: Attempt, prepared: Any) -> Any: ...
    def record(self, attempt: Attempt, prepared: Any, result: Any) -> None: ...
    def failed(self, attempt: Attempt, prepared: Any, exc: BaseException) -> None: ...


def _still_ours(job: Job, fence: int) -> bool:
    return Job.objects.select_for_update().filter(
        id=job.id, state=Job.State.RUNNING, dispatch_token=fence, attempts=job.attempts).exists()


def run_outside_job(job_id: str, dispatch_token: int, *, worker: str, work: OutsideWork) -> str:
    close_old_connections()
    job = ledger.claim(job_id, dispatch_token, worker)
    if job is None:
        return "skipped"
    slot = _start_slot(job)
    if not slot.allowed:
        ledger.defer(job, slot.retry_after, "rate limit")
        return "deferred"
    attempt = Attempt(str(job.id), job.queue, job.payload, job.dispatch_token, job.attempts,
                      job.idempotency_key or str(job.id))
    try:
        with keep_lease(job):
            try:
                with transaction.atomic():
                    prepared = work.prepare(attempt)
            except AlreadyDone:
                with transaction.atomic():
                    if not _still_ours(job, attempt.fence):
                        raise LeaseLost(job.id)
                    ledger.complete(job)
                return Job.State.SUCCEEDED
            except Exception as exc:
                return ledger.fail(job, exc)
            try:
                result = work.call(attempt, prepared)
            except Exception as exc:
                with transaction.atomic():
                    if not _still_ours(job, attempt.fence):
                        raise LeaseLost(job.id) from exc
                    getattr(work, "failed", lambda *a: None)(attempt, prepared, exc)
                    return ledger.fail(job, exc)
            with transaction.atomic():
                if not _still_ours(job, attempt.fence):
                    raise LeaseLost(job.id)
                work.record(attempt, prepared, result)
                ledger.complete(job)
            return Job.State.SUCCEEDED
    except LeaseLost:
        logger.warning("job %s attempt %d: fence %d no longer owns the job; result discarded",
                       job.id, job.attempts, attempt.fence)
        return "lost"
    finally:
        close_old_connections()
        wakeup.nudge()
