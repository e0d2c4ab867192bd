"""run_job: the one path every task takes, against real PostgreSQL."""
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.db.models.functions import Now

from leads.models import Lead
from workers import ledger
from workers.errors import MissingResource, Postpone
from workers.models import Job, JobFailure
from workers.runner import run_job

pytestmark = pytest.mark.django_db(transaction=True)


def claimable(payload=None):
    job = ledger.enqueue("delivery", "test.task", payload or {})
    [d] = ledger.take_due_jobs("delivery", 1)
    return job, d


def test_success_commits_the_handlers_writes_with_the_completion():
    job, d = claimable()
    result = run_job(d.job_id, d.token, worker="w", handler=lambda j: Lead.objects.create(email="x@acme.io", status="qualified"))
    assert result == "succeeded"
    assert Job.objects.get(pk=job.pk).state == "succeeded" and Lead.objects.count() == 1


def test_failure_rolls_back_the_handlers_writes_and_schedules_a_retry():
    job, d = claimable()

    def handler(j):
        Lead.objects.create(email="x@acme.io", status="qualified")
        raise ConnectionError("upstream reset")

    assert run_job(d.job_id, d.token, worker="w", handler=handler) == "retry"
    assert Lead.objects.count() == 0
    assert Job.objects.get(pk=job.pk).last_error == "ConnectionError: upstream reset"


def test_permanent_failure_is_dead_at_once():
    _, d = claimable()

    def handler(j):
        raise MissingResource("no such row")

    assert run_job(d.job_id, d.token, worker="w", handler=handler) == "dead"


def test_a_postponed_job_waits_uncounted_however_often_and_never_dead_letters():
    job, d = claimable()

    def handler(j):
        Lead.objects.create(email="x@acme.io", status="qualified")
        raise Postpone(600, "waiting for something outside the job")

    for _ in range(job.max_attempts + 2):  # more rounds than it has attempts
        before = Job.objects.get(pk=job.pk).next_attempt_at
        assert run_job(d.job_id, d.token, worker="w", handler=handler) == "deferred"
        job.refresh_from_db()
        assert (job.state, job.attempts, Lead.objects.count()) == ("pending", 0, 0)  # its writes rolled back
        assert job.next_attempt_at - before > timedelta(seconds=590)  # waits the time it asked for
        assert not JobFailure.objects.filter(job_id=job.pk).exists()  # no failure on the books
        Job.objects.filter(pk=job.pk).update(next_attempt_at=Now())
        [d] = ledger.take_due_jobs("delivery", 1)
    assert run_job(d.job_id, d.token, worker="w", handler=lambda j: None) == "succeeded"
    assert Job.objects.get(pk=job.pk).attempts == 1


def test_lease_is_renewed_while_a_long_job_runs(settings):
    settings.JOB_LEASE_SECONDS, settings.JOB_LEASE_RENEW_SECONDS = 1.2, 0.4
    job, d = claimable()
    seen = []

    def slow(j):
        first = Job.objects.get(pk=j.pk).lease_expires_at
        time.sleep(1.5)  # longer than the lease: only renewal keeps it
        seen.append((first, Job.objects.get(pk=j.pk).lease_expires_at))
        assert ledger.reap_expired_leases() == 0

    assert run_job(d.job_id, d.token, worker="w", handler=slow) == "succeeded"
    first, later = seen[0]
    assert later > first


def test_work_done_after_the_lease_was_lost_is_rolled_back():
    job, d = claimable()

    def handler(j):
        Lead.objects.create(email="late@acme.io", status="qualified")
        # Meanwhile the reaper decided this worker was gone and gave the job back.
        from django.db import connections
        other = connections.create_connection("default")
        with other.cursor() as cur:
            cur.execute("UPDATE workers_job SET state = 'pending' WHERE id = %s", [str(j.pk)])
        other.close()

    assert run_job(d.job_id, d.token, worker="w", handler=handler) == "lost"
    assert Lead.objects.count() == 0
    assert Job.objects.get(pk=job.pk).state == "pending"
    connection.close()


def test_a_worker_already_running_its_queues_concurrency_gives_the_job_back_uncounted(settings):
    # A worker that serves two queues has one pool: the ledger keeps each queue to its concurrency.
    settings.QUEUE_CONCURRENCY = {**settings.QUEUE_CONCURRENCY, "delivery": 2}
    for _ in range(2):
        ledger.enqueue("delivery", "test.task", {})
    busy = ledger.take_due_jobs("delivery", 2)
    for d in busy:
        assert ledger.claim(d.job_id, d.token, "delivery+lead@primary.h") is not None
    job, d = claimable()
    ran = []

    assert run_job(d.job_id, d.token, worker="delivery+lead@primary.h", handler=ran.append) == "deferred"
    job.refresh_from_db()
    assert (ran, job.state, job.attempts) == ([], "pending", 0)
    # Another worker (the other pool) has room: it runs it.
    [again] = ledger.take_due_jobs("delivery", 1) or [None]
    if again is None:  # deferred by a second: make it due now
        Job.objects.filter(pk=job.pk).update(next_attempt_at=job.created_at)
        [again] = ledger.take_due_jobs("delivery", 1)
    assert run_job(again.job_id, again.token, worker="delivery+lead@backup.h", handler=ran.append) == "succeeded"


def test_the_lease_stops_being_renewed_past_the_task_time_limit(settings):
    # A thread-pool worker cannot kill a hung job: past the time limit its lease runs out, so the
    # reaper gives the job to another worker and the hung attempt is refused when it wakes.
    settings.JOB_LEASE_SECONDS = 0.6
    settings.CELERY_TASK_TIME_LIMIT = 0.3
    job, d = claimable()
    reaped = []

    def reap_elsewhere() -> None:  # the leader's reaper, on its own connection
        try:
            reaped.append(ledger.reap_expired_leases())
        finally:
            connection.close()

    def hung(j):
        time.sleep(1.5)
        reaper = threading.Thread(target=reap_elsewhere)
        reaper.start()
        reaper.join()

    assert run_job(d.job_id, d.token, worker="w", handler=hung) == "lost"
    assert reaped == [1] and Job.objects.get(pk=job.pk).state == "pending"


def test_claims_racing_on_one_worker_never_run_more_than_its_queues_concurrency(settings):
    # The claim counts what the worker runs under an advisory lock of the worker's: without it, two
    # children claiming at once could each see room for one more.
    settings.QUEUE_CONCURRENCY = {**settings.QUEUE_CONCURRENCY, "delivery": 2}
    for _ in range(6):
        ledger.enqueue("delivery", "test.task", {})
    batch = ledger.take_due_jobs("delivery", 6)
    start, release = threading.Barrier(6), threading.Event()
    outcomes, held = [], []

    def hold(j):
        held.append(j.pk)  # every handler that starts holds until all six claims are decided
        release.wait(10)

    def attempt(d):
        try:
            start.wait(10)
            outcomes.append(run_job(d.job_id, d.token, worker="lead+delivery@p.h", handler=hold))
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt, args=(d,)) for d in batch]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while len(outcomes) + len(held) < 6 and time.monotonic() < deadline:
        time.sleep(0.01)
    release.set()
    for t in threads:
        t.join()
    assert len(held) == 2 and len(outcomes) == 6
    assert sorted(outcomes) == ["deferred"] * 4 + ["succeeded"] * 2


def test_one_lease_thread_renews_every_job_of_the_process_in_one_go(settings):
    settings.JOB_LEASE_SECONDS, settings.JOB_LEASE_RENEW_SECONDS = 0.9, 0.3
    settings.QUEUE_CONCURRENCY = {**settings.QUEUE_CONCURRENCY, "delivery": 3}
    jobs = [claimable() for _ in range(3)]
    leases, threads_seen = {}, []
    all_running = threading.Barrier(3)

    def slow(j):
        first = Job.objects.get(pk=j.pk).lease_expires_at
        all_running.wait(10)
        time.sleep(1.2)  # more than the lease: only renewal keeps it
        leases[j.pk] = (first, Job.objects.get(pk=j.pk).lease_expires_at)
        threads_seen.append(sorted(t.name for t in threading.enumerate() if t.name.startswith("lease")))

    def attempt(d):
        try:
            assert run_job(d.job_id, d.token, worker="w", handler=slow) == "succeeded"
        finally:
            connection.close()

    runs = [threading.Thread(target=attempt, args=(d,)) for _, d in jobs]
    for t in runs:
        t.start()
    for t in runs:
        t.join()
    assert len(leases) == 3 and all(later > first for first, later in leases.values())
    assert threads_seen and all(names == ["lease-keeper"] for names in threads_seen)


def test_a_connection_postgresql_dropped_costs_no_attempt(settings):
    # No health-check query before each job: the claim meets the dead connection and claims again on a new one.
    from workers.runner import skip_connection_health_checks

    skip_connection_health_checks()
    try:
        job, d = claimable()
        with connection.cursor() as cur:
            cur.execute("SELECT pg_backend_pid()")
            pid = cur.fetchone()[0]
        from django.db import connections
        other = connections.create_connection("default")
        with other.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(%s)", [pid])
        other.close()
        assert run_job(d.job_id, d.token, worker="w", handler=lambda j: None) == "succeeded"
        job.refresh_from_db()
        assert (job.state, job.attempts) == ("succeeded", 1)
    finally:
        settings.DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
        connection.close()


def test_an_attempt_starts_when_its_rate_limit_slot_is_taken_not_when_it_was_claimed(monkeypatch):
    """A claim can come before its slot frees; the ledger's start is the slot's moment, so counting
    the ledger's starts in any window gives what the limit allowed (make chaos does)."""
    from workers import ratelimit, runner

    job, d = claimable()
    seen = {}

    def slot_after_a_while(claimed):
        seen["claimed"] = Job.objects.get(pk=claimed.pk).started_at
        time.sleep(0.2)  # the worker was slow to ask, or the slot was not free yet
        with connection.cursor() as cursor:
            cursor.execute("SELECT clock_timestamp()")
            seen["slot"] = cursor.fetchone()[0]
        return ratelimit.Decision(True, 0.0, seen["slot"])

    monkeypatch.setattr(runner, "_start_slot", slot_after_a_while)
    assert run_job(d.job_id, d.token, worker="w", handler=lambda j: None) == "succeeded"
    done = Job.objects.get(pk=job.pk)
    assert seen["claimed"] < seen["slot"] <= done.started_at
    assert done.slot_at == seen["slot"]  # the limiter's own moment, kept in the ledger


def test_a_gate_of_the_queue_holds_a_claimed_job_before_its_slot_and_uncounted(monkeypatch):
    """The runner, not the task, asks the queue's registered gates (workers.registry.gate)."""
    from workers import registry
    from workers.registry import Gate

    reasons = iter(["closed for the test", None])
    gate = Gate("delivery", "test gate", hold=lambda: next(reasons))
    monkeypatch.setattr(registry, "_gates", {**registry._gates, ("delivery", "test gate"): gate})
    ran = []
    job, d = claimable()
    assert run_job(d.job_id, d.token, worker="w", handler=ran.append) == "held"
    held = Job.objects.get(pk=job.pk)
    assert (held.state, held.attempts, held.slot_at, ran) == ("pending", 0, None, [])
    [d] = ledger.take_due_jobs("delivery", 1)
    assert run_job(d.job_id, d.token, worker="w", handler=ran.append) == "succeeded" and len(ran) == 1


def test_the_lease_thread_renews_a_process_s_jobs_in_one_write_per_tick_whenever_each_started(settings, monkeypatch):
    # Jobs claimed at different moments are still renewed together: one UPDATE per tick for the
    # process, not one per job on each job's own schedule.
    settings.JOB_LEASE_SECONDS, settings.JOB_LEASE_RENEW_SECONDS = 1.5, 0.5
    settings.QUEUE_CONCURRENCY = {**settings.QUEUE_CONCURRENCY, "delivery": 3}
    jobs = [claimable() for _ in range(3)]
    renewals: list[int] = []
    renew = ledger.renew_leases

    def counted(held):
        renewals.append(len(held))
        return renew(held)

    monkeypatch.setattr(ledger, "renew_leases", counted)

    def attempt(d, delay):
        try:
            time.sleep(delay)  # claimed a third of a tick apart
            assert run_job(d.job_id, d.token, worker="w", handler=lambda j: time.sleep(2.2 - delay)) == "succeeded"
        finally:
            connection.close()

    runs = [threading.Thread(target=attempt, args=(d, n * 0.17)) for n, (_, d) in enumerate(jobs)]
    started = time.monotonic()
    for t in runs:
        t.start()
    for t in runs:
        t.join()
    took = time.monotonic() - started
    time.sleep(0.6)  # a tick in flight as the last job ended is over before the teardown truncates
    assert Job.objects.filter(state="succeeded").count() == 3  # the leases held past their 1.5 s
    assert 2 <= len(renewals) <= took / 0.5 + 1, renewals
    assert max(renewals) == 3  # all three in one statement
