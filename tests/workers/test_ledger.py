"""The ledger's state machine against real PostgreSQL: every transition is a guarded update."""
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from dlq.models import DeadLetter
from workers import ledger
from workers.errors import InvalidData, LeaseLost
from workers.models import Job, JobFailure
from workers.signals import job_requeued
from workers.retry import backoff_seconds

pytestmark = pytest.mark.django_db
State = Job.State


def make_job(**payload) -> Job:
    return ledger.enqueue("lead-processing", "leads.process_lead", payload or {"n": 1})


def dispatched(job: Job) -> ledger.Dispatch:
    [dispatch] = ledger.take_due_jobs(job.queue, 10)
    assert dispatch.job_id == str(job.id)
    return dispatch


def running(job: Job, worker: str = "w1") -> Job:
    d = dispatched(job)
    claimed = ledger.claim(d.job_id, d.token, worker)
    assert claimed is not None
    return claimed


def test_enqueue_with_the_same_idempotency_key_returns_the_first_job():
    first = ledger.enqueue("delivery", "t", {"a": 1}, idempotency_key="k1")
    second = ledger.enqueue("delivery", "t", {"a": 2}, idempotency_key="k1")
    assert first.pk == second.pk and Job.objects.count() == 1


def test_enqueue_rejects_unknown_queues():
    with pytest.raises(ValueError):
        ledger.enqueue("nope", "t", {})


def test_take_due_jobs_respects_limit_order_and_due_time():
    early, late = make_job(n=1), make_job(n=2)
    Job.objects.filter(pk=late.pk).update(next_attempt_at=timezone.now() + timedelta(hours=1))
    assert [d.job_id for d in ledger.take_due_jobs("lead-processing", 10)] == [str(early.id)]
    assert ledger.take_due_jobs("lead-processing", 10) == []  # already dispatched
    assert ledger.take_due_jobs("site-generation", 10) == []
    early.refresh_from_db()
    assert early.state == State.DISPATCHED and early.dispatch_token == 1


def test_claim_is_compare_and_set_so_a_duplicate_message_does_nothing():
    job = make_job()
    d = dispatched(job)
    assert ledger.claim(d.job_id, d.token, "w1") is not None
    assert ledger.claim(d.job_id, d.token, "w2") is None
    job.refresh_from_db()
    assert job.state == State.RUNNING and job.worker == "w1" and job.attempts == 1
    assert job.lease_expires_at > timezone.now()


def test_a_message_from_an_older_dispatch_claims_nothing():
    job = make_job()
    old = dispatched(job)
    ledger.undo_dispatch(old)
    new = dispatched(job)
    assert new.token == old.token + 1
    assert ledger.claim(old.job_id, old.token, "w1") is None
    assert ledger.claim(new.job_id, new.token, "w1") is not None


def test_complete_only_while_owning_the_job():
    job = running(make_job())
    ledger.complete(job)
    job.refresh_from_db()
    assert job.state == State.SUCCEEDED and job.finished_at and job.lease_expires_at is None
    with pytest.raises(LeaseLost):
        ledger.complete(job)


def test_transient_failure_schedules_a_retry_with_backoff():
    job = running(make_job())
    before = timezone.now()
    assert ledger.fail(job, ConnectionError("smtp down")) == State.RETRY
    job.refresh_from_db()
    assert job.state == State.RETRY and job.last_error == "ConnectionError: smtp down"
    assert job.next_attempt_at > before
    assert not DeadLetter.objects.exists()


def test_third_failed_attempt_goes_to_the_dead_letter_queue():
    job = make_job(token="abc", lead={"email": "a@b.io"})
    for attempt in (1, 2, 3):
        Job.objects.filter(pk=job.pk).update(next_attempt_at=timezone.now())
        claimed = running(job)
        assert claimed.attempts == attempt
        state = ledger.fail(claimed, TimeoutError(f"attempt {attempt}"))
    assert state == State.DEAD
    [entry] = DeadLetter.objects.all()
    assert entry.queue_name == "lead-processing" and entry.job_id == str(job.id)
    assert entry.attempts_made == 3 and entry.error_message == "TimeoutError: attempt 3"
    assert "Traceback" in entry.error_stack or "TimeoutError" in entry.error_stack
    assert entry.job_data == {"token": "[redacted]", "lead": {"email": "a@b.io"}}
    assert entry.resolved is False and entry.failed_at is not None
    assert Job.objects.get(pk=job.pk).state == State.DEAD
    history = JobFailure.objects.filter(job=job).order_by("attempt")
    assert [(f.attempt, f.error, f.worker) for f in history] == [
        (n, f"TimeoutError: attempt {n}", "w1") for n in (1, 2, 3)]


def test_each_failed_attempt_keeps_its_own_start():
    """The job's started_at is the latest attempt's; the failure rows keep the earlier ones, so every
    start of a queue can be counted from the ledger (make chaos checks the rate limits that way)."""
    job = make_job()
    starts = []
    for how in ("fail", "reap", "release"):
        Job.objects.filter(pk=job.pk).update(next_attempt_at=timezone.now())
        claimed = running(job)
        starts.append(claimed.started_at)
        if how == "fail":
            ledger.fail(claimed, TimeoutError("slow"))
        elif how == "reap":
            Job.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
            ledger.reap_expired_leases()
        else:
            ledger.release_lost(str(job.id), claimed.dispatch_token, "w1", "pool child died")
    history = JobFailure.objects.filter(job=job).order_by("attempt")
    assert [f.started_at for f in history] == starts
    assert len(set(starts)) == 3 and all(f.started_at < f.failed_at for f in history)


def test_permanent_failure_is_dead_lettered_at_once():
    job = running(make_job())
    assert ledger.fail(job, InvalidData("no email")) == State.DEAD
    assert DeadLetter.objects.get().attempts_made == 1


def test_expired_lease_returns_the_job_to_pending_keeping_its_attempts():
    job = running(make_job(), worker="lead-processing@primary.host")
    Job.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert ledger.reap_expired_leases() == 1
    job.refresh_from_db()
    assert job.state == State.PENDING and job.attempts == 1
    assert "lease expired on lead-processing@primary.host" in job.last_error


def test_a_job_that_keeps_losing_its_worker_ends_dead():
    job = make_job()
    for _ in range(3):
        claimed = running(job)
        Job.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
        ledger.reap_expired_leases()
    assert Job.objects.get(pk=job.pk).state == State.DEAD
    assert DeadLetter.objects.get().error_message.startswith("WorkerLost")
    assert JobFailure.objects.filter(job=job, error__startswith="WorkerLost: lease expired").count() == 3
    with pytest.raises(LeaseLost):  # the worker that comes back late cannot complete it
        ledger.complete(claimed)


def test_live_leases_are_not_reaped_and_renewal_extends_them():
    job = running(make_job())
    before = Job.objects.get(pk=job.pk).lease_expires_at
    assert ledger.reap_expired_leases() == 0
    assert ledger.renew_lease(job)
    assert Job.objects.get(pk=job.pk).lease_expires_at >= before


def test_stale_dispatched_jobs_are_dispatched_again():
    job = make_job()
    dispatched(job)
    assert ledger.redispatch_stale() == 0
    Job.objects.filter(pk=job.pk).update(dispatched_at=timezone.now() - timedelta(hours=1))
    assert ledger.redispatch_stale() == 1
    assert Job.objects.get(pk=job.pk).state == State.PENDING


def test_completion_rolls_back_the_jobs_effects_when_the_lease_was_lost():
    job = running(make_job())
    ledger.reap_expired_leases()  # not expired: nothing happens
    Job.objects.filter(pk=job.pk).update(state=State.PENDING)  # as the reaper would after expiry
    with pytest.raises(LeaseLost):
        with transaction.atomic():
            ledger.enqueue("delivery", "effect", {}, idempotency_key="effect-of-the-job")
            ledger.complete(job)
    assert not Job.objects.filter(idempotency_key="effect-of-the-job").exists()


@pytest.mark.parametrize("attempt, low, high", [(1, 5, 10), (2, 10, 20), (3, 20, 40), (10, 300, 600)])
def test_backoff_grows_exponentially_with_bounded_jitter(attempt, low, high):
    delays = [backoff_seconds(attempt, base=10, cap=600) for _ in range(200)]
    assert all(low <= d <= high for d in delays)
    assert max(delays) - min(delays) > (high - low) / 4  # it really is jittered


def test_requeue_dead_gives_the_job_fresh_attempts_once():
    job = make_job()
    ledger.fail(running(job), InvalidData("no email"))
    heard = []
    job_requeued.connect(lambda sender, job, **kw: heard.append(job.id), weak=False, dispatch_uid="t")
    try:
        requeued = ledger.requeue_dead(str(job.id))
        assert requeued is not None and heard == [job.id]
        assert (requeued.state, requeued.attempts, requeued.worker, requeued.finished_at) == (
            State.PENDING, 0, "", None)
        assert ledger.requeue_dead(str(job.id)) is None  # not dead any more
    finally:
        job_requeued.disconnect(dispatch_uid="t")
    assert running(job).attempts == 1  # it runs again, counting from one


def test_requeue_dead_ignores_jobs_that_are_not_dead():
    job = make_job()
    assert ledger.requeue_dead(str(job.id)) is None
    assert Job.objects.get(pk=job.pk).state == State.PENDING


def test_an_attempt_reaped_while_it_stalled_owns_nothing_after_a_requeue_at_the_same_attempt_number():
    # Ownership is fenced by the dispatch token, which only grows: requeue_dead resets `attempts`, so
    # the stalled attempt and the requeued one both are attempt 1.
    job = make_job()
    Job.objects.filter(pk=job.pk).update(max_attempts=1)
    stalled = running(job)
    Job.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert ledger.reap_expired_leases() == 1 and Job.objects.get(pk=job.pk).state == State.DEAD
    ledger.requeue_dead(str(job.id))
    owner = running(job, "w2")
    assert (owner.attempts, stalled.attempts) == (1, 1)
    assert owner.dispatch_token == stalled.dispatch_token + 1  # requeue_dead did not reset it

    assert not ledger.renew_lease(stalled)
    assert not ledger.defer(stalled, 5, "rate limit")
    with pytest.raises(LeaseLost, match=f"fence {stalled.dispatch_token}"), transaction.atomic():
        ledger.complete(stalled)
    with pytest.raises(LeaseLost):
        ledger.fail(stalled, ConnectionError("late"))
    with pytest.raises(LeaseLost):
        ledger.ensure_owned(stalled)
    assert ledger.release_lost(str(job.id), stalled.dispatch_token, "w1", "pool process exited") is None
    after = Job.objects.get(pk=job.pk)
    assert (after.state, after.worker, after.attempts, after.dispatch_token) == (
        State.RUNNING, "w2", 1, owner.dispatch_token)
    assert JobFailure.objects.filter(job=job).count() == 1  # the reaper's only
    ledger.ensure_owned(owner)
    with transaction.atomic():
        ledger.complete(owner)
    assert Job.objects.get(pk=job.pk).state == State.SUCCEEDED
