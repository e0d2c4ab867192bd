"""Worker heartbeats without a broker: the rows, who a worker is, the heartbeat thread and its bootstep.
Its memory figure is tests/workers/test_processes.py's, its job counters tests/workers/test_job_counters.py's."""
import logging
import os
import threading
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.db import OperationalError
from django.utils import timezone

from tests.system.processes import wait_for
from monitoring.health import health_report, worker_report
from resilience.db import db_now
from workers import heartbeat
from workers.heartbeat import HeartbeatThread, WorkerIdentity, beat, identities, say_goodbye
from workers.job_counters import JobCounters
from workers.models import WorkerHeartbeat
from workers.worker_steps import Heartbeat

QUEUE = "lead-processing"


def beat_as(name: str = f"{QUEUE}@primary.h", *, pid: int = 100, **fields) -> WorkerHeartbeat:
    values = {"name": name, "pool": "primary", "queue": QUEUE, "host": "h", "pid": pid, "concurrency": 5,
              "started_at": timezone.now(), "memory_bytes": 1}
    beat(**{**values, **fields})
    return WorkerHeartbeat.objects.get(name=name)


def live_state(name: str) -> str:
    return next(w["state"] for w in worker_report() if w["name"] == name)


def consumers(queue: str = QUEUE) -> int:
    return next(q["consumers"] for q in health_report()["workers"] if q["name"] == queue)


# --- the rows --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_beat_makes_the_worker_live_until_its_ttl_by_the_database_clock(settings):
    before = db_now()
    row = beat_as(jobs_done=3, jobs_failed=1)
    after = db_now()
    assert before <= row.beat_at <= after
    assert row.expires_at - row.beat_at == timedelta(seconds=settings.HEARTBEAT_TTL_SECONDS)
    assert (row.pid, row.concurrency, row.jobs_done, row.jobs_failed, row.stopped_at) == (100, 5, 3, 1, None)
    assert live_state(row.name) == "live" and consumers() == 1


@pytest.mark.django_db
def test_an_expired_beat_is_gone():
    row = beat_as()
    assert live_state(row.name) == "live"
    assert next(w["state"] for w in worker_report(now=row.expires_at) if w["name"] == row.name) == "gone"


@pytest.mark.django_db
def test_the_next_beat_refreshes_the_same_row():
    first = beat_as(jobs_done=1)
    second = beat_as(jobs_done=2, memory_bytes=5)
    assert WorkerHeartbeat.objects.count() == 1
    assert second.pk == first.pk and second.beat_at >= first.beat_at
    assert (second.jobs_done, second.memory_bytes) == (2, 5)


@pytest.mark.django_db
def test_goodbye_stops_the_worker_at_once_and_a_restart_takes_the_row_over():
    row = beat_as(pid=100)
    assert say_goodbye(row.name, pid=100)
    row.refresh_from_db()
    assert row.stopped_at is not None and row.expires_at == row.stopped_at
    assert live_state(row.name) == "stopped" and consumers() == 0

    restarted = beat_as(pid=200, jobs_done=0)
    assert restarted.pk == row.pk and restarted.stopped_at is None and restarted.pid == 200
    assert live_state(row.name) == "live"


@pytest.mark.django_db
def test_goodbye_of_an_old_process_leaves_the_new_one_of_the_same_name_live():
    row = beat_as(pid=200)
    assert not say_goodbye(row.name, pid=100)
    assert live_state(row.name) == "live"


# --- who a worker is -------------------------------------------------------------------------------


def test_a_production_worker_is_one_row_named_as_its_node():
    assert identities("lead-processing@primary.web-1.example.com", ["lead-processing"]) == [
        WorkerIdentity("lead-processing@primary.web-1.example.com", "primary", "lead-processing", "web-1.example.com")
    ]


def test_the_development_worker_is_one_row_per_queue():
    rows = identities("dev@laptop", ["lead-processing", "delivery", "email-sending", "site-generation"])
    assert [(r.name, r.pool, r.queue, r.host) for r in rows] == [
        ("dev@laptop/delivery", "dev", "delivery", "laptop"),
        ("dev@laptop/email-sending", "dev", "email-sending", "laptop"),
        ("dev@laptop/lead-processing", "dev", "lead-processing", "laptop"),
        ("dev@laptop/site-generation", "dev", "site-generation", "laptop"),
    ]


def test_a_production_worker_on_several_queues_is_one_row_per_queue_in_its_pool():
    rows = identities("lead-processing+delivery@backup.web-1", ["lead-processing", "delivery"])
    assert [(r.name, r.pool, r.queue, r.host) for r in rows] == [
        ("lead-processing+delivery@backup.web-1/delivery", "backup", "delivery", "web-1"),
        ("lead-processing+delivery@backup.web-1/lead-processing", "backup", "lead-processing", "web-1"),
    ]


def test_another_node_name_on_one_queue_is_its_own_pool():
    assert identities("celery@box", ["delivery"]) == [WorkerIdentity("celery@box", "celery", "delivery", "box")]


def test_a_node_name_without_host_gets_this_host(monkeypatch):
    monkeypatch.setattr(heartbeat.socket, "gethostname", lambda: "here")
    assert identities("delivery@backup", ["delivery"]) == [
        WorkerIdentity("delivery@backup", "backup", "delivery", "here")]


# --- the heartbeat thread --------------------------------------------------------------------------


def rows(*queues: str) -> list[WorkerIdentity]:
    return identities(f"{queues[0]}@primary.h" if len(queues) == 1 else "dev@h", list(queues))


def start_thread(identity: list[WorkerIdentity], **kwargs) -> HeartbeatThread:
    thread = HeartbeatThread(identity, pid=os.getpid(), concurrency=2, interval=0.2, **kwargs)
    thread.start()
    return thread


@pytest.mark.django_db(transaction=True)
def test_the_thread_beats_at_once_and_every_interval_then_says_goodbye():
    counters = JobCounters()
    thread = start_thread(rows(QUEUE), counters=counters)
    try:
        assert wait_for(lambda: WorkerHeartbeat.objects.filter(name=f"{QUEUE}@primary.h").exists(), 5)
        row = WorkerHeartbeat.objects.get()
        assert (row.pid, row.concurrency, row.pool, row.queue, row.host) == (os.getpid(), 2, "primary", QUEUE, "h")
        assert row.memory_bytes > 0 and live_state(row.name) == "live"
        counters.count_result(QUEUE, "'succeeded'")
        counters.count_failure(QUEUE)
        counters.count_rejection(QUEUE)
        counters.count_rejection(QUEUE)
        assert wait_for(lambda: WorkerHeartbeat.objects.filter(jobs_done=1, jobs_failed=1, jobs_rejected=2).exists(), 5)
        reported = next(w for w in worker_report() if w["name"] == row.name)  # the dashboard's data
        assert (reported["jobsFailed"], reported["jobsRejected"]) == (1, 2)
        assert WorkerHeartbeat.objects.get().last_job_at == counters.snapshot().last_job_at
    finally:
        thread.stop()
    assert not thread._thread.is_alive()
    assert live_state(f"{QUEUE}@primary.h") == "stopped"


@pytest.mark.django_db(transaction=True)
def test_the_development_worker_beats_one_row_per_queue_with_that_queues_counts():
    counters = JobCounters()
    counters.count_result("delivery", "'succeeded'")
    thread = start_thread(rows(QUEUE, "delivery"), counters=counters)
    try:
        assert wait_for(lambda: WorkerHeartbeat.objects.count() == 2, 5)
        assert dict(WorkerHeartbeat.objects.values_list("queue", "jobs_done")) == {QUEUE: 0, "delivery": 1}
        assert consumers(QUEUE) == consumers("delivery") == 1
    finally:
        thread.stop()
    assert consumers(QUEUE) == consumers("delivery") == 0


@pytest.mark.django_db(transaction=True)
def test_a_database_outage_is_logged_once_and_the_beats_go_on(monkeypatch, caplog):
    failing = threading.Event()
    failing.set()
    calls = {"failed": 0}
    real_beat = heartbeat.beat

    def flaky_beat(**kwargs):
        if failing.is_set():
            calls["failed"] += 1
            raise OperationalError("could not connect to server: Connection refused")
        real_beat(**kwargs)

    monkeypatch.setattr(heartbeat, "beat", flaky_beat)
    caplog.set_level(logging.WARNING, logger="workers.heartbeat")
    thread = start_thread(rows(QUEUE))
    try:
        assert wait_for(lambda: calls["failed"] >= 4, 5)  # it kept trying, and did not die
        assert thread._thread.is_alive()
        failing.clear()
        assert wait_for(lambda: WorkerHeartbeat.objects.exists(), 5)
    finally:
        thread.stop()
    warnings = [r.getMessage() for r in caplog.records]
    assert sum("not written" in m for m in warnings) == 1, warnings
    assert sum("written again" in m for m in warnings) == 1, warnings


def test_goodbye_when_the_database_is_away_does_not_fail_the_shutdown(monkeypatch, caplog):
    def away(*args, **kwargs):
        raise OperationalError("could not connect to server: Connection refused")

    monkeypatch.setattr(heartbeat, "beat", away)
    monkeypatch.setattr(heartbeat, "say_goodbye", away)
    thread = start_thread(rows(QUEUE))
    thread.stop()
    assert not thread._thread.is_alive()
    assert any("could not mark" in r.getMessage() for r in caplog.records)


# --- the bootstep --------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_bootstep_beats_for_the_workers_node_and_queues_and_says_goodbye_on_stop():
    worker = SimpleNamespace(
        hostname="dev@box", concurrency=3,
        app=SimpleNamespace(amqp=SimpleNamespace(queues=SimpleNamespace(consume_from={QUEUE: 1, "delivery": 1}))),
    )
    step = Heartbeat(worker)
    step.start(worker)
    try:
        assert wait_for(lambda: WorkerHeartbeat.objects.count() == 2, 5)
        assert set(WorkerHeartbeat.objects.values_list("name", "pool", "concurrency", "pid")) == {
            ("dev@box/delivery", "dev", 3, os.getpid()), (f"dev@box/{QUEUE}", "dev", 3, os.getpid())}
    finally:
        step.stop(worker)
    assert WorkerHeartbeat.objects.filter(stopped_at__isnull=False).count() == 2


# --- a worker whose consumer stopped (issue 9, item 8) -------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_a_worker_whose_consumer_stops_is_not_live_at_its_next_check_and_is_again_once_it_consumes():
    consuming = threading.Event()
    consuming.set()
    # A long interval: the change must be written at once, not at the next regular beat.
    thread = HeartbeatThread(rows(QUEUE), pid=os.getpid(), concurrency=2, interval=60, consuming=consuming.is_set)
    thread.start()
    try:
        assert wait_for(lambda: consumers(QUEUE) == 1, 5)
        consuming.clear()  # the broker connection is gone; the process and this thread live on
        assert wait_for(lambda: consumers(QUEUE) == 0, 5)
        assert live_state(f"{QUEUE}@primary.h") == "not consuming"
        consuming.set()
        assert wait_for(lambda: consumers(QUEUE) == 1, 5)
    finally:
        thread.stop()


def fake_worker(state: int | None, started: int, steps: int = 3, connection: object | None = object()):
    blueprint = SimpleNamespace(state=state, started=started)
    return SimpleNamespace(consumer=SimpleNamespace(blueprint=blueprint, steps=[object()] * steps,
                                                    connection=connection))


def test_consumer_running_reads_the_celery_consumers_blueprint_and_connection():
    from celery.bootsteps import CLOSE, RUN, TERMINATE

    from workers.heartbeat import consumer_running

    assert consumer_running(fake_worker(RUN, 3)) is True
    assert consumer_running(fake_worker(RUN, 1)) is False  # restarting: blocked reconnecting in step 1
    assert consumer_running(fake_worker(RUN, 3, connection=None)) is False  # connection closed
    assert consumer_running(fake_worker(CLOSE, 3)) is False
    assert consumer_running(fake_worker(TERMINATE, 3)) is False
    assert consumer_running(fake_worker(None, 0)) is False  # not started yet
    assert consumer_running(SimpleNamespace()) is False  # the worker has no consumer yet
