"""The global rate limiter against real Redis, and what the runner and dispatcher do with it."""
import threading
from datetime import timedelta

import pytest
from django.utils import timezone

from workers import dispatcher, ledger, ratelimit
from workers.models import Job, JobFailure
from workers.probe import enqueue_probe
from workers.tasks import probe

# The limiter reads the ledger when its log in Redis is missing (as it is at the start of a test).
pytestmark = pytest.mark.django_db


@pytest.fixture
def limits(settings, redis_client):
    def set_limit(queue, count, period):
        settings.QUEUE_RATE_LIMITS = {**settings.QUEUE_RATE_LIMITS, queue: (count, period)}
        ratelimit.reset(queue)
        ratelimit.available(queue)  # builds the empty log here, not in a test's threads
    return set_limit


def ledger_start(queue, state, seconds_ago, *, failed_seconds_ago=None):
    """A job of `queue` in `state` whose started_at is `seconds_ago`; with a failed attempt too."""
    now = timezone.now()
    job = Job.objects.create(queue=queue, task="t", state=state, attempts=1, next_attempt_at=now,
                             started_at=now - timedelta(seconds=seconds_ago))
    if failed_seconds_ago is not None:
        failure = JobFailure.objects.create(job=job, queue=queue, attempt=1, error="x")
        JobFailure.objects.filter(pk=failure.pk).update(failed_at=now - timedelta(seconds=failed_seconds_ago))
    return job


def redis_restart(redis_client):
    """What the limiter sees after Redis restarted without persistence (or evicted its keys)."""
    redis_client.flushdb()


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


def test_a_slot_says_when_it_was_taken_by_redis_clock(limits, redis_client):
    limits("email-sending", 1, 60)
    seconds, micros = redis_client.time()
    taken = ratelimit.acquire("email-sending", "a")
    score = redis_client.zscore(ratelimit.KEY_PREFIX + "email-sending", "a")
    assert taken.allowed and taken.at is not None and taken.at.timestamp() * 1000 == score
    assert taken.at.timestamp() >= seconds + micros / 1e6 - 0.001
    assert ratelimit.acquire("email-sending", "b").at is None  # refused: no slot, no time


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

    def redis_down(queue, member, **kwargs):
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


def test_a_lost_log_is_rebuilt_from_the_ledgers_recent_starts(limits, redis_client):
    """Given a limit of 5/min and, in the ledger, five starts within the minute (three succeeded,
    one running, one failed attempt of a job now waiting for its retry) plus starts that do not
    count (one an hour ago, a claim refused a slot and deferred); when Redis loses the log; then no
    slot is free until the oldest of those starts leaves the window, and none is counted twice."""
    limits("delivery", 5, 60)
    for ago in (10, 12, 14):
        ledger_start("delivery", Job.State.SUCCEEDED, ago)
    ledger_start("delivery", Job.State.RUNNING, 5)
    ledger_start("delivery", Job.State.RETRY, 25, failed_seconds_ago=20)  # its start counts once
    ledger_start("delivery", Job.State.SUCCEEDED, 3600)
    ledger_start("delivery", Job.State.PENDING, 1)  # ledger.defer: claimed, refused a slot, never started
    ledger_start("lead-processing", Job.State.SUCCEEDED, 1)  # another queue's
    redis_restart(redis_client)

    assert ratelimit.available("delivery")[0] == 0
    refused = ratelimit.acquire("delivery", "new-start")
    # The failure 20 s ago is the oldest; it stays one rebuild margin longer than its 40 s.
    assert not refused.allowed and 40 < refused.retry_after <= 41 + 0.5
    assert len(ratelimit.starts_in_window("delivery")) == 5


def test_only_one_process_seeds_a_lost_log(limits, redis_client):
    limits("delivery", 3, 60)
    ledger_start("delivery", Job.State.SUCCEEDED, 5)
    redis_restart(redis_client)
    assert ratelimit.rebuild("delivery", 3, 60) == 1
    assert ratelimit.rebuild("delivery", 3, 60) == -1  # already trusted: a second seed would add the start twice
    assert ratelimit.available("delivery")[0] == 2


@pytest.mark.django_db(transaction=True)
def test_many_workers_finding_the_log_lost_at_once_take_only_the_free_slots(limits, redis_client):
    """Eight threads start jobs at once on a lost log while the ledger holds 4 starts of a limit of
    10: the log is rebuilt once (a second rebuild would wipe slots already given) and exactly 6 are
    allowed."""
    limits("delivery", 10, 60)
    for ago in (1, 2, 3, 4):
        ledger_start("delivery", Job.State.SUCCEEDED, ago)
    redis_restart(redis_client)
    decisions, barrier = [], threading.Barrier(8)

    def contend(n):
        from django.db import connection
        barrier.wait()
        try:
            decisions.extend(ratelimit.acquire("delivery", f"job-{n}-{i}") for i in range(5))
        finally:
            connection.close()

    threads = [threading.Thread(target=contend, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(d.allowed for d in decisions) == 6 and len(decisions) == 40


def test_a_log_built_on_another_redis_server_is_rebuilt(limits, redis_client):
    """A replica promoted by a failover holds a copy of the log that may lack the last starts: its
    marker names the old server, so the log is rebuilt from the ledger rather than trusted."""
    limits("delivery", 2, 60)
    ledger_start("delivery", Job.State.SUCCEEDED, 1)
    ledger_start("delivery", Job.State.SUCCEEDED, 2)
    redis_restart(redis_client)
    redis_client.zadd(ratelimit.KEY_PREFIX + "delivery", {"trusted:" + "0" * 40: float("inf")})  # an empty copy
    assert not ratelimit.acquire("delivery", "new-start").allowed
    assert ratelimit.available("delivery")[0] == 0


@pytest.mark.django_db(transaction=True)
def test_the_dispatcher_sees_the_rebuilt_log_after_a_redis_restart(limits, redis_client):
    limits("site-generation", 4, 60)
    for _ in range(10):
        enqueue_probe("site-generation")
    assert dispatcher.dispatch_due_jobs().published == 4
    for d in Job.objects.filter(state="dispatched"):
        assert probe.run(str(d.id), d.dispatch_token) == "succeeded"
    redis_restart(redis_client)
    assert dispatcher.dispatch_due_jobs().published == 0  # the 4 starts in the ledger still fill the window
    assert Job.objects.filter(state="pending").count() == 6


@pytest.mark.django_db(transaction=True)
def test_a_requeued_jobs_new_start_does_not_overwrite_its_earlier_one(limits, redis_client):
    """A dead job requeued starts again at attempt 1: its second start takes a slot of its own."""
    limits("delivery", 3, 60)
    job = enqueue_probe("delivery", fail="permanent")
    [d] = ledger.take_due_jobs("delivery", 1)
    assert probe.run(d.job_id, d.token) == "dead"
    assert ledger.requeue_dead(str(job.id)) is not None
    [d] = ledger.take_due_jobs("delivery", 1)
    assert probe.run(d.job_id, d.token) == "dead"
    assert len(ratelimit.starts_in_window("delivery")) == 2
    assert ratelimit.available("delivery")[0] == 1


def starts(*pairs: tuple[float, float]) -> list:
    """Ledger records (started_at, slot_at) from (slot second, lag) pairs."""
    t0 = timezone.now()
    return [(t0 + timedelta(seconds=slot + lag), t0 + timedelta(seconds=slot)) for slot, lag in pairs]


def test_the_ledger_count_allows_for_uneven_record_lags_but_sees_a_limiter_that_allows_more():
    """Given a limit of 2 per second kept by the slots (0, 0.5, then 1.0, 1.5) but the first start's
    record written 40 ms after its slot and the rest 1 ms after: by started_at in whole seconds, 3
    starts share a window; the count allows for the 39 ms spread and finds 2. Slots at twice the
    rate, or one slot too many in a burst, show more than 2; a record too uneven is no judge."""
    kept = starts((0, 0.04), (0.5, 0.001), (1.0, 0.001), (1.5, 0.001))
    assert ratelimit.max_starts_in_any_window([s.timestamp() for s, _ in kept], 1.0) == 3
    count = ratelimit.count_starts(kept, 1.0)
    assert count.most == 2 and count.within(2, 1.0) and 0.039 < count.lag_spread < 0.041

    doubled = ratelimit.count_starts(starts(*((i * 0.25, 0.001) for i in range(8))), 1.0)
    assert doubled.most == 4 and not doubled.within(2, 1.0)
    burst = ratelimit.count_starts(starts((0, 0.001), (0.001, 0.002), (0.002, 0.04), (1.0, 0.001)), 1.0)
    assert burst.most == 3 and not burst.within(2, 1.0)
    uneven = ratelimit.count_starts(starts((0, 0.0), (1.0, 0.3)), 1.0)
    assert uneven.most == 1 and not uneven.within(2, 1.0)
    unslotted = ratelimit.count_starts([*kept, (timezone.now(), None)], 1.0)
    assert unslotted.without_slot == 1 and not unslotted.within(5, 1.0)


def test_the_ledger_record_of_starts_is_every_attempt_that_had_its_slot():
    """Succeeded jobs (with or without a slot: the latter did its work past the limit), running ones
    with their slot, and failed attempts with theirs; not an attempt killed or still waiting before
    its slot, nor another queue's."""
    now = timezone.now()
    made = {}
    for name, state, slot in (("done", Job.State.SUCCEEDED, True), ("unslotted", Job.State.SUCCEEDED, False),
                              ("running", Job.State.RUNNING, True), ("asking", Job.State.RUNNING, False),
                              ("retry", Job.State.RETRY, False)):
        made[name] = Job.objects.create(queue="delivery", task="t", state=state, attempts=1, next_attempt_at=now,
                                        started_at=now, slot_at=now if slot else None)
    JobFailure.objects.create(job=made["retry"], queue="delivery", attempt=1, error="x", started_at=now, slot_at=now)
    JobFailure.objects.create(job=made["retry"], queue="delivery", attempt=2, error="x", started_at=now)
    Job.objects.create(queue="lead-processing", task="t", state=Job.State.SUCCEEDED, next_attempt_at=now,
                       started_at=now, slot_at=now)

    records = ratelimit.ledger_start_records("delivery")
    assert sorted(slot is None for _, slot in records) == [False, False, False, True]
    assert ratelimit.started_without_a_slot("delivery") == 1 and len(ratelimit.ledger_starts("delivery")) == 3
    assert ratelimit.ledger_start_records("delivery", since=now + timedelta(seconds=1)) == []
