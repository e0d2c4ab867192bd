"""Health that tells the truth, with real processes (issue 9, item 8).

Tests run with HEARTBEAT_INTERVAL_SECONDS=1 and HEARTBEAT_TTL_SECONDS=3 (tests/settings.py).
"""
import signal

import pytest

from tests.system.checks import QUEUE
from tests.system.processes import wait_for
from monitoring.health import health_report
from workers.models import WorkerHeartbeat

pytestmark = [pytest.mark.system, pytest.mark.django_db(transaction=True)]
CANDIDATES = ["dispatcher-primary", "dispatcher-backup"]
# TTL plus a loaded 2-core machine and this test's own polling.
WITHIN_SECONDS = 10.0


def leader_reasons() -> list[str]:
    return health_report()["reasons"]


def test_killing_both_dispatcher_candidates_makes_the_system_unhealthy_with_the_reason_named(processes):
    """Given two dispatcher candidates; when the leader is killed, the other leads and beats (the
    system stays without a leader reason); when it is killed too, the overall status is unhealthy
    within the heartbeat TTL, naming the missing leader."""
    processes.configure(LOG_LEVEL="INFO")
    processes.dispatcher("primary")
    processes.dispatcher("backup")
    assert wait_for(lambda: health_report()["dispatcher"]["live"], 20), processes.logs()
    assert leader_reasons() == []
    first = processes.leader(CANDIDATES)
    assert first is not None, processes.logs()
    processes.kill(first, signal.SIGKILL)
    standby = next(name for name in CANDIDATES if name != first)
    assert wait_for(lambda: processes.leader(CANDIDATES) == standby, 20), processes.logs()
    live_pid = lambda: WorkerHeartbeat.objects.filter(  # noqa: E731
        pool=WorkerHeartbeat.DISPATCHER_POOL, pid=processes.pid(standby), stopped_at__isnull=True).exists()
    assert wait_for(lambda: live_pid() and health_report()["dispatcher"]["live"], 20), processes.logs()

    processes.kill(standby, signal.SIGKILL)
    assert wait_for(lambda: not health_report()["dispatcher"]["live"], WITHIN_SECONDS), processes.logs()
    report = health_report()
    assert report["overall"] == "unhealthy" and report["summary"]["allHealthy"] is False
    assert report["reasons"] and report["reasons"][0].startswith("no live dispatcher leader")


def test_a_worker_whose_broker_is_gone_is_not_a_live_consumer_and_is_again_once_it_reconnects(
        private_redis, processes):
    """Given a worker on a private Redis; when Redis stops, the worker process and its heartbeat
    thread live on but its consumer does not: the queue has no live consumer within seconds (the
    reason says so, not a pause); when Redis is back, the worker counts again."""
    processes.configure(TEST_REDIS_URL=private_redis.url)
    processes.worker(QUEUE, "primary", 1)
    processes.wait_ready(f"{QUEUE}@primary")

    def queue_entry() -> dict:
        return next(e for e in health_report()["workers"] if e["name"] == QUEUE)

    assert wait_for(lambda: queue_entry()["consumers"] == 1, 20), processes.logs()
    private_redis.stop()
    assert wait_for(lambda: queue_entry()["consumers"] == 0, WITHIN_SECONDS), processes.logs()
    row = WorkerHeartbeat.objects.get(pid=processes.pid(f"{QUEUE}@primary"))
    assert row.consuming is False and row.stopped_at is None  # still beating: the process lives
    assert processes.alive(f"{QUEUE}@primary")
    entry = queue_entry()
    assert entry["status"] == "unhealthy" and entry["reasons"][0].startswith("no live worker consumes")

    private_redis.start()
    assert wait_for(lambda: queue_entry()["consumers"] == 1, 30), processes.logs()
