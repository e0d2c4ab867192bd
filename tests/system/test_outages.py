"""Outages of Redis and PostgreSQL with real worker and dispatcher processes.

Redis: a private, non-persistent redis-server is stopped and started again, so every message in it
is lost. PostgreSQL: the workers and the dispatcher reach it through a loopback proxy the test cuts
for 30 s, while the test itself keeps its direct connection.
"""
import time

import pytest
import redis

from tests.system.checks import (
    QUEUE,
    assert_ran_exactly_once,
    assert_ran_exactly_once_by_the_logs,
    task_results,
    wait_succeeded,
)
from tests.system.processes import database_proxy, database_url, wait_for
from workers.models import Job
from workers.probe import enqueue_probe, starts_key

pytestmark = [pytest.mark.system, pytest.mark.django_db(transaction=True)]
POOLS = ("primary", "backup")


def running_count(jobs: list[Job]) -> int:
    return Job.objects.filter(id__in=[j.id for j in jobs], state="running").count()


def started_after(jobs: list[Job], processes, after: dict[str, list[str]]) -> set[str]:
    """Pools whose workers ran some of `jobs` after the point `after` (a task_results snapshot)."""
    now = task_results(processes)
    return {job.worker.split("@")[1].split(".")[0] for job in Job.objects.filter(id__in=[j.id for j in jobs])
            if len(now.get(str(job.id), [])) > len(after.get(str(job.id), []))}


def test_a_redis_restart_loses_no_job_and_every_process_carries_on(private_redis, processes):
    """Given two pools and a dispatcher on a private Redis, with jobs running and queued;
    when Redis stops (losing every queued message), stays away 5 s and starts again empty;
    then every job enqueued before, during and after the outage finishes exactly once, and
    both workers consume again (the dispatcher re-publishes the lost messages)."""
    processes.configure(TEST_REDIS_URL=private_redis.url, LOG_LEVEL="INFO")
    for pool in POOLS:
        processes.worker(QUEUE, pool, 2)
    processes.dispatcher("primary")
    for pool in POOLS:
        processes.wait_ready(f"{QUEUE}@{pool}")
    before = [enqueue_probe(QUEUE, sleep=2) for _ in range(8)]  # 4 run at once, 4 wait in Redis
    assert wait_for(lambda: running_count(before) == 4, 20), processes.logs()

    private_redis.stop()
    stopped_at = time.monotonic()
    during = [enqueue_probe(QUEUE, sleep=0.5) for _ in range(4)]
    time.sleep(5)  # the outage itself: nothing to wait for
    private_redis.start()
    restarted_at = time.monotonic()
    snapshot = task_results(processes)
    after = [enqueue_probe(QUEUE, sleep=1) for _ in range(8)]

    wait_succeeded(before + during + after, 60, processes)
    print(f"\nMEASURED Redis restart: all {len(before + during + after)} jobs succeeded "
          f"{time.monotonic() - restarted_at:.1f}s after Redis came back ({restarted_at - stopped_at:.1f}s outage)")
    assert all(processes.alive(name) for name in processes.procs), processes.logs()
    assert started_after(during + after, processes, snapshot) == set(POOLS), processes.logs()
    # The start counters were in the Redis that restarted: the workers' logs are the witness for
    # all jobs; the counters still hold for the jobs that first started after the restart.
    assert_ran_exactly_once_by_the_logs(before + during + after, processes)
    client = redis.Redis(port=private_redis.port)
    assert_ran_exactly_once(during + after, starts=lambda job_id: int(client.get(starts_key(job_id)) or 0))
    redispatched = Job.objects.filter(id__in=[j.id for j in before], dispatch_token__gt=1).count()
    print(f"MEASURED Redis restart: {redispatched} of the {len(before)} jobs enqueued before were published again")

    # Once more while every worker is idle, blocked reading from Redis (the case reported as
    # celery#9054 / kombu#2007: connected again but never consuming).
    private_redis.stop()
    time.sleep(2)
    private_redis.start()
    restarted_at = time.monotonic()
    snapshot = task_results(processes)
    idle = [enqueue_probe(QUEUE, sleep=1) for _ in range(8)]
    wait_succeeded(idle, 30, processes)
    print(f"MEASURED Redis restart while idle: 8 new jobs succeeded {time.monotonic() - restarted_at:.1f}s after it")
    # Each worker reconnects on its own backoff (2 s, then 4 s ...): one pool may have run the whole
    # batch before the other is back. More batches until both run jobs again; a worker that never
    # consumes again (celery#9054) still fails this.
    for _ in range(3):
        if started_after(idle, processes, snapshot) == set(POOLS):
            break
        batch = [enqueue_probe(QUEUE, sleep=1) for _ in range(8)]
        wait_succeeded(batch, 30, processes)
        idle += batch
    assert started_after(idle, processes, snapshot) == set(POOLS), processes.logs()
    assert_ran_exactly_once(idle, starts=lambda job_id: int(client.get(starts_key(job_id)) or 0))


def test_a_30s_postgresql_outage_loses_and_doubles_nothing_and_no_process_exits(processes):
    """Given two pools and two dispatcher candidates that reach PostgreSQL through a proxy, with
    jobs running and published; when the proxy drops every connection and refuses new ones for 30 s;
    then no process exits, and every job (including those enqueued during the outage) finishes
    exactly once after it."""
    proxy = database_proxy()
    proxy.start()
    try:
        processes.configure(TEST_DATABASE_URL=database_url(proxy), LOG_LEVEL="INFO")
        for pool in POOLS:
            processes.worker(QUEUE, pool, 2)
            processes.dispatcher(pool)
        for pool in POOLS:
            processes.wait_ready(f"{QUEUE}@{pool}")
        before = [enqueue_probe(QUEUE, sleep=3) for _ in range(8)]  # 4 run at once, 4 wait in Redis
        assert wait_for(lambda: running_count(before) == 4, 20), processes.logs()

        proxy.cut()
        cut_at = time.monotonic()
        during = [enqueue_probe(QUEUE, sleep=0.5) for _ in range(4)]
        # The outage: nothing to wait for, but every process must stay up through it.
        assert not wait_for(lambda: not all(processes.alive(n) for n in processes.procs), 30), processes.logs()
        proxy.restore()
        restored_at = time.monotonic()
        after = [enqueue_probe(QUEUE, sleep=0.5) for _ in range(4)]

        wait_succeeded(before + during + after, 60, processes)
        print(f"\nMEASURED PostgreSQL outage: all {len(before + during + after)} jobs succeeded "
              f"{time.monotonic() - restored_at:.1f}s after it ended ({restored_at - cut_at:.1f}s outage)")
        assert all(processes.alive(name) for name in processes.procs), processes.logs()
        assert_ran_exactly_once(before + during + after)
        rerun = Job.objects.filter(id__in=[j.id for j in before], attempts__gt=1).count()
        print(f"MEASURED PostgreSQL outage: {rerun} of the {len(before)} jobs enqueued before ran a second attempt")
    finally:
        proxy.cut()
