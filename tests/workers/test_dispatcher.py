"""The dispatcher against real PostgreSQL and Redis."""
import json
import time
from uuid import UUID

import pytest

from workers import dispatcher, ledger
from workers.dispatcher import DispatchStats, dispatch_due_jobs
from workers.leader import PostgresLeadership
from workers.models import Job

pytestmark = pytest.mark.django_db(transaction=True)


def queued_messages(redis_client, queue: str) -> list[dict]:
    return [json.loads(raw) for raw in redis_client.lrange(queue, 0, -1)]


def test_due_jobs_are_published_with_the_job_id_as_task_id(redis_client):
    jobs = [ledger.enqueue("lead-processing", "leads.process_lead", {"n": i}) for i in range(3)]
    stats = dispatch_due_jobs()
    assert stats.published == 3 and stats.by_queue == {"lead-processing": 3}
    messages = queued_messages(redis_client, "lead-processing")
    assert sorted(m["headers"]["id"] for m in messages) == sorted(str(j.id) for j in jobs)
    for message in messages:
        assert message["headers"]["task"] == "leads.process_lead"
        assert message["content-type"] == "application/json"
    assert set(Job.objects.values_list("state", flat=True)) == {"dispatched"}


def test_backpressure_keeps_the_backlog_in_the_ledger(redis_client, settings):
    settings.QUEUE_CONCURRENCY = {**settings.QUEUE_CONCURRENCY, "delivery": 2}
    settings.WORKER_POOLS = 2
    for i in range(7):
        ledger.enqueue("delivery", "delivery.run", {"n": i})
    assert dispatch_due_jobs().published == 4
    assert dispatch_due_jobs().published == 0  # nothing finished yet
    finished = Job.objects.filter(state="dispatched").first()
    Job.objects.filter(pk=finished.pk).update(state="succeeded")
    assert dispatch_due_jobs().published == 1
    assert redis_client.llen("delivery") == 5
    assert Job.objects.filter(state="pending").count() == 2


def test_a_failed_publish_leaves_the_job_pending(redis_client, monkeypatch):
    job = ledger.enqueue("lead-processing", "leads.process_lead", {})

    def broker_down(d, producer=None):
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(dispatcher, "publish", broker_down)
    stats = dispatch_due_jobs(DispatchStats())
    assert stats.published == 0 and stats.publish_failures == 1
    job.refresh_from_db()
    assert job.state == "pending" and job.dispatch_token == 1
    monkeypatch.undo()
    assert dispatch_due_jobs().published == 1
    assert redis_client.llen("lead-processing") == 1


def test_a_failed_publish_puts_the_rest_of_its_batch_back_at_once(redis_client, monkeypatch):
    """Given 5 due jobs taken in one batch, when the broker fails on the 2nd publish, then the
    first stays published and the other 4 are pending again at once (not left dispatched until
    JOB_REDISPATCH_SECONDS), so the next round publishes them."""
    for i in range(5):
        ledger.enqueue("lead-processing", "leads.process_lead", {"n": i})
    real_publish, calls = dispatcher.publish, []

    def fails_on_the_second(d, producer=None):
        calls.append(d.job_id)
        if len(calls) == 2:
            raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
        real_publish(d, producer)

    monkeypatch.setattr(dispatcher, "publish", fails_on_the_second)
    stats = dispatch_due_jobs(DispatchStats())
    assert stats.published == 1 and stats.publish_failures == 1 and len(calls) == 2
    states = dict(Job.objects.values_list("id", "state"))
    assert sorted(states.values()) == ["dispatched"] + ["pending"] * 4
    assert states[UUID(calls[0])] == "dispatched"
    monkeypatch.undo()
    assert dispatch_due_jobs().published == 4
    assert redis_client.llen("lead-processing") == 5


def test_only_one_dispatcher_leads_and_another_takes_over_when_it_goes():
    first, second = PostgresLeadership(), PostgresLeadership()
    try:
        assert first.try_acquire() is True
        assert first.still_held() is True
        assert second.try_acquire() is False
        first.release()  # as when the leader's process dies and its session ends
        assert second.try_acquire() is True
        assert first.try_acquire() is False
    finally:
        first.release()
        second.release()


def test_a_redis_restart_publishes_every_dispatched_job_again_at_once(redis_client, monkeypatch):
    from workers import wakeup
    from workers.dispatcher import Dispatcher

    job = ledger.enqueue("lead-processing", "leads.process_lead", {})
    run_ids = iter(["before-restart", "after-restart"])
    monkeypatch.setattr(wakeup, "redis_run_id", lambda: next(run_ids))
    d = Dispatcher(leadership=PostgresLeadership(), interval=0.01, duty_thread=False)
    try:
        d.tick()  # leads, publishes the job
        assert "noticing a Redis restart" in d.duties.run_due()  # learns the run id
        assert Job.objects.get(pk=job.pk).state == "dispatched"
        redis_client.flushdb()  # the restart: the queued message is gone
        d.duties.next_at.clear()
        d.duties.run_due()  # a new run id: the job goes back to waiting at once, not after JOB_REDISPATCH_SECONDS
        d.tick()  # and the round publishes it
    finally:
        d.leadership.release()
    job.refresh_from_db()
    assert job.state == "dispatched" and job.dispatch_token == 2
    assert [json.loads(m)["headers"]["id"] for m in redis_client.lrange("lead-processing", 0, -1)] == [str(job.id)]


def test_the_real_redis_has_a_run_id(redis_client):
    from workers import wakeup

    assert len(wakeup.redis_run_id() or "") == 40


def test_the_leader_writes_a_heartbeat_from_its_loop_and_says_goodbye_when_it_stops(redis_client):
    from workers.dispatcher import Dispatcher
    from monitoring.health import health_report
    from workers.models import WorkerHeartbeat

    d = Dispatcher(leadership=PostgresLeadership(), interval=0.01, duty_thread=False)
    standby = Dispatcher(leadership=PostgresLeadership(), interval=0.01, duty_thread=False)
    try:
        d.tick()
        d.duties.run_due()  # the leader's heartbeat is one of its duties
        standby.tick()  # not the leader: writes nothing
        [row] = WorkerHeartbeat.objects.filter(pool=WorkerHeartbeat.DISPATCHER_POOL)
        assert row.name.startswith("dispatcher@") and row.queue == "" and row.stopped_at is None
        leader = health_report()["dispatcher"]
        assert (leader["leader"], leader["live"]) == (row.name, True)
        beat_at = row.beat_at
        d.tick()
        d.duties.next_at.clear()
        d.duties.run_due()  # within the heartbeat interval: no second write
        assert WorkerHeartbeat.objects.get(pk=row.pk).beat_at == beat_at
    finally:
        d.stop()
        d.run_forever()  # stops at once: says goodbye, releases the lock
        standby.leadership.release()
    report = health_report()
    assert WorkerHeartbeat.objects.get(pk=row.pk).stopped_at is not None
    assert report["overall"] == "unhealthy" and report["reasons"][0].startswith("no live dispatcher leader")


def test_a_leader_that_loses_its_lock_says_goodbye(redis_client):
    from workers.dispatcher import Dispatcher
    from workers.models import WorkerHeartbeat

    d = Dispatcher(leadership=PostgresLeadership(), interval=0.01, duty_thread=False)
    try:
        d.tick()
        d.duties.run_due()
        assert WorkerHeartbeat.objects.get(pool="dispatcher").stopped_at is None
        d.leadership._drop()  # the session ends: the lock is gone with it
        time.sleep(0.02)  # the leader checks its lock once per interval, not at every round
        d.tick()
        assert d.is_leader is False
        assert WorkerHeartbeat.objects.get(pool="dispatcher").stopped_at is not None
    finally:
        d.leadership.release()


def test_one_round_takes_every_queue_within_its_bounds(redis_client, settings):
    from workers.models import QueuePause

    settings.QUEUE_CONCURRENCY = {**settings.QUEUE_CONCURRENCY, "delivery": 1, "lead-processing": 5}
    settings.WORKER_POOLS = 2
    for queue in ("delivery", "lead-processing", "email-sending"):
        for i in range(4):
            ledger.enqueue(queue, "t", {"n": i})
    QueuePause.objects.create(queue="email-sending", reason="test")
    taken = ledger.take_due([ledger.Wanted("delivery", 100, in_flight_cap=2),
                             ledger.Wanted("lead-processing", 3),
                             ledger.Wanted("email-sending", 100)])
    assert sorted(d.queue for d in taken) == ["delivery"] * 2 + ["lead-processing"] * 3
    assert all(d.token == 1 for d in taken)
    # Dispatched but not started counts against the free start slots of a rate-limited queue.
    again = ledger.take_due([ledger.Wanted("lead-processing", 100, free_slots=4)])
    assert len(again) == 1  # 4 free slots, 3 already published and not started


def running_with_lapsed_lease(seconds_ago: float) -> Job:
    from datetime import timedelta

    from django.db.models.functions import Now

    job = ledger.enqueue("lead-processing", "leads.process_lead", {})
    [d] = ledger.take_due_jobs("lead-processing", 1)
    assert ledger.claim(d.job_id, d.token, "w") is not None
    Job.objects.filter(pk=job.pk).update(lease_expires_at=Now() - timedelta(seconds=seconds_ago))
    return job


def test_the_reaper_takes_a_lease_only_past_its_grace(redis_client, settings):
    from workers.dispatcher import Dispatcher

    settings.JOB_LEASE_GRACE_SECONDS = 1.0
    within, past = running_with_lapsed_lease(0.5), running_with_lapsed_lease(1.5)
    d = Dispatcher(leadership=PostgresLeadership(), interval=0.01, duty_thread=False)
    try:
        d.tick()
    finally:
        d.leadership.release()
    assert Job.objects.get(pk=within.pk).state == "running"  # late, perhaps only slow: kept
    assert Job.objects.get(pk=past.pk).state != "running"  # reaped, back to pending (or dispatched again)


def test_after_its_own_sweeps_stalled_the_reaper_waits_a_lease_before_taking_any(redis_client, settings):
    # PostgreSQL (or this leader) stalled for seconds: the workers' renewals stalled alike, and their
    # leases look expired the moment the database answers again. Slow, not gone: wait for renewals.
    from workers.dispatcher import Dispatcher

    settings.JOB_LEASE_SECONDS, settings.JOB_LEASE_RENEW_SECONDS, settings.JOB_LEASE_GRACE_SECONDS = 0.6, 0.2, 0.2
    d = Dispatcher(leadership=PostgresLeadership(), interval=0.01, duty_thread=False)
    try:
        d.tick()  # leads and sweeps: nothing to reap
        job = running_with_lapsed_lease(5)
        d.last_recovery -= 3  # its sweeps stopped for 3 s
        d.tick()
        assert Job.objects.get(pk=job.pk).state == "running"
        for _ in range(12):  # rounds as usual; lease + grace later, a worker that lived would have renewed
            time.sleep(0.1)
            d.tick()
    finally:
        d.leadership.release()
    assert Job.objects.get(pk=job.pk).state != "running"
