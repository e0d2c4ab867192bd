"""Worker heartbeats with real processes: a live worker's row, its job counters, a warm shutdown's
goodbye, and every worker of a queue killed turning that queue unhealthy.

Tests run with HEARTBEAT_INTERVAL_SECONDS=1 and HEARTBEAT_TTL_SECONDS=3 (tests/settings.py).
"""
import os
import signal
import time
from datetime import timedelta

import pytest
from django.conf import settings

from resilience.db import db_now
from tests.system.checks import QUEUE, resend_old_messages, skipped_messages
from tests.system.processes import wait_for
from monitoring.health import UNHEALTHY, health_report
from workers.models import Job, JobFailure, WorkerHeartbeat
from workers.probe import enqueue_probe
from workers.processes import rss_bytes

pytestmark = [pytest.mark.system, pytest.mark.django_db(transaction=True)]
OTHER_QUEUE = "delivery"
POOLS = ("primary", "backup")
# On top of interval + TTL: a loaded 2-core machine, and this test's own polling.
SLACK_SECONDS = 5.0


def live_row(processes, name: str) -> WorkerHeartbeat | None:
    """The live heartbeat row of the worker process `name` (queue@pool), this very process's: beating,
    and with its consumer running (the first beat, written before the consumer starts, says not)."""
    row = WorkerHeartbeat.objects.filter(name__startswith=f"{name}.", pid=processes.pid(name)).first()
    return row if row and row.stopped_at is None and row.expires_at > db_now() and row.consuming else None


def wait_live(processes, name: str, timeout: float = 30) -> WorkerHeartbeat:
    assert wait_for(lambda: live_row(processes, name) is not None, timeout), processes.logs()
    return live_row(processes, name)


def queue_health(queue: str) -> dict:
    return next(entry for entry in health_report()["workers"] if entry["name"] == queue)


def test_a_started_worker_is_live_with_its_pid_pool_queue_concurrency_and_memory(processes):
    processes.worker(QUEUE, "primary", 2)
    processes.wait_ready(f"{QUEUE}@primary")
    row = wait_live(processes, f"{QUEUE}@primary")

    assert (row.pool, row.queue, row.concurrency, row.pid) == ("primary", QUEUE, 2, processes.pid(f"{QUEUE}@primary"))
    assert row.name == f"{QUEUE}@primary.{row.host}" and row.host
    assert (row.jobs_done, row.jobs_failed, row.last_job_at) == (0, 0, None)
    # Main process and its two pool children: more than the main process alone.
    assert len(processes.pool_children(f"{QUEUE}@primary")) == 2
    assert row.memory_bytes > rss_bytes(row.pid), (row.memory_bytes, rss_bytes(row.pid))
    assert queue_health(QUEUE)["consumers"] == 1
    # And it goes on beating.
    assert wait_for(lambda: WorkerHeartbeat.objects.get(pk=row.pk).beat_at > row.beat_at,
                    settings.HEARTBEAT_INTERVAL_SECONDS + SLACK_SECONDS)


def test_the_beats_count_the_jobs_done_failed_and_rejected_as_the_ledger_does(processes):
    processes.configure(LOG_LEVEL="INFO")  # for the workers' "skipping" lines
    name = f"{QUEUE}@primary"
    processes.worker(QUEUE, "primary", 2)
    processes.dispatcher("primary")
    processes.wait_ready(name)
    worker = wait_live(processes, name).name

    jobs = [enqueue_probe(QUEUE) for _ in range(3)]
    jobs += [enqueue_probe(QUEUE, fail="permanent") for _ in range(2)]
    jobs.append(enqueue_probe(QUEUE, fail="transient"))  # retried, then dead-lettered: 3 failed attempts
    jobs.append(enqueue_probe(QUEUE, fail="invalid"))  # its input refused: rejected, not failed (issue 20)
    ids = [job.id for job in jobs]
    assert wait_for(lambda: Job.objects.filter(id__in=ids, state__in=Job.FINISHED_STATES).count() == len(jobs), 60), \
        processes.logs()
    done = Job.objects.filter(worker=worker, state=Job.State.SUCCEEDED).count()
    failed = JobFailure.objects.filter(worker=worker, rejected=False).count()  # every failed attempt
    rejected = Job.objects.filter(worker=worker, state=Job.State.DEAD, rejected=True).count()
    assert (done, failed, rejected) == (3, 2 + 3, 1)
    assert queue_health(QUEUE)["failed"] == 3 and queue_health(QUEUE)["rejected"] == 1

    def counted() -> WorkerHeartbeat:
        return WorkerHeartbeat.objects.get(name=worker)

    def counts() -> tuple[int, int, int]:
        row = counted()
        return row.jobs_done, row.jobs_failed, row.jobs_rejected

    assert wait_for(lambda: counts() == (done, failed, rejected),
                    settings.HEARTBEAT_INTERVAL_SECONDS + SLACK_SECONDS), counts()
    last_finished = max(Job.objects.filter(id__in=ids).values_list("finished_at", flat=True))
    # Counted by the worker's main process once the pool child reported the job's end, which the
    # child wrote to the ledger just before: at or after it, never long after.
    assert last_finished <= counted().last_job_at <= last_finished + timedelta(seconds=SLACK_SECONDS), \
        (last_finished, counted().last_job_at)

    # A duplicate message of a finished job is skipped and counts as neither.
    skipped_before = skipped_messages(processes)
    sent = resend_old_messages(jobs[:3])
    assert wait_for(lambda: skipped_messages(processes) - skipped_before >= sent, 20), processes.logs()
    seen = counted().beat_at
    assert wait_for(lambda: counted().beat_at > seen, settings.HEARTBEAT_INTERVAL_SECONDS + SLACK_SECONDS)
    assert counts() == (done, failed, rejected)


def test_sigterm_shows_the_worker_stopped_at_once_and_a_restart_is_live_again(processes):
    name = f"{QUEUE}@primary"
    processes.worker(QUEUE, "primary", 1)
    processes.wait_ready(name)
    row = wait_live(processes, name)

    processes.kill(name, signal.SIGTERM)
    assert processes.wait_exit(name, 20) == 0, processes.logs()
    # No waiting for an expiry: its goodbye is written before it exits.
    row.refresh_from_db()
    assert row.stopped_at is not None and row.expires_at <= db_now()
    assert queue_health(QUEUE)["consumers"] == 0

    processes.worker(QUEUE, "primary", 1)
    restarted = wait_live(processes, name)
    assert restarted.pk == row.pk and restarted.pid != row.pid and restarted.stopped_at is None


def test_killing_every_worker_of_a_queue_makes_it_unhealthy_within_interval_plus_ttl(processes):
    victims = [f"{QUEUE}@{pool}" for pool in POOLS]
    survivors = [f"{OTHER_QUEUE}@{pool}" for pool in POOLS]
    for pool in POOLS:
        processes.worker(QUEUE, pool, 1)
        processes.worker(OTHER_QUEUE, pool, 1)
    for name in victims + survivors:
        processes.wait_ready(name)
        wait_live(processes, name)
    assert queue_health(QUEUE)["status"] != UNHEALTHY and queue_health(QUEUE)["consumers"] == 2
    assert queue_health(OTHER_QUEUE)["status"] != UNHEALTHY and queue_health(OTHER_QUEUE)["consumers"] == 2

    for name in victims:  # main process and pool children, as the OOM killer or a lost host would
        os.killpg(processes.pid(name), signal.SIGKILL)
    killed_at = time.monotonic()
    for name in victims:
        assert processes.wait_exit(name, 5) == -signal.SIGKILL

    bound = settings.HEARTBEAT_INTERVAL_SECONDS + settings.HEARTBEAT_TTL_SECONDS + SLACK_SECONDS
    other_statuses: list[str] = []

    def victim_queue_unhealthy() -> bool:
        report = {entry["name"]: entry for entry in health_report()["workers"]}
        other_statuses.append(report[OTHER_QUEUE]["status"])
        return report[QUEUE]["status"] == UNHEALTHY

    became_unhealthy = wait_for(victim_queue_unhealthy, bound, interval=0.1)
    took = time.monotonic() - killed_at
    print(f"\nMEASURED every {QUEUE} worker SIGKILLed: unhealthy after {took:.1f}s "
          f"(interval {settings.HEARTBEAT_INTERVAL_SECONDS:g} s, TTL {settings.HEARTBEAT_TTL_SECONDS:g} s)")
    assert became_unhealthy, (took, queue_health(QUEUE), processes.logs())
    entry = queue_health(QUEUE)
    assert entry["consumers"] == 0 and any("no live worker" in reason for reason in entry["reasons"]), entry
    # The other queue's workers kept beating all along.
    assert UNHEALTHY not in other_statuses and queue_health(OTHER_QUEUE)["consumers"] == 2, other_statuses
    assert all(processes.alive(name) for name in survivors)
