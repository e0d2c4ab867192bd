"""The global rate limiter against real Redis, and what the runner and dispatcher do with it."""
import threading

import pytest

from workers import dispatcher, ledger, ratelimit
from workers.models import Job
from workers.probe import enqueue_probe
from workers.tasks import probe


@pytest.fixture
def limits(settings, redis_client):
    def set_limit(queue, count, period):
        settings.QUEUE_RATE_LIMITS = {**settings.QUEUE_RATE_LIMITS, queue: (count, period)}
        ratelimit.reset(queue)
    return set_limit


def test_no_more_than_the_limit_even_from_many_threads_at_once(limits):
    limits("delivery", 10, 60)
    decisions = []
    barrier = threading.Barrier(8)

    def contend(n):
        barrier.wait()
        decisions.extend(ratelimit.acquire("delivery", f"job-{n}-{i}") for i in range(5))

    threads = [threading.Thread(target=contend, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(d.allowed for d in decisions) == 10
    refused = [d for d in decisions if not d.allowed]
    assert len(refused) == 30 and all(0 < d.retry_after <= 60 for d in refused)
    assert ratelimit.available("delivery")[0] == 0


def test_slots_free_as_starts_leave_the_window(limits):
    limits("email-sending", 2, 0.5)
    assert ratelimit.acquire("email-sending", "a").allowed
    assert ratelimit.acquire("email-sending", "b").allowed
    refused = ratelimit.acquire("email-sending", "c")
    assert not refused.allowed and refused.retry_after <= 0.5
    import time
    time.sleep(refused.retry_after + 0.05)
    assert ratelimit.acquire("email-sending", "c").allowed


def test_unlimited_queue_is_never_refused(settings, redis_client):
    settings.QUEUE_RATE_LIMITS = {**settings.QUEUE_RATE_LIMITS, "lead-processing": None}
    assert all(ratelimit.acquire("lead-processing", str(i)).allowed for i in range(500))
    assert ratelimit.available("lead-processing") == (None, 0.0)


@pytest.mark.django_db(transaction=True)
def test_a_job_refused_a_slot_waits_in_the_ledger_keeping_its_attempts(limits):
    limits("delivery", 1, 60)
    enqueue_probe("delivery"), enqueue_probe("delivery")
    results = [probe.run(d.job_id, d.token) for d in ledger.take_due_jobs("delivery", 10)]
    assert sorted(results) == ["deferred", "succeeded"]
    waiting = Job.objects.get(state="pending")
    assert waiting.attempts == 0 and waiting.lease_expires_at is None
    assert waiting.next_attempt_at > waiting.updated_at  # not due again until the slot frees
    assert ledger.take_due_jobs("delivery", 10) == []  # nothing spins on it


@pytest.mark.django_db(transaction=True)
def test_the_dispatcher_publishes_no_more_than_the_free_slots(limits):
    limits("site-generation", 4, 60)
    for _ in range(10):
        enqueue_probe("site-generation")
    assert dispatcher.dispatch_due_jobs().published == 4
    assert dispatcher.dispatch_due_jobs().published == 0  # 4 published, not yet started: no slot left
    for d in Job.objects.filter(state="dispatched"):
        assert probe.run(str(d.id), d.dispatch_token) == "succeeded"
    assert dispatcher.dispatch_due_jobs().published == 0  # the 4 starts fill the window
    assert Job.objects.filter(state="pending").count() == 6


@pytest.mark.django_db(transaction=True)
def test_limiter_down_means_the_job_waits_not_that_it_runs_unmetered(limits, monkeypatch):
    limits("delivery", 5, 60)
    job = enqueue_probe("delivery")

    def redis_down(queue, member):
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6379")

    monkeypatch.setattr(ratelimit, "acquire", redis_down)
    [d] = ledger.take_due_jobs("delivery", 1)
    assert probe.run(d.job_id, d.token) == "deferred"
    job.refresh_from_db()
    assert job.state == "pending" and job.attempts == 0


def test_the_window_measure_counts_correctly():
    assert ratelimit.max_starts_in_any_window([0, 0.1, 0.2, 1.0, 1.05], 1.0) == 4
    assert ratelimit.max_starts_in_any_window([0, 1.0, 2.0], 1.0) == 1
    assert ratelimit.max_starts_in_any_window([], 1.0) == 0
