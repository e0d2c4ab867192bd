"""run_outside_job against real PostgreSQL, called directly after the job was dispatched (no broker).

Toy works write to tables of their own (tests.system.outside_task) and note what they saw.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from dlq.models import DeadLetter
from tests.system import outside_task as toy
from workers import ledger, ratelimit, runner
from workers.errors import InvalidData, MissingResource, RetryLater
from workers.models import Job, JobFailure
from workers.outside import AlreadyDone, Attempt, OutsideWork, run_outside_job

pytestmark = pytest.mark.django_db(transaction=True)
QUEUE = "site-generation"


@pytest.fixture(autouse=True)
def toy_tables():
    toy.create_tables()
    yield
    toy.drop_tables()


def dispatched(job: Job | None = None) -> ledger.Dispatch:
    job = job or ledger.enqueue(QUEUE, "tests.toy", {"lead": 7})
    [d] = ledger.take_due_jobs(QUEUE, 1)
    assert d.job_id == str(job.id)
    return d


def run(d: ledger.Dispatch, work, worker: str = "w1") -> str:
    return run_outside_job(d.job_id, d.token, worker=worker, work=work)


def job_of(d: ledger.Dispatch) -> Job:
    return Job.objects.get(id=d.job_id)


def elsewhere(action: Callable[[], object]) -> object:
    """Run `action` on another thread, with its own database connection, as another process would."""
    out: list[object] = []

    def target() -> None:
        try:
            out.append(action())
        finally:
            connection.close()

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(30)
    return out[0] if out else None


def reap_and_redispatch(job_id: str, *, requeue: bool = False, worker: str = "w2") -> Job:
    """What the system does while an attempt stalls past its lease: the reaper takes the job back, the
    dispatcher publishes it again and another worker claims it. With `requeue` the stalled attempt was
    the last one: the job is dead-lettered and an operator requeues it, so the new attempt has the
    same attempt number as the stalled one."""
    def act() -> Job:
        with transaction.atomic():  # the row stays locked: the stalled attempt's lease thread cannot renew in between
            Job.objects.filter(id=job_id).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
            assert ledger.reap_expired_leases() == 1
        if requeue:
            assert ledger.requeue_dead(job_id) is not None
        [d] = ledger.take_due_jobs(QUEUE, 1)
        claimed = ledger.claim(d.job_id, d.token, worker)
        assert claimed is not None
        return claimed

    return elsewhere(act)


class Toy(OutsideWork[str, str]):
    """Records every step it reaches; each step's behaviour can be replaced per test."""

    def __init__(self, *, prepare=None, call=None, record=None, failed=None) -> None:
        self.seen: list[tuple[str, Attempt]] = []
        self._prepare, self._call, self._record, self._failed = prepare, call, record, failed

    def prepare(self, attempt: Attempt) -> str:
        self.seen.append(("prepare", attempt))
        toy.log(attempt, "prepare")
        return self._prepare(attempt) if self._prepare else f"lead {attempt.payload['lead']}"

    def call(self, attempt: Attempt, prepared: str) -> str:
        self.seen.append(("call", attempt))
        return self._call(attempt, prepared) if self._call else f"site for {prepared}"

    def record(self, attempt: Attempt, prepared: str, result: str) -> None:
        self.seen.append(("record", attempt))
        if self._record:
            self._record(attempt, prepared, result)
        toy.record_result(attempt, result)

    def failed(self, attempt: Attempt, prepared: str, exc: BaseException) -> None:
        self.seen.append(("failed", attempt))
        toy.log(attempt, "failed")
        if self._failed:
            self._failed(attempt, prepared, exc)

    def steps(self) -> list[str]:
        return [step for step, _ in self.seen]


def raising(exc: BaseException):
    def fn(*args):
        raise exc
    return fn


# --- the happy path ------------------------------------------------------------------------------

def test_success_records_the_result_and_completes_the_job():
    d = dispatched()
    work = Toy()
    assert run(d, work) == "succeeded"
    job = job_of(d)
    assert job.state == "succeeded" and job.attempts == 1
    assert work.steps() == ["prepare", "call", "record"]
    attempt = work.seen[0][1]
    assert (attempt.job_id, attempt.queue, attempt.payload, attempt.fence, attempt.attempt) == (
        d.job_id, QUEUE, {"lead": 7}, d.token, 1)
    assert toy.results(d.job_id) == [(attempt.idempotency_key, d.token, "site for lead 7")]


def test_the_call_runs_with_no_transaction_open_after_prepares_writes_committed():
    d = dispatched()
    inside: dict[str, object] = {}

    def call(attempt, prepared):
        inside["in_atomic_block"] = connection.in_atomic_block
        # Another connection (another process) sees prepare's writes: they were committed before the call.
        inside["prepared_elsewhere"] = elsewhere(lambda: toy.logged(d.job_id, "prepare"))
        return "ok"

    assert run(d, Toy(call=call)) == "succeeded"
    assert inside == {"in_atomic_block": False, "prepared_elsewhere": [d.token]}


def test_the_lease_is_renewed_during_a_long_call(settings):
    settings.JOB_LEASE_SECONDS = 1.2
    d = dispatched()
    seen = []

    def call(attempt, prepared):
        first = job_of(d).lease_expires_at
        time.sleep(1.5)  # longer than the lease: only renewal keeps it
        seen.append(job_of(d).lease_expires_at > first)
        seen.append(elsewhere(ledger.reap_expired_leases))
        return "ok"

    assert run(d, Toy(call=call)) == "succeeded"
    assert seen == [True, 0]


def test_refuses_to_run_inside_a_transaction():
    d = dispatched()
    with pytest.raises(RuntimeError, match="inside a transaction"), transaction.atomic():
        run(d, Toy())
    assert job_of(d).state == "dispatched"


# --- prepare -------------------------------------------------------------------------------------

def test_prepare_raising_a_permanent_error_dead_letters_the_job_at_once_without_calling_out():
    d = dispatched()
    work = Toy(prepare=raising(MissingResource("lead 7 does not exist")))
    assert run(d, work) == "dead"
    job = job_of(d)
    assert job.attempts == 1 and job.last_error == "MissingResource: lead 7 does not exist"
    assert DeadLetter.objects.filter(job_id=d.job_id).count() == 1
    assert work.steps() == ["prepare"]  # no call, and no failed(): there is nothing prepared to undo
    assert toy.logged(d.job_id, "prepare") == []  # prepare's writes rolled back with it


def test_invalid_data_in_prepare_is_rejected_input():
    d = dispatched()
    assert run(d, Toy(prepare=raising(InvalidData("lead 7 has no company")))) == "dead"
    assert job_of(d).rejected


def test_already_done_completes_the_job_without_calling_out():
    d = dispatched()
    work = Toy(prepare=raising(AlreadyDone("site_abc123 exists")))
    assert run(d, work) == "succeeded"
    assert job_of(d).state == "succeeded" and job_of(d).last_error == ""
    assert work.steps() == ["prepare"] and toy.results(d.job_id) == []


def test_prepare_does_not_run_once_the_job_was_taken_over_while_the_slot_was_taken(monkeypatch):
    # Ownership is checked after the start slot (a Redis call that may stall) and before anything else.
    d = dispatched()
    real_slot = runner._start_slot

    def slow_slot(job):
        reap_and_redispatch(str(job.id))
        return real_slot(job)

    monkeypatch.setattr(runner, "_start_slot", slow_slot)
    work = Toy()
    assert run(d, work) == "lost"
    assert work.steps() == []
    job = job_of(d)
    assert (job.state, job.worker, job.dispatch_token) == ("running", "w2", d.token + 1)


# --- call ----------------------------------------------------------------------------------------

def test_a_failed_call_is_retried_with_backoff_under_the_same_idempotency_key(settings):
    d = dispatched()
    before = timezone.now()
    first = Toy(call=raising(ConnectionError("claude: connection reset")))
    assert run(d, first) == "retry"
    job = job_of(d)
    assert job.state == "retry" and job.last_error == "ConnectionError: claude: connection reset"
    # backoff_seconds(1) with RETRY_BASE_SECONDS=0.2: between 0.1 and 0.2 s
    assert before + timedelta(seconds=0.1) <= job.next_attempt_at <= timezone.now() + timedelta(seconds=0.2)
    assert first.steps() == ["prepare", "call", "failed"]
    assert toy.logged(d.job_id, "failed") == [d.token]  # the hook's write committed with the failure

    Job.objects.filter(id=d.job_id).update(next_attempt_at=timezone.now())
    d2 = dispatched(job)
    second = Toy()
    assert run(d2, second) == "succeeded"
    key1, key2 = first.seen[0][1].idempotency_key, second.seen[0][1].idempotency_key
    assert key1 == key2 and d.job_id in key1
    assert (first.seen[0][1].attempt, second.seen[0][1].attempt) == (1, 2)
    assert toy.results(d.job_id) == [(key1, d2.token, "site for lead 7")]


def test_a_permanent_failure_of_the_call_is_dead_at_once():
    d = dispatched()
    work = Toy(call=raising(InvalidData("400: prompt too long")))
    assert run(d, work) == "dead"
    assert DeadLetter.objects.filter(job_id=d.job_id).count() == 1 and toy.results(d.job_id) == []
    assert toy.logged(d.job_id, "failed") == [d.token]


@pytest.mark.parametrize("seconds", [30, 0.001])
def test_retry_later_waits_at_least_its_seconds_or_the_backoff(seconds):
    d = dispatched()
    before = timezone.now()
    assert run(d, Toy(call=raising(RetryLater(seconds, "429: slow down")))) == "retry"
    job = job_of(d)
    assert job.last_error == "RetryLater: 429: slow down" and job.attempts == 1
    assert JobFailure.objects.filter(job_id=d.job_id).count() == 1  # it counts as a failed attempt
    wait = max(seconds, 0.1)  # the backoff of attempt 1 is at least 0.1 s here
    assert job.next_attempt_at >= before + timedelta(seconds=wait)
    assert job.next_attempt_at <= timezone.now() + timedelta(seconds=max(seconds, 0.2))


def test_retry_later_on_the_last_attempt_is_dead():
    d = dispatched()
    Job.objects.filter(id=d.job_id).update(max_attempts=1)
    assert run(d, Toy(call=raising(RetryLater(5, "429")))) == "dead"


def test_retry_later_keeps_its_seconds_sane():
    assert RetryLater(-3).seconds == 0
    assert RetryLater(float("nan")).seconds == 0
    assert RetryLater(1e12).seconds == RetryLater.MAX_SECONDS
    assert math.isclose(RetryLater("2.5", "x").seconds, 2.5) and str(RetryLater(1, "x")) == "x"


def test_a_failed_hook_that_raises_does_not_stop_the_failure_being_recorded():
    d = dispatched()
    work = Toy(call=raising(ConnectionError("reset")), failed=raising(ValueError("hook bug")))
    assert run(d, work) == "retry"
    assert job_of(d).last_error == "ConnectionError: reset"
    assert toy.logged(d.job_id, "failed") == []  # the hook's own write went with its error


def test_work_without_a_failed_hook_is_fine():
    class Bare:
        def prepare(self, attempt):
            return None

        def call(self, attempt, prepared):
            raise ConnectionError("reset")

        def record(self, attempt, prepared, result):
            raise AssertionError("not reached")

    d = dispatched()
    assert run(d, Bare()) == "retry"


# --- record --------------------------------------------------------------------------------------

def test_a_result_already_recorded_is_a_success_not_a_second_row():
    d = dispatched()
    key = f"job-{d.job_id}"
    toy.record_result(Attempt(d.job_id, QUEUE, {}, 0, 1, key), "recorded by an earlier attempt")
    assert run(d, Toy()) == "succeeded"
    assert toy.results(d.job_id) == [(key, 0, "recorded by an earlier attempt")]


def test_a_record_that_fails_is_a_failed_attempt_and_records_nothing():
    d = dispatched()
    work = Toy(record=raising(ConnectionError("database went away")))
    assert run(d, work) == "retry"
    assert toy.results(d.job_id) == [] and work.steps() == ["prepare", "call", "record", "failed"]


@pytest.mark.parametrize("requeue", [False, True], ids=["reaped", "reaped-dead-and-requeued"])
def test_a_late_attempt_is_refused_at_record_and_logged(requeue, caplog):
    """The attempt stalls in its call past its lease; meanwhile the job is taken back and claimed
    by another worker (after a requeue, under the very same attempt number)."""
    d = dispatched()
    if requeue:
        Job.objects.filter(id=d.job_id).update(max_attempts=1)
    taken_over: list[Job] = []

    def stalled_call(attempt, prepared):
        taken_over.append(reap_and_redispatch(attempt.job_id, requeue=requeue))
        return "late answer"

    work = Toy(call=stalled_call)
    with caplog.at_level(logging.WARNING, logger="workers.runner"):
        assert run(d, work) == "lost"
    [owner] = taken_over
    assert owner.attempts == (1 if requeue else 2) and owner.dispatch_token == d.token + 1
    assert toy.results(d.job_id) == [] and toy.logged(d.job_id, "record") == []
    job = job_of(d)
    assert (job.state, job.worker, job.dispatch_token) == ("running", "w2", d.token + 1)
    refusals = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "refused" in r.getMessage()]
    assert refusals == [f"job {d.job_id}: late attempt 1 (fence {d.token}) refused, the job is running under fence "
                        f"{d.token + 1}; its effects were rolled back and its result discarded"]

    # The owner finishes the job normally and its result is the one recorded.
    new = Attempt(d.job_id, QUEUE, {}, owner.dispatch_token, owner.attempts, f"job-{d.job_id}")
    toy.record_result(new, "owner's answer")
    with transaction.atomic():
        ledger.complete(owner)
    assert [fence for _, fence, _ in toy.results(d.job_id)] == [d.token + 1]


def test_a_late_attempt_whose_call_failed_records_neither_its_failure_nor_its_hook():
    d = dispatched()

    def stalled_call(attempt, prepared):
        reap_and_redispatch(attempt.job_id)
        raise ConnectionError("timed out")

    work = Toy(call=stalled_call)
    assert run(d, work) == "lost"
    assert work.steps() == ["prepare", "call", "failed"]  # it ran, and was rolled back
    assert toy.logged(d.job_id, "failed") == []
    assert JobFailure.objects.filter(job_id=d.job_id).count() == 1  # the reaper's WorkerLost only
    job = job_of(d)
    assert (job.state, job.worker, job.last_error.startswith("WorkerLost")) == ("running", "w2", True)


def test_a_late_already_done_does_not_complete_the_job(monkeypatch):
    d = dispatched()

    def prepare(attempt):
        raise AlreadyDone("exists")

    real_complete = ledger.complete
    calls = []

    def complete_after_takeover(job):
        if not calls:
            calls.append(reap_and_redispatch(str(job.id)))
        return real_complete(job)

    monkeypatch.setattr(ledger, "complete", complete_after_takeover)
    assert run(d, Toy(prepare=prepare)) == "lost"
    assert job_of(d).state == "running" and job_of(d).worker == "w2"


def test_a_rate_limited_start_defers_before_prepare(monkeypatch):
    monkeypatch.setattr(ratelimit, "acquire", lambda *a, **k: ratelimit.Decision(False, 2.0))
    d = dispatched()
    work = Toy()
    assert run(d, work) == "deferred"
    assert work.steps() == [] and job_of(d).state == "pending" and job_of(d).attempts == 0
