"""The health rules, each with ledger and heartbeat states built here (no workers, no broker)."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest
from django.db import connection
from django.db.models import Count

from leads.services import InvalidLead
from resilience.db import db_now
from workers import ledger
from workers.errors import InvalidData, MissingResource
from monitoring.health import health_report, worker_report
from workers.retention import fold_job_counts
from workers.models import Job, JobCount, JobFailure, QueueDailyStats, QueuePause, WorkerHeartbeat

pytestmark = pytest.mark.django_db

QUEUE = "site-generation"
S = Job.State


@pytest.fixture
def now() -> datetime:
    return db_now()


def live_worker(queue: str, now: datetime, pool: str = "primary", **fields) -> WorkerHeartbeat:
    defaults = dict(pool=pool, queue=queue, host="h", pid=1, concurrency=3, started_at=now - timedelta(hours=1),
                    beat_at=now, expires_at=now + timedelta(seconds=45))
    return WorkerHeartbeat.objects.create(name=f"{queue}@{pool}.h", **{**defaults, **fields})


def live_leader(now: datetime, **fields) -> WorkerHeartbeat:
    defaults = dict(pool=WorkerHeartbeat.DISPATCHER_POOL, queue="", host="h", pid=2, concurrency=0,
                    started_at=now - timedelta(hours=1), beat_at=now, expires_at=now + timedelta(seconds=45))
    return WorkerHeartbeat.objects.create(name="dispatcher@h", **{**defaults, **fields})


@pytest.fixture
def consumers(now):
    """Every queue has a live worker and the dispatcher a live leader, so only the rule under test can fail."""
    for queue in ("lead-processing", "site-generation", "email-sending", "delivery"):
        live_worker(queue, now)
    live_leader(now)


def jobs(state: str, count: int, *, queue: str = QUEUE, finished: datetime | None = None,
         started: datetime | None = None, due: datetime | None = None,
         dispatched: datetime | None = None, lease: datetime | None = None, rejected: bool = False) -> list[Job]:
    """`count` jobs; a running one's lease is alive (for a day) unless `lease` says when it ends."""
    if state == S.RUNNING and lease is None:
        lease = (started or db_now()) + timedelta(days=1)
    return Job.objects.bulk_create([
        Job(id=uuid.uuid4(), queue=queue, task="sites.generate", state=state, attempts=1,
            next_attempt_at=due or finished or started or dispatched, finished_at=finished,
            started_at=started or finished, dispatched_at=dispatched, lease_expires_at=lease, rejected=rejected)
        for _ in range(count)
    ])


def errors(count: int, at: datetime, queue: str = QUEUE) -> None:
    """Failed attempts at `at`, of a job that finished long before the window (so only they count)."""
    job = jobs(S.SUCCEEDED, 1, queue=queue, finished=at - timedelta(hours=2))[0]
    JobFailure.objects.bulk_create(
        [JobFailure(job=job, queue=queue, attempt=1, error="ConnectionError: boom", failed_at=at)
         for _ in range(count)])


def queue_entry(report: dict, queue: str = QUEUE) -> dict:
    return next(entry for entry in report["workers"] if entry["name"] == queue)


def test_an_idle_queue_with_live_workers_is_healthy(consumers):
    report = health_report()
    assert report["overall"] == "healthy" and report["summary"]["allHealthy"] is True
    entry = queue_entry(report)
    assert entry["healthy"] is True and entry["status"] == "healthy" and entry["reasons"] == []
    assert entry["consumers"] == 1


def test_processing_without_errors_is_healthy(consumers, now):
    jobs(S.SUCCEEDED, 40, finished=now - timedelta(minutes=1))
    jobs(S.RUNNING, 2, started=now)
    jobs(S.PENDING, 5, due=now)
    entry = queue_entry(health_report())
    assert entry["status"] == "healthy"
    assert (entry["waiting"], entry["active"], entry["completed"], entry["failed"]) == (5, 2, 40, 0)


def test_a_queue_without_a_live_worker_is_unhealthy_even_with_nothing_waiting(now):
    live_leader(now)
    live_worker("lead-processing", now)
    live_worker(QUEUE, now, expires_at=now - timedelta(seconds=1))  # missed its beats
    live_worker(QUEUE, now, pool="backup", stopped_at=now)  # shut down
    report = health_report()
    entry = queue_entry(report)
    assert entry["status"] == "unhealthy" and entry["healthy"] is False and entry["consumers"] == 0
    assert "no live worker" in entry["reasons"][0]
    assert queue_entry(report, "lead-processing")["status"] == "healthy"
    assert report["overall"] == "unhealthy" and report["summary"]["allHealthy"] is False


def test_a_failure_rate_above_five_percent_in_the_window_is_unhealthy(consumers, now):
    jobs(S.SUCCEEDED, 18, finished=now - timedelta(minutes=2))
    jobs(S.DEAD, 2, finished=now - timedelta(minutes=2))  # 10 %
    entry = queue_entry(health_report())
    assert entry["status"] == "unhealthy"
    assert entry["recent"]["failureRate"] == 10.0
    assert any("failure rate 10.00%" in reason for reason in entry["reasons"])


def test_failures_older_than_the_window_count_in_lifetime_figures_only(consumers, now):
    jobs(S.DEAD, 10, finished=now - timedelta(hours=2))
    jobs(S.SUCCEEDED, 30, finished=now - timedelta(hours=2))
    jobs(S.SUCCEEDED, 20, finished=now - timedelta(minutes=1))
    entry = queue_entry(health_report())
    assert entry["status"] == "healthy"
    assert entry["completed"] == 50 and entry["failed"] == 10 and entry["failureRate"] == 16.67
    assert entry["recent"] == {"windowMinutes": 15, "completed": 20, "failed": 0, "rejected": 0, "errors": 0,
                               "failureRate": 0.0, "failureRateJudged": True, "minSample": 20}


def test_nothing_processed_for_five_minutes_with_more_than_five_errors_is_unhealthy(consumers, now):
    jobs(S.SUCCEEDED, 1, finished=now - timedelta(minutes=6))
    errors(6, now - timedelta(minutes=1))
    entry = queue_entry(health_report())
    assert entry["status"] == "unhealthy"
    assert any("no job processed in 5+ minutes and 6 errors" in reason for reason in entry["reasons"])


def test_more_than_five_errors_while_jobs_still_succeed_is_degraded(consumers, now):
    jobs(S.SUCCEEDED, 50, finished=now - timedelta(minutes=1))
    errors(6, now - timedelta(minutes=1))
    entry = queue_entry(health_report())
    assert entry["status"] == "degraded" and entry["healthy"] is False
    assert entry["recent"]["errors"] == 6


@pytest.mark.parametrize(("count", "status"), [(2, "healthy"), (3, "degraded"), (5, "degraded")])
def test_errors_below_three_are_healthy_and_three_or_more_degraded(consumers, now, count, status):
    jobs(S.SUCCEEDED, 50, finished=now - timedelta(minutes=1))
    errors(count, now - timedelta(minutes=3))
    assert queue_entry(health_report())["status"] == status


def test_errors_older_than_the_window_do_not_count(consumers, now):
    jobs(S.SUCCEEDED, 50, finished=now - timedelta(minutes=1))
    errors(20, now - timedelta(minutes=16))
    assert queue_entry(health_report())["status"] == "healthy"


def test_jobs_waiting_while_live_consumers_make_no_progress_is_unhealthy(consumers, now):
    jobs(S.SUCCEEDED, 5, finished=now - timedelta(minutes=4))
    jobs(S.PENDING, 3, due=now - timedelta(minutes=3))
    jobs(S.DISPATCHED, 2, dispatched=now - timedelta(minutes=3))
    entry = queue_entry(health_report())
    assert entry["status"] == "unhealthy" and entry["waiting"] == 5
    assert "paused unexpectedly: 5 job(s) waited over 120 s" in entry["reasons"][0]


def test_long_jobs_running_are_progress_not_a_stall(consumers, now):
    jobs(S.SUCCEEDED, 5, finished=now - timedelta(minutes=4))
    jobs(S.RUNNING, 6, started=now - timedelta(minutes=3))
    jobs(S.PENDING, 3, due=now - timedelta(minutes=3))
    assert queue_entry(health_report())["status"] == "healthy"


def test_jobs_waiting_with_nothing_processed_yet_is_degraded_before_it_counts_as_a_stall(consumers, now):
    jobs(S.PENDING, 4, due=now - timedelta(seconds=30))
    entry = queue_entry(health_report())
    assert entry["status"] == "degraded"
    assert entry["reasons"] == ["4 job(s) waiting and none processed in the last 15 min"]


def test_a_queue_paused_on_purpose_shows_paused_not_unhealthy(consumers, now):
    WorkerHeartbeat.objects.filter(queue=QUEUE).delete()  # its workers may even be stopped
    jobs(S.PENDING, 7, due=now - timedelta(minutes=10))
    QueuePause.objects.create(queue=QUEUE, reason="Anthropic outage", paused_by="ops")
    report = health_report()
    entry = queue_entry(report)
    assert entry["status"] == "paused" and entry["paused"] is True and entry["healthy"] is True
    assert entry["pausedReason"] == "Anthropic outage" and entry["waiting"] == 7
    assert report["overall"] == "healthy" and report["summary"]["pausedQueues"] == [QUEUE]


def test_overall_is_the_worst_queue(consumers, now):
    jobs(S.PENDING, 4, due=now, queue="delivery")  # degraded: waiting, nothing processed
    assert health_report()["overall"] == "degraded"
    WorkerHeartbeat.objects.filter(queue="email-sending").delete()
    assert health_report()["overall"] == "unhealthy"


def test_lifetime_counts_include_the_daily_statistics_of_pruned_jobs(consumers, now):
    QueueDailyStats.objects.create(queue=QUEUE, day=(now - timedelta(days=30)).date(), succeeded=1230, dead=3)
    jobs(S.SUCCEEDED, 4, finished=now - timedelta(minutes=1))
    report = health_report()
    entry = queue_entry(report)
    assert (entry["completed"], entry["failed"], entry["failureRate"]) == (1234, 3, 0.24)
    assert report["summary"]["totalCompleted"] == 1234 and report["summary"]["totalFailed"] == 3


# --- rejected input (issue 9, item 7) ----------------------------------------------------------

def running_job(queue: str = QUEUE) -> Job:
    return Job.objects.create(queue=queue, task="leads.process_lead", state=S.RUNNING, attempts=1,
                              next_attempt_at=db_now(), started_at=db_now(),
                              lease_expires_at=db_now() + timedelta(minutes=1))


def test_a_job_rejected_for_its_input_is_counted_rejected_not_as_a_failure(consumers, now):
    """generate_test_leads 10: nine leads stored, one invalid lead dead-lettered. Not a failure."""
    jobs(S.SUCCEEDED, 9, queue="lead-processing", finished=now - timedelta(minutes=1))
    job = running_job("lead-processing")
    assert ledger.fail(job, InvalidLead("email 'jane@' has no valid domain")) == S.DEAD
    job.refresh_from_db()
    assert job.rejected is True and JobFailure.objects.get(job=job).rejected is True
    report = health_report()
    entry = queue_entry(report, "lead-processing")
    assert entry["status"] == "healthy" and entry["reasons"] == [] and report["overall"] == "healthy"
    assert (entry["completed"], entry["failed"], entry["rejected"], entry["failureRate"]) == (9, 0, 1, 0.0)
    assert entry["recent"].items() >= {"completed": 9, "failed": 0, "rejected": 1, "errors": 0,
                                       "failureRate": 0.0}.items()
    assert report["summary"]["totalRejected"] == 1 and report["summary"]["totalFailed"] == 0


def test_a_real_permanent_failure_still_counts_as_failed(consumers, now):
    jobs(S.SUCCEEDED, 19, finished=now - timedelta(minutes=1))
    job = running_job()
    ledger.fail(job, MissingResource("lead submission 7 does not exist"))
    job.refresh_from_db()
    assert job.rejected is False
    entry = queue_entry(health_report())
    assert (entry["failed"], entry["rejected"], entry["recent"]["errors"]) == (1, 0, 1)
    assert entry["status"] == "degraded" and entry["recent"]["failureRate"] == 5.0  # 1 of 20: at the limit


def test_the_failure_rate_is_judged_only_on_a_minimum_sample_of_finished_jobs(consumers, now, settings):
    jobs(S.SUCCEEDED, 3, finished=now - timedelta(minutes=1))
    jobs(S.DEAD, 1, finished=now - timedelta(minutes=1))  # 25 % of 4 jobs
    entry = queue_entry(health_report())
    assert entry["status"] == "healthy", entry["reasons"]
    assert entry["recent"]["failureRate"] == 25.0 and entry["recent"]["failureRateJudged"] is False
    settings.HEALTH_MIN_SAMPLE = 4
    entry = queue_entry(health_report())
    assert entry["status"] == "unhealthy" and entry["recent"]["failureRateJudged"] is True
    assert entry["reasons"] == ["failure rate 25.00% over the last 15 min is above 5%"]


def test_many_rejected_inputs_are_neither_errors_nor_failures(consumers, now):
    """A batch of bad leads must not read as a broken queue: no errors, nothing in the rate."""
    for _ in range(8):
        ledger.fail(running_job(), InvalidData("no email"))
    entry = queue_entry(health_report())
    assert entry["status"] == "healthy" and entry["rejected"] == 8 and entry["recent"]["errors"] == 0


def test_a_requeued_rejected_job_is_no_longer_rejected(consumers):
    job = running_job()
    ledger.fail(job, InvalidData("no email"))
    requeued = ledger.requeue_dead(str(job.id))
    assert requeued.rejected is False and queue_entry(health_report())["rejected"] == 0


# --- the stall rule, rate limits, the dispatcher leader (issue 9, item 8) ------------------------

def test_running_jobs_whose_lease_expired_are_not_progress(consumers, now):
    """Their worker is gone: the reaper will take them back, but jobs waiting behind them are stuck."""
    jobs(S.SUCCEEDED, 5, finished=now - timedelta(minutes=4))
    jobs(S.RUNNING, 3, started=now - timedelta(minutes=3), lease=now - timedelta(minutes=1))
    jobs(S.PENDING, 4, due=now - timedelta(minutes=3))
    entry = queue_entry(health_report())
    assert entry["status"] == "unhealthy" and entry["active"] == 3
    assert "paused unexpectedly: 4 job(s) waited over 120 s" in entry["reasons"][0]


def test_a_queue_held_back_by_its_own_rate_limit_is_not_paused_unexpectedly(consumers, now, redis_client,
                                                                             settings):
    from workers import ratelimit

    limit = 5
    settings.QUEUE_RATE_LIMITS = {QUEUE: (limit, 60.0)}
    jobs(S.SUCCEEDED, 5, finished=now - timedelta(minutes=4))
    jobs(S.PENDING, 6, due=now - timedelta(minutes=3))
    assert queue_entry(health_report())["status"] == "unhealthy"  # the limiter's window is free: a stall
    for i in range(limit):
        assert ratelimit.acquire(QUEUE, f"job-{i}").allowed
    entry = queue_entry(health_report())
    assert entry["status"] == "healthy", entry["reasons"]
    assert 0 < entry["rateLimitedForSeconds"] <= 60


def test_no_live_worker_is_not_worded_as_a_pause(now):
    live_leader(now)
    entry = queue_entry(health_report())
    assert entry["status"] == "unhealthy"
    assert entry["reasons"][0].startswith("no live worker consumes this queue")
    assert not any("paused" in reason for reason in entry["reasons"])


def test_a_worker_whose_consumer_stopped_is_not_a_live_consumer(consumers, now):
    WorkerHeartbeat.objects.filter(queue=QUEUE).update(consuming=False)
    report = health_report()
    entry = queue_entry(report)
    assert entry["status"] == "unhealthy" and entry["consumers"] == 0
    [worker] = [w for w in worker_report() if w["queue"] == QUEUE]
    assert worker["live"] is False and worker["state"] == "not consuming"


@pytest.mark.parametrize("leader", ["none", "expired", "stopped"])
def test_no_live_dispatcher_leader_is_unhealthy_overall_with_the_reason_named(consumers, now, leader):
    rows = WorkerHeartbeat.objects.filter(pool=WorkerHeartbeat.DISPATCHER_POOL)
    if leader == "none":
        rows.delete()
    elif leader == "expired":
        rows.update(beat_at=now - timedelta(minutes=2), expires_at=now - timedelta(minutes=1))
    else:
        rows.update(stopped_at=now, expires_at=now)
    report = health_report()
    assert report["overall"] == "unhealthy" and report["summary"]["allHealthy"] is False
    assert report["reasons"][0].startswith("no live dispatcher leader")
    assert report["dispatcher"]["live"] is False
    assert all(entry["status"] == "healthy" for entry in report["workers"])  # the queues themselves are fine


def test_a_live_dispatcher_leader_is_named(consumers):
    report = health_report()
    assert report["overall"] == "healthy" and report["reasons"] == []
    assert report["dispatcher"]["leader"] == "dispatcher@h" and report["dispatcher"]["live"] is True


# --- counts kept by triggers (issue 9, item 9) ---------------------------------------------------

def test_the_ledger_counts_follow_every_insert_update_and_delete_and_survive_compaction(consumers, now):
    def counts() -> dict:
        return {(e["name"], k): e[k] for e in health_report()["workers"]
                for k in ("waiting", "active", "completed", "failed", "rejected") if e[k]}

    jobs(S.PENDING, 5, due=now)
    done = jobs(S.SUCCEEDED, 4, finished=now, queue="delivery")
    assert counts() == {(QUEUE, "waiting"): 5, ("delivery", "completed"): 4}
    Job.objects.filter(queue=QUEUE).update(state=S.RUNNING, lease_expires_at=now + timedelta(minutes=1))
    Job.objects.filter(pk=done[0].pk).update(state=S.DEAD, rejected=True)
    Job.objects.filter(pk=done[1].pk).delete()
    expected = {(QUEUE, "active"): 5, ("delivery", "completed"): 2, ("delivery", "rejected"): 1}
    assert counts() == expected
    assert JobCount.objects.count() > 3
    assert fold_job_counts() == 3 and JobCount.objects.count() == 3
    assert counts() == expected
    exact = {(r["queue"], r["state"], r["rejected"]): r["n"]
             for r in Job.objects.values("queue", "state", "rejected").annotate(n=Count("id"))}
    assert {(c.queue, c.state, c.rejected): c.n for c in JobCount.objects.all()} == exact


def ledger_tuples_read() -> int:
    """Rows and index entries of the ledger read so far by this transaction (PostgreSQL's own counters)."""
    with connection.cursor() as cursor:
        # Rows its sequential scans read, plus entries its indexes returned (index-only scans included).
        cursor.execute("""
            SELECT pg_stat_get_xact_tuples_returned('workers_job'::regclass)
                 + (SELECT coalesce(sum(pg_stat_get_xact_tuples_returned(indexrelid)), 0)
                    FROM pg_index WHERE indrelid = 'workers_job'::regclass)""")
        return int(cursor.fetchone()[0])


def test_the_health_report_and_metrics_read_the_recent_window_not_the_whole_ledger(consumers, now):
    """O(queues), not O(ledger): 8,000 old finished jobs are counted, never read."""
    from monitoring.metrics import render

    for queue in ("lead-processing", "site-generation", "email-sending", "delivery"):
        jobs(S.SUCCEEDED, 1900, queue=queue, finished=now - timedelta(days=2))
        jobs(S.DEAD, 100, queue=queue, finished=now - timedelta(days=2))
        jobs(S.SUCCEEDED, 5, queue=queue, finished=now - timedelta(minutes=1))
        jobs(S.PENDING, 3, queue=queue, due=now)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE workers_job")
    before = ledger_tuples_read()
    report = health_report()
    read_by_health = ledger_tuples_read() - before
    render()
    read_by_both = ledger_tuples_read() - before
    assert report["summary"]["totalCompleted"] == 4 * 1905 and report["summary"]["totalFailed"] == 400
    assert read_by_health < 200 and read_by_both < 400, (read_by_health, read_by_both)
