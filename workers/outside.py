"""TEMP stand-in for the runner engineer's workers/outside.py (the lead drops this at merge).
Implements only the documented names, fenced by attempts as the current ledger does."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

from django.db import close_old_connections, transaction

from workers import ledger, wakeup
from workers.errors import LeaseLost, RetryLater
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
    pass


class OutsideWork(Protocol):
    def prepare(self, attempt: Attempt) -> Any: ...
    def call(self, attempt: Attempt, prepared: Any) -> Any: ...
    def record(self, attempt: Attempt, prepared: Any, result: Any) -> None: ...


def _fail(job: Job, work, attempt, prepared, exc) -> str:
    with transaction.atomic():
        if hasattr(work, "failed"):
            work.failed(attempt, prepared, exc)
        state = ledger.fail(job, exc)
    if isinstance(exc, RetryLater) and state == Job.State.RETRY:
        from datetime import timedelta
        from django.db.models.functions import Now
        Job.objects.filter(id=job.id, state=Job.State.RETRY).update(
            next_attempt_at=Now() + timedelta(seconds=exc.seconds))
    return state


def run_outside_job(job_id: str, dispatch_token: int, *, worker: str, work) -> str:
    close_old_connections()
    job = ledger.claim(job_id, dispatch_token, worker)
    if job is None:
        return "skipped"
    slot = _start_slot(job)
    if not slot.allowed:
        ledger.defer(job, slot.retry_after, "rate limit")
        return "deferred"
    attempt = Attempt(str(job.id), job.queue, job.payload, job.dispatch_token, job.attempts, f"job-{job.id}")
    prepared = None
    try:
        with keep_lease(job):
            try:
                with transaction.atomic():
                    prepared = work.prepare(attempt)
            except AlreadyDone:
                with transaction.atomic():
                    ledger.complete(job)
                return Job.State.SUCCEEDED
            except Exception as exc:
                return _fail(job, work, attempt, prepared, exc)
            try:
                result = work.call(attempt, prepared)
            except Exception as exc:
                return _fail(job, work, attempt, prepared, exc)
            with transaction.atomic():
                work.record(attempt, prepared, result)
                ledger.complete(job)
            return Job.State.SUCCEEDED
    except LeaseLost:
        logger.warning("job %s: late attempt refused", job.id)
        return "lost"
    finally:
        close_old_connections()
        wakeup.nudge()
