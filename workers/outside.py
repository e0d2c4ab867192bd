"""TEMP stand-in for workers/outside.py (the runner engineer's module replaces it at merge).

Implements the interface of /work/wt/OUTSIDE.md just enough for delivery's tests: claim -> slot ->
prepare (short tx) -> call (no tx, lease renewed) -> record + complete (one tx, refused unless the
attempt still owns the job). The fence is the dispatch token.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from django.db import close_old_connections, transaction

from workers import ledger, runner, wakeup
from workers.errors import LeaseLost
from workers.models import Job

P = TypeVar("P")
R = TypeVar("R")


@dataclass(frozen=True)
class Attempt:
    job_id: str
    queue: str
    payload: dict
    fence: int
    attempt: int
    idempotency_key: str


class AlreadyDone(Exception):
    """prepare(): the job's effect is already recorded; the job completes without calling out."""


class OutsideWork(Protocol, Generic[P, R]):
    def prepare(self, attempt: Attempt) -> P: ...
    def call(self, attempt: Attempt, prepared: P) -> R: ...
    def record(self, attempt: Attempt, prepared: P, result: R) -> None: ...


def run_outside_job(job_id: str, dispatch_token: int, *, worker: str, work: Any) -> str:
    close_old_connections()
    job = ledger.claim(job_id, dispatch_token, worker)
    if job is None:
        return "skipped"
    slot = runner._start_slot(job)
    if not slot.allowed:
        ledger.defer(job, slot.retry_after, "rate limit")
        close_old_connections()
        return "deferred"
    attempt = Attempt(str(job.id), job.queue, job.payload, job.dispatch_token, job.attempts, f"job:{job.id}")
    prepared: Any = None
    have_prepared = False
    try:
        with runner.keep_lease(job):
            try:
                try:
                    with transaction.atomic():
                        prepared = work.prepare(attempt)
                    have_prepared = True
                except AlreadyDone:
                    with transaction.atomic():
                        ledger.complete(job)
                    return Job.State.SUCCEEDED
                result = work.call(attempt, prepared)
                with transaction.atomic():
                    work.record(attempt, prepared, result)
                    ledger.complete(job)
                return Job.State.SUCCEEDED
            except LeaseLost:
                raise
            except Exception as exc:
                with transaction.atomic():
                    state = ledger.fail(job, exc)
                    if have_prepared and hasattr(work, "failed"):
                        work.failed(attempt, prepared, exc)
                return state
    except LeaseLost:
        return "lost"
    finally:
        close_old_connections()
        wakeup.nudge()
